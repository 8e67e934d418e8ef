"""The property over the WHOLE catalogue (issue 16): for every catalogued endpoint, a minimal
valid input built from its input schema is accepted, the output validates against its output
schema (jsonschema), and every file the output names is stored, served with the content type
it reports, and decodes to what it reports (tests/generic_media.py: Pillow, PyAV, glTF).

Endpoints are driven in-process (``parse`` then ``produce``, as the queue does): the wire is
covered for a sample in tests/test_generic_endpoint.py and by the real clients.  The input is
the required fields only, plus ``seed`` 7 where the schema has one; the sizes and lengths are
then the schema's defaults (the mock's own where the schema states none).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re

import jsonschema
import orjson
import pytest

from generic_media import check_file, files_in
from mock_server.core.endpoint import EndpointEnv, Parsed
from mock_server.core.files import FileStore
from mock_server.endpoints.catalog import Catalog
from mock_server.endpoints.generic import GenericEndpoint
from mock_server.endpoints.generic.sample import sample_input
from mock_server.endpoints.generic.schema_model import resolve

CATALOG = Catalog(None)  # the bundled catalogue only
IDS = CATALOG.ids()
FILES_BASE = "http://127.0.0.1:1/_mock/files/"
_decoded: set[bytes] = set()  # digests of files already decoded (equal videos are drawn once)


#: Inputs that set how big or long a file is: set to the smallest value the schema allows,
#: so the sweep stays fast enough for CI (videos cost most).
SIZE_KNOBS = ("resolution", "duration", "num_frames", "fps", "frames_per_second", "video_size", "image_size")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _rank(value) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    found = _NUMBER.search(value) if isinstance(value, str) else None
    if not found:
        return math.inf
    return float(found.group()) * (1000 if value.lower().endswith("k") else 1)  # "4K" is larger than "720p"


def _smallest(spec: dict, defs: dict):
    """The smallest value ``spec`` allows, or None when it names none."""
    _, plain = resolve(spec, defs)
    options = [resolve(o, defs)[1] for o in plain.get("anyOf", [])] or [plain]
    values = [v for o in options for v in o.get("enum", []) if v is not None]
    if values:
        best = min(values, key=_rank)
        return best if _rank(best) < math.inf else None
    for option in options:
        if option.get("type") in ("integer", "number") and isinstance(option.get("minimum"), (int, float)):
            return option["minimum"]
    return None


def minimal_input(schema: dict) -> dict:
    """The required fields, ``seed`` 7 where there is one, one prompt for all, and the size
    knobs at their smallest."""
    body = sample_input(schema)
    defs = schema.get("$defs") or {}
    _, root = resolve(schema, defs)
    properties = root.get("properties") or {}
    if "seed" in properties:
        body["seed"] = 7
    if isinstance(body.get("prompt"), str) and "enum" not in resolve(properties["prompt"], defs)[1]:
        body["prompt"] = "a lighthouse in a storm"  # one prompt: equal videos are encoded once
    for knob in SIZE_KNOBS:
        if knob in properties:
            value = _smallest(properties[knob], defs)
            if value is not None:
                body[knob] = value
    return body


@pytest.fixture(scope="module")
def env() -> EndpointEnv:
    return EndpointEnv(files=FileStore(), file_url=lambda name: FILES_BASE + name, own_file_name=lambda url: None)


def test_the_catalogue_spans_every_output_kind():
    kinds = {CATALOG.summary(endpoint_id)[1] for endpoint_id in IDS}
    assert kinds == {"image", "video", "audio", "3d", "text", "json"} and len(IDS) > 1000


@pytest.mark.parametrize("endpoint_id", IDS)
def test_a_minimal_input_is_accepted_and_the_output_matches_its_schema(endpoint_id: str, env: EndpointEnv):
    entry = CATALOG.get(endpoint_id)
    endpoint = GenericEndpoint(entry)
    parsed = endpoint.parse(orjson.dumps(minimal_input(entry.input_schema)))
    assert isinstance(parsed, Parsed), parsed.body.decode()
    answer = asyncio.run(endpoint.produce(parsed.params, "catalogue-property", env))
    assert answer.status == 200, answer.body[:500]
    output = orjson.loads(answer.body)
    jsonschema.validate(output, entry.output_schema)
    files = files_in(output)
    if entry.output_kind in ("image", "video", "audio", "3d"):
        assert files, f"a {entry.output_kind} endpoint answers no file"
    for described in files:
        url = described["url"]
        if url.startswith("data:"):  # sync_mode (some schemas default it to true): fal's data URIs
            head, payload = url.split(",", 1)
            content_type, data = head[5:].split(";", 1)[0], base64.b64decode(payload)
        else:
            assert url.startswith(FILES_BASE)
            stored = env.files.get(url[len(FILES_BASE):])
            assert stored is not None, "the file is served"
            content_type, data = stored.content_type, stored.data
        if "content_type" in described:
            assert content_type == described["content_type"]
        digest = hashlib.sha256(data).digest() + orjson.dumps({**described, "url": ""}, option=orjson.OPT_SORT_KEYS)
        if digest not in _decoded:
            check_file({**described, "content_type": content_type}, data)
            _decoded.add(digest)
