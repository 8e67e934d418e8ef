"""The raw-ASGI face of the mock's own ``/_mock/`` routes that no router serves yet.

Mounted at ``/_mock`` under the FastAPI app (:func:`mock_server.web.app.create_app`); fal's
queue, run and proxy protocol live in :mod:`mock_server.protocol` and its routers.  The
feature modules (control, webhooks, storage, dashboard) mount their routes here until they
move to routers of their own; then this module goes.
"""
from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import threading
import traceback

from typing import Any, Awaitable, Callable

from mock_server import control, webhooks
from mock_server.core import fal_errors
from mock_server._asgi import BodyTooLarge, HttpRequest, Receive, Scope, Send, send_bytes
from mock_server.core.clock import ClockWaiter
from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv
from mock_server.emulator import FalMock
from mock_server.protocol.calls import FalCalls, reply_of
from mock_server.settings import Settings
from mock_server.core.paths import CDN_PREFIX, DASHBOARD_ROOT, FILES_PREFIX, REST_PREFIX
from mock_server.core.queue import QueuedRequest

log = logging.getLogger("fal_mock")

MountHandler = Callable[[HttpRequest, Send], Awaitable[None]]
#: The scope key of the proxy call's own scope in a storage call it entered again
#: (mock_server.web.routers.proxy.PROXIED_SCOPE).
_PROXIED_SCOPE = "fal_mock.proxied_scope"


async def _run_hooks(hooks: list[Callable[[], Any]]) -> None:
    """Call each hook in order, awaiting those that return a coroutine."""
    for hook in hooks:
        result = hook()
        if asyncio.iscoroutine(result):
            await result


class FalMockApp:
    """The ASGI application serving one :class:`FalMock`'s remaining ``/_mock/`` routes."""

    def __init__(self, mock: FalMock, calls: FalCalls | None = None) -> None:
        self.mock = mock
        self.calls = calls if calls is not None else FalCalls(mock)  # fal's protocol (key checks, env)
        self._waiter: ClockWaiter | None = None
        self._mounts: list[tuple[str, MountHandler]] = []
        self._startup: list[Callable[[], Any]] = []
        self._shutdown: list[Callable[[], Any]] = []
        mock.queue.on_change(self._on_change)
        self._closing = False
        # whether everything loaded on first use is in memory (health); the server that
        # preloads sets it (mock_server.server.preload)
        self.preloaded: Callable[[], bool] = lambda: False
        # Feature modules add their routes under /_mock/ and their start-up work here;
        # each keeps its service on the app (storage -> uploads, webhooks -> webhooks).
        self.webhooks: Any = None
        self._features: dict[str, Any] = {}  # module name -> its service, once loaded
        self._features_lock = threading.Lock()
        control.install(self)
        webhooks.install(self)  # before storage, whose /_mock/rest/ mount would hide the JWKS path
        # Uploads and the dashboard load on their first call (~8 ms less start-up):
        self._mount_on_first_use("mock_server.storage", (REST_PREFIX, CDN_PREFIX, FILES_PREFIX))
        self._mount_on_first_use("mock_server.dashboard", (DASHBOARD_ROOT,))  # last: every /_mock/ path left over

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

    def _mount_on_first_use(self, module: str, prefixes: tuple[str, ...]) -> None:
        """Mount ``prefixes`` for a feature module imported and installed (its ``install(app)``
        mounting the same prefixes in place) on the first call to any of them.  Such a
        feature binds to the server's loop itself: its install may come after start-up."""
        async def load_then_serve(request: HttpRequest, send: Send) -> None:
            self._feature(module)
            await self._mock_route(request, send)

        for prefix in prefixes:
            self.mount(prefix, load_then_serve)

    def _feature(self, module: str) -> Any:
        """The service of a feature module mounted on first use, installed now if need be."""
        service = self._features.get(module)
        if service is None:
            with self._features_lock:  # a test thread may ask for it while the loop serves
                service = self._features.get(module)
                if service is None:
                    service = self._features[module] = importlib.import_module(module).install(self)
        return service

    @property
    def uploads(self) -> Any:
        """The storage service (uploads, CDN tokens), loaded on first use."""
        return self._feature("mock_server.storage")

    @property
    def dashboard(self) -> Any:
        """The dashboard service, loaded on first use."""
        return self._feature("mock_server.dashboard")

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
        original = scope.get(_PROXIED_SCOPE)
        if original is None:
            request = HttpRequest(scope, receive)
        else:  # a storage call through the proxy: storage reads the proxy's own scope
            request = HttpRequest(original, receive)
            request.path = scope["path"]
            request.replace_query(scope.get("query_string", b""))
        request.entry = scope.get("fal_mock.journal_entry")  # the web face's journal recorder has it
        try:
            await self._mock_route(request, send)
        except BodyTooLarge as exc:
            await self._send_answer(send, fal_errors.body_too_large(exc.limit))
        except Exception:  # never a traceback on the wire
            traceback.print_exc(file=sys.stderr)
            await self._send_answer(send, fal_errors.internal_error())

    async def _send_answer(self, send: Send, answer: Answer, request_id: str | None = None) -> None:
        await send_bytes(send, *reply_of(answer, request_id))

    def authorized(self, request: HttpRequest, proxied: bool) -> Answer | None:
        """None when the caller may proceed, else fal's 401 answer (the protocol's key check)."""
        return self.calls.keys.denied(request.raw_header(b"authorization"), proxied)

    # -- environment for producing results ---------------------------------------------
    def env_for(self, scheme: str, host: str) -> EndpointEnv:
        """What an endpoint needs to produce a result for a caller who reached us as ``scheme://host``."""
        return self.calls.env_for(scheme, host)

    # -- the mock's own routes ---------------------------------------------------------
    async def _mock_route(self, request: HttpRequest, send: Send) -> None:
        path = request.path
        if not _admin_allowed(self.settings.admin_token, request, path):
            await self._send_answer(send, fal_errors.detail(401, "Admin token required"))
            return
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


