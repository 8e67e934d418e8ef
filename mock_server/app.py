"""The HTTP face of the mock: fal's queue, run and proxy protocol over raw ASGI.

Thin by design: it parses paths, checks auth, and turns calls on
:class:`~mock_server.mock.FalMock` into fal's wire format.  Routing (PROTOCOL.md §1, §3):

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
import traceback
import uuid
from urllib.parse import urlsplit

import orjson

from typing import Any, Awaitable, Callable

from mock_server import fal_errors, storage, webhooks
from mock_server._asgi import BodyTooLarge, HttpRequest, Receive, Scope, Send, send_bytes
from mock_server.clock import ClockWaiter
from mock_server.endpoints.base import Answer, EndpointEnv, Parsed
from mock_server.mock import FalMock, app_of
from mock_server.paths import CDN_PREFIX, FILES_PREFIX, PROXY_PATH, REST_PREFIX
from mock_server.queue import (
    ALREADY_COMPLETED,
    CANCELLATION_REQUESTED,
    COMPLETED,
    IN_PROGRESS,
    IN_QUEUE,
    QueuedRequest,
)

log = logging.getLogger("fal_mock")

MountHandler = Callable[[HttpRequest, Send], Awaitable[None]]

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


class FalMockApp:
    """The ASGI application serving one :class:`FalMock`."""

    def __init__(self, mock: FalMock) -> None:
        self.mock = mock
        self.settings = mock.settings
        self._prefix = mock.settings.queue_prefix.rstrip("/")
        self._waiter: ClockWaiter | None = None
        self._mounts: list[tuple[str, MountHandler]] = []
        self._startup: list[Callable[[], Any]] = []
        mock.queue.on_change(self._on_change)
        self._closing = False
        # Feature modules add their routes under /_mock/ and their start-up work here.
        storage.install(self)
        webhooks.install(self)

    def mount(self, prefix: str, handler: "MountHandler") -> None:
        """Serve every ``/_mock/...`` path starting with ``prefix`` by ``handler(request, send)``."""
        if not prefix.startswith("/_mock/"):
            raise ValueError("the mock's own routes live under /_mock/ (spec/CLI.md)")
        self._mounts.append((prefix, handler))

    def on_startup(self, hook: Callable[[], Any]) -> None:
        """Run ``hook()`` on the server's loop once it starts (before the first request)."""
        self._startup.append(hook)

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
                self._ensure_waiter()
                for hook in self._startup:
                    result = hook()
                    if asyncio.iscoroutine(result):
                        await result
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

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
        try:
            await self._route(request, send)
        except BodyTooLarge as exc:
            await self._send_answer(send, fal_errors.body_too_large(exc.limit))
        except Exception:  # never a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            await self._send_answer(send, fal_errors.internal_error())

    async def _send_answer(self, send: Send, answer: Answer, request_id: str | None = None) -> None:
        await send_bytes(send, answer.status, answer.body, _answer_headers(answer, request_id))

    # -- routing -----------------------------------------------------------------------
    async def _route(self, request: HttpRequest, send: Send) -> None:
        path = request.path
        if path.startswith("/_mock/"):
            await self._mock_route(request, send)
            return
        if path == PROXY_PATH or path.startswith(PROXY_PATH + "/"):
            await self._proxy(request, send)
            return
        prefix = self._prefix
        if prefix and (path.startswith(prefix + "/") or path == prefix):
            queue_base = f"{request.scheme}://{request.host}{prefix}"
            await self._fal(request, send, "queue", path[len(prefix):], queue_base, proxied=False)
        elif request.host.startswith("queue."):
            await self._fal(request, send, "queue", path, f"{request.scheme}://{request.host}", proxied=False)
        else:
            await self._fal(request, send, "run", path, "", proxied=False)

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
        if parts.query:
            request.raw_query = parts.query.encode("latin-1")
            request._query = None
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

    def _authorized(self, request: HttpRequest, proxied: bool) -> Answer | None:
        """None when the caller may proceed, else fal's 401 answer."""
        if not self.settings.auth:
            return None
        value = request.header("authorization")
        if value is None:
            if proxied:
                return None  # the server proxy adds the server's own key (fal-js libs/proxy)
            return fal_errors.unauthorized("Missing authorization header")
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
        denied = self._authorized(request, proxied)
        if denied is not None:
            await self._send_answer(send, denied)
            return
        segments = [s for s in path.split("/") if s]
        if host_kind == "queue":
            await self._queue_route(request, send, segments, path, queue_base)
        else:
            await self._run_route(request, send, segments, path)

    # -- queue host --------------------------------------------------------------------
    async def _queue_route(self, request: HttpRequest, send: Send, segments: list[str], path: str, queue_base: str) -> None:
        method = request.method
        index = _requests_index(segments)
        if index < 0:
            if not segments:
                await self._send_answer(send, fal_errors.path_not_found(path))
                return
            endpoint = self.mock.endpoint("/".join(segments))
            if endpoint is None:
                await self._send_answer(send, fal_errors.app_not_found("/".join(segments)))
            elif method != "POST":
                await self._send_answer(send, fal_errors.method_not_allowed())
            else:
                await self._submit(request, send, endpoint, queue_base)
            return
        app_path = "/".join(segments[:index])
        tail = segments[index + 1:]
        if not self.mock.knows_app(app_path):
            await self._send_answer(send, fal_errors.app_not_found(app_path))
            return
        request_id = tail[0]
        action = tuple(tail[1:])
        if action == () and method == "GET":
            await self._result(request, send, request_id, app_path, queue_base)
        elif action == ("status",) and method == "GET":
            await self._status(request, send, request_id, app_path, queue_base)
        elif action == ("status", "stream") and method == "GET":
            await self._stream(request, send, request_id, app_path, queue_base)
        elif action == ("cancel",) and method == "PUT":
            await self._cancel(send, request_id, app_path)
        elif action in ((), ("status",), ("status", "stream"), ("cancel",)):
            await self._send_answer(send, fal_errors.method_not_allowed())
        else:
            await self._send_answer(send, fal_errors.path_not_found(request.path))

    def _lookup(self, request_id: str, app_path: str) -> QueuedRequest | None:
        found = self.mock.queue.get(request_id)
        if found is None:
            return None
        endpoint_id = found.endpoint.endpoint_id
        if app_path != endpoint_id and app_of(endpoint_id) != app_path:
            return None  # the id exists, but under another app
        return found

    async def _submit(self, request: HttpRequest, send: Send, endpoint, queue_base: str) -> None:
        body = await request.body(self.settings.max_body_bytes)
        parsed = endpoint.parse(body)
        queued = self.mock.queue.submit(endpoint, parsed)
        webhook = request.query.get("fal_webhook") if request.raw_query else None
        if webhook:
            queued.webhook_url = webhook
        queued.meta["origin"] = (request.scheme, request.host)
        rid = queued.request_id
        base = f"{queue_base}/{app_of(endpoint.endpoint_id)}/requests/{rid}"
        payload = orjson.dumps({
            "status": IN_QUEUE,
            "request_id": rid,
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
            "queue_position": self.mock.queue.queue_position(queued),
        })
        await send_bytes(send, 200, payload, [(b"x-fal-request-id", rid.encode())])

    def _status_body(self, queued: QueuedRequest, queue_base: str, app_path: str, with_logs: bool, now: float, logs=None) -> dict:
        rid = queued.request_id
        base = f"{queue_base}/{app_path}/requests/{rid}"
        body: dict = {
            "status": queued.status,
            "request_id": rid,
            "response_url": base,
            "status_url": base + "/status",
            "cancel_url": base + "/cancel",
        }
        status = queued.status
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
        queued = self._lookup(request_id, app_path)
        if queued is None:
            await self._send_answer(send, fal_errors.status_not_found())
            return
        with_logs = request.query.get("logs", "0") in _TRUE if request.raw_query else False
        completed = queued.status == COMPLETED
        key = (queue_base, app_path, with_logs)
        payload = queued.status_cache.get(key) if completed else None
        if payload is None:
            payload = orjson.dumps(self._status_body(queued, queue_base, app_path, with_logs, self.mock.clock.now()))
            if completed:
                queued.status_cache[key] = payload
        await send_bytes(send, 200 if completed else 202, payload, [(b"x-fal-request-id", request_id.encode())])

    async def _result(self, request: HttpRequest, send: Send, request_id: str, app_path: str, queue_base: str) -> None:
        queued = self._lookup(request_id, app_path)
        if queued is None:
            await self._send_answer(send, fal_errors.result_not_found())
            return
        if queued.status != COMPLETED:
            base = f"{queue_base}/{app_path}/requests/{request_id}"
            await self._send_answer(send, fal_errors.still_in_progress(request_id, base), request_id)
            return
        answer = await self.mock.result(queued, self._env(request))
        await self._send_answer(send, answer, request_id)

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
        with_logs = request.query.get("logs", "0") in _TRUE
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
        sent_version, sent_logs, sent_position = -1, 0, None
        try:
            while not disconnected.is_set() and not self._closing:
                now = clock.now()
                queue.advance(now)
                lines = queued.logs_until(now)
                position = queue.queue_position(queued) if queued.status == IN_QUEUE else None
                if queued.version != sent_version or len(lines) != sent_logs or position != sent_position:
                    body = self._status_body(queued, queue_base, app_path, with_logs, now, lines[sent_logs:])
                    chunk = b"data: " + orjson.dumps(body) + b"\n\n"
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent_version, sent_logs, sent_position = queued.version, len(lines), position
                if queued.status == COMPLETED:
                    break
                due = [t for t in (queue.next_event_time(), _next_log_time(queued, now)) if t is not None]
                when = min(due) if due else now + 15.0
                before = (queued.version, clock.now())
                await waiter.sleep_until(when, max_wait=15.0)
                if (queued.version, ) == before[:1] and clock.now() - before[1] >= 15.0:
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
        request_id = str(uuid.uuid4())
        parsed = endpoint.parse(body)
        if isinstance(parsed, Parsed):
            # A synchronous run takes the profile's processing time, on the mock's clock.
            clock = self.mock.clock
            done_at = clock.now() + self.mock.queue.timing.duration(request_id)
            waiter = self._ensure_waiter()
            while clock.now() < done_at:
                await waiter.sleep_until(done_at)
        answer = await self.mock.produce(endpoint, parsed, request_id, self._env(request))
        await self._send_answer(send, answer, request_id)

    # -- environment for producing results ---------------------------------------------
    def _env(self, request: HttpRequest) -> EndpointEnv:
        return self.env_for(request.scheme, request.host)

    def env_for(self, scheme: str, host: str) -> EndpointEnv:
        """What an endpoint needs to produce a result for a caller who reached us as ``scheme://host``."""
        files_base = f"{scheme}://{host}{FILES_PREFIX}"
        port = self.settings.port

        def own_file_name(url: str) -> str | None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.path.startswith(FILES_PREFIX):
                return None
            if (parts.hostname or "") not in _LOOPBACK and parts.hostname != self.settings.host:
                return None
            if parts.port not in (port, None) and parts.netloc != host:
                return None
            return parts.path[len(FILES_PREFIX):]

        return EndpointEnv(
            files=self.mock.files,
            file_url=lambda name: files_base + name,
            own_file_name=own_file_name,
            allow_fetch=self.settings.allow_fetch,
            fetch_timeout=self.settings.fetch_timeout,
            fetch_max_bytes=self.settings.fetch_max_bytes,
            log=log.info,
        )

    # -- the mock's own routes ---------------------------------------------------------
    async def _mock_route(self, request: HttpRequest, send: Send) -> None:
        path = request.path
        method = request.method
        if path == "/_mock/health":
            await send_bytes(send, 200, orjson.dumps({"status": "ok", "requests": len(self.mock.queue)}))
        elif path.startswith(FILES_PREFIX) and method in ("GET", "HEAD"):
            name = path[len(FILES_PREFIX):]
            if "/" in name or not name or name.startswith("."):
                await self._send_answer(send, fal_errors.path_not_found(path))
                return
            stored = await asyncio.to_thread(self.mock.files.get, name)
            if stored is None:
                await self._send_answer(send, fal_errors.detail(404, "File not found"))
                return
            body = stored.data if method == "GET" else b""
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", stored.content_type.encode("latin-1")),
                (b"content-length", str(len(stored.data)).encode()),
                (b"cache-control", b"public, max-age=31536000, immutable"),
            ]})
            await send({"type": "http.response.body", "body": body})
        elif path == "/_mock/requests" and method == "GET":
            self.mock.queue.advance()
            items = [self.mock.summary(r) for r in self.mock.queue]
            await send_bytes(send, 200, orjson.dumps({"requests": items, "forgotten": self.mock.queue.forgotten}))
        elif path.startswith("/_mock/requests/") and method == "GET":
            found = self.mock.queue.get(path[len("/_mock/requests/"):])
            if found is None:
                await self._send_answer(send, fal_errors.detail(404, "Request not found"))
            else:
                await send_bytes(send, 200, orjson.dumps(self.mock.summary(found)))
        elif path == "/_mock/reset" and method == "POST":
            self.mock.reset()
            await send_bytes(send, 200, orjson.dumps({"status": "ok"}))
        elif path == "/_mock/openapi.json" and method == "GET":
            await self._openapi(request, send)
        else:
            for prefix, handler in self._mounts:
                if path.startswith(prefix):
                    await handler(request, send)
                    return
            await self._send_answer(send, fal_errors.path_not_found(path))

    async def send_answer(self, send: Send, answer: Answer, request_id: str | None = None) -> None:
        """Send an :class:`Answer` (for mounted handlers)."""
        await self._send_answer(send, answer, request_id)

    @property
    def waiter(self) -> ClockWaiter:
        """Sleeps on the mock's clock (created on the running loop at first use)."""
        return self._ensure_waiter()

    async def _openapi(self, request: HttpRequest, send: Send) -> None:
        wanted = request.query.get("endpoint_id")
        endpoints = self.mock.endpoints
        endpoint = self.mock.endpoint(wanted) if wanted else (endpoints[0] if len(endpoints) == 1 else None)
        if endpoint is None:
            await self._send_answer(send, fal_errors.detail(404, f"Unknown endpoint_id {wanted!r}"))
            return
        await send_bytes(send, 200, orjson.dumps(endpoint.openapi()))


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
