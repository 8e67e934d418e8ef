"""What every ``/_mock/`` control router shares: the guards, JSON bodies read whatever their
content type says, fal's 405 for a wrong method, and today's 400 for input that does not fit.

The control API's JSON contract predates its typed bodies: a body is JSON even when sent as
``curl -d`` (form content type) or with no content type, an empty body means ``{}``, and bad
input answers 400 ``{"detail": "...", "error_type": "bad_request"}`` (never FastAPI's 422).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.web.deps import admin_token, same_site
from mock_server.web.responses import AnswerResponse, RawResponse

#: Control bodies are small (a fault rule, a few settings).
BODY_LIMIT = 1024 * 1024
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
_JSON_TYPE = (b"content-type", b"application/json")


class JsonBodyRoute(APIRoute):
    """A control route: its body is read as JSON whatever the content type (at most
    :data:`BODY_LIMIT` bytes, else fal's 413)."""

    def get_route_handler(self) -> Callable:
        handle = super().get_route_handler()

        async def handle_json(request: Request) -> Any:
            if request.method in ("GET", "HEAD"):
                return await handle(request)
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > BODY_LIMIT:
                    return AnswerResponse(fal_errors.body_too_large(BODY_LIMIT))
            headers = [h for h in request.scope["headers"] if h[0] != b"content-type"] + [_JSON_TYPE]
            sent = False

            async def replay() -> dict:
                nonlocal sent
                if sent:
                    return {"type": "http.disconnect"}
                sent = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}

            return await handle(Request({**request.scope, "headers": headers}, replay))

        return handle_json


def control_router(*, admin: bool = True, **options: Any) -> APIRouter:
    """A router of control routes: the cross-site guard, the admin token unless ``admin=False``
    (health and the stand-ins for fal's hosts stay open), JSON bodies."""
    guards = [Depends(admin_token), Depends(same_site)] if admin else [Depends(same_site)]
    return APIRouter(dependencies=guards, route_class=JsonBodyRoute, **options)


def ok(payload: Any, status: int = 200) -> RawResponse:
    """A JSON answer with the exact bytes the raw face sent (orjson, content-type, length)."""
    return RawResponse(status, orjson.dumps(payload))


async def _method_not_allowed() -> AnswerResponse:
    return AnswerResponse(fal_errors.method_not_allowed())


def only(router: APIRouter, path: str, allowed: Iterable[str]) -> None:
    """Answer fal's 405 on ``path`` for every method but ``allowed`` (routes are matched in
    order: add this after the path's own routes)."""
    others = [m for m in _METHODS if m not in set(allowed)]
    router.add_api_route(path, _method_not_allowed, methods=others, include_in_schema=False)


def bad_input(exc: RequestValidationError) -> Answer:
    """Today's 400 for a control call whose body or query does not fit: one line per problem."""
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            problems.append("Request body is not valid JSON")
            continue
        where = ".".join(str(part) for part in error.get("loc", ())[1:])
        problems.append(f"{where}: {error.get('msg')}" if where else str(error.get("msg")))
    return fal_errors.bad_request("; ".join(problems) or "Bad request")
