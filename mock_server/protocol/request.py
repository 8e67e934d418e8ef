"""A fal call as the protocol reads it: an ASGI scope (method, path, query, headers, host),
its body read on demand within a limit, and the journal entry being filled for it.

Framework-free, so the web face and the server's fast lane hand the protocol the same thing;
the queue is polled in tight loops, so nothing here is parsed before it is asked for.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl

from mock_server.core.namespaces import namespace_of

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class HttpRequest:
    """What a handler needs of an HTTP request; the body is read on demand."""

    __slots__ = ("scope", "receive", "method", "path", "raw_query", "_headers", "_body", "_query",
                 "entry", "transport", "_host", "_namespace")

    def __init__(self, scope: Scope, receive: Receive, body: bytes | None = None) -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.raw_query: bytes = scope.get("query_string", b"")
        self._headers: dict[str, str] | None = None
        self._body: bytes | None = body  # given when the server read it already (fast lane)
        self._query: dict[str, str] | None = None
        self.entry = None  # the journal entry being filled for this call, if journaled
        self.transport = None  # the connection's transport, when the server exposes it
        self._host: str | None = None
        self._namespace: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased header names; repeated headers joined with ", "."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self.scope["headers"]:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers

    def header(self, name: str) -> str | None:
        """One header's value (the first), found without decoding the others."""
        if self._headers is not None:
            return self._headers.get(name)
        value = self.raw_header(name.encode("latin-1"))
        return None if value is None else value.decode("latin-1")

    def raw_header(self, name: bytes) -> bytes | None:
        """One header's raw value (``name`` lower-case), or None.  ASGI servers send
        header names lower-cased (the ASGI spec requires it), so names compare as they are."""
        for key, value in self.scope["headers"]:
            if key == name:
                return value
        return None

    def replace_query(self, raw_query: bytes) -> None:
        """Read the query from ``raw_query`` from now on (the proxy's target URL carries it)."""
        self.raw_query = raw_query
        self._query = None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            self._query = dict(parse_qsl(self.raw_query.decode("latin-1"), keep_blank_values=True))
        return self._query

    @property
    def read_body(self) -> bytes | None:
        """The body if a handler read it, else None (never reads)."""
        return self._body

    async def body(self, limit: int) -> bytes:
        """The whole body; raises :class:`BodyTooLarge` past ``limit`` bytes."""
        if self._body is None:
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    break
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            self._body = b"".join(chunks)
        return self._body

    @property
    def host(self) -> str:
        """The Host header, else the server's own address."""
        host = self._host
        if host is None:
            raw = self.raw_header(b"host")
            if raw:
                host = raw.decode("latin-1")
            else:
                server = self.scope.get("server")
                host = f"{server[0]}:{server[1]}" if server else "127.0.0.1"
            self._host = host
        return host

    @property
    def namespace(self) -> str:
        """The namespace this call belongs to (:mod:`mock_server.core.namespaces`)."""
        namespace = self._namespace
        if namespace is None:
            namespace = self._namespace = namespace_of(self.scope["headers"])
        return namespace

    @property
    def scheme(self) -> str:
        return self.scope.get("scheme", "http")


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    content_type: bytes = JSON,
) -> None:
    """Send a complete response in two ASGI messages."""
    raw = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if headers:
        raw += headers
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
