"""Render + PNG-encode timings and peak memory of the placeholder renderer.

Run: python bench/bench_render.py [N]
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from mock_server.endpoints.fal_app.rendering import InputPreview, render_placeholder  # noqa: E402

PROMPT = (
    "Reimagine the scene under a raging thunderstorm at night: lightning forks across the sky, "
    "illuminating the samurai in stark flashes of white light."
)


def sample_inputs() -> tuple[InputPreview, ...]:
    """A decoded PNG input and a not-fetched remote one: the tiles a typical request shows."""
    return (
        InputPreview.from_image(Image.linear_gradient("L").resize((640, 480)).convert("RGB"), "input 1: 640x480 PNG"),
        InputPreview.not_fetched("https://v3.fal.media/files/penguin/4VZ7I1ZK5XNv33LV2JBxg.png"),
    )


def render_times(width: int, height: int, repeats: int, inputs=None) -> tuple[list[float], int]:
    """ms per render + PNG encode over ``repeats`` seeds, and the last PNG's size in bytes."""
    inputs = sample_inputs() if inputs is None else inputs
    times, size = [], 0
    for i in range(repeats):
        start = time.perf_counter()
        data = render_placeholder(seed=1000 + i, index=0, count=1, width=width, height=height, prompt=PROMPT, inputs=inputs)
        times.append((time.perf_counter() - start) * 1000)
        size = len(data)
    return times, size


def main(repeats: int = 21) -> None:
    inputs = sample_inputs()
    print(f"{'size':>11} | {'median ms':>9} | {'min ms':>7} | {'PNG bytes':>9}")
    print("-" * 46)
    for width, height in [(512, 512), (1024, 1024), (5000, 5000)]:
        times, size = render_times(width, height, repeats, inputs)
        print(f"{width:>5}x{height:<5} | {statistics.median(times):>9.2f} | {min(times):>7.2f} | {size:>9}")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for index in range(4):
        render_placeholder(seed=7 + index, index=index, count=4, width=5000, height=5000, prompt=PROMPT, inputs=inputs)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\npeak RSS (ru_maxrss) after 4 x 5000x5000: {after / 1024:.1f} MiB (was {before / 1024:.1f} MiB before)")


if __name__ == "__main__":
    # python bench/bench_render.py [REPEATS]   (--smoke: 3 repeats, for CI)
    arg = sys.argv[1] if len(sys.argv) > 1 else "21"
    main(3 if arg == "--smoke" else int(arg))
