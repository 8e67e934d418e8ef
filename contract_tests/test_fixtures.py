"""The fixtures the suite relies on are consistent with each other (offline: no target, no cost)."""
from __future__ import annotations

import json

from contract_tests.rules import ACCEPTED, FIXTURES, RULES, samples
from contract_tests.support import check_output

PUBLISHED = FIXTURES / "published"


def _load(name: str):
    return json.loads((PUBLISHED / name).read_text())


def test_published_example_response_honours_the_output_contract():
    request, response = _load("example_request.json"), _load("example_response.json")
    assert check_output(response, num_images=request["num_images"], prompt=request["prompt"]) == []


def test_published_example_request_fits_the_published_component():
    component = _load("input_component.json")["Wan25PreviewImageToImageInput"]
    request = _load("example_request.json")
    properties = component["properties"]
    assert set(component["required"]) <= set(request)
    assert set(request) <= set(properties)
    assert component["x-fal-order-properties"] == list(properties)
    assert request["image_size"] in properties["image_size"]["anyOf"][1]["enum"]
    assert properties["num_images"]["minimum"] <= request["num_images"] <= properties["num_images"]["maximum"]


def test_rule_ids_are_unique_and_bodies_start_from_a_valid_input():
    ids = [case.rule for case in RULES + ACCEPTED]
    assert len(ids) == len(set(ids))
    for case in RULES + ACCEPTED:
        if not case.raw:
            assert isinstance(case.body, dict)


def test_samples_have_the_sizes_their_names_promise(tmp_path):
    from PIL import Image

    module = samples()
    written = module.make_samples(tmp_path)
    assert sorted(written) == sorted(f"{n}.{e}" for n in module.SIZES for e in module.FORMATS)
    for name, path in written.items():
        width, height, _ = module.SIZES[name.rsplit(".", 1)[0]]
        with Image.open(path) as image:
            assert image.size == (width, height)
            assert image.format == ("PNG" if name.endswith(".png") else "JPEG")
        assert path.stat().st_size < 64_000, f"{name} should be tiny on disk"
