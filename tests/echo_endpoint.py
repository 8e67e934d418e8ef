"""A tiny endpoint with no model behind it, to test the queue and HTTP layers alone."""
from __future__ import annotations

import orjson

from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed


class EchoEndpoint(Endpoint):
    """``test-owner/echo/run``: accepts any JSON object; ``{"bad": ...}`` gets a 422."""

    endpoint_id = "test-owner/echo/run"

    def __init__(self) -> None:
        self.produced = 0

    def parse(self, body: bytes) -> Parsed | Answer:
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or "bad" in data:
            detail = [{"type": "value_error", "loc": ["body"], "msg": "bad input", "input": None}]
            return Answer(422, orjson.dumps({"detail": detail}), (("x-fal-billable-units", "0"),))
        notes = [f"note: {data['note']}"] if "note" in data else []
        return Parsed(data, notes)

    async def produce(self, params, request_id: str, env: EndpointEnv) -> Answer:
        self.produced += 1
        return Answer(200, orjson.dumps({"echo": params, "request_id": request_id}))

    def processing_notes(self, params) -> list[str]:
        return ["step 1", "step 2", "step 3"]
