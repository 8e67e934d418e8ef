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

from mock_server.emulator import FalMock
from mock_server.protocol.calls import FalCalls
from mock_server.protocol.hot import FastLane
from mock_server.web.journaling import JournalMiddleware
from mock_server.web.responses import AnswerError, AnswerResponse
from mock_server.web.routers import files, proxy, queue, run


def create_app(emulator: FalMock, *, preloaded: Callable[[], bool] | None = None, lane: bool = True) -> FastAPI:
    """The ASGI application for ``emulator``.

    ``preloaded`` tells ``/_mock/health`` whether everything loaded on first use is in memory
    (the server that preloads passes it; see :mod:`mock_server.server.preload`).  ``lane=False``
    leaves ``app.fast_lane`` None: every call then takes the FastAPI routes.
    """
    from mock_server.app import FalMockApp  # the raw-ASGI face, serving what no router serves yet

    calls = FalCalls(emulator)
    legacy = FalMockApp(emulator, calls)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await emulator.start()
        await legacy.startup()
        try:
            yield
        finally:
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
    app.state.fal_calls = calls
    app.state.preloaded = preloaded or (lambda: False)
    legacy.preloaded = app.state.preloaded

    @app.exception_handler(AnswerError)
    async def answer_error(request: Request, exc: AnswerError) -> AnswerResponse:
        return AnswerResponse(exc.answer)

    app.include_router(files.router)
    app.include_router(proxy.router)
    app.include_router(queue.router)
    app.mount("/_mock", legacy)
    app.include_router(run.router)  # last: its catch-all takes every path left over
    app.add_middleware(queue.QueueHost, emulator=emulator)
    app.add_middleware(JournalMiddleware, emulator=emulator)
    app.state.legacy = legacy

    def begin_shutdown() -> None:
        calls.begin_shutdown()
        legacy.begin_shutdown()

    # what the server's fast lane calls (mock_server.server.fastlane)
    app.fast_lane = FastLane(calls).answer if lane else None  # type: ignore[attr-defined]
    app.begin_shutdown = begin_shutdown  # type: ignore[attr-defined]
    return app
