"""Stored files (rendered outputs and uploads) at ``/_mock/files/{name}``: GET and HEAD.
Uploads (PUT/POST there) are storage's routes."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from mock_server.core import fal_errors
from mock_server.core.paths import FILES_PREFIX
from mock_server.protocol.calls import Outcome, note
from mock_server.web.outcomes import FalRoute, OutcomeResponse, fal_call, fal_calls

router = APIRouter()

_CACHED = [(b"cache-control", b"public, max-age=31536000, immutable")]


async def stored_file(request: Request):
    """A stored file, rendered again if the cache dropped it; HEAD sends no body."""
    call = fal_call(request)
    note(call, "file", None)
    name = request.path_params["name"]
    if "/" in name or not name or name.startswith("."):
        return OutcomeResponse(Outcome.answer(fal_errors.path_not_found(call.path)))
    stored = await asyncio.to_thread(fal_calls(request).emulator.files.get, name)
    if stored is None:
        return OutcomeResponse(Outcome.answer(fal_errors.detail(404, "File not found")))
    outcome = Outcome(200, stored.data, list(_CACHED), content_type=stored.content_type.encode("latin-1"))
    return _FileResponse(outcome, head=request.method == "HEAD")


class _FileResponse(OutcomeResponse):
    """A file; a HEAD answers its content-length with no body."""

    def __init__(self, outcome: Outcome, head: bool) -> None:
        super().__init__(outcome)
        self.head = head

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[override]
        outcome = self.outcome
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", outcome.content_type), (b"content-length", b"%d" % len(outcome.body)), *outcome.headers]})
        await send({"type": "http.response.body", "body": b"" if self.head else outcome.body})


router.add_route(FILES_PREFIX + "{name:path}", FalRoute(stored_file), methods=["GET", "HEAD"], include_in_schema=False)
