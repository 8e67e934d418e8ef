"""The application uvicorn serves: the fast lane from the first moment, the FastAPI face once built.

The emulator, the protocol layer and the fast lane (submit, status, result) are plain
Python.  The FastAPI face (every other route: run, cancel, streams, uploads, files, the
control API, the dashboard) costs most of a launch: importing FastAPI, and FastAPI's check
of every route's annotations (which imports ``pydantic.v1``), take about 0.4 s on a slow
machine against 0.2 s for everything else.  So ``fal-mock serve`` opens its port as soon as
the lane can answer and builds the face right after, on a thread: a client's first submit
is answered at once, and a call that needs the face waits for it (at most the build time).
The background server of tests builds the face before it starts (:meth:`StagedFace.build`).

No library stages an ASGI application this way, hence this small module; the lifespan
relay below is the ASGI lifespan protocol spoken to the face, so that its own start-up and
shutdown (:func:`mock_server.web.app.create_app`) stay the one home of both.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable

from mock_server.emulator import FalMock
from mock_server.protocol.calls import FalCalls
from mock_server.protocol.hot import FastLane


class StagedFace:
    """An ASGI application: ``fast_lane`` at once, every call forwarded to the face once built."""

    def __init__(self, emulator: FalMock, *, lane: bool = True,
                 preloaded: Callable[[], bool] | None = None) -> None:
        self.emulator = emulator
        self.calls = FalCalls(emulator)
        #: what the server's fast lane calls (:mod:`mock_server.server.fastlane`); None: no lane
        self.fast_lane = FastLane(self.calls).answer if lane else None
        self._preloaded = preloaded
        self._face: Any = None
        self._failure: BaseException | None = None
        self._built = threading.Event()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._lock = threading.Lock()

    @property
    def face(self) -> Any:
        """The FastAPI application, once built (else None)."""
        return self._face

    def build(self) -> "StagedFace":
        """Build the face (on any thread); calls waiting for it go on.  Idempotent."""
        waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        with self._lock:
            if not self._built.is_set():
                try:
                    from mock_server.web.app import create_app

                    self._face = create_app(self.emulator, calls=self.calls, preloaded=self._preloaded, lane=False)
                except BaseException as exc:  # a bug: every call that needs the face answers 500
                    self._failure = exc
                self._built.set()
                waiting, self._waiting = self._waiting, []
        for loop, future in waiting:
            loop.call_soon_threadsafe(_settle, future)
        return self

    def build_on_thread(self) -> None:
        threading.Thread(target=self.build, name="fal-mock-face", daemon=True).start()

    async def ready(self) -> Any:
        """The face, waiting for its build if it is under way."""
        if not self._built.is_set():
            future = asyncio.get_running_loop().create_future()
            with self._lock:
                if not self._built.is_set():
                    self._waiting.append((asyncio.get_running_loop(), future))
                else:
                    future.set_result(None)
            await future
        if self._failure is not None:
            raise RuntimeError("fal-mock's web face failed to build") from self._failure
        return self._face

    def begin_shutdown(self) -> None:
        """The server is stopping: end open status and dashboard streams now."""
        if self._face is not None:
            self._face.begin_shutdown()
        else:
            self.calls.begin_shutdown()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._relay_lifespan(scope, receive, send)
            return
        face = self._face if self._face is not None else await self.ready()
        await face(scope, receive, send)

    async def _relay_lifespan(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Answer the server's start-up at once; run the face's own lifespan once it is built,
        and its shutdown when the server stops."""
        await receive()  # lifespan.startup
        to_face: asyncio.Queue = asyncio.Queue()
        from_face: asyncio.Queue = asyncio.Queue()
        running: asyncio.Task | None = None

        async def start_face() -> None:
            nonlocal running
            face = await self.ready()
            running = asyncio.ensure_future(face(scope, to_face.get, from_face.put))
            await to_face.put({"type": "lifespan.startup"})
            await from_face.get()  # startup.complete (or .failed: the face prints why)

        starting = asyncio.ensure_future(start_face())
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await starting
        except RuntimeError:  # the face never built: nothing of it to stop
            pass
        if running is not None:
            await to_face.put({"type": "lifespan.shutdown"})
            await from_face.get()
            await running
        await send({"type": "lifespan.shutdown.complete"})


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
