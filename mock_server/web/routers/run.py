"""The run host (PROTOCOL.md §3.6): ``POST /{endpoint_id}`` answers the result synchronously.
Its catch-all route must be the app's last."""
from __future__ import annotations

from fastapi import APIRouter, Request

from mock_server.web.outcomes import FalRoute, fal_call, fal_calls, respond

router = APIRouter()


async def run_call(request: Request):
    """Any call no other route serves: a run, or fal's 404/405."""
    call = fal_call(request)
    return await respond(fal_calls(request).run_call(call, call.path))


router.add_route("/{endpoint_id:path}", FalRoute(run_call), methods=None, include_in_schema=False)
