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

The protocol also bounds what a connection can hold (issue 20):

- a request head (request line and headers) longer than :data:`HEAD_MAX` bytes is answered
  ``431 Request Header Fields Too Large`` (:func:`head_too_large`) and the connection is
  closed; the parser is never fed more than that much of one head (httptools itself keeps no
  limit and buffers a header value whole before its ``on_header`` callback, so the bytes are
  counted as they arrive, in ``data_received``);
- a connection that has not sent a complete request head within ``head_timeout`` seconds
  (``Settings.request_head_timeout``, 10 s by default) of being opened or of its last answer
  is closed, whether it sent nothing, part of a head, or drips a head a byte at a time.
  uvicorn's own keep-alive timer starts only after a first answer and stops at the first
  byte received, so without this a silent or slow socket stays open forever.

On an untested uvicorn (:mod:`mock_server.server._uvicorn_compat` off) uvicorn's own protocol
serves instead and neither bound holds: its h11 protocol refuses a head above 16 KiB
(``h11_max_incomplete_event_size``), its httptools protocol has no head limit, and neither
closes a connection that never completes a request.

It copies uvicorn's response framing and reads its protocol's private state, so it is used
only through :mod:`mock_server.server._uvicorn_compat`, on the uvicorn releases that were proved.
"""
from __future__ import annotations

import json
import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

# A body longer than this leaves the lane at once (uploads, data URIs): uvicorn streams it
# to the app with its flow control, as before.
LANE_BODY_MAX = 64 * 1024
_LANE_METHODS = {b"GET": "GET", b"POST": "POST"}
#: The scope extension that carries the connection's transport to the app.
TRANSPORT_EXTENSION = "fal_mock.transport"
#: The most bytes a request head (request line, headers and the blank line) may take; a longer
#: one is answered 431.  64 KiB is above common servers' own limits (nginx's
#: large_client_header_buffers 4 x 8 KiB, Node's --max-http-header-size 16 KiB), so no real
#: client's request is refused.
HEAD_MAX = 64 * 1024
#: After a 431, how long the rest of the oversized head is read and dropped before the socket
#: closes, so that a client still sending reads the answer instead of a connection reset.
LINGER = 2.0


def head_too_large() -> bytes:
    """The whole 431 answer but its server headers: fal's error shape, then the connection closes."""
    body = json.dumps({"detail": f"Request header fields too large: the request line and headers "
                                 f"must fit in {HEAD_MAX} bytes"}, separators=(",", ":")).encode()
    return (b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
            % (len(body), body))


class _Discard:
    """The parser of a connection whose head was refused: what still arrives is dropped."""

    @staticmethod
    def feed_data(data: bytes) -> None:
        return None


class FastLaneProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that lets the app answer hot calls without an ASGI cycle."""

    #: Seconds a connection may take to send a complete request head (see the module's text).
    head_timeout: float = 10.0

    @classmethod
    def with_head_timeout(cls, seconds: float) -> type["FastLaneProtocol"]:
        """This protocol closing connections after ``seconds`` without a complete head."""
        if seconds == cls.head_timeout:
            return cls
        return type(cls.__name__, (cls,), {"head_timeout": float(seconds), "__module__": cls.__module__})

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
        # bytes received while waiting for a head (not counted: the rest of the read that ended
        # the previous request, at most one read); None once the head is complete
        self._head_bytes: int | None = 0
        # when the head awaited must be complete (None: none awaited: a request is in progress)
        self._head_deadline: float | None = None
        self._head_timer = None  # one timer per connection, moved on lazily (see _head_timer_fired)

    # Bounds on what a connection holds (the module's text)
    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self._head_bytes
        if counted is not None:
            counted += len(data)
            self._head_bytes = counted
            if counted > HEAD_MAX:
                self._feed_within_limit(data, counted - HEAD_MAX)
                return
        super().data_received(data)

    def _feed_within_limit(self, data: bytes, excess: int) -> None:
        """Feed the part of ``data`` that keeps the head within :data:`HEAD_MAX`; if the head is
        still not complete, refuse it, else feed the rest (a body or the next request)."""
        fit = len(data) - excess
        if fit > 0:
            super().data_received(data[:fit])
        if self.parser is None or self.transport.is_closing():
            return  # a malformed head (uvicorn's 400) or a fault that closed the connection
        if self._head_bytes is not None and self._head_bytes >= HEAD_MAX:
            self._refuse_head()
            return
        self.data_received(data[fit:])

    def _refuse_head(self) -> None:
        self.parser = _Discard()
        self._head_bytes = None
        self._head_deadline = None
        cycle = self.cycle
        if (cycle is not None and not cycle.response_complete) or self.pipeline:
            # an answer is still being written: close once it is out, without a second answer
            cycle.keep_alive = False
            return
        transport = self.transport
        head = [STATUS_LINE[431]]
        head += (b"%s: %s\r\n" % pair for pair in self.server_state.default_headers)
        transport.write(b"".join(head) + head_too_large())
        if transport.can_write_eof():
            # half-close: the answer and a FIN go out; what the client still sends is read
            # and dropped until it closes its side or LINGER runs out
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)
        else:  # TLS: close after the answer is written
            transport.close()

    def _await_head(self) -> None:
        """A head is now awaited: from the connection's start, or once an answer is complete."""
        self._head_deadline = deadline = self.loop.time() + self.head_timeout
        if self._head_timer is None:
            self._head_timer = self.loop.call_at(deadline, self._head_timer_fired)

    def _head_timer_fired(self) -> None:
        # the timer is not moved on each request (a handle made and cancelled per request
        # would cost the lane more than the check below): it fires at the first deadline and
        # then waits for the current one, if any
        self._head_timer = None
        deadline = self._head_deadline
        if deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < deadline:
            self._head_timer = self.loop.call_at(deadline, self._head_timer_fired)
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return  # not reached: no head is awaited while a request is in progress
        self.transport.close()

    def on_response_complete(self) -> None:
        # a pipelined request waiting starts now (its head is complete); with none, the next
        # head is awaited, unless this request's body is still arriving (on_message_complete)
        next_waiting = bool(self.pipeline)
        super().on_response_complete()
        if not next_waiting and self._head_bytes is not None and not self.transport.is_closing():
            self._await_head()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._head_deadline = None
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
        self._head_bytes = 0  # the next request's head is awaited from here
        if not self._in_lane:
            super().on_message_complete()
            cycle = self.cycle
            if cycle is not None and cycle.response_complete and not self.pipeline:
                self._await_head()  # the answer went out before the body was read
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
        self._await_head()

    def _leave_lane(self) -> None:
        """Hand the request to uvicorn's ASGI cycle, with the body read so far."""
        self._in_lane = False
        body, self._lane_body = self._lane_body, b""
        super().on_headers_complete()
        if body:
            self.cycle.body += body
            self.cycle.message_event.set()
