"""The placeholder renderer: deterministic, correct size, seed-visible, pinned by a golden file."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import PIL
import pytest
from PIL import Image

from mock_server.endpoints.fal_app.rendering import InputPreview, render_placeholder

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "golden" / "placeholders.json"
PROMPT = "Reimagine the scene under a raging thunderstorm at night: lightning forks across the sky."


def _inputs() -> tuple[InputPreview, ...]:
    gradient = Image.linear_gradient("L").resize((400, 300)).convert("RGB")
    return (
        InputPreview.from_image(gradient, "input 1: 400x300 PNG"),
        InputPreview.not_fetched("https://v3.fal.media/files/penguin/4VZ7I1ZK5XNv33LV2JBxg.png"),
    )


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _golden_cases() -> list[dict]:
    return json.loads(GOLDEN.read_text())["cases"]


def _render_case(case: dict) -> bytes:
    return render_placeholder(
        seed=case["seed"], index=case["index"], count=case["count"], width=case["width"], height=case["height"],
        prompt=case["prompt"], inputs=_inputs()[: case["inputs"]],
    )


@pytest.mark.parametrize("case", _golden_cases(), ids=lambda c: f'{c["width"]}x{c["height"]}-seed{c["seed"]}')
def test_pixels_match_golden(case: dict) -> None:
    image = _decode(_render_case(case))
    digest = hashlib.sha256(image.tobytes()).hexdigest()
    assert (image.size, image.mode) == ((case["width"], case["height"]), "P")
    assert digest == case["pixels_sha256"], (
        "placeholder pixels changed. They depend on the drawing code in mock_server/rendering.py and on "
        f"Pillow's built-in bitmap font (ImageFont.load_default_imagefont) of Pillow {PIL.__version__.split('.')[0]}.x "
        f"(golden made with Pillow {json.loads(GOLDEN.read_text())['pillow']}). If the change is intended, regenerate "
        "with: python tests/test_rendering.py --regenerate"
    )


@pytest.mark.parametrize("size", [(512, 512), (1024, 576), (384, 5000), (1, 1), (3, 2000), (2000, 3)])
def test_png_decodes_to_the_requested_size(size: tuple[int, int]) -> None:
    width, height = size
    image = _decode(render_placeholder(seed=1, index=0, count=1, width=width, height=height, prompt=PROMPT, inputs=_inputs()))
    assert image.size == size
    assert image.format == "PNG"


def test_same_arguments_give_identical_bytes_in_another_process() -> None:
    here = render_placeholder(seed=9, index=1, count=3, width=640, height=480, prompt=PROMPT, inputs=_inputs())
    code = (
        "import sys, hashlib; sys.path.insert(0, %r); from tests.test_rendering import _inputs, PROMPT; "
        "from mock_server.endpoints.fal_app.rendering import render_placeholder; "
        "print(hashlib.sha256(render_placeholder(seed=9, index=1, count=3, width=640, height=480, prompt=PROMPT, inputs=_inputs())).hexdigest())"
    ) % str(Path(__file__).resolve().parent.parent)
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == hashlib.sha256(here).hexdigest()


def test_different_seeds_have_different_background_colours() -> None:
    def corner(seed: int) -> tuple[int, int, int]:
        image = _decode(render_placeholder(seed=seed, index=0, count=1, width=512, height=512, prompt="p")).convert("RGB")
        return image.getpixel((0, 0))  # type: ignore[return-value]

    colours = {corner(seed) for seed in range(8)}
    assert len(colours) >= 6


def test_seed_and_prompt_change_the_pixels() -> None:
    base = _decode(render_placeholder(seed=1, index=0, count=1, width=512, height=512, prompt="a cat")).tobytes()
    assert _decode(render_placeholder(seed=2, index=0, count=1, width=512, height=512, prompt="a cat")).tobytes() != base
    assert _decode(render_placeholder(seed=1, index=0, count=1, width=512, height=512, prompt="a dog")).tobytes() != base


def test_input_thumbnails_are_drawn() -> None:
    red = InputPreview.from_image(Image.new("RGB", (500, 500), (255, 0, 0)), "input 1")
    image = _decode(render_placeholder(seed=1, index=0, count=1, width=512, height=512, prompt="p", inputs=[red])).convert("RGB")
    assert (255, 0, 0) in {colour for _, colour in image.getcolors(1 << 16)}  # type: ignore[union-attr]


def test_long_and_non_latin_prompts_render() -> None:
    for prompt in ["x" * 5000, "雷雨中的武士 " * 300, "\ud800 surrogate", ""]:
        assert _decode(render_placeholder(seed=0, index=0, count=1, width=384, height=384, prompt=prompt)).size == (384, 384)


def test_non_positive_size_is_refused() -> None:
    with pytest.raises(ValueError):
        render_placeholder(seed=0, index=0, count=1, width=0, height=10, prompt="p")


def _regenerate() -> None:
    cases = [
        {"seed": 42, "index": 0, "count": 1, "width": 512, "height": 512, "prompt": PROMPT, "inputs": 0},
        {"seed": 7, "index": 1, "count": 2, "width": 1024, "height": 768, "prompt": PROMPT, "inputs": 2},
        {"seed": 2**31 - 1, "index": 3, "count": 4, "width": 576, "height": 1024, "prompt": PROMPT * 10, "inputs": 1},
        {"seed": -5, "index": 0, "count": 1, "width": 5000, "height": 384, "prompt": "wide", "inputs": 2},
    ]
    for case in cases:
        case["pixels_sha256"] = hashlib.sha256(_decode(_render_case(case)).tobytes()).hexdigest()
    GOLDEN.write_text(json.dumps({"pillow": PIL.__version__, "cases": cases}, indent=2) + "\n")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    _regenerate()
