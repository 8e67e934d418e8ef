"""fal's server-proxy protocol (fal-js libs/proxy, PROTOCOL.md §8.2 C): the real URL is in
``x-fal-target-url``; queue and run targets go to the same protocol calls, storage and CDN
targets (rest.fal.ai, *.fal.media) to the app's own stand-ins for them, by path.

Browser calls (issue 21.1).  fal's proxy is a server-side component (fal-js libs/proxy: the
route of the user's own app, so the browser calls it same-origin; it sets no CORS headers).
The mock's proxy takes that route's place, so a page on any site the user visits could
otherwise drive it (and, keyless, the mock's queue and storage).  So a call that carries an
``Origin`` (only browsers send one) is served when that origin is the mock's own, a loopback
page (``http://localhost:3000``: the user's own app in development), or one the user allowed
(``--proxy-cors ORIGIN,...`` or ``*``); any other is refused with 403 (its preflight too, so
the browser does not even send it).  Callers without an ``Origin`` (Node, Python, curl) are
served as before.

Keys (issue 21.6): the proxy stands for the user's own server, which holds a valid key and
adds it to calls that carry none (fal-js libs/proxy), so with auth on a proxied call
without ``Authorization`` is accepted, as fal's proxy would send it on; a call that carries
a key is checked like any other (``--keys``: only those).  Who may make such calls at all
is the origin rule above (and, for the mock's own host, the DNS-rebinding guard).
"""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from mock_server.core import fal_errors
from mock_server.core.paths import PROXY_PATH
from mock_server.protocol.hosts import host_name, is_loopback_name
from mock_server.protocol.paths import STAND_INS, proxy_target
from mock_server.web.outcomes import FalRoute, fal_call, fal_calls, respond
from mock_server.web.responses import AnswerResponse, RawResponse

router = APIRouter()

#: The scope key, in a storage or CDN call the proxy enters again, of the proxy call's own
#: scope (its path tells storage's key check that the call came through the proxy).
PROXIED_SCOPE = "fal_mock.proxied_scope"

_PREFLIGHT = [(b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
              (b"access-control-allow-headers", b"*"),
              (b"vary", b"Origin")]


def browser_origin_allowed(origin: str | None, host: str, allowed: tuple[str, ...]) -> bool:
    """Whether a call with this ``Origin`` header may use the proxy (see the module doc)."""
    if origin is None:
        return True  # not a browser: Node, Python, curl
    origin = origin.strip()
    if "*" in allowed or origin.rstrip("/") in allowed:
        return True
    if origin == "null":  # sandboxed frames, file: pages, opaque redirects
        return False
    netloc = origin.partition("://")[2].rstrip("/")
    return netloc == host or is_loopback_name(host_name(netloc))


async def proxy_call(request: Request):
    """One proxied call."""
    origin = request.headers.get("origin")
    allowed = fal_calls(request).emulator.settings.proxy_cors
    if not browser_origin_allowed(origin, request.headers.get("host", ""), allowed):
        return AnswerResponse(fal_errors.detail(
            403, f"Browser calls to the fal-mock proxy from {origin} are refused "
                 "(allow the origin with --proxy-cors)"))
    cors = [(b"access-control-allow-origin", origin.encode("latin-1"))] if origin else []
    if request.method == "OPTIONS":
        return RawResponse(204, b"", cors + _PREFLIGHT)
    response = await _proxied(request)
    if cors and isinstance(getattr(response, "raw_headers", None), list):
        # the stand-ins answer their own CORS header: one is enough
        if not any(name == b"access-control-allow-origin" for name, _ in response.raw_headers):
            response.raw_headers += cors + [(b"vary", b"Origin")]
    return response


async def _proxied(request: Request):
    call = fal_call(request)
    target = call.header("x-fal-target-url")
    if not target:
        # fal-js libs/proxy answers 400 "Invalid request" without the header.
        return AnswerResponse(fal_errors.detail(400, "Missing the x-fal-target-url header"))
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:  # "https://[..." and other URLs urlsplit refuses (issue 20.13)
        return AnswerResponse(fal_errors.detail(412, f"Invalid target URL: {target}"))
    kind = proxy_target((parts.hostname or "").lower())
    path = parts.path or "/"
    entry = call.entry
    if entry is not None:
        entry.proxied = True
        entry.target_url = target
        entry.path = path
        entry.query = parts.query
    if parts.query:
        call.replace_query(parts.query.encode("latin-1"))
    calls = fal_calls(request)
    if kind == "queue":
        direct_queue = f"{call.scheme}://{call.host}{calls.emulator.settings.queue_prefix.rstrip('/')}"
        return await respond(calls.queue_call(call, path, direct_queue, proxied=True))
    if kind == "run":
        return await respond(calls.run_call(call, path, proxied=True))
    if kind is None:
        # fal-js libs/proxy refuses targets outside fal's domains with 412.
        return AnswerResponse(fal_errors.detail(412, f"Invalid target URL: {target}"))
    # storage and CDN: the app's own routes for them, entered again at the rewritten path
    # (the journal keeps this call's entry)
    scope = dict(request.scope)
    scope[PROXIED_SCOPE] = request.scope
    scope["path"] = STAND_INS[kind] + path.lstrip("/")
    scope["raw_path"] = scope["path"].encode("latin-1")
    scope["query_string"] = call.raw_query
    return _Reentry(request.app, scope)


class _Reentry(Response):
    """Serves the call by the whole app again, with another scope."""

    def __init__(self, app, scope: dict) -> None:
        self.app = app
        self.scope = scope
        self.background = None

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        await self.app(self.scope, receive, send)


router.add_route(PROXY_PATH, FalRoute(proxy_call), methods=None, include_in_schema=False)
router.add_route(PROXY_PATH + "/{rest:path}", FalRoute(proxy_call), methods=None, include_in_schema=False)
