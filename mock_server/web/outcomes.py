"""fal calls on the web face: a route hands the protocol the call as it came (raw body, read
within the documented limit; never FastAPI body validation: the endpoint words its 422) and
sends the protocol's :class:`~mock_server.protocol.calls.Outcome` with the exact bytes and
header order the fast lane writes (:class:`~mock_server.web.responses.RawResponse`)."""
from __future__ import annotations

import asyncio
import sys
import traceback
from typing import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from mock_server.core import fal_errors
from mock_server.protocol.calls import FalCalls, Outcome
from mock_server.protocol.faults import transport_of, truncating
from mock_server.protocol.request import BodyTooLarge, HttpRequest
from mock_server.web.responses import RawResponse

#: The scope key of the journal entry being filled for a call (web.journaling.ENTRY).
_ENTRY = "fal_mock.journal_entry"


class FalRoute:
    """A fal route's endpoint as an ASGI app, so that its route takes every method (fal
    answers its own 405; a function endpoint would be GET-only): ``handler(request)``
    returns the response."""

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.handler = handler
        self.__doc__ = handler.__doc__

    async def __call__(self, scope, receive, send) -> None:
        response = await self.handler(Request(scope, receive, send))
        await response(scope, receive, send)


def fal_calls(request: Request) -> FalCalls:
    """The protocol's calls for the emulator this app serves."""
    return request.app.state.fal_calls


def fal_call(request: Request) -> HttpRequest:
    """The call as the protocol reads it (the body is read on demand, within the limit)."""
    call = HttpRequest(request.scope, request.receive)
    call.entry = request.scope.get(_ENTRY)
    return call


async def respond(pending: Awaitable[Outcome]) -> Response:
    """The response for a protocol call's outcome; fal's 413 past the body limit, and its 500
    (never a traceback on the wire) when the call fails."""
    try:
        outcome = await pending
    except BodyTooLarge as exc:
        outcome = Outcome.answer(fal_errors.body_too_large(exc.limit))
    except Exception:
        traceback.print_exc(file=sys.stderr)
        outcome = Outcome.answer(fal_errors.internal_error())
    return response_for(outcome)


def response_for(outcome: Outcome) -> Response:
    """A complete answer as a :class:`RawResponse`; a stream, a drop or a cut as an
    :class:`OutcomeResponse`."""
    if outcome.events is None and not outcome.dropped and not outcome.truncate:
        return RawResponse(outcome.status, outcome.body, outcome.headers, outcome.content_type)
    return OutcomeResponse(outcome)


class OutcomeResponse(Response):
    """Sends an :class:`Outcome`: a complete answer (content-type, content-length, then its
    headers), a status stream (its events until COMPLETED, the client leaves, or the server
    stops), or nothing (a dropped connection); cut in half when a fault truncates it."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.status_code = outcome.status
        self.background = None
        self.raw_headers = []

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        outcome = self.outcome
        if outcome.dropped:
            return
        if outcome.truncate:
            send = truncating(send, transport_of(scope))
        if outcome.events is None:
            await RawResponse(outcome.status, outcome.body, outcome.headers, outcome.content_type)(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": outcome.status, "headers": outcome.headers})
        await _stream(outcome.events, receive, send)


async def _stream(events, receive, send) -> None:
    """Send ``events`` until they end or the client disconnects, then end the body."""
    async def pump() -> None:
        async for chunk in events:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

    async def watch_disconnect() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(watch_disconnect())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        failed = (await asyncio.gather(*tasks, return_exceptions=True))[0]
        if isinstance(failed, Exception):  # the stream broke: said on stderr, the body still ends
            traceback.print_exception(failed, file=sys.stderr)
        await events.aclose()  # releases the stream's watch on the queue driver
        await send({"type": "http.response.body", "body": b"", "more_body": False})
