"""Running the ASGI app on uvicorn (its best loop and parser, the fast lane, no access log)."""
from __future__ import annotations

import errno
import signal
import socket
from typing import Callable

from mock_server.emulator import FalMock
from mock_server.settings import Settings


def uvicorn_config(app, settings: Settings, tls_files=None, proxy_files=None, **overrides):
    """uvicorn's settings; ``http="httptools"`` in ``overrides`` turns the fast lane off.
    ``proxy_files`` (the state folder's CA): also serve ``CONNECT``, the HTTPS proxy mode."""
    import uvicorn

    from mock_server.server._uvicorn_compat import http_protocol, plain_port_protocol

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
    if tls_files is None:  # a TLS client on this plain port is told in one log line
        options["http"] = plain_port_protocol(options["http"])
    if proxy_files is not None:
        from mock_server.server.https_proxy import connect_aware
        from mock_server.server.tls import HostCertificates

        options["http"] = connect_aware(options["http"], HostCertificates(proxy_files),
                                        allow_fetch=settings.allow_fetch, fetch_timeout=settings.fetch_timeout,
                                        head_timeout=settings.request_head_timeout)
    return uvicorn.Config(app, **options)


class PortUnavailable(OSError):
    """The port cannot be listened on (taken, or not allowed); the message is one line saying
    what to do."""


def listen(settings: Settings) -> socket.socket:
    """A socket listening on the settings' host and port, bound here rather than inside
    uvicorn so that a busy port is said in one line before anything else is printed (uvicorn
    would log ``[Errno 98]`` after the banner) and the banner waits for a real listener."""
    host = settings.host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # SO_REUSEADDR on POSIX, as uvicorn's own bind: a restart does not wait out TIME_WAIT
        return socket.create_server((host, settings.port), family=family)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            reason = (f"fal-mock: port {settings.port} on {settings.host} is taken (another fal-mock "
                      f"or another server listens there); choose another with --port, e.g. --port {_other_port(settings.port)}")
        else:
            reason = f"fal-mock: cannot listen on {settings.host} port {settings.port}: {exc.strerror or exc}"
        raise PortUnavailable(exc.errno, reason) from None


def _other_port(port: int) -> int:
    return port + 1 if port < 65535 else port - 1


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)


def serve(settings: Settings, tls_files=None, on_listening: Callable[[], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, then return normally (exit status 0, CLI.md).

    ``on_listening()`` is called once the port listens, before requests are answered (the
    banner); a port that cannot be listened on raises :class:`PortUnavailable` before it.

    uvicorn captures both signals while it serves and, after its shutdown, raises the
    caught one again against the handlers it found: the ones set here, which exit with
    status 0 instead of dying of the signal.
    """
    from mock_server.server.preload import preload_once, preloaded
    from mock_server.server.staged import StagedFace
    from mock_server.server._uvicorn_compat import server_class

    # from the first printed line on, a signal ends the process with status 0
    previous = {sig: signal.signal(sig, _exit_cleanly) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = None
    sock = None
    try:
        sock = listen(settings)
        emulator = FalMock(settings)
        if settings.log_requests:
            from mock_server.server.access_log import log_requests

            log_requests(emulator.journal)
        if on_listening is not None:
            on_listening()
        app = StagedFace(emulator, preloaded=preloaded)
        config = uvicorn_config(app, settings, tls_files if settings.tls else None,
                                proxy_files=tls_files if settings.proxy else None)
        server = server_class(app.begin_shutdown)(config)
        # the port opens with the fast lane answering; the web face is built right after, then
        # what loads on first use is loaded, so that a reinstall or an upgrade under the running
        # server cannot take it away
        preload_once(lambda: server.started, first=app.build)
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sock is not None:
            sock.close()  # uvicorn closed it if it served; else it is closed here
        if emulator is not None:
            emulator.close()  # write out persisted state (no-op without --state-dir)
