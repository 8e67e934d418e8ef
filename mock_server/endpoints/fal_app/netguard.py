"""Where ``--allow-fetch`` may connect: never link-local or cloud-metadata addresses.

The mock fetches remote ``image_urls`` only when told to (``--allow-fetch``).  Even then a
URL must not make it a stepping stone into the machine's cloud metadata service (the
classic SSRF target: instance credentials at ``169.254.169.254``) or anything else on a
link-local network.  So before every connection (the first one and each redirect hop):

1. the host name is refused outright when it is a metadata name
   (``metadata.google.internal``, ``metadata.goog``, ``metadata``);
2. it is resolved (``getaddrinfo``, off the event loop) and **every** address it resolves
   to is checked: link-local (169.254.0.0/16, fe80::/10), the metadata addresses
   (169.254.169.254, fd00:ec2::254, Alibaba's 100.100.100.200), unspecified (0.0.0.0, ::)
   and multicast are refused -- also when an IPv6 address carries one of those IPv4
   addresses inside it (IPv4-mapped and -compatible, 6to4 ``2002::/16``, Teredo ``2001::/32``,
   NAT64 ``64:ff9b::/96`` and the local-use ``64:ff9b:1::/48``, RFC 6052/8215), since a
   translator on the path would deliver the packet to that IPv4 address;
3. the connection is then **pinned** to the first checked address: the URL handed to the
   HTTP client names that IP, with the original ``Host`` header (and, for https, the
   original name for SNI and certificate checking).

DNS rebinding trade-off: pinning means the name is resolved exactly once per hop and the
socket goes to the address that was checked, so a resolver that answers a harmless address
to the check and the metadata address to the connect cannot win.  The cost: no fallback to
the name's other addresses (no happy-eyeballs), and a name with *any* refused address is
refused as a whole.  Redirects are followed by hand and every hop goes through the same
check and pin.  Loopback and private ranges stay allowed (local asset servers and the
tests use them); the mock only runs where its user runs it.
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["BlockedAddress", "METADATA_HOSTS", "PinnedTarget", "blocked_reason", "resolve_pinned"]

#: Names of cloud metadata services, refused before any lookup.
METADATA_HOSTS = frozenset(("metadata.google.internal", "metadata.goog", "metadata"))
#: Metadata addresses outside the link-local ranges (AWS IPv6, Alibaba Cloud).
_METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
#: NAT64 prefixes (RFC 6052 well-known, RFC 8215 local-use) and where each may carry its IPv4
#: address: byte offsets of the four octets for the prefix lengths the prefix can be used with
#: (RFC 6052 section 2.2 skips bits 64-71).
_NAT64 = (
    (ipaddress.ip_network("64:ff9b::/96"), ((12, 13, 14, 15),)),
    (ipaddress.ip_network("64:ff9b:1::/48"),
     ((6, 7, 9, 10), (7, 9, 10, 11), (9, 10, 11, 12), (12, 13, 14, 15))),
)

#: ``getaddrinfo(host, port, type=SOCK_STREAM)``; tests may replace it (module attribute).
getaddrinfo: Callable[..., list[Any]] = socket.getaddrinfo


class BlockedAddress(Exception):
    """The URL's host is or resolves to an address the mock never connects to."""


def blocked_reason(address: str) -> str | None:
    """Why an IP address literal is refused, or None when it may be dialled."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return "not an IP address"
    for candidate in [ip, *_embedded_ipv4(ip)]:
        if candidate in _METADATA_ADDRESSES:
            return "a cloud metadata address"
        if any(candidate in net for net in _LINK_LOCAL if net.version == candidate.version):
            return "a link-local address"
        if candidate.is_unspecified:
            return "an unspecified address"
        if candidate.is_multicast:
            return "a multicast address"
    return None


def _embedded_ipv4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries for a translator or tunnel to reach."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:  # 2002:AABB:CCDD::/48
        found.append(ip.sixtofour)
    if ip.teredo is not None:  # 2001:0:SERVER::~CLIENT (the client address is stored inverted)
        found.extend(ip.teredo)
    packed = ip.packed
    if packed[:12] == bytes(12) and int(ip) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(packed[12:]))
    for prefix, layouts in _NAT64:
        if ip in prefix:
            decoded = [ipaddress.IPv4Address(bytes(packed[i] for i in octets)) for octets in layouts]
            # the local-use prefix's length is the network's choice: every layout is checked,
            # and the zeros a layout that is not in use reads are no address at all
            found.extend(d for d in decoded if len(decoded) == 1 or not d.is_unspecified)
    return found


@dataclass(frozen=True, slots=True)
class PinnedTarget:
    """Where one hop connects: ``url`` names the checked IP; send ``host_header`` and,
    for https, ``sni_hostname`` so that virtual hosts and certificates still work."""

    url: str
    host_header: str
    sni_hostname: str | None
    address: str


async def resolve_pinned(url: str, timeout: float) -> PinnedTarget:
    """Check ``url``'s host (see the module doc) and pin it to a checked address.

    Raises :class:`BlockedAddress` for a refused host, ``OSError`` when it does not resolve,
    ``ValueError`` for a URL without a usable host.
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if scheme not in ("http", "https") or not host:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    port = parts.port or (443 if scheme == "https" else 80)  # ValueError on a bad port
    if host in METADATA_HOSTS:
        raise BlockedAddress(f"{host} is a cloud metadata host")
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.run_in_executor(None, lambda: getaddrinfo(host, port, type=socket.SOCK_STREAM)), timeout)
    addresses = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
    if not addresses:
        raise OSError(f"{host} has no IPv4/IPv6 address")
    for address in addresses:
        reason = blocked_reason(address)
        if reason is not None:
            raise BlockedAddress(f"{host} resolves to {address}, {reason}")
    address = addresses[0]
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{port}"
    default_port = 443 if scheme == "https" else 80
    host_header = parts.netloc.rpartition("@")[2]  # as the client would send it, without userinfo
    if not host_header:
        host_header = host if port == default_port else f"{host}:{port}"
    pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
    return PinnedTarget(pinned, host_header, host if scheme == "https" else None, address)
