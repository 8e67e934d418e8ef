"""Proof of fidelity: ``parse()`` answers exactly what a real FastAPI app running fal's
validation handler answers, byte for byte, for the same pydantic model.

The reference app below is FastAPI + fal's ``RequestValidationError`` handler, copied
from the fal SDK (``projects/fal/src/fal/api/api.py`` ``_build_app``, commit c6f0afa;
WAN25.md §3.1).  Both profiles' models are mounted, each on its own route.
"""
from __future__ import annotations

import json
import math
import warnings
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # starlette suggests httpx2; plain httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from mock_server.endpoints.base import Answer, Parsed
from mock_server.endpoints.wan25_i2i import Wan25ImageToImage

PROFILES = ("documented", "published")
ENDPOINTS = {profile: Wan25ImageToImage(profile) for profile in PROFILES}


def _reference_app() -> FastAPI:
    app = FastAPI()

    # Copied from fal SDK _build_app (request_val_exception_handler).
    @app.exception_handler(RequestValidationError)
    async def request_val_exception_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = jsonable_encoder(
            exc.errors(),
            custom_encoder={
                bytes: lambda value: f"<binary {len(value)} bytes>",
                bytearray: lambda value: f"<binary {len(value)} bytes>",
                memoryview: lambda value: f"<binary {len(value)} bytes>",
                str: lambda value: value.encode("utf-8", "replace").decode("utf-8"),
                float: lambda value: value if math.isfinite(value) else str(value),
                BaseException: str,
            },
        )
        return JSONResponse({"detail": detail}, 422, headers={"x-fal-billable-units": "0"})

    for profile, endpoint in ENDPOINTS.items():
        model = endpoint.input_model

        def handler(input):  # type: ignore[no-untyped-def]
            return {}

        handler.__annotations__ = {"input": model}  # the real class, not a string
        app.add_api_route(f"/{profile}", handler, methods=["POST"])
    return app


CLIENT = TestClient(_reference_app())


def assert_same_as_fastapi(profile: str, body: bytes) -> Parsed | Answer:
    result = ENDPOINTS[profile].parse(body)
    real = CLIENT.post(f"/{profile}", content=body, headers={"content-type": "application/json"})
    if isinstance(result, Parsed):
        assert real.status_code == 200, (body, real.content)
        return result
    assert result.status == real.status_code, (body, result.body, real.content)
    assert result.body == real.content, (body, result.body, real.content)
    ours = {k.lower(): v for k, v in result.headers}
    assert ours.get("x-fal-billable-units") == real.headers.get("x-fal-billable-units")
    return result


VALID = {"prompt": "a samurai in the rain", "image_urls": ["https://v3.fal.media/files/penguin/x.png"]}

TABLE: list[Any] = [
    # WAN25.md §3.1 table.
    {},
    {**VALID, "prompt": ""},
    {**VALID, "num_images": 5},
    {**VALID, "num_images": 0},
    {**VALID, "num_images": 2.5},
    {**VALID, "num_images": "abc"},
    {**VALID, "seed": "abc"},
    {**VALID, "image_size": "huge"},
    {**VALID, "image_size": {"width": 0, "height": 512}},
    {**VALID, "image_urls": "https://v3.fal.media/files/x.png"},
    {**VALID, "image_urls": [1]},
    {**VALID, "prompt": 5},
    {**VALID, "enable_safety_checker": "maybe"},
    None,
    [1, 2],
    # Accepted by the published schema, rejected by the documented one.
    {**VALID, "prompt": "x" * 2001},
    {**VALID, "negative_prompt": "n" * 501},
    {**VALID, "image_urls": []},
    {**VALID, "image_size": {"width": 100, "height": 6000}},
    # Accepted by both.
    VALID,
    {**VALID, "num_images": "2", "enable_safety_checker": "yes", "seed": -(2**70)},
    {**VALID, "num_images": True, "extra": {"anything": [1]}},
    {**VALID, "image_size": {"width": 1024}},
    {**VALID, "image_urls": ["a", "b", "c"]},
    # Encoder corners: non-finite floats, lone surrogates, jsonable_encoder's "_sa" rule.
    {**VALID, "num_images": float("nan")},
    {**VALID, "seed": float("inf")},
    {"_sa_hidden": 1, "prompt": 3},
    {**VALID, "prompt": "\ud800"},
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("payload", TABLE, ids=lambda p: json.dumps(p)[:60])
def test_json_bodies_match_fastapi(profile: str, payload: Any) -> None:
    assert_same_as_fastapi(profile, json.dumps(payload).encode())


RAW_BODIES = [
    b"",
    b" ",
    b'{"prompt": ',
    b"{",
    b"nul",
    b"\xff\xfe",  # not UTF-8: FastAPI's 400
    b"\xef\xbb\xbf{}",  # UTF-8 BOM is accepted by json.loads(bytes)
    b'{"prompt":"caf\xc3\xa9","image_urls":[]',
    b'{"a":1}{}',
    b"[" * 5000,  # deeper than json's recursion limit
    b'{"seed": ' + b"9" * 5000 + b"}",  # beyond Python's int digit limit
    '{"prompt": "😀", "image_urls": [1]}'.encode("utf-16"),
    b'{"num_images": NaN, "prompt": "p", "image_urls": ["u"]}',
]


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("body", RAW_BODIES, ids=lambda b: repr(b[:30]))
def test_raw_bodies_match_fastapi(profile: str, body: bytes) -> None:
    assert_same_as_fastapi(profile, body)


def test_table_rows_have_the_documented_shape() -> None:
    answer = ENDPOINTS["documented"].parse(json.dumps({**VALID, "num_images": 5}).encode())
    assert isinstance(answer, Answer)
    assert answer.body == (
        b'{"detail":[{"type":"less_than_equal","loc":["body","num_images"],'
        b'"msg":"Input should be less than or equal to 4","input":5,"ctx":{"le":4}}]}'
    )
    assert ("x-fal-billable-units", "0") in answer.headers


# -- hypothesis: generated bodies ---------------------------------------------------------

FIELDS = ["prompt", "image_urls", "negative_prompt", "image_size", "num_images", "seed", "enable_safety_checker", "width", "height", "_sa", "x"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["square", "square_hd", "landscape_16_9", "2", "1.0", "true", "off", ""]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=5)), children, max_size=5),
    ),
    max_leaves=12,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={name: json_values for name in FIELDS}),
    st.fixed_dictionaries(
        {"prompt": st.text(max_size=20), "image_urls": st.lists(st.text(max_size=10), max_size=3)},
        optional={
            "image_size": st.one_of(st.sampled_from(["square", "portrait_4_3", "nope"]), st.fixed_dictionaries({}, optional={"width": json_values, "height": json_values})),
            "num_images": json_values,
            "seed": json_values,
            "negative_prompt": json_values,
            "enable_safety_checker": json_values,
        },
    ),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(profile=st.sampled_from(PROFILES), payload=bodies)
def test_generated_json_bodies_match_fastapi(profile: str, payload: Any) -> None:
    assert_same_as_fastapi(profile, json.dumps(payload).encode())


@settings(max_examples=300, deadline=None)
@given(profile=st.sampled_from(PROFILES), body=st.one_of(st.binary(max_size=64), st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_arbitrary_bytes_match_fastapi_and_never_raise(profile: str, body: bytes) -> None:
    assert_same_as_fastapi(profile, body)
