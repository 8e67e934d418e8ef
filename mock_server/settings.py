"""One settings object for the whole server, filled from CLI flags (and a few env vars)."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_PORT = 8484
DEFAULT_KEY = "fal-mock:secret"
QUEUE_PREFIX = "/queue"


def default_state_dir() -> Path:
    """Where the TLS CA (and, opt-in, persisted state) live: ``$FAL_MOCK_STATE_DIR``,
    else ``$XDG_STATE_HOME/fal-mock``, else ``~/.local/state/fal-mock``."""
    explicit = os.environ.get("FAL_MOCK_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    # The XDG spec says relative values are invalid and must be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "fal-mock"
    return Path.home() / ".local" / "state" / "fal-mock"


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tls: bool = False
    #: Also serve as an ``HTTPS_PROXY`` for fal's hosts on the same port (``--proxy``; server/https_proxy.py)
    proxy: bool = False
    profile: str = "default"
    speed: float = 1.0
    workers: int = 2  # fal's default concurrency limit for a new account is 2
    auth: bool = True
    keys: tuple[str, ...] = ()  # empty: any well-formed key is accepted
    state_dir: Path = field(default_factory=default_state_dir)
    #: Keep requests, results and uploads in ``state_dir`` across restarts (``--state-dir`` given).
    persist: bool = False
    allow_fetch: bool = False
    fetch_timeout: float = 10.0
    fetch_max_bytes: int = 10 * 1024 * 1024  # upstream Wan limit: "File size: no more than 10MB"
    validation: str = "documented"
    max_requests: int = 10_000  # finished requests kept; the oldest are forgotten first
    #: Host names answered besides loopback and fal's own (DNS-rebinding guard, protocol/hosts.py);
    #: on a non-loopback bind, when given, only these (and fal's) are answered
    allowed_hosts: tuple[str, ...] = ()
    #: Browser origins (``http://host:port``, or ``*``) whose pages may call the JS proxy
    #: besides the mock's own and loopback pages (web/routers/proxy.py)
    proxy_cors: tuple[str, ...] = ()
    max_pending: int = 10_000  # requests waiting or running at once; a submit beyond is answered 429
    max_body_bytes: int = 32 * 1024 * 1024
    journal_size: int = 1000  # calls kept in the request journal; the oldest are dropped
    admin_token: str | None = None  # when set, required on the /_mock/ control routes
    polls: int | None = None  # when set: COMPLETED on the Nth status call, whatever the clock
    queue_prefix: str = QUEUE_PREFIX
    #: Seconds a connection may take to send a complete request head (request line and
    #: headers), counted from its opening and from each answer; then it is closed
    #: (issue 20: silent or slow sockets must not hold descriptors forever)
    request_head_timeout: float = 10.0
    #: Write one line per call (method, path, status, request id, ms): ``--log-requests``
    log_requests: bool = False
    #: Record and replay (issue 19, features/cassettes): ``--record DIR`` forwards every fal call
    #: to ``upstream`` (None: fal's own hosts) and writes cassettes; ``--replay DIR`` answers
    #: from them (``replay_strict``: no emulator fallback; ``replay_ignore``: fields not matched)
    record_dir: Path | None = None
    upstream: str | None = None
    replay_dir: Path | None = None
    replay_strict: bool = False
    replay_ignore: tuple[str, ...] = ()
    #: Endpoint ids this server answers (``--endpoints``); empty: every catalogued one (issue 16)
    endpoints: tuple[str, ...] = ()

    def with_(self, **changes: object) -> "Settings":
        return replace(self, **changes)

    @property
    def client_key(self) -> str:
        """A key this server accepts, for the printed ``export FAL_KEY=`` line."""
        return self.keys[0] if self.keys else DEFAULT_KEY

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        """The URL a client on this machine dials (wildcard binds become loopback)."""
        return f"{self.scheme}://{client_host(self.host, self.port)}"


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
