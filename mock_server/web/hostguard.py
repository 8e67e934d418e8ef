"""The DNS-rebinding guard on every route: a request whose ``Host`` this server does not
answer (:class:`mock_server.protocol.hosts.HostPolicy`) gets 403 naming the host, before
any route, the journal or the queue host routing sees it.  The fast lane asks the same
policy (:mod:`mock_server.protocol.hot`) and declines such calls, so this answers them."""
from __future__ import annotations

import orjson

from mock_server.protocol.hosts import HostPolicy


def refusal_body(host: str) -> bytes:
    return orjson.dumps({
        "detail": f"Host {host!r} is not answered by this fal-mock server (DNS-rebinding guard); "
                  "allow the name with --allowed-hosts",
        "error_type": "host_not_allowed",
    })


class HostGuard:
    """Pure-ASGI middleware: HTTP and WebSocket scopes with a refused ``Host`` answer 403."""

    def __init__(self, app, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = ""
            for name, value in scope["headers"]:
                if name == b"host":
                    host = value.decode("latin-1")
                    break
            if not self.policy.allows_at(host, scope.get("server")):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                body = refusal_body(host)
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
