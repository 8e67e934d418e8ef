"""The composition of the web face: one FastAPI application serving one emulator.

Every area has its router (``mock_server.web.routers``); :func:`create_app` includes them in
a fixed order.  The fal routes that the server's fast lane also answers (submit, status,
result) are answered by both with the same bytes: ``app.fast_lane`` is what the lane calls.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

from fastapi import FastAPI, Request

from mock_server.emulator import FalMock
from mock_server.web.journaling import JournalMiddleware
from mock_server.web.responses import AnswerError, AnswerResponse
from mock_server.web.routers import dashboard


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
    legacy.preloaded = app.state.preloaded

    @app.exception_handler(AnswerError)
    async def answer_error(request: Request, exc: AnswerError) -> AnswerResponse:
        return AnswerResponse(exc.answer)

    # last among the /_mock/ routers: its /_mock/ and /_mock/ui/... catch-alls answer fal's 404/405
    app.include_router(dashboard.router)
    app.mount("/", legacy)
    # every /_mock/ path no router serves: fal's 404 (reached once nothing is mounted at "/")
    app.include_router(dashboard.unknown_paths)
    app.add_middleware(JournalMiddleware, emulator=emulator)
    app.state.legacy = legacy
    # what the server's fast lane calls (mock_server.server.fastlane)
    app.fast_lane = legacy.fast_lane  # type: ignore[attr-defined]

    def begin_shutdown() -> None:
        legacy.begin_shutdown()
        dashboard.end_streams(app)

    app.begin_shutdown = begin_shutdown  # type: ignore[attr-defined]
    return app
