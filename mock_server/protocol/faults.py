"""Applying the fault a rule picks for one fal call (PROTOCOL.md §4.3: what clients retry).

The core's :class:`~mock_server.core.faults.FaultPlan` decides; this applies: a latency
sleeps, an ``http_error`` or ``exhausted_balance`` answers at once, ``model_error``/``runner_error`` become the
request's result, and the connection faults act on the connection's transport, which the
server passes as the scope extension ``fal_mock.transport``: ``drop`` closes it, ``truncate``
sends half the answer's body and then closes it.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import orjson

from mock_server.core.faults import ANSWERING, Fault, FaultPlan
from mock_server.protocol.request import HttpRequest

#: The scope extension that carries the connection's transport (set by the server's protocol).
TRANSPORT_EXTENSION = "fal_mock.transport"

Send = Callable[[dict], Awaitable[None]]


class Applied:
    """What a fault made of a call: an answer sent in its place (``reply``: status, body,
    headers, content type), a dropped connection, a cut answer to come, or the request's
    result decided (``request_fault``)."""

    __slots__ = ("reply", "dropped", "truncate", "request_fault")

    def __init__(self, reply: tuple | None = None, dropped: bool = False, truncate: bool = False,
                 request_fault: Fault | None = None) -> None:
        self.reply = reply
        self.dropped = dropped
        self.truncate = truncate
        self.request_fault = request_fault


async def apply(plan: FaultPlan, call_name: str, call: HttpRequest, request_id: str | None,
                body: bytes | None = None) -> Applied | None:
    """Apply the fault a rule picks for this call, if any (None: proceed as usual)."""
    if not plan.active:
        return None
    fault = plan.match(call_name, (lambda: prompt_of(body)) if body is not None else None, call.namespace)
    if fault is None:
        return None
    if call.entry is not None:
        call.entry.fault = fault.label
    kind = fault.kind
    if kind == "latency":
        await asyncio.sleep(fault.delay)
        return None
    if kind in ANSWERING:
        return Applied(reply=fault.http_answer(request_id))
    if kind == "drop":
        await close_connection(transport_of(call.scope))
        return Applied(dropped=True)
    if kind == "truncate":
        return Applied(truncate=True)
    return Applied(request_fault=fault)  # model_error / runner_error: the request's result


def transport_of(scope: dict) -> Any:
    """The connection's transport, when the server passes it."""
    return scope.get("extensions", {}).get(TRANSPORT_EXTENSION)


async def close_connection(transport: Any) -> None:
    """Close the connection, and let the server see it go before the handler returns, so
    that it does not try to answer a 500 on it."""
    if transport is not None:
        transport.close()
    for _ in range(3):
        await asyncio.sleep(0)


def truncating(send: Send, transport: Any) -> Send:
    """``send`` that passes the answer's start, then half of its first body chunk, then
    closes the connection."""
    done = False

    async def truncating_send(message: dict) -> None:
        nonlocal done
        if done:
            return
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            done = True
            await close_connection(transport)
            return
        await send(message)

    return truncating_send


def prompt_of(body: bytes | None) -> str | None:
    """The ``prompt`` of a JSON request body, for fault rules that match on it."""
    if not body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    prompt = data.get("prompt") if isinstance(data, dict) else None
    return prompt if isinstance(prompt, str) else None
