"""fal calls the mock knows of but does not emulate, answered so that the client says so.

fal's streaming endpoint: ``POST https://fal.run/{endpoint_id}/stream`` (``fal_client``'s
``stream()``, client.py: ``RUN_URL_FORMAT + application + "/stream"``, read with httpx-sse's
``connect_sse``; fal-js ``fal.stream``, streaming.ts) answers the app's partial outputs as
server-sent events.  The mock has no partial outputs to give, and a plain 404 hides that:
``fal_client.stream()`` never looks at the status, only at the content type, and raised
``SSEError: Expected response header Content-Type to contain 'text/event-stream', got
'application/json'``.  So a caller that accepts server-sent events gets a ``501`` whose body is
one event carrying ``{"detail": ..., "error_type": "not_emulated"}``: ``fal_client.stream()``
yields that dict as its only event, and fal-js (which checks ``response.ok`` first) raises
``ApiError: HTTP 501: Not Implemented``.  Any other caller (curl) gets the same body as JSON.
docs/not-emulated.md lists what the mock does not emulate.
"""
from __future__ import annotations

import orjson

from mock_server.emulator import FalMock
from mock_server.protocol.request import HttpRequest

ERROR_TYPE = "not_emulated"
#: ``(status, body, extra headers, content type)``: the arguments of ``calls.Outcome``
Answered = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]


def stream_detail(endpoint_id: str) -> str:
    return (f"fal-mock does not emulate fal's streaming endpoint (POST /{endpoint_id}/stream, "
            f"fal_client.stream / fal.stream): use subscribe, run or the queue; see docs/not-emulated.md")


def streaming_call(emulator: FalMock, call: HttpRequest, endpoint_id: str) -> Answered | None:
    """The answer to a call of ``{endpoint}/stream`` on the run host for an endpoint the mock
    serves; None for any other path."""
    app, slash, last = endpoint_id.rpartition("/")
    if not slash or last != "stream" or emulator.endpoint(app) is None:
        return None
    body = {"detail": stream_detail(app), "error_type": ERROR_TYPE}
    error_type = (b"x-fal-error-type", ERROR_TYPE.encode())
    if b"text/event-stream" in (call.raw_header(b"accept") or b""):
        event = b"event: error\ndata: " + orjson.dumps(body) + b"\n\n"
        return 501, event, [(b"cache-control", b"no-cache"), error_type], b"text/event-stream; charset=utf-8"
    return 501, orjson.dumps(body), [error_type], b"application/json"
