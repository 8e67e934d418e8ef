"""Unit tests of the contract suite's own tooling (contract_tests/): the image budget, the
contract checks, scrubbing, JSON shapes and the shape diff, the sample script, and the
live target's fail-fast paths (no network is used: they stop before sending anything)."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from contract_tests import shape_diff as shape_diff_cli  # noqa: E402
from contract_tests.support import (  # noqa: E402
    ANY,
    BudgetExceeded,
    ImageBudget,
    check_error_detail,
    check_image_file,
    check_output,
    errors_agree,
    scrub,
    shape,
    shape_diff,
)


# -- budget -------------------------------------------------------------------------


def test_budget_refuses_before_exceeding_and_refunds():
    budget = ImageBudget(limit=2)
    budget.reserve(1, "a")
    budget.reserve(1, "b")
    with pytest.raises(BudgetExceeded, match="--max-images 2"):
        budget.reserve(1, "c")
    assert budget.spent == 2 and budget.refused == ["c"]
    budget.refund(1, "b cancelled in time")
    budget.reserve(1, "d")
    assert budget.spent == 2 and budget.remaining() == 0


def test_budget_refuses_a_multi_image_test_that_would_overshoot():
    budget = ImageBudget(limit=3)
    budget.reserve(2, "two")
    with pytest.raises(BudgetExceeded):
        budget.reserve(2, "two more")
    assert budget.spent == 2


def test_unlimited_budget_counts_but_never_refuses():
    budget = ImageBudget(limit=None)
    for _ in range(50):
        budget.reserve(4, "x")
    assert budget.spent == 200 and budget.remaining() is None and not budget.refused


def test_refund_never_goes_negative():
    budget = ImageBudget(limit=1)
    budget.refund(3, "nothing spent")
    assert budget.spent == 0


# -- contract checks ----------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


def test_check_output_accepts_the_published_example_and_flags_bad_bodies():
    example = json.loads((REPO / "fixtures" / "published" / "example_response.json").read_text())
    assert check_output(example, num_images=1, prompt=example["actual_prompt"]) == []
    assert check_output({"images": [{"url": "u"}], "seeds": [1, 2]})  # one seed per image
    assert check_output({"images": [{"url": "u", "width": "512"}], "seeds": [1]})
    assert check_output({"images": [], "seeds": []}, num_images=1)
    assert check_output({"images": [{"url": "u"}], "seeds": [True]})  # bool is not an int here
    assert check_output({"images": [{"url": "u"}], "seeds": [1], "actual_prompt": "other"}, prompt="p")


def test_check_image_file_compares_metadata_with_the_bytes():
    data = _png(64, 32)
    good = {"url": "u", "content_type": "image/png", "file_size": len(data), "width": 64, "height": 32}
    assert check_image_file(good, data, "image/png") == []
    assert check_image_file({"url": "u"}, data) == []  # nullable metadata: nothing to compare
    bad = {**good, "width": 65, "file_size": 1, "content_type": "image/jpeg"}
    problems = check_image_file(bad, data)
    assert len(problems) == 3
    assert check_image_file(good, b"not an image")[0].startswith("not a decodable image")


def test_error_matching_with_wildcard_loc_parts():
    body = {"detail": [{"type": "literal_error", "loc": ["body", "image_size", "literal['a']"], "msg": "m"}]}
    assert errors_agree([("literal_error", ("body", "image_size", ANY))], body)
    assert not errors_agree([("literal_error", ("body", "image_size"))], body)
    assert not errors_agree([("missing", ("body", "prompt"))], body)
    assert check_error_detail(body) == []
    assert check_error_detail({"detail": "Request is still in progress"})


# -- scrubbing and shapes -----------------------------------------------------------


def test_scrub_removes_urls_ids_and_secrets_but_keeps_the_shape():
    body = {
        "images": [{"url": "https://v3.fal.media/files/x.png?token=abc", "width": 5}],
        "request_id": "0b1c2d3e-0000-4000-8000-123456789abc",
        "response_url": "https://queue.fal.run/fal-ai/x/requests/0b1c2d3e-0000-4000-8000-123456789abc",
        "detail": [{"input": "data:image/png;base64,AAAA", "msg": "key sk:secret leaked"}],
        "api_key": "sk:secret",
        "long": "y" * 500,
    }
    clean = scrub(body, ["sk:secret"])
    text = json.dumps(clean)
    assert "fal.media" not in text and "queue.fal.run" not in text and "sk:secret" not in text
    assert "0b1c2d3e" not in text and "base64" not in text
    assert clean["images"][0] == {"url": "<url>", "width": 5}
    assert clean["request_id"] == "<uuid>" and clean["api_key"] == "<redacted>"
    assert len(clean["long"]) < 100
    assert shape(clean) == shape(body)


def test_shape_merges_list_items_and_diff_reports_keys_and_types():
    assert shape({"a": [1, 2.5], "b": None}) == {"a": ["float|int"], "b": "null"}
    assert shape([{"x": 1}, {"y": "s"}]) == [{"x": "int", "y": "str"}]
    recorded = shape({"images": [{"url": "u", "width": None}], "timings": {"t": 1.0}})
    mock = shape({"images": [{"url": "u", "width": 5, "file_name": "f"}]})
    lines = shape_diff(recorded, mock)
    assert "$.images[].width: recorded null, mock int" in lines
    assert "$.images[].file_name: only in mock (str)" in lines
    assert any(line.startswith("$.timings: only in recorded") for line in lines)
    assert shape_diff(recorded, recorded) == []


def _write(directory: Path, name: str, responses: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.json").write_text(json.dumps({"test": name, "responses": responses}))


def test_shape_diff_cli(tmp_path, capsys):
    recorded, mock = tmp_path / "recorded", tmp_path / "mock"
    assert shape_diff_cli.main([str(recorded), str(mock)]) == 2
    assert "no recordings" in capsys.readouterr().out
    _write(recorded, "t1", [{"label": "run", "status": 422, "body": {"detail": [{"loc": ["body"], "url": "<url>"}]}}])
    _write(mock, "t1", [{"label": "run", "status": 422, "body": {"detail": [{"loc": ["body", 1]}]}}])
    assert shape_diff_cli.main([str(recorded), str(mock)]) == 1
    out = capsys.readouterr().out
    assert "t1 [run] $.detail[].url: only in recorded (str)" in out
    assert "$.detail[].loc[]: recorded str, mock int|str" in out
    _write(mock, "t1", [{"label": "run", "status": 422, "body": {"detail": [{"loc": ["body"], "url": "x"}]}}])
    assert shape_diff_cli.main([str(recorded), str(mock)]) == 0


# -- samples ------------------------------------------------------------------------


def test_make_samples_script_writes_tiny_files(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "fixtures" / "make_samples.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "small.png" in names and "too_wide.jpg" in names and len(names) == 8
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 200_000


# -- the live target's guards (nothing reaches the network) ------------------------


def _pytest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "contract_tests", "-p", "no:cacheprovider", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_live_target_without_a_key_exits_at_once():
    env = {k: v for k, v in os.environ.items() if k != "FAL_KEY"}
    done = _pytest("--target", "live", "-q", env=env)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "needs FAL_KEY" in done.stdout + done.stderr


def test_live_target_skips_costly_tests_unless_asked():
    env = {**os.environ, "FAL_KEY": "not-a-real:key"}
    done = _pytest("--target", "live", "-m", "costly", "-q", "-rs", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass --costly to run it" in done.stdout
    assert " passed" not in done.stdout and "failed" not in done.stdout
