"""The fast lane's decision: answer a queue submit, status poll or result GET synchronously,
without an ASGI cycle, with the bytes the web face would send (or decline, and the call takes
the ASGI path).  The server's protocol (:mod:`mock_server.server.fastlane`) asks it first."""
from __future__ import annotations

import sys
import time
import traceback

from mock_server.core import fal_errors
from mock_server.core.endpoint import Endpoint
from mock_server.core.journal import BODY_KEEP
from mock_server.protocol.calls import JSON, FalCalls, Reply, note, reply_of
from mock_server.protocol.hosts import HostPolicy
from mock_server.protocol.paths import QUEUE_CALLS, is_proxy, queue_path, queue_target, segments
from mock_server.protocol.request import HttpRequest

#: ``(status, headers, body)``: a complete response, content-type and content-length first.
LaneReply = tuple[int, list[tuple[bytes, bytes]], bytes]

_ROUTES_KEPT = 64  # submit routes the lane remembers (see FastLane._submit_routes)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


class FastLane:
    """Answers the hot calls of one :class:`FalCalls`, journaling them as the web face does."""

    def __init__(self, calls: FalCalls) -> None:
        self.calls = calls
        self.emulator = calls.emulator
        settings = calls.emulator.settings
        self._prefix = settings.queue_prefix.rstrip("/")
        # a Host this server does not answer (DNS rebinding): declined, the web face refuses it
        self._hosts = HostPolicy(settings.host, settings.allowed_hosts)
        # (path, scheme, host) of a queue submit -> (endpoint, queue base URL): a client
        # submits to the same URL again and again, so the lane routes it with one lookup
        self._submit_routes: dict[tuple[str, str, str], tuple[Endpoint, str]] = {}

    def answer(self, scope: dict, body: bytes) -> LaneReply | None:
        """``(status, headers, body)``, or None: the call takes the ASGI path (fault rules
        armed, streams, cancels, the run host, uploads, ``/_mock/``, a result still to be
        drawn, a submit with a query).  The bytes on the wire are the same either way."""
        emulator = self.emulator
        if emulator.faults.active or len(body) > emulator.settings.max_body_bytes:
            return None
        call = HttpRequest(scope, _no_receive, body)
        if call.path.startswith("/_mock/") or not self._hosts.allows_at(call.host, scope.get("server")):
            return None
        started = time.perf_counter()
        entry = call.entry = emulator.journal.new_entry(
            emulator.clock.now(), call.method, call.path, call.raw_query, scope["headers"])
        try:
            reply = self._hot(call)
        except Exception:  # never a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            reply = reply_of(fal_errors.internal_error())
        if reply is None:
            return None  # the entry is dropped unrecorded: the ASGI path journals the call
        status, payload, extra = reply
        entry.status = status
        entry.duration_ms = int((time.perf_counter() - started) * 1e6) / 1000  # µs precision, no round()
        if body:
            entry.body = body[:BODY_KEEP]
            entry.body_size = len(body)
        emulator.journal.record(entry)
        headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(payload))]
        if extra:
            headers += extra
        return status, headers, payload

    def _hot(self, call: HttpRequest) -> Reply | None:
        submit = call.method == "POST" and not call.raw_query
        if submit:
            route = self._submit_routes.get((call.path, call.scheme, call.host))
            # still the endpoint registered for that id (configure() may have replaced it)
            if route is not None and self.emulator.endpoint(route[0].endpoint_id) is route[0]:
                return self._submit(call, *route)
        path = call.path
        if is_proxy(path):
            return None
        target = queue_target(path, call.scheme, call.host, self._prefix)
        if target is None:
            return None
        path, queue_base = target
        parts = segments(path)
        parsed = queue_path(parts)
        if parsed is None:
            endpoint = self.emulator.endpoint("/".join(parts)) if parts else None
            if endpoint is None or not submit:
                return None
            if len(self._submit_routes) >= _ROUTES_KEPT:  # Host headers are the client's to vary
                self._submit_routes.clear()
            self._submit_routes[(call.path, call.scheme, call.host)] = (endpoint, queue_base)
            return self._submit(call, endpoint, queue_base)
        calls = self.calls
        denied = calls.keys.denied(call.raw_header(b"authorization"), False)
        if denied is not None:
            return reply_of(denied)
        app_path, request_id, action = parsed
        name = QUEUE_CALLS.get((action, call.method))
        if name not in ("status", "result") or not self.emulator.knows_app(app_path):
            return None
        if name == "status":
            note(call, name, None, request_id)
            return calls.status(call, request_id, app_path, queue_base)
        reply = calls.kept_result(request_id, app_path, queue_base, call.namespace)
        if reply is not None:
            note(call, name, None, request_id)
        return reply

    def _submit(self, call: HttpRequest, endpoint: Endpoint, queue_base: str) -> Reply:
        calls = self.calls
        denied = calls.keys.denied(call.raw_header(b"authorization"), False)
        if denied is not None:
            return reply_of(denied)
        note(call, "submit", endpoint.endpoint_id)
        return calls.submit(call, endpoint, call.read_body, queue_base)
