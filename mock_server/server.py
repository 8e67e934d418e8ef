"""Running the ASGI app on uvicorn (uvloop + httptools, no access log: the hot path is cheap)."""
from __future__ import annotations

from mock_server.app import FalMockApp
from mock_server.mock import FalMock
from mock_server.settings import Settings


def uvicorn_config(app: FalMockApp, settings: Settings, tls_files=None, **overrides):
    import uvicorn

    options = dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    if tls_files is not None:
        options.update(ssl_certfile=str(tls_files.server_cert), ssl_keyfile=str(tls_files.server_key))
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(settings: Settings, tls_files=None) -> None:
    """Serve until SIGINT/SIGTERM; uvicorn handles both and returns cleanly."""
    import uvicorn

    app = FalMockApp(FalMock(settings))
    uvicorn.Server(uvicorn_config(app, settings, tls_files)).run()
