"""fal's URL grammar (PROTOCOL.md §1, §3): which host a call is for, and what it asks.

- ``/queue/{id...}`` (or any path on a ``Host: queue.*``): the queue host.
  ``POST /{endpoint_id}`` submits; ``GET .../requests/{rid}/status[/]``,
  ``GET .../requests/{rid}/status/stream``, ``GET .../requests/{rid}``,
  ``PUT .../requests/{rid}/cancel``, where ``...`` is ``owner/alias`` (the full endpoint
  id there answers 405, as fal does: :func:`is_app_path`).
- ``POST /{endpoint_id}`` anywhere else: the run host (synchronous run).
- ``/api/fal/proxy``: fal's server-proxy protocol; the real URL is in ``x-fal-target-url``.
- ``/_mock/...``: the mock's own routes, never a fal call.
"""
from __future__ import annotations

from mock_server.core.paths import CDN_PREFIX, PROXY_PATH, REST_PREFIX
from mock_server.endpoints.registry import app_of
from mock_server.protocol.request import HttpRequest

# (action after the request id, method) -> the call's name in the journal and fault rules
QUEUE_CALLS = {
    ((), "GET"): "result",
    (("status",), "GET"): "status",
    (("status", "stream"), "GET"): "stream",
    (("cancel",), "PUT"): "cancel",
}
QUEUE_ACTIONS = frozenset(action for action, _ in QUEUE_CALLS)

# Which host a proxied ``x-fal-target-url`` names (fal-js libs/proxy).
QUEUE_HOSTS = frozenset(("queue.fal.run",))
RUN_HOSTS = frozenset(("fal.run",))
REST_HOSTS = frozenset(("rest.fal.ai", "rest.alpha.fal.ai"))


def segments(path: str) -> list[str]:
    """The non-empty segments of a path."""
    return [s for s in path.split("/") if s]


def queue_path(parts: list[str]) -> tuple[str, str, tuple[str, ...]] | None:
    """``(app path, request id, action)`` for ``{app}/requests/{id}[/{action}...]``;
    None for anything else (a submit's endpoint id, or nothing)."""
    for i in range(2, len(parts) - 1):  # the app is at least owner/alias
        if parts[i] == "requests":
            return "/".join(parts[:i]), parts[i + 1], tuple(parts[i + 2:])
    return None


def is_app_path(app_path: str) -> bool:
    """Whether the app part of a ``{app}/requests/{id}...`` call is in the owner/alias form
    (``[namespace/]owner/alias``), the only one fal serves status, result and cancel on.

    The full endpoint path there is refused: real fal answered 405 to
    ``GET queue.fal.run/fal-ai/ffmpeg-api/compose/requests/{id}`` (a recorded exchange cited
    in fal-mock issue 17; the fix was the owner/alias form), and fal's queue docs (2026) say
    not to add the endpoint's sub-path to these URLs."""
    return app_of(app_path) == app_path


def is_proxy(path: str) -> bool:
    """Whether ``path`` is the server proxy's (``/api/fal/proxy[/...]``)."""
    return path == PROXY_PATH or path.startswith(PROXY_PATH + "/")


def queue_target(path: str, scheme: str, host: str, prefix: str) -> tuple[str, str] | None:
    """``(path on the queue host, queue base URL)`` when a call to ``path`` (not ``/_mock/``
    nor the proxy) is for the queue host: under the queue ``prefix``, or on a
    ``Host: queue.*``; None for the run host."""
    if prefix and (path.startswith(prefix + "/") or path == prefix):
        return path[len(prefix):], f"{scheme}://{host}{prefix}"
    if host.startswith("queue."):
        return path, f"{scheme}://{host}"
    return None


def proxy_target(host: str) -> str | None:
    """What a proxied target host stands for: ``queue``, ``run``, ``rest`` (storage) or
    ``cdn`` (``*.fal.media``); None for a host outside fal's (fal-js answers 412)."""
    if host in QUEUE_HOSTS:
        return "queue"
    if host in RUN_HOSTS:
        return "run"
    if host in REST_HOSTS:
        return "rest"
    if host.endswith(".fal.media"):
        return "cdn"
    return None


#: Where this app serves the stand-ins for fal's storage hosts, by :func:`proxy_target` kind.
STAND_INS = {"rest": REST_PREFIX, "cdn": CDN_PREFIX}
#: fal's OpenAPI document of one endpoint: ``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=``
#: (the schema URL fal's model pages link; fetched that way by e.g. yyforever/aividpipeline-skills
#: skills/aivp-video/scripts/get-schema.sh), served here by the control API's ``/_mock/openapi.json``.
SCHEMA_HOSTS = frozenset(("fal.ai", "www.fal.ai"))
SCHEMA_PATH = "/api/openapi/queue/openapi.json"
SCHEMA_ROUTE = "/_mock/openapi.json"


def fal_host_path(host: str, path: str) -> str | None:
    """The app path that answers ``path`` on fal's ``host`` (a lower-case name, no port) when it
    is not ``path`` itself: the storage stand-ins for ``rest.fal.ai`` and ``*.fal.media``, the
    schema route for fal.ai's schema path.  None for every other call (the queue and run hosts
    route by the same path; ``/_mock/...`` is the mock's own on any host)."""
    if path.startswith("/_mock/"):
        return None
    if host in SCHEMA_HOSTS:
        return SCHEMA_ROUTE if path == SCHEMA_PATH else None
    prefix = STAND_INS.get(proxy_target(host) or "")
    return prefix + path.lstrip("/") if prefix else None


def request_urls(queue_base: str, app_path: str, request_id: str) -> dict[str, str]:
    """``request_id`` and the three URLs every submit and status body carries (PROTOCOL.md §3.3),
    in fal's key order; they lead back to the mock as the caller reached it."""
    base = f"{queue_base}/{app_path}/requests/{request_id}"
    return {"request_id": request_id, "response_url": base, "status_url": base + "/status",
            "cancel_url": base + "/cancel"}


_TRUE = frozenset(("1", "true", "True", "yes"))
# The query strings the official clients send (PROTOCOL.md §3.4), answered without parsing.
_LOGS_QUERIES = {b"": False, b"logs=0": False, b"logs=false": False, b"logs=1": True, b"logs=true": True}


def logs_flag(call: HttpRequest) -> bool:
    """``?logs=`` as 1/0/true/false (Python sends true/false, JS and fal.apps 1/0)."""
    flag = _LOGS_QUERIES.get(call.raw_query)
    if flag is None:
        flag = call.query.get("logs", "0") in _TRUE
    return flag
