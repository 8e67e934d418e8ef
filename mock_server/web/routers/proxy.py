"""fal's server-proxy protocol (fal-js libs/proxy, PROTOCOL.md §8.2 C): the real URL is in
``x-fal-target-url``; queue and run targets go to the same protocol calls, storage and CDN
targets (rest.fal.ai, *.fal.media) to the app's own stand-ins for them, by path."""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import Response

from mock_server.core import fal_errors
from mock_server.core.paths import CDN_PREFIX, PROXY_PATH, REST_PREFIX
from mock_server.protocol.paths import proxy_target
from mock_server.web.outcomes import FalRoute, fal_call, fal_calls, respond
from mock_server.web.responses import AnswerResponse, RawResponse

router = APIRouter()

#: The scope key, in a storage or CDN call the proxy enters again, of the proxy call's own
#: scope (its path tells storage's key check that the call came through the proxy).
PROXIED_SCOPE = "fal_mock.proxied_scope"

_PREFLIGHT = [(b"access-control-allow-origin", b"*"),
              (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
              (b"access-control-allow-headers", b"*")]
_STAND_INS = {"rest": REST_PREFIX, "cdn": CDN_PREFIX}


async def proxy_call(request: Request):
    """One proxied call."""
    if request.method == "OPTIONS":
        return RawResponse(204, b"", list(_PREFLIGHT))
    call = fal_call(request)
    target = call.header("x-fal-target-url")
    if not target:
        # fal-js libs/proxy answers 400 "Invalid request" without the header.
        return AnswerResponse(fal_errors.detail(400, "Missing the x-fal-target-url header"))
    parts = urlsplit(target)
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
    scope["path"] = _STAND_INS[kind] + path.lstrip("/")
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
