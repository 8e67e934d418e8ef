"""Running the ASGI app on uvicorn (its best loop and parser, the fast lane, no access log)."""
from __future__ import annotations

import signal

from mock_server.emulator import FalMock
from mock_server.settings import Settings


def uvicorn_config(app, settings: Settings, tls_files=None, proxy_files=None, **overrides):
    """uvicorn's settings; ``http="httptools"`` in ``overrides`` turns the fast lane off.
    ``proxy_files`` (the state folder's CA): also serve ``CONNECT``, the HTTPS proxy mode."""
    import uvicorn

    from mock_server.server._uvicorn_compat import http_protocol

    options = dict(
        host=settings.host,
        port=settings.port,
        loop="auto",  # uvloop where installed (not on Windows or PyPy), asyncio elsewhere
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
    if "http" not in options:  # uvicorn's httptools protocol + a fast lane for hot calls, where tested
        options["http"] = http_protocol(head_timeout=settings.request_head_timeout)
    if proxy_files is not None:
        from mock_server.server.https_proxy import connect_aware
        from mock_server.server.tls import HostCertificates

        options["http"] = connect_aware(options["http"], HostCertificates(proxy_files),
                                        allow_fetch=settings.allow_fetch, fetch_timeout=settings.fetch_timeout,
                                        head_timeout=settings.request_head_timeout)
    return uvicorn.Config(app, **options)


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def serve(settings: Settings, tls_files=None) -> None:
    """Serve until SIGINT/SIGTERM, then return normally (exit status 0, CLI.md).

    uvicorn captures both signals while it serves and, after its shutdown, raises the
    caught one again against the handlers it found: the ones set here, which exit with
    status 0 instead of dying of the signal.
    """
    from mock_server.server.preload import preload_once, preloaded
    from mock_server.server.staged import StagedFace
    from mock_server.server._uvicorn_compat import server_class

    emulator = FalMock(settings)
    app = StagedFace(emulator, preloaded=preloaded)
    config = uvicorn_config(app, settings, tls_files if settings.tls else None,
                            proxy_files=tls_files if settings.proxy else None)
    server = server_class(app.begin_shutdown)(config)
    # the port opens with the fast lane answering; the web face is built right after, then
    # what loads on first use is loaded, so that a reinstall or an upgrade under the running
    # server cannot take it away
    preload_once(lambda: server.started, first=app.build)
    previous = {sig: signal.signal(sig, _exit_cleanly) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.close()  # write out persisted state (no-op without --state-dir)
