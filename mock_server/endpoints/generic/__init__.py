"""Any catalogued fal endpoint, emulated from its schemas (issue 16).

``parse`` validates with a pydantic model built from the input JSON Schema
(:mod:`~mock_server.endpoints.generic.schema_model`: pydantic's own errors, fal's 422 bytes);
``produce`` walks the output schema (:mod:`~mock_server.endpoints.generic.outputs`) and draws
the media it names.  A hand-written endpoint module (Wan 2.5) is preferred for its id: the
emulator asks for a generic one only for ids it has no module for.

Seeds: an input with a ``seed`` field gets it as given, or a random one drawn at parse time
(kept in the params, so a replay after a restart draws the same files); an input without one
uses a seed derived from the request id.  Chosen, as for Wan (WAN25.md §7).
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import random
from typing import TYPE_CHECKING, Any, Callable

import orjson

from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.endpoints.fal_app.validation import decode_json_body, validate_data

if TYPE_CHECKING:
    from mock_server.endpoints.catalog import CatalogEntry

__all__ = ["GenericEndpoint", "SEED_MAX"]

#: The seed range drawn when the input leaves ``seed`` out (fal apps draw 32-bit seeds).
SEED_MAX = 2**31 - 1
_INTERNAL_ERROR = Answer(500, b'{"detail":"Internal Server Error"}')


def _dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:  # integers beyond 64 bits (an unbounded seed echoed)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class GenericEndpoint(Endpoint):
    """One catalogued endpoint; its validator is built on first use and kept."""

    def __init__(self, entry: "CatalogEntry", openapi: Callable[[], dict[str, Any] | None] | None = None) -> None:
        self.entry = entry
        self.endpoint_id = entry.endpoint_id
        self._openapi = openapi

    @functools.cached_property
    def input_model(self) -> type:
        """The pydantic model of the input schema (built on first use: ~3 ms, bench/generic_endpoints.py)."""
        from mock_server.endpoints.generic.schema_model import build_input_model

        return build_input_model(self.entry.input_schema, self.entry.title or "Input")

    @functools.cached_property
    def _adapter(self):
        from pydantic import TypeAdapter

        return TypeAdapter(self.input_model)

    @functools.cached_property
    def _has_seed(self) -> bool:
        from mock_server.endpoints.generic.schema_model import resolve

        schema = self.entry.input_schema
        _, root = resolve(schema, schema.get("$defs") or {})
        return "seed" in (root.get("properties") or {})

    # -- parse ----------------------------------------------------------------------------
    def parse(self, body: bytes) -> Parsed | Answer:
        """Validate ``body``; the params are the input as used: what was sent (coerced as
        pydantic coerces it), every top-level default filled, and a drawn ``seed``."""
        data = decode_json_body(body)
        if isinstance(data, Answer):
            return data
        try:
            validated = validate_data(data, self._adapter)
            if isinstance(validated, Answer):
                return validated
            return Parsed(self._params(validated))
        except Exception:  # never raise from parse (Endpoint contract)
            return _INTERNAL_ERROR

    def _params(self, validated: Any) -> dict[str, Any]:
        # Only what was sent, plus top-level defaults that are not None: dumping unset Nones
        # would make the params fail their own validation when parsed again (persistence
        # replays them through parse).
        params = validated.model_dump(mode="json", by_alias=True, exclude_unset=True)
        full = validated.model_dump(mode="json", by_alias=True)
        for key, value in full.items():
            if key not in params and value is not None:
                params[key] = value
        if self._has_seed and params.get("seed") is None:
            params["seed"] = random.randint(0, SEED_MAX)
        return params

    def processing_notes(self, params: Any) -> list[str]:
        kind = self.entry.output_kind
        return [f"Running {self.endpoint_id} ({kind} output)", "Uploading results"]

    # -- produce ----------------------------------------------------------------------------
    def seed_of(self, params: dict[str, Any], request_id: str) -> int:
        seed = params.get("seed")
        if isinstance(seed, int) and not isinstance(seed, bool):
            return seed
        return int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:4], "big") & SEED_MAX

    async def produce(self, params: Any, request_id: str, env: EndpointEnv) -> Answer:
        """The output body built from the output schema (files drawn off the event loop)."""
        from mock_server.endpoints.generic.inputs import input_image_size, input_image_url
        from mock_server.endpoints.generic.outputs import OutputBuilder

        entry = self.entry
        url = input_image_url(params)
        source_size = await input_image_size(url, env) if url is not None else None
        builder = OutputBuilder(entry.endpoint_id, entry.output_kind, entry.output_schema, params,
                                request_id, self.seed_of(params, request_id), env, source_size)
        body = await asyncio.to_thread(builder.build)
        # fal meters successful answers in x-fal-billable-units (recorded on fal.run 200s: "1");
        # one unit per image for image outputs, else one (chosen)
        units = builder.images if builder.images else 1
        return Answer(200, _dumps(body), (("x-fal-billable-units", str(units)),))

    # -- schema -------------------------------------------------------------------------------
    def openapi(self) -> dict[str, Any]:
        """fal's per-endpoint OpenAPI document, from the catalogue."""
        return (self._openapi() if self._openapi is not None else None) or {}
