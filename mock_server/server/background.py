"""Run a mock server on a background thread of this process (for tests and the pytest plugin).

uvicorn binds the port itself (port 0 picks a free one), so sockets get
``TCP_NODELAY`` and answers are not delayed by Nagle's algorithm.
"""
from __future__ import annotations

import asyncio
import threading

from mock_server.emulator import FalMock


class BackgroundServer:
    """A :class:`FalMock` served by uvicorn on a daemon thread.

    >>> server = BackgroundServer(FalMock()).start()
    >>> server.url   # e.g. http://127.0.0.1:53711
    >>> server.stop()
    """

    def __init__(self, mock: FalMock, host: str = "127.0.0.1", port: int = 0, tls_files=None,
                 lane: bool = True, proxy_files=None, **uvicorn_options) -> None:
        """``lane=False`` serves every call through the FastAPI routes (no fast lane; the
        server's protocol is the same); ``proxy_files`` (a state folder's TLS files) also
        serves the HTTPS proxy mode on the port; ``uvicorn_options`` override
        :func:`mock_server.server.serving.uvicorn_config`'s settings."""
        self.mock = mock
        self._options = uvicorn_options
        from mock_server.server.staged import StagedFace

        self.app = StagedFace(mock, lane=lane).build()
        self.host = host
        self._port = port
        self._tls = tls_files
        self._proxy_files = proxy_files
        self._server = None
        self.config = None  # the uvicorn.Config, once started
        self._thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> "BackgroundServer":
        from mock_server.server.serving import uvicorn_config
        from mock_server.server._uvicorn_compat import DrivenServer

        settings = self.mock.settings.with_(host=self.host, port=self._port)
        config = uvicorn_config(self.app, settings, self._tls, self._proxy_files,
                                **{"log_level": "error", **self._options})
        self.config = config  # the uvicorn.Config it serves with
        self._server = driven = DrivenServer(config)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                loop = _new_loop()
                self.loop = loop
                asyncio.set_event_loop(loop)

                async def main() -> None:
                    self._stopping = asyncio.Event()
                    self.port = await driven.start()
                    ready.set()
                    if self.port is None:
                        return
                    await self._stopping.wait()
                    await driven.stop()

                loop.run_until_complete(main())
            except BaseException as exc:  # surfaced to start()
                failure.append(exc)
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name="fal-mock-server", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self.port is None:
            raise RuntimeError(f"fal-mock server did not start: {failure[0] if failure else 'timeout'}")
        # the settings the app reports (own-file URLs, banner) must name the real port
        self.mock.settings = settings.with_(port=self.port)
        return self

    def call(self, fn, *args, timeout: float = 10.0):
        """Run ``fn(*args)`` on the server's loop thread and return its result."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop)
        return future.result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None and self.loop is not None and self._stopping is not None:
            self.app.begin_shutdown()  # end open status streams now
            try:
                self.loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None
        self.mock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it is installed, asyncio's loop elsewhere (uvicorn's ``loop="auto"``)."""
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; fall back all the same
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _call(fn, *args):
    result = fn(*args)
    if asyncio.iscoroutine(result):
        result = await result
    return result
