"""The HTTP face of the mock: fal's queue, run and proxy protocol over raw ASGI.

Thin by design: it parses paths, checks auth, and turns calls on
:class:`~mock_server.emulator.FalMock` into fal's wire format.  Routing (PROTOCOL.md §1, §3):

- ``/queue/{id...}`` (or any path on a ``Host: queue.*``): the queue host.
  ``POST /{endpoint_id}`` submits; ``GET .../requests/{rid}/status[/]``,
  ``GET .../requests/{rid}/status/stream``, ``GET .../requests/{rid}``,
  ``PUT .../requests/{rid}/cancel``, where ``...`` is ``owner/alias`` or the full id.
- ``POST /{endpoint_id}`` anywhere else: the run host (synchronous run).
- ``/api/fal/proxy``: fal's server-proxy protocol; the real URL is in ``x-fal-target-url``.
- ``/_mock/...``: the mock's own routes (health, requests, reset, files, openapi).
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
import traceback
from urllib.parse import urlsplit

import orjson

from typing import Any, Awaitable, Callable

from mock_server.core import fal_errors
from mock_server._asgi import JSON, BodyTooLarge, HttpRequest, Receive, Scope, Send, send_bytes
from mock_server.core.clock import ClockWaiter
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.core.faults import Fault
from mock_server.core.journal import BODY_KEEP
from mock_server.emulator import FalMock, app_of
from mock_server.settings import Settings
from mock_server.core.paths import CDN_PREFIX, FILES_PREFIX, PROXY_PATH, REST_PREFIX, own_file_name
from mock_server.core.queue import (
    ALREADY_COMPLETED,
    CANCELLATION_REQUESTED,
    COMPLETED,
    IN_PROGRESS,
    IN_QUEUE,
    QueuedRequest,
    new_request_id,
)

log = logging.getLogger("fal_mock")

MountHandler = Callable[[HttpRequest, Send], Awaitable[None]]
# a complete response for the server's fast lane: status, headers (content-type and
# content-length first, as send_bytes sends them), body
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]

_TRUE = frozenset(("1", "true", "True", "yes"))
_LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1", "[::1]"))
_CANCEL_STATUS = {CANCELLATION_REQUESTED: 202, ALREADY_COMPLETED: 400}
_SSE_HEADERS = [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]

# Which mock route a proxied ``x-fal-target-url`` host maps to (fal-js libs/proxy).
_QUEUE_HOSTS = frozenset(("queue.fal.run",))
_RUN_HOSTS = frozenset(("fal.run",))
_REST_HOSTS = frozenset(("rest.fal.ai", "rest.alpha.fal.ai"))


def _answer_headers(answer: Answer, request_id: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if request_id:
        headers.append((b"x-fal-request-id", request_id.encode()))
    return headers


async def _run_hooks(hooks: list[Callable[[], Any]]) -> None:
    """Call each hook in order, awaiting those that return a coroutine."""
    for hook in hooks:
        result = hook()
        if asyncio.iscoroutine(result):
            await result


class FalMockApp:
    """The ASGI application serving one :class:`FalMock`."""

    def __init__(self, mock: FalMock) -> None:
        self.mock = mock
        self._prefix = mock.settings.queue_prefix.rstrip("/")
        self._waiter: ClockWaiter | None = None
        self._mounts: list[tuple[str, MountHandler]] = []
        self._startup: list[Callable[[], Any]] = []
        self._shutdown: list[Callable[[], Any]] = []
        mock.queue.on_change(self._on_change)
        self._closing = False
        self._auth_cache: tuple[Any, dict[bytes, Answer | None]] = (None, {})
        # (path, scheme, host) of a queue submit -> (endpoint, queue base URL): a client
        # submits to the same URL again and again, so the lane routes it with one lookup
        self._submit_routes: dict[tuple[str, str, str], tuple[Endpoint, str]] = {}
        # Feature modules add their routes under /_mock/ and their start-up work here.
        # the dashboard's detail view reads the delivery log here (until its router reads the emulator's)
        self.webhooks = mock.webhooks

    @property
    def settings(self) -> Settings:
        return self.mock.settings

    def mount(self, prefix: str, handler: "MountHandler") -> None:
        """Serve every ``/_mock/...`` path starting with ``prefix`` by ``handler(request, send)``
        (prefixes match in mounting order; mounting a prefix again replaces its handler in place)."""
        if not prefix.startswith("/_mock/"):
            raise ValueError("the mock's own routes live under /_mock/ (spec/CLI.md)")
        for i, (known, _) in enumerate(self._mounts):
            if known == prefix:
                self._mounts[i] = (prefix, handler)
                return
        self._mounts.append((prefix, handler))

    def on_startup(self, hook: Callable[[], Any]) -> None:
        """Run ``hook()`` on the server's loop once it starts (before the first request)."""
        self._startup.append(hook)

    def on_shutdown(self, hook: Callable[[], Any]) -> None:
        """Run ``hook()`` (may be a coroutine function) when the server stops."""
        self._shutdown.append(hook)

    # -- ASGI entry --------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Start-up on the server's loop (the lifespan's, or the app that mounts this one)."""
        self._ensure_waiter()
        await _run_hooks(self._startup)

    async def shutdown(self) -> None:
        await _run_hooks(self._shutdown)

    def begin_shutdown(self) -> None:
        """The server is stopping (SIGTERM/SIGINT): end open status streams now, so that
        uvicorn's graceful shutdown need not cancel them.  Safe from a signal handler."""
        self._closing = True
        if self._waiter is not None:
            self._waiter._poke()

    def _ensure_waiter(self) -> ClockWaiter:
        if self._waiter is None:
            self._waiter = ClockWaiter(self.mock.clock, asyncio.get_running_loop())
        return self._waiter

    def _on_change(self, request: QueuedRequest) -> None:
        if self._waiter is not None:
            self._waiter.notify()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = HttpRequest(scope, receive)
        # faults that drop or cut a connection need it (PROTOCOL.md §4.3: clients retry
        # transport errors); the server's protocol passes it as a scope extension
        request.transport = scope.get("extensions", {}).get("fal_mock.transport")
        path = request.path
        entry = None
        recorded = scope.get("fal_mock.journal_entry")  # the web face's journal recorder has it
        if recorded is not None:
            request.entry = recorded
        elif not path.startswith("/_mock/") or path.startswith(_JOURNALED_MOCK_PATHS):
            entry = self._journal_entry(request)
            started = time.perf_counter()
            raw_send = send

            async def send(message: dict, _send: Send = raw_send) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]
                await _send(message)
        try:
            await self._route(request, send)
        except BodyTooLarge as exc:
            await self._send_answer(send, fal_errors.body_too_large(exc.limit))
        except Exception:  # never a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            await self._send_answer(send, fal_errors.internal_error())
        finally:
            if entry is not None:
                self._journal_record(request, started)

    def _journal_entry(self, request: HttpRequest):
        entry = request.entry = self.mock.journal.new_entry(
            self.mock.clock.now(), request.method, request.path, request.raw_query, request.scope["headers"])
        return entry

    def _journal_record(self, request: HttpRequest, started: float) -> None:
        entry = request.entry
        entry.duration_ms = int((time.perf_counter() - started) * 1e6) / 1000  # µs precision, no round()
        body = request.read_body
        if body:
            entry.body = body[:BODY_KEEP]
            entry.body_size = len(body)
        self.mock.journal.record(entry)

    # -- the hot calls, answered without an ASGI cycle ------------------------------------
    def fast_lane(self, scope: Scope, body: bytes) -> "Reply | None":
        """Answer a queue submit, status poll or result GET synchronously, for the server's
        fast lane (:mod:`mock_server.server.fastlane`), as ``(status, headers, body)``; or None, and
        the call takes the ASGI path (fault rules armed, streams, cancels, the run host,
        uploads, ``/_mock/``, a result still to be drawn, a submit with a query).  The
        bytes on the wire are the same either way."""
        if self.mock.faults.active or len(body) > self.settings.max_body_bytes:
            return None
        request = HttpRequest(scope, _no_receive, body)
        if request.path.startswith("/_mock/"):
            return None
        started = time.perf_counter()
        self._journal_entry(request)
        try:
            reply = self._hot(request)
        except Exception:  # never a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            reply = _reply(fal_errors.internal_error())
        if reply is None:
            return None  # the entry is dropped unrecorded: the ASGI path journals the call
        status, payload, extra = reply
        request.entry.status = status
        self._journal_record(request, started)
        headers = [(b"content-type", JSON), (b"content-length", b"%d" % len(payload))]
        if extra:
            headers += extra
        return status, headers, payload

    def _hot(self, request: HttpRequest) -> "tuple[int, bytes, list] | None":
        submit = request.method == "POST" and not request.raw_query
        if submit:
            route = self._submit_routes.get((request.path, request.scheme, request.host))
            # still the endpoint registered for that id (configure() may have replaced it)
            if route is not None and self.mock.endpoint(route[0].endpoint_id) is route[0]:
                return self._lane_submit(request, *route)
        target = self._queue_target(request)
        if target is None:
            return None
        path, queue_base = target
        segments = _segments(path)
        parts = _queue_path(segments)
        if parts is None:
            endpoint = self.mock.endpoint("/".join(segments)) if segments else None
            if endpoint is None or not submit:
                return None
            if len(self._submit_routes) >= _ROUTES_KEPT:  # Host headers are the client's to vary
                self._submit_routes.clear()
            self._submit_routes[(request.path, request.scheme, request.host)] = (endpoint, queue_base)
            return self._lane_submit(request, endpoint, queue_base)
        denied = self.authorized(request, False)
        if denied is not None:
            return _reply(denied)
        app_path, request_id, action = parts
        call = _QUEUE_CALLS.get((action, request.method))
        if call not in ("status", "result") or not self.mock.knows_app(app_path):
            return None
        if call == "status":
            self._note(request, call, None, request_id)
            return self._status_reply(request, request_id, app_path, queue_base)
        reply = self._result_reply(request_id, app_path, queue_base)
        if reply is not None:
            self._note(request, call, None, request_id)
        return reply

    def _lane_submit(self, request: HttpRequest, endpoint: Endpoint, queue_base: str) -> "tuple[int, bytes, list]":
        denied = self.authorized(request, False)
        if denied is not None:
            return _reply(denied)
        self._note(request, "submit", endpoint.endpoint_id)
        return self._submit_reply(request, endpoint, request.read_body, queue_base, None)

    async def _send_answer(self, send: Send, answer: Answer, request_id: str | None = None) -> None:
        await send_bytes(send, *_reply(answer, request_id))

    # -- routing -----------------------------------------------------------------------
    async def _route(self, request: HttpRequest, send: Send) -> None:
        path = request.path
        if path.startswith("/_mock/"):
            await self._mock_route(request, send)
            return
        if path == PROXY_PATH or path.startswith(PROXY_PATH + "/"):
            await self._proxy(request, send)
            return
        target = self._queue_target(request)
        if target is not None:
            await self._fal(request, send, "queue", target[0], target[1], proxied=False)
        else:
            await self._fal(request, send, "run", path, "", proxied=False)

    def _queue_target(self, request: HttpRequest) -> tuple[str, str] | None:
        """``(path on the queue host, queue base URL)`` when the call is for the queue host:
        under the queue prefix, or on a ``Host: queue.*``; None for the run host."""
        path = request.path
        prefix = self._prefix
        if prefix and (path.startswith(prefix + "/") or path == prefix):
            return path[len(prefix):], f"{request.scheme}://{request.host}{prefix}"
        host = request.host
        if host.startswith("queue."):
            return path, f"{request.scheme}://{host}"
        return None

    async def _proxy(self, request: HttpRequest, send: Send) -> None:
        """fal's server-proxy protocol (fal-js libs/proxy, PROTOCOL.md §8.2 C)."""
        cors = [(b"access-control-allow-origin", b"*")]
        if request.method == "OPTIONS":
            await send_bytes(send, 204, b"", cors + [
                (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
                (b"access-control-allow-headers", b"*"),
            ])
            return
        target = request.header("x-fal-target-url")
        if not target:
            # fal-js libs/proxy answers 400 "Invalid request" without the header.
            await self._send_answer(send, fal_errors.detail(400, "Missing the x-fal-target-url header"))
            return
        parts = urlsplit(target)
        host = (parts.hostname or "").lower()
        path = parts.path or "/"
        if request.entry is not None:
            request.entry.proxied = True
            request.entry.target_url = target
            request.entry.path = path
            request.entry.query = parts.query
        if parts.query:
            request.replace_query(parts.query.encode("latin-1"))
        direct_queue = f"{request.scheme}://{request.host}{self._prefix}"
        if host in _QUEUE_HOSTS:
            await self._fal(request, send, "queue", path, direct_queue, proxied=True)
        elif host in _RUN_HOSTS:
            await self._fal(request, send, "run", path, direct_queue, proxied=True)
        elif host in _REST_HOSTS:
            request.path = REST_PREFIX + path.lstrip("/")
            await self._mock_route(request, send)
        elif host.endswith(".fal.media"):
            request.path = CDN_PREFIX + path.lstrip("/")
            await self._mock_route(request, send)
        else:
            # fal-js libs/proxy refuses targets outside fal's domains with 412.
            await self._send_answer(send, fal_errors.detail(412, f"Invalid target URL: {target}"))

    def authorized(self, request: HttpRequest, proxied: bool) -> Answer | None:
        """None when the caller may proceed, else fal's 401 answer."""
        settings = self.settings
        if not settings.auth:
            return None
        raw = request.raw_header(b"authorization")
        if raw is None:
            if proxied:
                return None  # the server proxy adds the server's own key (fal-js libs/proxy)
            return fal_errors.unauthorized("Missing authorization header")
        # A client sends the same header on every poll: remember the verdict per value
        # (per settings object, so a configure() that changes keys starts afresh).
        cache = self._auth_cache
        if cache[0] is not settings:
            cache = self._auth_cache = (settings, {})
        verdict = cache[1].get(raw, _UNSEEN)
        if verdict is _UNSEEN:
            verdict = self._check_key(raw.decode("latin-1"))
            if len(cache[1]) < 1024:
                cache[1][raw] = verdict
        return verdict

    def _check_key(self, value: str) -> Answer | None:
        scheme, _, key = value.partition(" ")
        key = key.strip()
        scheme = scheme.lower()
        if scheme == "bearer" and key and not self.settings.keys:
            return None  # fal_client sends a JWT this way after `fal auth login`
        if scheme != "key" or not key or ":" not in key:
            return fal_errors.invalid_key_format()
        keys = self.settings.keys
        if keys and key not in keys:
            return fal_errors.unknown_key()
        return None

    async def _fal(self, request: HttpRequest, send: Send, host_kind: str, path: str, queue_base: str, proxied: bool) -> None:
        denied = self.authorized(request, proxied)
        if denied is not None:
            await self._send_answer(send, denied)
            return
        segments = _segments(path)
        if host_kind == "queue":
            await self._queue_route(request, send, segments, path, queue_base)
        else:
            await self._run_route(request, send, segments, path)

    # -- queue host --------------------------------------------------------------------
    async def _queue_route(self, request: HttpRequest, send: Send, segments: list[str], path: str, queue_base: str) -> None:
        method = request.method
        parts = _queue_path(segments)
        if parts is None:
            if not segments:
                await self._send_answer(send, fal_errors.path_not_found(path))
                return
            endpoint = self.mock.endpoint("/".join(segments))
            if endpoint is None:
                await self._send_answer(send, fal_errors.app_not_found("/".join(segments)))
            elif method != "POST":
                await self._send_answer(send, fal_errors.method_not_allowed())
            else:
                self._note(request, "submit", endpoint.endpoint_id)
                body = await request.body(self.settings.max_body_bytes)
                fault, send = await self._inject("submit", request, send, None, body)
                if fault is not _HANDLED:
                    await self._submit(request, send, endpoint, body, queue_base, fault)
            return
        app_path, request_id, action = parts
        if not self.mock.knows_app(app_path):
            await self._send_answer(send, fal_errors.app_not_found(app_path))
            return
        call = _QUEUE_CALLS.get((action, method))
        if call is None:
            if action in _QUEUE_ACTIONS:
                await self._send_answer(send, fal_errors.method_not_allowed())
            else:
                await self._send_answer(send, fal_errors.path_not_found(request.path))
            return
        self._note(request, call, None, request_id)
        fault, send = await self._inject(call, request, send, request_id)
        if fault is _HANDLED:
            return
        if call == "result":
            await self._result(request, send, request_id, app_path, queue_base)
        elif call == "status":
            await self._status(request, send, request_id, app_path, queue_base)
        elif call == "stream":
            await self._stream(request, send, request_id, app_path, queue_base)
        else:
            await self._cancel(send, request_id, app_path)

    # -- journal notes and faults -------------------------------------------------------
    @staticmethod
    def _note(request: HttpRequest, kind: str, endpoint_id: str | None, request_id: str | None = None) -> None:
        entry = request.entry
        if entry is not None:
            entry.kind = kind
            if endpoint_id is not None:
                entry.endpoint_id = endpoint_id
            if request_id is not None:
                entry.request_id = request_id

    async def _inject(self, call: str, request: HttpRequest, send: Send, request_id: str | None,
                      body: bytes | None = None) -> tuple[Any, Send]:
        """Apply a fault a rule picks for this call.

        Returns ``(_HANDLED, send)`` when the fault answered (or dropped) the call,
        ``(fault, send)`` for a request-level fault the caller applies, else
        ``(None, send)``; ``send`` may be wrapped (a truncating fault).
        """
        faults = self.mock.faults
        if not faults.active:
            return None, send
        fault = faults.match(call, (lambda: _prompt_of(body)) if body is not None else None)
        if fault is None:
            return None, send
        if request.entry is not None:
            request.entry.fault = fault.label
        kind = fault.kind
        if kind == "latency":
            await asyncio.sleep(fault.delay)
            return None, send
        if kind == "http_error":
            status, payload, headers, content_type = fault.http_answer(request_id)
            await send_bytes(send, status, payload, headers, content_type)
            return _HANDLED, send
        if kind == "drop":
            await self._close_connection(request)
            return _HANDLED, send
        if kind == "truncate":
            return None, self._truncating(request, send)
        return fault, send  # model_error / runner_error: the request's result

    async def _close_connection(self, request: HttpRequest) -> None:
        transport = request.transport
        if transport is not None:
            transport.close()
        # let the server see the connection go before this handler returns, so it does
        # not try to answer a 500 on it
        for _ in range(3):
            await asyncio.sleep(0)

    def _truncating(self, request: HttpRequest, send: Send) -> Send:
        done = False

        async def truncating_send(message: dict) -> None:
            nonlocal done
            if done:
                return
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
                done = True
                await self._close_connection(request)
                return
            await send(message)

        return truncating_send

    def _lookup(self, request_id: str, app_path: str) -> QueuedRequest | None:
        found = self.mock.queue.get(request_id)
        if found is None:
            return None
        endpoint_id = found.endpoint.endpoint_id
        if app_path != endpoint_id and app_of(endpoint_id) != app_path:
            return None  # the id exists, but under another app
        return found

    async def _submit(self, request: HttpRequest, send: Send, endpoint, body: bytes, queue_base: str,
                      fault: Fault | None) -> None:
        await send_bytes(send, *self._submit_reply(request, endpoint, body, queue_base, fault))

    def _submit_reply(self, request: HttpRequest, endpoint, body: bytes, queue_base: str,
                      fault: Fault | None) -> tuple[int, bytes, list]:
        parsed = endpoint.parse(body)
        queued = self.mock.queue.submit(endpoint, parsed)
        if request.entry is not None:
            request.entry.request_id = queued.request_id
        if fault is not None:
            self.mock.apply_request_fault(queued, fault)
        webhook = request.query.get("fal_webhook") if request.raw_query else None
        if webhook:
            queued.webhook_url = webhook
        queued.origin = (request.scheme, request.host)
        rid = queued.request_id
        payload = orjson.dumps({
            "status": IN_QUEUE,
            **_request_urls(queue_base, app_of(endpoint.endpoint_id), rid),
            "queue_position": self.mock.queue.queue_position(queued),
        })
        return 200, payload, [(b"x-fal-request-id", rid.encode())]

    def _status_body(self, queued: QueuedRequest, queue_base: str, app_path: str, with_logs: bool, now: float, logs=None) -> dict:
        status = queued.status
        body: dict = {"status": status, **_request_urls(queue_base, app_path, queued.request_id)}
        if status == IN_QUEUE:
            body["queue_position"] = self.mock.queue.queue_position(queued)
            return body
        if with_logs:
            lines = queued.logs_until(now) if logs is None else logs
            body["logs"] = [line.as_json() for line in lines]
        else:
            body["logs"] = None
        if status == IN_PROGRESS:
            body["metrics"] = {}  # as in fal's recorded status-stream capture
        else:
            body["metrics"] = {"inference_time": queued.inference_time}
            if queued.error is not None:
                body["error"] = queued.error
                body["error_type"] = queued.error_type
        return body

    async def _status(self, request: HttpRequest, send: Send, request_id: str, app_path: str, queue_base: str) -> None:
        await send_bytes(send, *self._status_reply(request, request_id, app_path, queue_base))

    def _status_reply(self, request: HttpRequest, request_id: str, app_path: str, queue_base: str) -> tuple[int, bytes, list]:
        queued = self._lookup(request_id, app_path)
        if queued is None:
            return _reply(fal_errors.status_not_found())
        with_logs = _logs_flag(request)
        if self.mock.queue.polls is not None:
            self.mock.queue.observe(queued)
        completed = queued.status == COMPLETED
        key = (queue_base, app_path, with_logs)
        cache = queued.status_cache
        payload = cache.get(key) if completed and cache is not None else None
        if payload is None:
            payload = orjson.dumps(self._status_body(queued, queue_base, app_path, with_logs, self.mock.clock.now()))
            if completed:
                if cache is None:
                    cache = queued.status_cache = {}
                cache[key] = payload
        return 200 if completed else 202, payload, [(b"x-fal-request-id", request_id.encode())]

    async def _result(self, request: HttpRequest, send: Send, request_id: str, app_path: str, queue_base: str) -> None:
        reply = self._result_reply(request_id, app_path, queue_base)
        if reply is None:  # COMPLETED, its result not produced yet
            queued = self.mock.queue.get(request_id)
            reply = _reply(await self.mock.result(queued, self._env(request)), request_id)
        await send_bytes(send, *reply)

    def _result_reply(self, request_id: str, app_path: str, queue_base: str) -> tuple[int, bytes, list] | None:
        """The result GET's reply, or None when the result must be produced first."""
        queued = self._lookup(request_id, app_path)
        if queued is None:
            return _reply(fal_errors.result_not_found())
        if queued.status != COMPLETED:
            urls = _request_urls(queue_base, app_path, request_id)
            return _reply(fal_errors.still_in_progress(urls), request_id)
        answer = self.mock.kept_result(queued)
        return None if answer is None else _reply(answer, request_id)

    async def _cancel(self, send: Send, request_id: str, app_path: str) -> None:
        if self._lookup(request_id, app_path) is None:
            outcome = "NOT_FOUND"
        else:
            outcome = self.mock.queue.cancel(request_id)
        status = _CANCEL_STATUS.get(outcome, 404)
        body = {"status": outcome}
        if outcome == ALREADY_COMPLETED:
            # fal documents the enum value; aimock's live canary saw a {"detail": ...} body here.
            # Both keys are sent so either reading works; the text is the mock's own.
            body = {"detail": "Request is already completed", "status": outcome}
        await send_bytes(send, status, orjson.dumps(body))

    async def _stream(self, request: HttpRequest, send: Send, request_id: str, app_path: str, queue_base: str) -> None:
        """Status as server-sent events: one event per change, COMPLETED last, then close.

        Each event carries only the log lines that are new since the previous one
        (fal-js accumulates them, queue.ts), and a ``: ping`` comment keeps an idle
        stream alive every 15 s (fal docs, queue/status-stream).
        """
        queued = self._lookup(request_id, app_path)
        if queued is None:
            await self._send_answer(send, fal_errors.status_not_found())
            return
        with_logs = _logs_flag(request)
        waiter = self._ensure_waiter()
        disconnected = asyncio.Event()

        async def watch_disconnect() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch_disconnect())
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), *_SSE_HEADERS,
            (b"x-fal-request-id", request_id.encode()),
        ]})
        clock, queue = self.mock.clock, self.mock.queue
        loop = asyncio.get_running_loop()
        sent_version, sent_logs, sent_position = -1, 0, None
        try:
            while not disconnected.is_set() and not self._closing:
                now = clock.now()
                queue.advance(now)
                if queue.polls is not None:
                    queue.observe(queued)  # poll-count mode: each event counts as a poll
                lines = queued.logs_until(now)
                position = queue.queue_position(queued) if queued.status == IN_QUEUE else None
                if queued.version != sent_version or len(lines) != sent_logs or position != sent_position:
                    body = self._status_body(queued, queue_base, app_path, with_logs, now, lines[sent_logs:])
                    chunk = b"data: " + orjson.dumps(body) + b"\n\n"
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent_version, sent_logs, sent_position = queued.version, len(lines), position
                if queued.status == COMPLETED:
                    break
                if queue.polls is not None:
                    continue
                due = [t for t in (queue.next_event_time(), _next_log_time(queued, now)) if t is not None]
                when = min(due) if due else now + 15.0
                version, idle_since = queued.version, loop.time()
                await waiter.sleep_until(when, max_wait=15.0)
                # the keep-alive is real time, not mock time: a frozen clock still pings
                if queued.version == version and loop.time() - idle_since >= 15.0:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
        finally:
            watcher.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    # -- run host ----------------------------------------------------------------------
    async def _run_route(self, request: HttpRequest, send: Send, segments: list[str], path: str) -> None:
        endpoint = self.mock.endpoint("/".join(segments)) if segments else None
        if endpoint is None:
            await self._send_answer(send, fal_errors.path_not_found(path))
            return
        if request.method != "POST":
            await self._send_answer(send, fal_errors.method_not_allowed())
            return
        body = await request.body(self.settings.max_body_bytes)
        request_id = new_request_id()
        self._note(request, "run", endpoint.endpoint_id, request_id)
        fault, send = await self._inject("run", request, send, request_id, body)
        if fault is _HANDLED:
            return
        parsed = endpoint.parse(body)
        if isinstance(parsed, Parsed):
            # A synchronous run takes the profile's processing time, on the mock's clock.
            clock = self.mock.clock
            done_at = clock.now() + self.mock.queue.timing.duration(request_id)
            waiter = self._ensure_waiter()
            while clock.now() < done_at:
                await waiter.sleep_until(done_at)
        if fault is not None:
            answer = self.mock.fault_answer(fault)
        else:
            answer = await self.mock.produce(endpoint, parsed, request_id, self._env(request))
        await self._send_answer(send, answer, request_id)

    # -- environment for producing results ---------------------------------------------
    def _env(self, request: HttpRequest) -> EndpointEnv:
        return self.env_for(request.scheme, request.host)

    def env_for(self, scheme: str, host: str) -> EndpointEnv:
        """What an endpoint needs to produce a result for a caller who reached us as ``scheme://host``."""
        files_base = f"{scheme}://{host}{FILES_PREFIX}"
        settings = self.settings

        return EndpointEnv(
            files=self.mock.files,
            file_url=lambda name: files_base + name,
            own_file_name=lambda url: own_file_name(url, host=settings.host, port=settings.port, caller_host=host),
            allow_fetch=self.settings.allow_fetch,
            fetch_timeout=self.settings.fetch_timeout,
            fetch_max_bytes=self.settings.fetch_max_bytes,
            log=log.info,
        )

    # -- the mock's own routes ---------------------------------------------------------
    async def _mock_route(self, request: HttpRequest, send: Send) -> None:
        path = request.path
        method = request.method
        if path.startswith(FILES_PREFIX) and method in ("GET", "HEAD"):
            await self._file(request, send, path[len(FILES_PREFIX):])
            return
        if not _admin_allowed(self.settings.admin_token, request, path):
            await self._send_answer(send, fal_errors.detail(401, "Admin token required"))
            return
        for prefix, handler in self._mounts:
            if path.startswith(prefix):
                await handler(request, send)
                return
        await self._send_answer(send, fal_errors.path_not_found(path))

    async def _file(self, request: HttpRequest, send: Send, name: str) -> None:
        """A stored file (rendered output or upload): rendered again if the cache dropped it."""
        self._note(request, "file", None)
        if "/" in name or not name or name.startswith("."):
            await self._send_answer(send, fal_errors.path_not_found(request.path))
            return
        stored = await asyncio.to_thread(self.mock.files.get, name)
        if stored is None:
            await self._send_answer(send, fal_errors.detail(404, "File not found"))
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", stored.content_type.encode("latin-1")),
            (b"content-length", str(len(stored.data)).encode()),
            (b"cache-control", b"public, max-age=31536000, immutable"),
        ]})
        await send({"type": "http.response.body", "body": stored.data if request.method == "GET" else b""})

    async def send_answer(self, send: Send, answer: Answer, request_id: str | None = None) -> None:
        """Send an :class:`Answer` (for mounted handlers)."""
        await self._send_answer(send, answer, request_id)

    @property
    def waiter(self) -> ClockWaiter:
        """Sleeps on the mock's clock (created on the running loop at first use)."""
        return self._ensure_waiter()


def _reply(answer: Answer, request_id: str | None = None) -> tuple[int, bytes, list]:
    """An :class:`Answer` as ``send_bytes`` arguments: status, body, extra headers."""
    return answer.status, answer.body, _answer_headers(answer, request_id)


async def _no_receive() -> dict:
    return {"type": "http.disconnect"}


def _request_urls(queue_base: str, app_path: str, request_id: str) -> dict[str, str]:
    """``request_id`` and the three URLs every submit and status body carries (PROTOCOL.md §3.3),
    in fal's key order; they lead back to the mock as the caller reached it."""
    base = f"{queue_base}/{app_path}/requests/{request_id}"
    return {"request_id": request_id, "response_url": base, "status_url": base + "/status",
            "cancel_url": base + "/cancel"}


_UNSEEN = object()
_ROUTES_KEPT = 64  # submit routes the fast lane remembers (see FalMockApp._submit_routes)
_HANDLED = object()  # _inject's marker: the fault already answered the call
# (action after the request id, method) -> the call's name in the journal and fault rules
_QUEUE_CALLS = {
    ((), "GET"): "result",
    (("status",), "GET"): "status",
    (("status", "stream"), "GET"): "stream",
    (("cancel",), "PUT"): "cancel",
}
_QUEUE_ACTIONS = frozenset(action for action, _ in _QUEUE_CALLS)
# /_mock/ paths that stand for fal hosts (storage, CDN, files) are journaled like fal calls
_JOURNALED_MOCK_PATHS = (FILES_PREFIX, REST_PREFIX, CDN_PREFIX)


# The query strings the official clients send (PROTOCOL.md §3.4), answered without parsing.
_LOGS_QUERIES = {b"": False, b"logs=0": False, b"logs=false": False, b"logs=1": True, b"logs=true": True}


def _logs_flag(request: HttpRequest) -> bool:
    """``?logs=`` as 1/0/true/false (Python sends true/false, JS and fal.apps 1/0)."""
    flag = _LOGS_QUERIES.get(request.raw_query)
    if flag is None:
        flag = request.query.get("logs", "0") in _TRUE
    return flag


def _prompt_of(body: bytes | None) -> str | None:
    """The ``prompt`` of a JSON request body, for fault rules that match on it."""
    if not body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    prompt = data.get("prompt") if isinstance(data, dict) else None
    return prompt if isinstance(prompt, str) else None


# open even with an admin token: health, and the stand-ins for fal's own hosts
_ADMIN_OPEN = ("/_mock/health", FILES_PREFIX, REST_PREFIX, CDN_PREFIX)


def _admin_allowed(token: str | None, request: HttpRequest, path: str) -> bool:
    """Whether a /_mock/ control call may proceed (always, unless an admin token is set)."""
    if not token or path.startswith(_ADMIN_OPEN):
        return True
    given = request.header("x-fal-mock-admin-token")
    if given is None:
        scheme, _, value = (request.header("authorization") or "").partition(" ")
        given = value.strip() if scheme.lower() == "bearer" else ""
    import hmac  # here: only servers with an admin token compare one (keeps start-up lean)

    return hmac.compare_digest(given.encode(), token.encode())


def _segments(path: str) -> list[str]:
    return [s for s in path.split("/") if s]


def _queue_path(segments: list[str]) -> tuple[str, str, tuple[str, ...]] | None:
    """``(app path, request id, action)`` for ``{app}/requests/{id}[/{action}...]``;
    None for anything else (a submit's endpoint id, or nothing)."""
    index = _requests_index(segments)
    if index < 0:
        return None
    return "/".join(segments[:index]), segments[index + 1], tuple(segments[index + 2:])


def _requests_index(segments: list[str]) -> int:
    """Index of the ``requests`` segment in ``app/requests/{id}[/...]``, or -1."""
    for i in range(2, len(segments) - 1):
        if segments[i] == "requests":
            return i
    return -1


def _next_log_time(queued: QueuedRequest, now: float) -> float | None:
    if queued.status != IN_PROGRESS:
        return None
    for line in queued.log_plan():
        if line.at > now:
            return line.at
    return None
