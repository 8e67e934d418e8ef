"""Running the ASGI app on uvicorn (uvloop + httptools, no access log: the hot path is cheap)."""
from __future__ import annotations

import contextlib
import importlib.util
import signal
import sys
import threading

from mock_server.app import FalMockApp
from mock_server.mock import FalMock
from mock_server.settings import Settings


def uvicorn_config(app: FalMockApp, settings: Settings, tls_files=None, **overrides):
    """uvicorn's settings; ``http="httptools"`` in ``overrides`` turns the fast lane off."""
    import uvicorn

    from mock_server.fastlane import FastLaneProtocol

    options = dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=FastLaneProtocol,  # uvicorn's httptools protocol + a fast lane for hot calls
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
        proxy_headers=False,  # no X-Forwarded-* rewriting: one middleware less per request
    )
    if tls_files is not None:
        options.update(ssl_certfile=str(tls_files.server_cert), ssl_keyfile=str(tls_files.server_key))
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(settings: Settings, tls_files=None) -> None:
    """Serve until SIGINT/SIGTERM, then return normally (exit status 0, CLI.md)."""
    lean_uvicorn()
    app = FalMockApp(FalMock(settings))
    try:
        _server_class(app)(uvicorn_config(app, settings, tls_files)).run()
    finally:
        app.mock.close()  # write out persisted state (no-op without --state-dir)


def _server_class(app: FalMockApp | None = None):
    import uvicorn

    class CleanExitServer(uvicorn.Server):
        """uvicorn re-raises a caught SIGTERM/SIGINT after shutdown, so the process dies of
        the signal (status -15/130).  fal-mock's contract is a clean exit with status 0."""

        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            if app is not None:
                app.begin_shutdown()

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return CleanExitServer


def lean_uvicorn() -> None:
    """Let ``import uvicorn`` skip uvicorn's command line until something asks for it.

    uvicorn's package init imports ``uvicorn.main`` (click, watchfiles, the reload
    supervisors, multiprocessing) only to offer ``uvicorn.run`` and ``uvicorn.main``;
    serving needs ``Config`` and ``Server`` alone, and that import is ~12 ms of
    ``fal-mock serve``'s start-up.  Here the package module is made without running its
    init, ``Config`` and ``Server`` are set from their own modules, and any other name
    (``run``, ``main``, ``__version__``, ...) runs the real init on first access (a
    PEP 562 module ``__getattr__``): nothing is missing, only loaded late.  Called by
    ``serve`` (the process fal-mock owns); a no-op when uvicorn is already imported.
    """
    if "uvicorn" in sys.modules:
        return
    spec = importlib.util.find_spec("uvicorn")
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    package = importlib.util.module_from_spec(spec)

    def __getattr__(name: str):
        if package.__dict__.pop("__getattr__", None) is not None:
            spec.loader.exec_module(package)  # the real init, once
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'uvicorn' has no attribute {name!r}") from None

    package.__getattr__ = __getattr__
    sys.modules["uvicorn"] = package
    try:
        from uvicorn.config import Config
        from uvicorn.server import Server
    except BaseException:
        del sys.modules["uvicorn"]
        raise
    package.Config, package.Server = Config, Server
