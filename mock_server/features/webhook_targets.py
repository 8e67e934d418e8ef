"""Where a webhook delivery may go (issue 21.2): the guard an attempt passes before it connects.
The dispatcher that makes the attempts is :mod:`mock_server.features.webhooks`.

An attempt first resolves the URL's host (and connects to the address it checked, like
``--allow-fetch``'s guard, :mod:`mock_server.endpoints.fal_app.netguard`).  It is *refused*
(:class:`TargetRefused`; the dispatcher logs outcome ``"refused"`` with the reason and never
retries) when the target is the mock itself (an address of this machine on the mock's port,
or any ``/_mock/`` path on this machine: a webhook must not drive the control API), or,
unless the user allows fetching (``--allow-fetch``), a link-local or cloud-metadata address.
"""
from __future__ import annotations

import asyncio
import socket

from mock_server.endpoints.fal_app import netguard
from mock_server.settings import Settings


class TargetRefused(Exception):
    """A target the mock never delivers to (the message says why)."""


async def delivery_target(url: str, settings: Settings, timeout: float) -> netguard.PinnedTarget:
    """Where an attempt connects: ``url`` pinned to a checked address of its host, resolved
    within ``timeout`` seconds.  Raises :class:`TargetRefused` (see the module doc),
    ``OSError``/``ValueError``/``asyncio.TimeoutError`` when the host does not resolve or the
    URL is unusable (a failed attempt, retried)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a usable URL ({exc})") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if scheme not in ("http", "https") or not host:
        raise TargetRefused("not an http(s) URL with a host")
    port = port or (443 if scheme == "https" else 80)
    if host in netguard.METADATA_HOSTS and not settings.allow_fetch:
        raise TargetRefused(f"{host} is a cloud metadata host (allowed with --allow-fetch)")
    loop = asyncio.get_running_loop()

    def resolve() -> tuple[list[str], list[str]]:
        infos = netguard.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        return found, [address for address in found if _this_machine(address)]

    addresses, local = await asyncio.wait_for(loop.run_in_executor(None, resolve), timeout)
    if not addresses:
        raise OSError(f"{host} has no IPv4/IPv6 address")
    if local and (port == settings.port or (parts.path or "/").startswith("/_mock/")):
        raise TargetRefused(f"{host}:{port} is this fal-mock server (its port or its /_mock/ control API)")
    if not settings.allow_fetch:
        for address in addresses:
            reason = netguard.blocked_reason(address)
            if reason is not None:
                raise TargetRefused(f"{host} resolves to {address}, {reason} (allowed with --allow-fetch)")
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rpartition("@")[2] or host
    return netguard.PinnedTarget(pinned, host_header, host if scheme == "https" else None, address)


def _this_machine(address: str) -> bool:
    """Whether ``address`` is one of this machine's own (a socket can bind to it)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True
