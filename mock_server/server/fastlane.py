"""uvicorn's httptools protocol with a fast lane for the queue's hot calls.

uvicorn runs every request as an ASGI cycle: a scope, a task, an event, two ``receive``/
``send`` awaits and two socket writes.  For a status poll that answers from a cache, that
cycle costs several times the mock's own work (README, Performance).  This protocol asks
the app first, once the request is complete: its ``fast_lane`` (:mod:`mock_server.protocol.hot`) answers a submit,
status poll or result GET synchronously with ``(status, headers, body)``, and the answer
goes out in one write with the same bytes uvicorn would have sent (status line, uvicorn's
default ``date``/``server`` headers, the app's headers, ``connection: close`` when the
connection ends).  Everything else, and every hot call the app declines (fault rules
armed, a result still to draw, ...), takes uvicorn's own path unchanged.

The lane is taken only when nothing is ahead of the request on its connection (no
pipelined request waiting, no response in progress), so answers keep their order, and
not while the connection's writes are paused (a client that does not read its answers
meets uvicorn's own back-pressure).

It copies uvicorn's response framing and reads its protocol's private state, so it is used
only through :mod:`mock_server.server._uvicorn_compat`, on the uvicorn releases that were proved.
"""
from __future__ import annotations

import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# A body longer than this leaves the lane at once (uploads, data URIs): uvicorn streams it
# to the app with its flow control, as before.
LANE_BODY_MAX = 64 * 1024
_LANE_METHODS = {b"GET": "GET", b"POST": "POST"}
#: The scope extension that carries the connection's transport to the app.
TRANSPORT_EXTENSION = "fal_mock.transport"


class FastLaneProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that lets the app answer hot calls without an ASGI cycle."""

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        lane = getattr(self.app, "fast_lane", None)  # None: the app serves without a lane
        # not when uvicorn wrapped the app (middleware would be skipped) or limits concurrency
        if self.app is not config.app or self.limit_concurrency is not None or self.root_path:
            lane = None
        self._lane = lane
        self._in_lane = False
        self._lane_body = b""
        self._defaults: tuple[object, bytes] = (None, b"")

    def on_headers_complete(self) -> None:
        # the connection, for the faults that drop or cut it (PROTOCOL.md §4.3: clients retry
        # transport errors); an ASGI scope extension, so any middleware passes it on
        self.scope.setdefault("extensions", {})[TRANSPORT_EXTENSION] = self.transport
        parser = self.parser
        method = _LANE_METHODS.get(parser.get_method()) if self._lane is not None else None
        cycle = self.cycle
        # not while the client is not reading its answers (writes paused): uvicorn's cycle
        # then waits for the socket to drain and stops reading pipelined requests
        if (method is None or self.expect_100_continue or self.pipeline or parser.should_upgrade()
                or self.flow.write_paused or not (cycle is None or cycle.response_complete)):
            self._in_lane = False
            super().on_headers_complete()
            return
        # the scope fields uvicorn would set, for the app to read
        scope = self.scope
        scope["method"] = method
        http_version = parser.get_http_version()
        if http_version != "1.1":
            scope["http_version"] = http_version
        parsed = httptools.parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = parsed.query or b""
        self._in_lane = True
        self._lane_body = b""

    def on_body(self, body: bytes) -> None:
        if self._in_lane:
            if len(self._lane_body) + len(body) <= LANE_BODY_MAX:
                self._lane_body += body
                return
            self._leave_lane()
        super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._in_lane:
            super().on_message_complete()
            return
        reply = self._lane(self.scope, self._lane_body)
        if reply is None:
            self._leave_lane()
            super().on_message_complete()
            return
        self._in_lane = False
        self._lane_body = b""
        status, headers, body = reply
        keep_alive = self.scope["http_version"] != "1.0" and self.parser.should_keep_alive()
        defaults = self.server_state.default_headers
        cached = self._defaults
        if cached[0] is not defaults:  # uvicorn renews the list (its date) once a second
            cached = self._defaults = (defaults, b"".join(b"%s: %s\r\n" % pair for pair in defaults))
        out = [STATUS_LINE[status], cached[1]]
        for name, value in headers:
            out += (name, b": ", value, b"\r\n")
        if not keep_alive:
            out.append(b"connection: close\r\n")
        out += (b"\r\n", body)
        transport = self.transport
        transport.write(b"".join(out))
        self.server_state.total_requests += 1
        if not keep_alive:
            transport.close()
            return
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def _leave_lane(self) -> None:
        """Hand the request to uvicorn's ASGI cycle, with the body read so far."""
        self._in_lane = False
        body, self._lane_body = self._lane_body, b""
        super().on_headers_complete()
        if body:
            self.cycle.body += body
            self.cycle.message_event.set()
