"""fal-mock as an ``HTTPS_PROXY`` for fal's hosts (``fal-mock serve --proxy``).

Every HTTP stack honours ``HTTPS_PROXY``: for ``https://queue.fal.run/...`` it sends
``CONNECT queue.fal.run:443`` to the proxy and then speaks TLS through the tunnel.  Here the
tunnel ends in the mock itself: the client gets a TLS session for that very host, with a
certificate the local CA issues on first use (:class:`~mock_server.server.tls.HostCertificates`;
the CA may vouch for loopback and fal's domains only), and inside it the mock's own HTTP
protocol serves the calls, so they are answered exactly as on the mock's port: the ``Host``
(``queue.fal.run``, ``fal.run``, ``rest.fal.ai``, ``v3.fal.media``, ``fal.ai``) decides the
route, as the JS proxy's target host does (:mod:`mock_server.web.falhosts`,
:mod:`mock_server.web.routers.queue`), and the answers' URLs name that host over https.
``CONNECT`` to any other host is refused with 403 naming it (the mock is offline); with
``--allow-fetch`` it is tunnelled through to the real host (a plain TCP relay, never to a
cloud metadata or link-local address, as the fetches: :mod:`mock_server.endpoints.fal_app.netguard`).

Where it listens: on the mock's own port.  :func:`connect_aware` wraps whatever HTTP protocol
uvicorn would run (the fast lane's, uvicorn's httptools or h11 protocol) in a protocol that
looks at a connection's first bytes only: a connection that does not start with ``CONNECT``
is handed, with those bytes, to the wrapped protocol, which serves it from then on exactly as
without the proxy (the wrapper leaves the path); a ``CONNECT`` is answered here, and after
the TLS handshake (``loop.start_tls``, on asyncio and uvloop alike) a fresh instance of the
wrapped protocol serves the decrypted stream.  This has fewer moving parts than a second
port: no second listener to start, stop, report or print, no internal connection to the
mock's port, and the lane on or off makes no difference (the wrapper never looks inside an
HTTP request).  ``HTTPS_PROXY`` then names the port every other line already names.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from mock_server.core.paths import FAL_DOMAINS
from mock_server.protocol.hosts import host_name, is_fal_name
from mock_server.server.tls import HostCertificates

__all__ = ["connect_aware", "refusal"]

_CONNECT = b"CONNECT "
#: The most bytes a CONNECT head may take (as the fast lane's request heads: fastlane.HEAD_MAX).
HEAD_MAX = 64 * 1024
_ESTABLISHED = b"HTTP/1.1 200 Connection Established\r\n\r\n"


def _answer(status: int, reason: str, detail: str, error_type: str) -> bytes:
    """A whole refusal in fal's error shape; the connection closes after it."""
    body = json.dumps({"detail": detail, "error_type": error_type}).encode()
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body))


def refusal(authority: str) -> bytes:
    """The 403 for a CONNECT to a host that is not fal's (offline, no ``--allow-fetch``)."""
    domains = ", ".join(FAL_DOMAINS)
    return _answer(403, "Forbidden",
                   f"fal-mock's HTTPS proxy serves fal's hosts only ({domains} and their subdomains, "
                   f"port 443): CONNECT {authority} is refused (the mock is offline; "
                   "--allow-fetch tunnels other hosts through)", "host_not_proxied")


def _bad_request(detail: str) -> bytes:
    return _answer(400, "Bad Request", detail, "bad_connect")


def _split_authority(authority: str) -> tuple[str, int] | None:
    """``(host, port)`` of a CONNECT target (``host:port``, ``[v6]:port``); None if malformed."""
    host, colon, port = authority.rpartition(":")
    if not colon or not port.isdigit() or not host or not 0 < int(port) < 65536:
        return None
    return host_name(host), int(port)


def connect_aware(inner: Any, certificates: HostCertificates, *, allow_fetch: bool,
                  head_timeout: float, fetch_timeout: float) -> type:
    """The ``http`` setting for :class:`uvicorn.Config` that serves ``CONNECT`` around ``inner``
    (uvicorn's ``http`` setting: a protocol class, or a name such as ``"auto"``)."""
    if isinstance(inner, str):
        from uvicorn.config import HTTP_PROTOCOLS
        from uvicorn.importer import import_from_string

        inner = import_from_string(HTTP_PROTOCOLS.get(inner, inner))
    return type("ConnectAware" + inner.__name__, (_ConnectAware,), {
        "inner": inner, "certificates": certificates, "allow_fetch": allow_fetch,
        "head_timeout": head_timeout, "fetch_timeout": fetch_timeout,
        "alpn_protocols": getattr(inner, "alpn_protocols", None)})


class _ConnectAware(asyncio.Protocol):
    """One connection until it is known to be a CONNECT or not (see the module doc)."""

    inner: Any
    certificates: HostCertificates
    allow_fetch: bool
    head_timeout: float
    fetch_timeout: float

    def __init__(self, config, server_state, app_state, _loop=None) -> None:
        self._arguments = {"config": config, "server_state": server_state, "app_state": app_state}
        self._loop = _loop or asyncio.get_event_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._timer: asyncio.TimerHandle | None = None
        self._handshaking = False  # decrypted bytes that arrive before the hand-off are kept
        self._task: asyncio.Task | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self._transport = transport
        # the wrapped protocol's own head timer starts when it takes over; until then this one
        self._timer = self._loop.call_later(self.head_timeout, transport.close)

    def connection_lost(self, exc) -> None:
        self._cancel_timer()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._handshaking:
            return
        start = bytes(self._buffer[:len(_CONNECT)])
        if not _CONNECT.startswith(start):  # any other request: the wrapped protocol's from now on
            self._serve_http(self._transport, bytes(self._buffer))
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > HEAD_MAX:
                self._close_with(_answer(431, "Request Header Fields Too Large",
                                         f"A CONNECT head must fit in {HEAD_MAX} bytes",
                                         "bad_connect"))
            return
        head, rest = bytes(self._buffer[:end]), bytes(self._buffer[end + 4:])
        self._buffer.clear()
        self._cancel_timer()
        self._transport.pause_reading()
        if rest:  # clients wait for the 200 before their TLS handshake
            self._close_with(_bad_request("Bytes after a CONNECT head before its answer"))
            return
        self._connect(head)

    def eof_received(self) -> bool | None:
        return None  # close

    # -- the two ways on ----------------------------------------------------------------------
    def _serve_http(self, transport, data: bytes) -> None:
        """Hand the connection, with what it sent so far, to the wrapped HTTP protocol."""
        self._cancel_timer()
        protocol = self.inner(**self._arguments, _loop=self._loop)
        protocol.connection_made(transport)
        transport.set_protocol(protocol)
        if data:
            protocol.data_received(data)

    def _connect(self, head: bytes) -> None:
        words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        target = _split_authority(words[1]) if len(words) == 3 and words[2].startswith("HTTP/1.") else None
        if target is None:
            self._close_with(_bad_request("A CONNECT request line is CONNECT host:port HTTP/1.1"))
            return
        name, port = target
        if is_fal_name(name) and port == 443 and self.certificates.may_issue(name):
            self._task = self._loop.create_task(self._terminate(name))
        elif self.allow_fetch and not is_fal_name(name):
            self._task = self._loop.create_task(self._relay(name, port))
        else:
            self._close_with(refusal(words[1]))

    async def _terminate(self, name: str) -> None:
        """TLS for ``name`` on this connection, then the wrapped protocol on the decrypted stream."""
        transport = self._transport
        try:
            context = self.certificates.context(name)
            transport.write(_ESTABLISHED)
            self._handshaking = True  # start_tls resumes reading once its own protocol is in place
            tls = await self._loop.start_tls(transport, self, context, server_side=True,
                                             ssl_handshake_timeout=self.head_timeout)
        except Exception:  # the client left, does not trust the CA, or timed out: nothing to answer
            transport.close()
            return
        if tls is None or tls.is_closing():
            return
        self._handshaking = False
        data = bytes(self._buffer)
        self._buffer.clear()
        self._serve_http(tls, data)

    async def _relay(self, name: str, port: int) -> None:
        """``--allow-fetch``: a TCP tunnel to the real host, on an address the fetches may dial."""
        from mock_server.endpoints.fal_app.netguard import BlockedAddress, resolve_pinned

        transport = self._transport
        try:
            pinned = await resolve_pinned(f"https://{name}:{port}/", self.fetch_timeout)
            upstream, _ = await asyncio.wait_for(self._loop.create_connection(
                lambda: _Pipe(transport), pinned.address, port), self.fetch_timeout)
        except BlockedAddress as exc:
            self._close_with(_answer(403, "Forbidden", f"CONNECT {name}:{port} is refused: {exc}",
                                     "host_not_proxied"))
            return
        except Exception as exc:  # no resolution, refused, timed out: the client hears why
            self._close_with(_answer(502, "Bad Gateway", f"CONNECT {name}:{port} failed: {exc}",
                                     "upstream_unreachable"))
            return
        if transport.is_closing():
            upstream.close()
            return
        transport.set_protocol(_Pipe(upstream))
        transport.write(_ESTABLISHED)
        transport.resume_reading()

    # -- helpers ------------------------------------------------------------------------------
    def _close_with(self, answer: bytes) -> None:
        self._cancel_timer()
        if not self._transport.is_closing():
            self._transport.write(answer)
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _Pipe(asyncio.Protocol):
    """One direction of a relay: what this side receives is written to ``peer``; back-pressure
    on ``peer`` pauses this side's reading (asyncio's streams would add two tasks per tunnel)."""

    def __init__(self, peer: asyncio.Transport) -> None:
        self.peer = peer
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.peer.write(data)

    def eof_received(self) -> bool:
        if self.peer.can_write_eof():
            self.peer.write_eof()
        return True  # half-closed: the other direction may still carry bytes

    def connection_lost(self, exc) -> None:
        self.peer.close()

    def pause_writing(self) -> None:
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()
