"""The synchronous endpoint end to end: a run returns an output that honours the contract, and
every image file matches its metadata.  Both generate images (``costly``)."""
from __future__ import annotations

import json

import pytest

from contract_tests.rules import FIXTURES, PROMPT, valid_body
from contract_tests.support import check_output, verify_images


@pytest.mark.costly
def test_run_returns_the_output_contract(target, spend, record):
    spend(1)
    status, body, _ = target.run(valid_body(seed=1234, image_size="landscape_4_3", num_images=1))
    record("run", status, body)
    assert status == 200, body
    assert not check_output(body, num_images=1, prompt=PROMPT), check_output(body, num_images=1, prompt=PROMPT)
    assert body["seeds"] == [1234], body["seeds"]
    problems = verify_images(target.download, body)
    assert not problems, problems


@pytest.mark.costly
def test_published_example_request(target, spend, record):
    """fal's own example input (llms.txt "Full Example") is accepted and answered in the
    shape of fal's example response."""
    request = json.loads((FIXTURES / "published" / "example_request.json").read_text())
    example = json.loads((FIXTURES / "published" / "example_response.json").read_text())
    spend(request["num_images"])
    status, body, _ = target.run(request)
    record("run", status, body)
    assert status == 200, body
    assert not check_output(body, num_images=request["num_images"], prompt=request["prompt"])
    for key in example:
        assert key in body, f"the published example response has {key!r}; this one does not"
    assert body["images"][0]["content_type"] == example["images"][0]["content_type"]
    assert not verify_images(target.download, body)
