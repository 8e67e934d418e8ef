"""The frame of fal's per-endpoint queue OpenAPI document, shared by every endpoint.

fal serves one document per endpoint (``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=``;
real copies in ``scripts/catalog/openapi/``): ``openapi "3.0.4"``, ``info`` with
``x-fal-metadata``, the key security scheme, the queue server, and four operations (status,
cancel, submit, result).  Each endpoint brings its components (input, output, ``QueueStatus``
and what they refer to); this module wraps them in that frame.
"""
from __future__ import annotations

from typing import Any

COMPONENTS = "#/components/schemas/"


def json_response(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": COMPONENTS + name}}}}


def _request_id() -> dict[str, Any]:
    return {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string", "description": "Request ID"}}


def queue_document(endpoint_id: str, category: str, schemas: dict[str, Any],
                   input_name: str, output_name: str) -> dict[str, Any]:
    """The whole document for ``endpoint_id`` around ``schemas`` (which hold ``input_name``,
    ``output_name`` and ``QueueStatus``)."""
    base = f"/{endpoint_id}/requests/{{request_id}}"
    logs = {"name": "logs", "in": "query", "required": False,
            "schema": {"type": "number", "description": "Whether to include logs (`1`) in the response or not (`0`)."}}
    cancelled = {"type": "object", "properties": {
        "success": {"type": "boolean", "description": "Whether the request was cancelled successfully."}}}
    paths = {
        f"{base}/status": {"get": {"parameters": [_request_id(), logs],
                                   "responses": {"200": json_response("QueueStatus", "The request status.")}}},
        f"{base}/cancel": {"put": {"parameters": [_request_id()], "responses": {"200": {
            "description": "The request was cancelled.", "content": {"application/json": {"schema": cancelled}}}}}},
        f"/{endpoint_id}": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": COMPONENTS + input_name}}}},
            "responses": {"200": json_response("QueueStatus", "The request status.")}}},
        base: {"get": {"parameters": [_request_id()],
                       "responses": {"200": json_response(output_name, "Result of the request.")}}},
    }
    return {
        "openapi": "3.0.4",
        "info": {
            "title": f"Queue OpenAPI for {endpoint_id}",
            "version": "1.0.0",
            "description": f"The OpenAPI schema for the {endpoint_id} queue.",
            "x-fal-metadata": {
                "endpointId": endpoint_id,
                "category": category,
                "playgroundUrl": f"https://fal.ai/models/{endpoint_id}",
                "documentationUrl": f"https://fal.ai/models/{endpoint_id}/api",
            },
        },
        "components": {
            "securitySchemes": {"apiKeyAuth": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Fal Key"}},
            "schemas": schemas,
        },
        "paths": paths,
        "servers": [{"url": "https://queue.fal.run"}],
        "security": [{"apiKeyAuth": []}],
    }
