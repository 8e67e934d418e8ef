"""The queue host (PROTOCOL.md §3): submit, status, status stream, result and cancel.

Reached under the queue prefix (``/queue``) or on a ``Host: queue.*``: :class:`QueueHost`, a
pure-ASGI middleware, finds the queue target with the protocol's grammar and routes the call
here by its path.  fal routes take the raw body and any method (fal answers its own 405).
"""
from __future__ import annotations

from fastapi import APIRouter, Request

from mock_server.emulator import FalMock
from mock_server.protocol.paths import is_proxy, queue_target
from mock_server.protocol.request import HttpRequest
from mock_server.web.outcomes import FalRoute, fal_call, fal_calls, respond

#: The scope key of a queue call's ``(path on the queue host, queue base URL, path as sent)``.
QUEUE_TARGET = "fal_mock.queue_target"
#: Where the queue host's calls are routed on this app, whatever the prefix or host.
ROUTE = "/queue"

router = APIRouter()


async def queue_call(request: Request):
    """Any call to the queue host; the protocol parses ``{app}/requests/{id}[/...]``."""
    call = fal_call(request)
    target = request.scope.get(QUEUE_TARGET)
    if target is None:  # /queue/... while the queue lives under another prefix: the run host
        return await respond(fal_calls(request).run_call(call, call.path))
    path, queue_base, call.path = target  # the protocol words its 404s with the path as sent
    return await respond(fal_calls(request).queue_call(call, path, queue_base))


router.add_route(ROUTE, FalRoute(queue_call), methods=None, include_in_schema=False)
router.add_route(ROUTE + "/{path:path}", FalRoute(queue_call), methods=None, include_in_schema=False)


class QueueHost:
    """Routes the queue host's calls to :data:`ROUTE` (the prefix, or a ``Host: queue.*``),
    keeping their target for the route; ``/_mock/`` and the proxy are never queue calls."""

    def __init__(self, app, emulator: FalMock) -> None:
        self.app = app
        self.prefix = emulator.settings.queue_prefix.rstrip("/")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if not path.startswith("/_mock/") and not is_proxy(path):
                target = queue_target(path, scope.get("scheme", "http"), HttpRequest(scope, receive).host, self.prefix)
                if target is not None:
                    scope[QUEUE_TARGET] = (*target, path)
                    scope["path"] = ROUTE + target[0]
        await self.app(scope, receive, send)
