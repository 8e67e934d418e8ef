"""Which ``Host`` names the mock answers: the guard against DNS rebinding.

A page on another site can make a browser resolve its own name (``rebind.evil.example``) to
127.0.0.1 and then call the mock as if it were that site: same-origin with itself, past the
cross-site check.  Its requests still name the attacker's host, so a server bound to
loopback answers only the names that mean "this machine" (``localhost`` and its subdomains,
loopback addresses) and fal's own hosts (``queue.fal.run``, ``rest.fal.ai``, ``*.fal.media``...,
which the JS proxy, the HTTPS proxy mode and ``Host: queue.*`` routing use), as Vite and
webpack-dev-server do.  On another interface (``--host 0.0.0.0``) every name is answered
unless the user lists the ones to allow (``--allowed-hosts``); the control API there needs
the admin token anyway.
"""
from __future__ import annotations

import ipaddress

from mock_server.core.paths import FAL_DOMAINS, is_fal_name

__all__ = ["FAL_DOMAINS", "HostPolicy", "host_name", "is_fal_name", "is_loopback_bind", "is_loopback_name"]


def host_name(host: str) -> str:
    """The name in a ``Host`` header value, without port or IPv6 brackets, lower-cased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name.rstrip(".")
    return host.rstrip(".")


def is_loopback_name(name: str) -> bool:
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_loopback_bind(bind_host: str) -> bool:
    name = host_name(bind_host) if bind_host.startswith("[") else bind_host.strip().lower()
    return is_loopback_name(name)


class HostPolicy:
    """Says whether a request's ``Host`` is one this server answers (see the module doc)."""

    def __init__(self, bind_host: str, allowed: tuple[str, ...] = ()) -> None:
        self.loopback = is_loopback_bind(bind_host)
        self.allowed = frozenset(host_name(name) for name in allowed)
        self._verdicts: dict[str, bool] = {}

    def allows_at(self, host: str, server: tuple | None) -> bool:
        """:meth:`allows`, or ``host`` is the address the connection reached (``scope["server"]``):
        an address literal is no name a rebinding page can own, and the server may be bound
        to another interface than its settings say (``BackgroundServer(mock, host=...)``)."""
        if self.allows(host):
            return True
        return bool(server) and host_name(host) == str(server[0]).lower()

    def allows(self, host: str) -> bool:
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self._decide(host_name(host))
            if len(self._verdicts) < 256:  # Host values are the client's to vary
                self._verdicts[host] = verdict
        return verdict

    def _decide(self, name: str) -> bool:
        if name in self.allowed or is_fal_name(name):
            return True
        if self.loopback:
            return is_loopback_name(name) or not name  # HTTP/1.0 without Host
        return not self.allowed  # another interface: any name, unless the user listed some
