"""fal's schema path (issue 16 point 6): ``GET /api/openapi/queue/openapi.json?endpoint_id=ID``
answers the endpoint's queue OpenAPI document, without a key (fal's is public:
``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=...``, what the newest
``fal_client`` fetches from ``https://{FAL_OPENAPI_HOST}/...`` and ``@fal-ai/client``'s schema
fetch asks for).

An id this server does not answer gets 404: fal's status for an unknown id (a log of fal's
answers in fal-ai/fal-js issue #101: ``404, message='Not Found'``); the body,
``{"detail":"Not Found"}``, is chosen.  A request without ``endpoint_id`` is a 400 (chosen).
"""
from __future__ import annotations

import orjson
from fastapi import APIRouter, Request

from mock_server.core.answers import Answer
from mock_server.protocol.calls import note
from mock_server.web.deps import get_emulator
from mock_server.web.outcomes import fal_call
from mock_server.web.responses import AnswerResponse, RawResponse

router = APIRouter()

SCHEMA_PATH = "/api/openapi/queue/openapi.json"
_NOT_FOUND = Answer(404, b'{"detail":"Not Found"}')
_NO_ID = Answer(400, b'{"detail":"endpoint_id is required"}')


@router.get(SCHEMA_PATH, include_in_schema=False)
async def endpoint_schema(request: Request):
    """The endpoint's OpenAPI document (the catalogue's, or a hand-written module's own)."""
    endpoint_id = (request.query_params.get("endpoint_id") or "").strip("/")
    note(fal_call(request), "schema", endpoint_id or None)
    if not endpoint_id:
        return AnswerResponse(_NO_ID)
    endpoint = get_emulator(request).endpoint(endpoint_id)
    document = endpoint.openapi() if endpoint is not None else None
    if not document:
        return AnswerResponse(_NOT_FOUND)
    return RawResponse(200, orjson.dumps(document))
