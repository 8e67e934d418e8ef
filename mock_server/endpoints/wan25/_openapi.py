"""fal's per-endpoint queue OpenAPI document for Wan 2.5 image-to-image.

Built from the pydantic models plus fal's extensions, in the served format seen on other
endpoints (WAN25.md §1: ``openapi "3.0.4"``, ``info.x-fal-metadata``, ``QueueStatus``,
``x-fal-order-properties`` on every component).  The input component is the *published*
profile's (WAN25.md §1.1), whatever profile the mock validates with.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from mock_server.endpoints.fal_app.queue_openapi import queue_document
from mock_server.endpoints.wan25._models import (
    QueueStatus,
    Wan25PreviewImageToImageOutput,
    build_models,
)
from mock_server.endpoints.wan25._rules import ENDPOINT_ID

INPUT_COMPONENT = "Wan25PreviewImageToImageInput"
OUTPUT_COMPONENT = "Wan25PreviewImageToImageOutput"
_REF = "#/components/schemas/{model}"
# Key order of a served component (Seedream/happy-horse copies, WAN25.md §1).
_COMPONENT_KEYS = ("title", "description", "type", "required", "x-fal-order-properties", "properties")


def _component(model: type[BaseModel], schemas: dict[str, Any], name: str | None = None) -> None:
    """Add ``model`` (and the models it refers to) to ``schemas`` in fal's style."""
    schema = model.model_json_schema(ref_template=_REF)
    for def_name, sub in schema.pop("$defs", {}).items():
        schemas[def_name] = _fal_style(sub)
    schemas[name or model.__name__] = _fal_style(schema)


def _fal_style(schema: dict[str, Any]) -> dict[str, Any]:
    """Add ``x-fal-order-properties`` (fal SDK ``FalFastAPI._mark_order_openapi``) and drop
    ``default: null``, which the reconstructed component (WAN25.md §1.1) does not show."""
    properties = schema.get("properties", {})
    for prop in properties.values():
        if "default" in prop and prop["default"] is None:
            del prop["default"]
    if properties:
        schema["x-fal-order-properties"] = list(properties)
    ordered = {key: schema[key] for key in _COMPONENT_KEYS if key in schema}
    ordered.update((key, value) for key, value in schema.items() if key not in ordered)
    return ordered


def build_openapi() -> dict[str, Any]:
    """The whole document, freshly built (callers may mutate it)."""
    input_model, _ = build_models("published")
    schemas: dict[str, Any] = {}
    _component(QueueStatus, schemas)
    _component(input_model, schemas, INPUT_COMPONENT)
    _component(Wan25PreviewImageToImageOutput, schemas, OUTPUT_COMPONENT)
    return queue_document(ENDPOINT_ID, "image-to-image", schemas, INPUT_COMPONENT, OUTPUT_COMPONENT)
