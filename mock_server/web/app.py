"""The composition of the web face: one FastAPI application serving one emulator.

Every area has its router (``mock_server.web.routers``); :func:`create_app` includes them in
a fixed order, the run host's catch-all last.  The fal routes that the server's fast lane also
answers (submit, status, result) are answered by both with the same bytes: ``app.fast_lane``
(:class:`mock_server.protocol.hot.FastLane`) is what the lane calls.
"""
from __future__ import annotations

import contextlib
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError

from mock_server.emulator import FalMock
from mock_server.protocol.calls import FalCalls
from mock_server.protocol.hosts import HostPolicy
from mock_server.protocol.hot import FastLane
from mock_server.web.control import bad_input
from mock_server.web.falhosts import FalHostRoutes
from mock_server.web.hostguard import HostGuard
from mock_server.web.journaling import JournalMiddleware
from mock_server.web.responses import AnswerError, AnswerResponse
from mock_server.web.routers import control, dashboard, files, proxy, queue, run, schemas, storage, webhooks


def create_app(emulator: FalMock, *, preloaded: Callable[[], bool] | None = None, lane: bool = True,
               calls: FalCalls | None = None) -> FastAPI:
    """The ASGI application for ``emulator``.

    ``preloaded`` tells ``/_mock/health`` whether everything loaded on first use is in memory
    (the server that preloads passes it; see :mod:`mock_server.server.preload`).  ``lane=False``
    leaves ``app.fast_lane`` None: every call then takes the FastAPI routes.  ``calls``: the
    protocol layer's calls to share with a fast lane built before this face (the server's
    :class:`~mock_server.server.staged.StagedFace`).
    """
    calls = calls if calls is not None else FalCalls(emulator)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await emulator.start()
        try:
            yield
        finally:
            dashboard.end_streams(app)
            await emulator.stop()

    app = FastAPI(
        title="fal-mock control API",
        summary="The /_mock/ routes that tests and people use to look at and steer the emulator.",
        docs_url="/_mock/docs",
        openapi_url="/_mock/docs/openapi.json",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.emulator = emulator
    app.state.fal_calls = calls
    app.state.preloaded = preloaded or (lambda: False)

    @app.exception_handler(AnswerError)
    async def answer_error(request: Request, exc: AnswerError) -> AnswerResponse:
        return AnswerResponse(exc.answer)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if request.scope["path"].startswith("/_mock/"):  # the control API's 400, as before its typed bodies
            return AnswerResponse(bad_input(exc))
        return await request_validation_exception_handler(request, exc)

    # the /_mock/ routes: control, webhooks (before storage: its JWKS under /_mock/rest/),
    # the stand-ins for fal's storage hosts and files, then the dashboard, whose /_mock/ and
    # /_mock/ui/... catch-alls answer fal's 404/405, then fal's 404 for any other /_mock/ path
    for router in (control.router, webhooks.router, storage.router, files.router, dashboard.router,
                   dashboard.unknown_paths):
        app.include_router(router)
    # fal's hosts: the JS proxy, the queue, then the run host's catch-all, last
    for router in (proxy.router, queue.router, schemas.router, run.router):
        app.include_router(router)
    app.add_middleware(queue.QueueHost, emulator=emulator)
    app.add_middleware(FalHostRoutes)  # rest.fal.ai, *.fal.media, fal.ai: their stand-ins (HTTPS proxy mode)
    app.add_middleware(JournalMiddleware, emulator=emulator)
    # outermost: a Host this server does not answer (DNS rebinding) reaches nothing else
    settings = emulator.settings
    app.add_middleware(HostGuard, policy=HostPolicy(settings.host, settings.allowed_hosts))

    def begin_shutdown() -> None:
        """The server is stopping (SIGTERM/SIGINT): end open status and dashboard streams now."""
        calls.begin_shutdown()
        dashboard.end_streams(app)

    # what the server's fast lane calls (mock_server.server.fastlane)
    app.fast_lane = FastLane(calls).answer if lane else None  # type: ignore[attr-defined]
    app.begin_shutdown = begin_shutdown  # type: ignore[attr-defined]
    return app
