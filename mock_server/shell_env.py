"""The ``export NAME=value`` lines that point the official fal clients at this server.

``fal-mock serve`` prints them first; ``fal-mock env`` prints only them, so that
``eval "$(fal-mock env --tls --port 8443)"`` configures a shell (see spec/CLI.md).
"""
from __future__ import annotations

import ipaddress
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tls import TLSFiles

__all__ = ["export_lines", "client_host"]

# A server bound to "every address" is reached by clients on loopback, and the TLS
# certificate only names loopback.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def client_host(host: str, port: int) -> str:
    """``host:port`` as a client should dial it: wildcard binds become loopback, IPv6 gets brackets."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = _WILDCARD_TO_LOOPBACK.get(host, host)
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            host = f"[{host}]"
    except ValueError:
        pass  # a host name
    return f"{host}:{int(port)}"


def export_lines(
    host: str,
    port: int,
    *,
    key: str,
    tls: TLSFiles | None,
    queue_prefix: str = "/queue",
) -> list[str]:
    """The lines of spec/CLI.md, in order, without trailing newlines.

    ``FAL_KEY``, ``FAL_RUN_HOST``, ``FAL_QUEUE_RUN_HOST`` and, with ``tls``,
    ``SSL_CERT_FILE`` (certifi roots + the mock CA) and ``NODE_EXTRA_CA_CERTS``
    (the mock CA).  Values are shell-quoted only when they need it.
    """
    run_host = client_host(host, port)
    prefix = queue_prefix.strip("/")
    queue_host = f"{run_host}/{prefix}" if prefix else run_host
    pairs: list[tuple[str, str]] = [
        ("FAL_KEY", key),
        ("FAL_RUN_HOST", run_host),
        ("FAL_QUEUE_RUN_HOST", queue_host),
    ]
    if tls is not None:
        pairs.append(("SSL_CERT_FILE", str(tls.bundle)))
        pairs.append(("NODE_EXTRA_CA_CERTS", str(tls.ca_cert)))
    return [f"export {name}={shlex.quote(value)}" for name, value in pairs]
