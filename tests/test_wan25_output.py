"""Wan 2.5 endpoint behaviour: accepted inputs produce consistent output; invalid ones name their field."""
from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv, Parsed
from mock_server.endpoints.wan25 import Wan25ImageToImage, output_file_name
from mock_server.core.files import FileStore

PRESETS = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}
REMOTE = "https://v3.fal.media/files/penguin/4VZ7I1ZK5XNv33LV2JBxg.png"


def make_env(logged: list[str] | None = None) -> EndpointEnv:
    return EndpointEnv(
        files=FileStore(),
        file_url=lambda name: f"http://127.0.0.1:8000/files/{name}",
        own_file_name=lambda url: None,
        log=(logged.append if logged is not None else (lambda message: None)),
    )


def parse(body: dict[str, Any], profile: str = "documented") -> Parsed:
    result = Wan25ImageToImage(profile).parse(json.dumps(body).encode())
    assert isinstance(result, Parsed), getattr(result, "body", result)
    return result


def produce(parsed: Parsed, env: EndpointEnv, request_id: str = "req-1", profile: str = "documented") -> Answer:
    return asyncio.run(Wan25ImageToImage(profile).produce(parsed.params, request_id, env))


def check_output(answer: Answer, env: EndpointEnv, params: Any) -> dict[str, Any]:
    assert answer.status == 200
    out = json.loads(answer.body)
    assert list(out) == ["images", "seeds", "actual_prompt"]
    assert len(out["images"]) == params.num_images == len(out["seeds"])
    assert out["seeds"] == [params.seed + i for i in range(params.num_images)]
    assert out["actual_prompt"] == params.prompt
    for image in out["images"]:
        assert list(image) == ["url", "content_type", "file_name", "file_size", "width", "height"]
        # fal's CDN names (recorded): <21-char nanoid>_<8 chars>.png
        assert re.fullmatch(r"[A-Za-z0-9_-]{21}_[A-Za-z0-9_-]{8}\.png", image["file_name"])
        assert image["url"] == f"http://127.0.0.1:8000/files/{image['file_name']}"
        stored = env.files.get(image["file_name"])
        assert stored is not None and stored.content_type == "image/png"
        assert image["file_size"] == len(stored.data)
        decoded = Image.open(io.BytesIO(stored.data))
        assert decoded.size == (image["width"], image["height"]) == params.size()
    return out


# -- accepted inputs --------------------------------------------------------------------

def test_documented_example_produces_fal_shaped_output() -> None:
    env = make_env()
    parsed = parse({"prompt": "storm", "image_urls": [REMOTE], "image_size": "landscape_4_3", "num_images": 2, "seed": 42})
    out = check_output(produce(parsed, env), env, parsed.params)
    assert out["seeds"] == [42, 43]
    assert [(i["width"], i["height"]) for i in out["images"]] == [(1024, 768)] * 2


def test_body_is_compact_json() -> None:
    env = make_env()
    answer = produce(parse({"prompt": "p", "image_urls": [REMOTE], "seed": 1}), env)
    assert b" " not in answer.body and answer.body.startswith(b'{"images":[{"url":"http://127.0.0.1:8000/files/')


@pytest.mark.parametrize(("preset", "size"), PRESETS.items())
def test_presets_map_to_fal_sizes(preset: str, size: tuple[int, int]) -> None:
    assert parse({"prompt": "p", "image_urls": [REMOTE], "image_size": preset}).params.size() == size


def test_default_size_is_square_512() -> None:
    assert parse({"prompt": "p", "image_urls": [REMOTE]}).params.size() == (512, 512)


def test_missing_seed_is_drawn_once_at_parse_time_in_upstream_range() -> None:
    params = parse({"prompt": "p", "image_urls": [REMOTE], "num_images": 3}).params
    assert 0 <= params.seed <= 2**31 - 1
    env = make_env()
    assert check_output(produce(Parsed(params), env), env, params)["seeds"] == [params.seed, params.seed + 1, params.seed + 2]


def test_file_names_are_deterministic_per_request_and_index() -> None:
    assert output_file_name("r", 0) == output_file_name("r", 0)
    assert len({output_file_name("r", 0), output_file_name("r", 1), output_file_name("s", 0)}) == 3


def test_recipe_re_renders_identical_bytes() -> None:
    env = make_env()
    env.files = FileStore(cache_bytes=0)  # nothing cached: every get() runs the recipe
    answer = produce(parse({"prompt": "p", "image_urls": [REMOTE], "seed": 3}), env)
    image = json.loads(answer.body)["images"][0]
    first, again = env.files.get(image["file_name"]), env.files.get(image["file_name"])
    assert first is not None and again is not None and first.data == again.data
    assert len(first.data) == image["file_size"]
    assert env.files.renders == 2


def test_more_than_two_urls_gives_a_note_and_only_a_little_of_the_unused_ones_is_kept() -> None:
    big = "data:image/png;base64," + "A" * 100_000
    parsed = parse({"prompt": "p", "image_urls": [REMOTE, REMOTE, "ftp://never-read", big, "ftp://x"]})
    # the note is the request's log line; a short unused URL is kept (the dashboard shows it as
    # ignored), a long one and everything after it is not held with the request
    assert parsed.notes == ["Using the first 2 of 5 image_urls; the rest are ignored"]
    assert parsed.params.image_urls == [REMOTE, REMOTE, "ftp://never-read"]
    assert produce(parsed, make_env()).status == 200


def test_processing_notes_describe_the_work() -> None:
    params = parse({"prompt": "p", "image_urls": [REMOTE, REMOTE], "image_size": "landscape_4_3", "num_images": 2, "seed": 42}).params
    notes = Wan25ImageToImage().processing_notes(params)
    assert notes[0] == "Preparing 2 input images"
    assert "Generating image 1/2 (1024x768, seed 42)" in notes and "Generating image 2/2 (1024x768, seed 43)" in notes


def test_published_profile_truncates_long_prompts_with_notes() -> None:
    parsed = parse({"prompt": "x" * 2500, "negative_prompt": "n" * 600, "image_urls": [REMOTE], "seed": 1}, "published")
    assert len(parsed.params.prompt) == 2000 and len(parsed.params.negative_prompt) == 500
    assert len(parsed.notes) == 2 and "truncated" in parsed.notes[0]
    env = make_env()
    assert json.loads(produce(parsed, env, profile="published").body)["actual_prompt"] == "x" * 2000


def test_published_profile_refuses_empty_image_urls_at_produce_time() -> None:
    parsed = parse({"prompt": "p", "image_urls": []}, "published")
    answer = produce(parsed, make_env(), profile="published")
    assert answer.status == 422
    assert json.loads(answer.body) == {"detail": [{"loc": ["body", "image_urls"], "msg": "At least one image URL is required.", "type": "value_error"}]}


def test_input_errors_pass_through_produce() -> None:
    answer = produce(parse({"prompt": "p", "image_urls": ["data:image/png;base64,AAAA"]}), make_env())
    assert answer.status == 422 and json.loads(answer.body)["detail"][0]["type"] == "image_load_error"


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError):
        Wan25ImageToImage("live")


# -- property tests over the input space ----------------------------------------------------

size_objects = st.builds(lambda w, h: {"width": w, "height": h}, st.integers(384, 1100), st.integers(384, 1100))
valid_bodies = st.fixed_dictionaries(
    {"prompt": st.text(min_size=1, max_size=300), "image_urls": st.lists(st.just(REMOTE), min_size=1, max_size=4)},
    optional={
        "negative_prompt": st.one_of(st.none(), st.text(max_size=500)),
        "image_size": st.one_of(st.sampled_from(list(PRESETS)), size_objects),
        "num_images": st.one_of(st.integers(1, 4), st.integers(1, 4).map(str)),
        "seed": st.one_of(st.none(), st.integers(-(2**40), 2**40)),
        "enable_safety_checker": st.one_of(st.booleans(), st.sampled_from(["yes", "off", 0, 1])),
        "unknown_field": st.integers(),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=valid_bodies, profile=st.sampled_from(["documented", "published"]))
def test_every_valid_input_is_accepted_and_produces_consistent_output(body: dict[str, Any], profile: str) -> None:
    parsed = parse(body, profile)
    env = make_env()
    check_output(produce(parsed, env, profile=profile), env, parsed.params)


INVALID: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.one_of(st.just(""), st.integers(), st.none(), st.lists(st.text(), max_size=2), st.text(min_size=2001, max_size=2100)),
    "image_urls": st.one_of(st.just([]), st.text(), st.lists(st.integers(), min_size=1, max_size=2), st.none()),
    "negative_prompt": st.one_of(st.integers(), st.text(min_size=501, max_size=520), st.lists(st.text(), max_size=1)),
    "image_size": st.one_of(
        st.text().filter(lambda t: t not in PRESETS),
        st.builds(lambda w, h: {"width": w, "height": h}, st.one_of(st.integers(max_value=383), st.integers(min_value=5001)), st.integers(384, 5000)),
        st.integers(),
    ),
    "num_images": st.one_of(st.integers(max_value=0), st.integers(min_value=5), st.floats(0.1, 3.9).filter(lambda f: not f.is_integer()), st.text(alphabet="abc", min_size=1)),
    "seed": st.one_of(st.text(alphabet="xyz", min_size=1), st.floats(0.5, 9.5).filter(lambda f: not f.is_integer()), st.lists(st.integers(), max_size=1)),
    "enable_safety_checker": st.one_of(st.sampled_from(["maybe", "2", "nah"]), st.integers(min_value=2), st.lists(st.booleans(), max_size=1)),
}


@settings(max_examples=150, deadline=None)
@given(data=st.data(), field=st.sampled_from(list(INVALID)))
def test_every_invalid_field_yields_a_422_naming_that_field(data: st.DataObject, field: str) -> None:
    body = {"prompt": "p", "image_urls": [REMOTE], field: data.draw(INVALID[field])}
    answer = Wan25ImageToImage("documented").parse(json.dumps(body).encode())
    assert isinstance(answer, Answer) and answer.status == 422
    detail = json.loads(answer.body)["detail"]
    assert detail and all(item["loc"][:2] == ["body", field] for item in detail)
    assert all(isinstance(item["type"], str) and item["type"] for item in detail)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200))
def test_parse_never_raises_for_any_bytes(body: bytes) -> None:
    for profile in ("documented", "published"):
        result = Wan25ImageToImage(profile).parse(body)
        assert isinstance(result, (Parsed, Answer))


# -- OpenAPI ------------------------------------------------------------------------------

def _reconstructed_component() -> dict[str, Any]:
    """The reconstructed input component of WAN25.md §1.1, as kept in fixtures/published/."""
    path = Path(__file__).resolve().parents[1] / "fixtures" / "published" / "input_component.json"
    data = json.loads(path.read_text("utf-8"))
    return data.get("Wan25PreviewImageToImageInput", data)


def test_openapi_input_component_matches_the_reconstruction() -> None:
    doc = Wan25ImageToImage().openapi()
    component = doc["components"]["schemas"]["Wan25PreviewImageToImageInput"]
    assert component == _reconstructed_component()


def test_openapi_document_shape() -> None:
    doc = Wan25ImageToImage("documented").openapi()
    assert doc["openapi"] == "3.0.4"
    assert doc["info"]["x-fal-metadata"]["endpointId"] == "fal-ai/wan-25-preview/image-to-image"
    assert doc["info"]["x-fal-metadata"]["category"] == "image-to-image"
    schemas = doc["components"]["schemas"]
    assert set(schemas) == {"QueueStatus", "ImageSize", "Wan25PreviewImageToImageInput", "ImageFile", "Wan25PreviewImageToImageOutput"}
    assert schemas["ImageSize"]["properties"]["width"] == {
        "default": 512, "description": "The width of the generated image.", "exclusiveMinimum": 0, "maximum": 14142, "title": "Width", "type": "integer",
    }
    assert schemas["ImageSize"]["x-fal-order-properties"] == ["width", "height"]
    output = schemas["Wan25PreviewImageToImageOutput"]
    assert (output["title"], output["description"], output["required"]) == ("ImageToImageOutput", "Output for image editing", ["images", "seeds"])
    assert output["x-fal-order-properties"] == ["images", "seeds", "actual_prompt"]
    base = "/fal-ai/wan-25-preview/image-to-image"
    assert set(doc["paths"]) == {base, f"{base}/requests/{{request_id}}", f"{base}/requests/{{request_id}}/status", f"{base}/requests/{{request_id}}/cancel"}
    assert "post" in doc["paths"][base] and "put" in doc["paths"][f"{base}/requests/{{request_id}}/cancel"]
