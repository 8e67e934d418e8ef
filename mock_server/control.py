"""The control API under ``/_mock/``: what tests and people use to look and steer.

- ``GET  /_mock/health``            200 once the server accepts requests
- ``GET  /_mock/requests``          the request journal (filters: kind, method, path, request_id,
                                    status, since; ``body=0`` leaves bodies out); ``dropped`` counts
                                    entries past the cap
- ``GET  /_mock/queue[/{id}]``      queued requests and their state
- ``POST /_mock/reset``             forget requests, files, journal, faults; clock back to real time
- ``GET|POST /_mock/clock``         ``{"freeze": true}``, ``{"unfreeze": true}``, ``{"advance": 5}``
- ``GET|POST|DELETE /_mock/faults`` list, add (a rule as JSON), clear; ``DELETE /_mock/faults/{id}``
- ``GET|POST /_mock/config``        profile, speed, workers, validation, polls, auth, keys, allow_fetch
- ``GET  /_mock/openapi.json``      fal's per-endpoint OpenAPI document (``?endpoint_id=``)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from mock_server.core import fal_errors
from mock_server._asgi import HttpRequest, Send, send_bytes
from mock_server.core.faults import FaultError
from mock_server.settings import Settings

if TYPE_CHECKING:
    from mock_server.app import FalMockApp

_CONFIG_KEYS = ("profile", "speed", "workers", "validation", "polls", "auth", "keys", "allow_fetch")


def settings_view(settings: Settings) -> dict[str, Any]:
    return {
        "profile": settings.profile, "speed": settings.speed, "workers": settings.workers,
        "validation": settings.validation, "polls": settings.polls, "auth": settings.auth,
        "keys": list(settings.keys), "allow_fetch": settings.allow_fetch,
        "max_requests": settings.max_requests, "journal_size": settings.journal_size,
    }


class ControlRoutes:
    """Handlers for the control API of one app (see the module docstring)."""

    def __init__(self, app: "FalMockApp") -> None:
        self.app = app
        self.mock = app.mock

    async def _ok(self, send: Send, payload: Any, status: int = 200) -> None:
        await send_bytes(send, status, orjson.dumps(payload))

    async def _json_body(self, request: HttpRequest) -> dict[str, Any]:
        raw = await request.body(1024 * 1024)
        if not raw.strip():
            return {}
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    async def health(self, request: HttpRequest, send: Send) -> None:
        await self._ok(send, {"status": "ok", "requests": len(self.mock.queue), "preloaded": self.app.preloaded()})

    async def requests(self, request: HttpRequest, send: Send) -> None:
        if request.method != "GET":
            await self.app.send_answer(send, fal_errors.method_not_allowed())
            return
        query = request.query
        try:
            status = int(query["status"]) if "status" in query else None
            since = int(query["since"]) if "since" in query else None
        except ValueError:
            await self.app.send_answer(send, fal_errors.bad_request("status and since are integers"))
            return
        kinds = query["kind"].split(",") if "kind" in query else None
        entries = self.mock.journal.entries(kind=kinds, method=query.get("method"), path=query.get("path"),
                                            request_id=query.get("request_id"), status=status, since=since)
        with_body = query.get("body", "1") not in ("0", "false")
        items = []
        for entry in entries:
            item = entry.as_dict(with_body)
            if entry.request_id:
                queued = self.mock.queue.get(entry.request_id)
                item["request_state"] = queued.status if queued is not None else None
            items.append(item)
        await self._ok(send, {"requests": items, "count": len(items), "dropped": self.mock.journal.dropped})

    async def queue(self, request: HttpRequest, send: Send) -> None:
        rest = request.path[len("/_mock/queue"):].strip("/")
        if rest:
            found = self.mock.queue.get(rest)
            if found is None:
                await self.app.send_answer(send, fal_errors.detail(404, "Request not found"))
            else:
                await self._ok(send, self.mock.summary(found))
            return
        self.mock.queue.advance()
        items = [self.mock.summary(r) for r in self.mock.queue]
        await self._ok(send, {"requests": items, "forgotten": self.mock.queue.forgotten})

    async def reset(self, request: HttpRequest, send: Send) -> None:
        if request.method != "POST":
            await self.app.send_answer(send, fal_errors.method_not_allowed())
            return
        self.mock.reset()
        await self._ok(send, {"status": "ok"})

    async def clock(self, request: HttpRequest, send: Send) -> None:
        clock = self.mock.clock
        if request.method == "POST":
            data = await self._json_body(request)
            if data.get("unfreeze"):
                clock.unfreeze()
            if data.get("freeze"):
                clock.freeze(data.get("at"))
            if "advance" in data:
                clock.advance(float(data["advance"]))
            self.mock.queue.advance()
        elif request.method != "GET":
            await self.app.send_answer(send, fal_errors.method_not_allowed())
            return
        await self._ok(send, clock.state())

    async def faults(self, request: HttpRequest, send: Send) -> None:
        plan = self.mock.faults
        rest = request.path[len("/_mock/faults"):].strip("/")
        if request.method == "GET" and not rest:
            await self._ok(send, {"rules": [rule.as_dict() for rule in plan.rules]})
        elif request.method == "POST" and not rest:
            rule = plan.add_json(await self._json_body(request))
            await self._ok(send, rule.as_dict(), 201)
        elif request.method == "DELETE" and not rest:
            plan.clear()
            await self._ok(send, {"rules": []})
        elif request.method == "DELETE":
            if plan.remove(rest):
                await self._ok(send, {"removed": rest})
            else:
                await self.app.send_answer(send, fal_errors.detail(404, f"No fault rule {rest}"))
        else:
            await self.app.send_answer(send, fal_errors.method_not_allowed())

    async def config(self, request: HttpRequest, send: Send) -> None:
        if request.method == "POST":
            data = await self._json_body(request)
            unknown = set(data) - set(_CONFIG_KEYS)
            if unknown:
                raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
            if "polls" not in data:
                data["polls"] = False  # leave poll-count mode as it is
            self.mock.configure(**data)
        elif request.method != "GET":
            await self.app.send_answer(send, fal_errors.method_not_allowed())
            return
        await self._ok(send, settings_view(self.mock.settings))

    async def openapi(self, request: HttpRequest, send: Send) -> None:
        wanted = request.query.get("endpoint_id")
        endpoints = self.mock.endpoints
        endpoint = self.mock.endpoint(wanted) if wanted else (endpoints[0] if len(endpoints) == 1 else None)
        if endpoint is None:
            await self.app.send_answer(send, fal_errors.detail(404, f"Unknown endpoint_id {wanted!r}"))
            return
        await self._ok(send, endpoint.openapi())


def install(app: "FalMockApp") -> None:
    routes = ControlRoutes(app)
    table = {
        "/_mock/health": routes.health,
        "/_mock/requests": routes.requests,
        "/_mock/queue": routes.queue,
        "/_mock/reset": routes.reset,
        "/_mock/clock": routes.clock,
        "/_mock/faults": routes.faults,
        "/_mock/config": routes.config,
        "/_mock/openapi.json": routes.openapi,
    }
    for prefix, handler in table.items():
        app.mount(prefix, _guarded(app, handler))


def cross_site(request: HttpRequest) -> bool:
    """Whether a browser sent this from another site's page (CSRF): its ``Origin`` names
    another host than the one it reached.  Tools (curl, Node, Python) send no Origin."""
    origin = request.header("origin")
    if origin is None:
        return request.header("sec-fetch-site") == "cross-site"
    return origin.partition("://")[2].rstrip("/") != request.host


def _guarded(app: "FalMockApp", handler):
    """Bad control input (JSON, values) answers 400 in fal's request-error shape, never 500;
    a state-changing call from another site's page is refused (403)."""

    async def guarded(request: HttpRequest, send: Send) -> None:
        if request.method not in ("GET", "HEAD") and cross_site(request):
            await app.send_answer(send, fal_errors.detail(403, "Cross-site requests to the control API are refused"))
            return
        try:
            await handler(request, send)
        except (ValueError, TypeError, FaultError, orjson.JSONDecodeError) as exc:
            await app.send_answer(send, fal_errors.bad_request(str(exc)))

    return guarded
