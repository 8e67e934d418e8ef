"""The mock's own URL paths, in one place (everything the mock adds lives under /_mock/)."""

FILES_PREFIX = "/_mock/files/"  # stored files: rendered outputs and uploads
REST_PREFIX = "/_mock/rest/"  # stands for https://rest.fal.ai/ (storage initiate, CDN token)
CDN_PREFIX = "/_mock/cdn/"  # stands for https://v3.fal.media/ (CDN uploads)
DASHBOARD_ROOT = "/_mock/"  # the dashboard: the page, and every /_mock/ path no other feature serves
PROXY_PATH = "/api/fal/proxy"  # fal's server-proxy convention (fal-js libs/proxy)

_LOOPBACK_HOSTS = frozenset(("127.0.0.1", "localhost", "::1"))

#: fal's domains: a name under one of these is one of the hosts the mock stands in for
#: (``queue.fal.run``, ``rest.fal.ai``, ``v3.fal.media``...), and the only names besides
#: loopback its local CA may vouch for (``mock_server.server.tls``).
FAL_DOMAINS = ("fal.run", "fal.ai", "fal.media")


def is_fal_name(name: str) -> bool:
    """Whether a (lower-case, port-less) host name is fal's: one of :data:`FAL_DOMAINS` or under one."""
    return any(name == domain or name.endswith("." + domain) for domain in FAL_DOMAINS)


def own_file_name(url: str, *, host: str, port: int, caller_host: str) -> str | None:
    """The stored file's name when ``url`` points at one of this mock's files, else None.

    Its files are reached as ``http(s)://<loopback, the bound host, or the host the caller
    used>[:<our port>]/_mock/files/<name>``, or as ``https://<a fal host>/_mock/files/<name>``
    through the HTTPS proxy mode (an upload through ``rest.fal.ai`` used in a call to
    ``queue.fal.run``; fal's own hosts serve no ``/_mock/`` path); anything else (another
    port, another machine, a malformed URL) is not ours.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        url_port = parts.port
    except ValueError:  # e.g. a port out of range
        return None
    if parts.scheme not in ("http", "https") or not parts.path.startswith(FILES_PREFIX):
        return None
    hostname = parts.hostname or ""
    if parts.scheme == "https" and url_port in (443, None) and is_fal_name(hostname):
        return parts.path[len(FILES_PREFIX):]
    if hostname not in _LOOPBACK_HOSTS and hostname != host and parts.netloc != caller_host:
        return None
    if url_port not in (port, None) and parts.netloc != caller_host:
        return None
    return parts.path[len(FILES_PREFIX):]
