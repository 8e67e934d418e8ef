"""The ``export NAME=value`` lines that point the official fal clients at this server.

``fal-mock serve`` prints them first; ``fal-mock env`` prints only them, so that
``eval "$(fal-mock env --tls --port 8443)"`` configures a shell (see spec/CLI.md).
"""
from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from mock_server.settings import client_host

if TYPE_CHECKING:
    from mock_server.server.tls import TLSFiles

__all__ = ["export_lines", "proxy_export_lines"]

#: Loopback, which the HTTPS proxy must not be asked for (the mock's own URLs stay direct).
NO_PROXY = "localhost,127.0.0.1,::1"


def export_lines(
    host: str,
    port: int,
    *,
    key: str,
    tls: TLSFiles | None,
    queue_prefix: str = "/queue",
) -> list[str]:
    """The lines of spec/CLI.md, in order, without trailing newlines.

    ``FAL_KEY``, ``FAL_RUN_HOST``, ``FAL_QUEUE_RUN_HOST``, ``FAL_OPENAPI_HOST`` and, with ``tls``,
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
        # where the newest fal_client fetches an endpoint's OpenAPI document to check arguments
        # (``https://{FAL_OPENAPI_HOST}/api/openapi/queue/openapi.json?endpoint_id=``, issue 16)
        ("FAL_OPENAPI_HOST", run_host),
    ]
    if tls is not None:
        pairs.append(("SSL_CERT_FILE", str(tls.bundle)))
        pairs.append(("NODE_EXTRA_CA_CERTS", str(tls.ca_cert)))
    return [f"export {name}={shlex.quote(value)}" for name, value in pairs]


def proxy_export_lines(host: str, port: int, *, key: str, tls: TLSFiles) -> list[str]:
    """The lines of ``fal-mock env --proxy``: the mock as ``HTTPS_PROXY`` for fal's own hosts.

    No ``FAL_RUN_HOST``: the clients keep calling ``https://queue.fal.run`` and the rest, and
    the proxy ends those tunnels in the mock.  ``SSL_CERT_FILE`` (certifi's roots + the mock
    CA, so other HTTPS still verifies) and ``NODE_EXTRA_CA_CERTS`` trust the certificates it
    issues for fal's hosts (``CURL_CA_BUNDLE`` the same for curl and ``requests``); ``NO_PROXY``
    keeps loopback direct."""
    pairs = [
        ("FAL_KEY", key),
        ("HTTPS_PROXY", f"http://{client_host(host, port)}"),
        ("NO_PROXY", NO_PROXY),
        ("SSL_CERT_FILE", str(tls.bundle)),
        ("CURL_CA_BUNDLE", str(tls.bundle)),  # curl (built with its own CA path) and requests read this one
        ("NODE_EXTRA_CA_CERTS", str(tls.ca_cert)),
    ]
    return [f"export {name}={shlex.quote(value)}" for name, value in pairs]
