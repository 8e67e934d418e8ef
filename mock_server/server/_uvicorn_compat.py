"""What fal-mock takes from uvicorn beyond its documented API, behind one version check.

uvicorn's documented API is ``Config``, ``Server(config)``, ``Server.run()``/``serve(sockets=)``,
``should_exit`` and ``started``; the rest of fal-mock uses only that.  Three things here
reach further, because they make the mock fast or quick to stop:

- the fast lane (:mod:`mock_server.server.fastlane`): a subclass of uvicorn's httptools protocol
  that writes the hot answers itself, in uvicorn's own bytes;
- :class:`DrivenServer`: uvicorn's start-up and shutdown driven by hand, without its fixed
  sleeps (a test fixture stops in about a millisecond instead of a tenth of a second);
- the server's ``handle_exit`` hook, so open status streams end as soon as a signal arrives;
- :func:`plain_port_protocol`: on a plain-HTTP port, a TLS handshake (an ``https://`` client,
  such as ``fal_client``, pointed at it) is said in one clear log line instead of uvicorn's
  ``Invalid HTTP request received.``.

They are used only on the uvicorn releases the project's compat run proved
(:data:`TESTED`, see ``scripts/compat.py`` and the README's Development section): the
fast lane copies uvicorn's response framing, which changed in 0.53.  On any other release
:func:`internals_tested` says no, one warning line names the version, and the server runs
on uvicorn's public path: its own HTTP protocol, its own shutdown.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import socket
import sys
from typing import Any, Callable

import uvicorn

#: The uvicorn releases whose internals were proved by the compat run: lowest tested,
#: first untested.
TESTED = ((0, 53), (0, 55))

_warned: set[str] = set()


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def internals_tested(version: str | None = None) -> bool:
    """Whether this uvicorn (by default the installed one) is one the internals were proved on."""
    release = _release(uvicorn.__version__ if version is None else version)
    low, high = TESTED
    return low <= release < high


def _warn_untested() -> None:
    version = uvicorn.__version__
    if version in _warned:
        return
    _warned.add(version)
    low, high = (".".join(map(str, part)) for part in TESTED)
    print(f"fal-mock: uvicorn {version} is outside the tested range (>= {low}, < {high}); "
          "the fast lane is off and uvicorn's own protocol serves every call", file=sys.stderr, flush=True)


def http_protocol(fast_lane: bool = True, head_timeout: float | None = None) -> Any:
    """The ``http`` setting for :class:`uvicorn.Config`: the fast lane on a tested uvicorn
    with httptools installed, else uvicorn's own choice (``"auto"``).

    The fast lane's protocol also refuses heads above 64 KiB and closes connections that
    send no complete head within ``head_timeout`` seconds (default 10); uvicorn's own
    protocols do neither (h11 refuses heads above 16 KiB, httptools has no limit)."""
    if not fast_lane:
        return "auto"
    if not internals_tested():
        _warn_untested()
        return "auto"
    try:
        from mock_server.server.fastlane import FastLaneProtocol
    except ImportError:  # httptools is absent where uvicorn[standard] does not install it
        return "auto"
    if head_timeout is None:
        return FastLaneProtocol
    return FastLaneProtocol.with_head_timeout(head_timeout)


#: What the server logs when a TLS handshake reaches its plain-HTTP port (once per connection).
TLS_ON_PLAIN_PORT = ("fal-mock: a TLS handshake (an https:// client) reached this plain-HTTP port from %s; "
                     "fal_client (Python) always speaks HTTPS: serve it with `fal-mock serve --tls` "
                     "(or --proxy), or point the client at http://")


def looks_like_tls(data: bytes) -> bool:
    """Whether the first bytes of a connection are a TLS record: content type 22 (handshake),
    then a 3.x version (RFC 8446 section 5.1: 0x0301 for a ClientHello, 0x0300 to 0x0304 seen)."""
    return len(data) >= 2 and data[0] == 0x16 and data[1] == 0x03


def plain_port_protocol(http: Any) -> Any:
    """``http`` (uvicorn's ``Config.http`` setting: a protocol class or a name) as a protocol
    that, on a connection whose first bytes are a TLS handshake, logs :data:`TLS_ON_PLAIN_PORT`
    and closes it (uvicorn would log ``Invalid HTTP request received.`` and answer a 400 the
    TLS client cannot read).  On an untested uvicorn, ``http`` unchanged."""
    if not internals_tested():
        return http
    if isinstance(http, str):
        from uvicorn.config import HTTP_PROTOCOLS
        from uvicorn.importer import import_from_string

        http = import_from_string(HTTP_PROTOCOLS[http])
    return _plain_port_class(http)


@functools.cache  # one class per protocol: servers configured alike serve the same class
def _plain_port_class(base: type) -> type:
    logger = logging.getLogger("uvicorn.error")  # where uvicorn's own protocols log

    def data_received(self, data: bytes) -> None:
        if self._fal_mock_first_data:
            self._fal_mock_first_data = False
            if looks_like_tls(data):
                peer = self.transport.get_extra_info("peername")
                logger.warning(TLS_ON_PLAIN_PORT, "%s:%s" % peer[:2] if peer else "a client")
                self.transport.close()
                return
        base.data_received(self, data)

    return type(base.__name__, (base,), {"__module__": base.__module__, "_fal_mock_first_data": True,
                                         "data_received": data_received})


def server_class(on_exit: Callable[[], None] | None = None) -> type:
    """:class:`uvicorn.Server`, calling ``on_exit`` as soon as a shutdown signal arrives
    (on a tested uvicorn: its ``handle_exit`` hook; elsewhere uvicorn's own class)."""
    if on_exit is None or not internals_tested():
        return uvicorn.Server

    class PromptExitServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            super().handle_exit(sig, frame)
            on_exit()

    return PromptExitServer


class DrivenServer:
    """A :class:`uvicorn.Server` started and stopped from the caller's own event loop
    (the background server of tests and the pytest plugin), reporting the port it bound.

    On a tested uvicorn it drives ``startup`` and a shutdown without uvicorn's fixed 0.1 s
    sleeps (stop accepting, ask every connection to close, wait at most ``grace`` s for
    the in-flight requests polling each millisecond, run the lifespan shutdown), so a test
    session's server stops in about a millisecond.  Elsewhere it binds the socket itself
    and runs ``Server.serve(sockets=...)``, stopped through ``should_exit``.
    """

    def __init__(self, config: "uvicorn.Config") -> None:
        self.config = config
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # uvicorn < 0.29; never the main thread
        self._serving: asyncio.Task | None = None

    async def start(self) -> int | None:
        """Start serving; the bound port, or None when uvicorn could not start."""
        server, config = self.server, self.config
        if internals_tested():
            if not config.loaded:
                config.load()
            server.lifespan = config.lifespan_class(config)
            await server.startup()
            return server.servers[0].sockets[0].getsockname()[1] if server.started else None
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.create_server((config.host, config.port), family=family)
        self._serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not self._serving.done():
            await asyncio.sleep(0.001)
        return sock.getsockname()[1] if server.started else None

    async def stop(self, grace: float = 1.0) -> None:
        server = self.server
        server.should_exit = True
        if self._serving is not None:
            await self._serving
            return
        for listener in server.servers:
            listener.close()
        state = server.server_state
        for connection in list(state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while (state.connections or state.tasks) and loop.time() < deadline:
            await asyncio.sleep(0.001)
        for task in list(state.tasks):
            task.cancel()
        await server.lifespan.shutdown()
