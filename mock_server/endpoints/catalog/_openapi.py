"""fal's per-endpoint queue OpenAPI document, both ways.

Read: a served document (``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id>``)
gives the input and output components the queue's submit and result paths refer to; they become
self-contained JSON Schemas (``components.schemas`` -> ``$defs``).

Write: a catalogue entry that came from elsewhere (the npm types) is served in the same shape
as the real documents: ``openapi "3.0.4"``, ``info.x-fal-metadata``, ``QueueStatus``, paths for
submit/status/result/cancel (shape: the served copies in modbender/ComfyUI-Fal-Gateway
``tests/fixtures/*.json`` and mock_server/endpoints/wan25/_openapi.py).
"""
from __future__ import annotations

import copy
import json
from typing import Any

_COMPONENTS = "#/components/schemas/"
_DEFS = "#/$defs/"


class NotAnOpenAPIDocument(ValueError):
    """The document is not a fal queue OpenAPI document (one line saying why)."""


def _rewrite_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: (new + v[len(old):] if k == "$ref" and isinstance(v, str) and v.startswith(old)
                    else _rewrite_refs(v, old, new)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, old, new) for v in node]
    return node


def _refs(node: Any, prefix: str) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            found.add(ref[len(prefix):])
        for value in node.values():
            found |= _refs(value, prefix)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value, prefix)
    return found


def closure(root: Any, definitions: dict[str, Any], prefix: str) -> list[str]:
    """Names of every definition ``root`` reaches through ``$ref``s under ``prefix``, sorted."""
    seen: set[str] = set()
    todo = sorted(_refs(root, prefix))
    while todo:
        name = todo.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        todo.extend(sorted(_refs(definitions[name], prefix) - seen))
    return sorted(seen)


def self_contained(name: str, definitions: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Definition ``name`` as a JSON Schema of its own: what it refers to under ``$defs``."""
    root = _rewrite_refs(copy.deepcopy(definitions[name]), prefix, _DEFS)
    root.setdefault("title", name)
    used = [n for n in closure(definitions[name], definitions, prefix) if n != name]
    if used:
        root["$defs"] = {n: _rewrite_refs(copy.deepcopy(definitions[n]), prefix, _DEFS) for n in used}
    return root


def _schema_ref(operation: dict[str, Any], *path: str) -> str | None:
    node: Any = operation
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref[len(_COMPONENTS):] if isinstance(ref, str) and ref.startswith(_COMPONENTS) else None


def read_document(doc: Any) -> dict[str, Any]:
    """``{"endpoint_id", "category", "input_schema", "output_schema"}`` of a served document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise NotAnOpenAPIDocument("not an OpenAPI document (no 'paths' object)")
    schemas = (doc.get("components") or {}).get("schemas")
    if not isinstance(schemas, dict):
        raise NotAnOpenAPIDocument("no components.schemas in the document")
    submit = result = None
    endpoint_id = None
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        post = item.get("post")
        if isinstance(post, dict) and "/requests/" not in path:
            submit = _schema_ref(post, "requestBody", "content", "application/json", "schema")
            endpoint_id = path.strip("/")
        get = item.get("get")
        if isinstance(get, dict) and path.endswith("/requests/{request_id}"):
            result = _schema_ref(get, "responses", "200", "content", "application/json", "schema")
    if not submit or submit not in schemas:
        raise NotAnOpenAPIDocument("no submit path whose request body refers to an input component")
    if not result or result not in schemas:
        raise NotAnOpenAPIDocument("no result path (/requests/{request_id}) referring to an output component")
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    meta = info.get("x-fal-metadata") if isinstance(info.get("x-fal-metadata"), dict) else {}
    return {
        "endpoint_id": str(meta.get("endpointId") or endpoint_id),
        "category": str(meta.get("category") or ""),
        "input_schema": self_contained(submit, schemas, _COMPONENTS),
        "output_schema": self_contained(result, schemas, _COMPONENTS),
    }


def _component(schema: dict[str, Any]) -> dict[str, Any]:
    body = _rewrite_refs({k: v for k, v in schema.items() if k != "$defs"}, _DEFS, _COMPONENTS)
    if isinstance(body.get("properties"), dict):
        body["x-fal-order-properties"] = list(body["properties"])
    return body


def _json_response(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _COMPONENTS + name}}}}


def _request_id() -> dict[str, Any]:
    return {"name": "request_id", "in": "path", "required": True, "schema": {"type": "string", "description": "Request ID"}}


# QueueStatus as served (tests/fixtures/fal_ai_flux_dev.json, modbender/ComfyUI-Fal-Gateway).
QUEUE_STATUS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]},
        "request_id": {"type": "string", "description": "The request id."},
        "response_url": {"type": "string", "description": "The response url."},
        "status_url": {"type": "string", "description": "The status url."},
        "cancel_url": {"type": "string", "description": "The cancel url."},
        "logs": {"type": "object", "description": "The logs.", "additionalProperties": True},
        "metrics": {"type": "object", "description": "The metrics.", "additionalProperties": True},
        "queue_position": {"type": "integer", "description": "The queue position."},
    },
    "required": ["status", "request_id"],
}


def build_document(endpoint_id: str, category: str, input_schema: dict[str, Any],
                   output_schema: dict[str, Any]) -> dict[str, Any]:
    """A fal-shaped queue OpenAPI 3.0 document for one endpoint."""
    input_name = str(input_schema.get("title") or "Input")
    output_name = str(output_schema.get("title") or "Output")
    if output_name == input_name:
        output_name += "Output"
    schemas: dict[str, Any] = {"QueueStatus": copy.deepcopy(QUEUE_STATUS)}
    schemas[input_name] = _component(input_schema)
    schemas[output_name] = _component(output_schema)
    for defs in (input_schema.get("$defs") or {}, output_schema.get("$defs") or {}):
        for name, sub in defs.items():
            schemas.setdefault(name, _component(sub))
    base = f"/{endpoint_id}/requests/{{request_id}}"
    logs = {"name": "logs", "in": "query", "required": False,
            "schema": {"type": "number", "description": "Whether to include logs (`1`) in the response or not (`0`)."}}
    cancelled = {"type": "object", "properties": {"success": {"type": "boolean", "description": "Whether the request was cancelled successfully."}}}
    paths = {
        f"{base}/status": {"get": {"parameters": [_request_id(), logs], "responses": {"200": _json_response("QueueStatus", "The request status.")}}},
        f"{base}/cancel": {"put": {"parameters": [_request_id()], "responses": {"200": {
            "description": "The request was cancelled.", "content": {"application/json": {"schema": cancelled}}}}}},
        f"/{endpoint_id}": {"post": {
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": _COMPONENTS + input_name}}}},
            "responses": {"200": _json_response("QueueStatus", "The request status.")}}},
        base: {"get": {"parameters": [_request_id()], "responses": {"200": _json_response(output_name, "Result of the request.")}}},
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


def parse_document_bytes(data: bytes) -> Any:
    """JSON of a document file; a one-line error when it is not JSON.  A document wrapped the
    way fal's model API returns it (``{"openapi": {...}, "endpoint_id": ...}``) is unwrapped."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotAnOpenAPIDocument(f"not JSON ({exc})") from None
    if isinstance(doc, dict) and isinstance(doc.get("openapi"), dict):
        doc = doc["openapi"]
    return doc
