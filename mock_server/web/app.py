"""The composition of the web face: one FastAPI application serving one emulator.

Every area has its router (``mock_server.web.routers``); :func:`create_app` includes them in
a fixed order.  The fal routes that the server's fast lane also answers (submit, status,
result) are answered by both with the same bytes: ``app.fast_lane`` is what the lane calls.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError

from mock_server.core.paths import CDN_PREFIX, REST_PREFIX
from mock_server.emulator import FalMock
from mock_server.web.control import bad_input
from mock_server.web.journaling import JournalMiddleware
from mock_server.web.responses import AnswerError, AnswerResponse
from mock_server.web.routers import control, dashboard, storage, webhooks


def create_app(emulator: FalMock, *, preloaded: Callable[[], bool] | None = None) -> FastAPI:
    """The ASGI application for ``emulator``.

    ``preloaded`` tells ``/_mock/health`` whether everything loaded on first use is in memory
    (the server that preloads passes it; see :mod:`mock_server.server.preload`).
    """
    from mock_server.app import FalMockApp  # the raw-ASGI face, serving what no router serves yet

    legacy = FalMockApp(emulator)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await emulator.start()
        await legacy.startup()
        try:
            yield
        finally:
            dashboard.end_streams(app)
            await legacy.shutdown()
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
    app.state.preloaded = preloaded or (lambda: False)

    @app.exception_handler(AnswerError)
    async def answer_error(request: Request, exc: AnswerError) -> AnswerResponse:
        return AnswerResponse(exc.answer)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        if request.scope["path"].startswith("/_mock/"):  # the control API's 400, as before its typed bodies
            return AnswerResponse(bad_input(exc))
        return await request_validation_exception_handler(request, exc)

    app.include_router(control.router)
    app.include_router(webhooks.router)  # before storage: its JWKS under /_mock/rest/
    app.include_router(storage.router)
    # last among the /_mock/ routers: its /_mock/ and /_mock/ui/... catch-alls answer fal's 404/405
    app.include_router(dashboard.router)
    app.mount("/", legacy)
    # every /_mock/ path no router serves: fal's 404 (reached once nothing is mounted at "/")
    app.include_router(dashboard.unknown_paths)

    async def reenter(request: Any, send: Any) -> None:
        """The legacy proxy's rest.fal.ai / *.fal.media targets: the app again, at the storage
        stand-in's path (its journal entry, marked proxied, rides along in the scope)."""
        path = request.path
        scope = {**request.scope, "path": path, "raw_path": path.encode(), "query_string": request.raw_query}
        await app(scope, request.receive, send)

    legacy.mount(REST_PREFIX, reenter)
    legacy.mount(CDN_PREFIX, reenter)
    app.add_middleware(JournalMiddleware, emulator=emulator)
    app.state.legacy = legacy
    # what the server's fast lane calls (mock_server.server.fastlane)
    app.fast_lane = legacy.fast_lane  # type: ignore[attr-defined]

    def begin_shutdown() -> None:
        legacy.begin_shutdown()
        dashboard.end_streams(app)

    app.begin_shutdown = begin_shutdown  # type: ignore[attr-defined]
    return app
