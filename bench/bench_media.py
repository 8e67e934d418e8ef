"""Encode timings and peak memory of the placeholder media (issue 16 targets: a 5 s 720p video
<= 1 s and an 8 s 1080p video <= 2 s to encode; sounds and 3D files are small by comparison).

Run: python bench/bench_media.py [REPEATS]   (--smoke: one repeat, for CI)
"""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mock_server.endpoints.fal_app.media import (  # noqa: E402
    render_glb, render_mp3, render_mp4, render_wav, video_facts,
)

LINES = ("A lighthouse on a cliff in a storm at night, waves crashing, cinematic, slow push in",
         "fal-ai/example/text-to-video")
#: (what, the call, the target in ms or None)
CASES = [
    ("video 5 s 1280x720 24 fps", lambda s: render_mp4(1280, 720, 24, 5, s, LINES), 1000),
    ("video 8 s 1920x1080 24 fps", lambda s: render_mp4(1920, 1080, 24, 8, s, LINES), 2000),
    ("video 5 s 1920x1080 30 fps", lambda s: render_mp4(1920, 1080, 30, 5, s, LINES), None),
    ("WAV 10 s 44.1 kHz mono", lambda s: render_wav(10, s), None),
    ("MP3 10 s 44.1 kHz mono", lambda s: render_mp3(10, s), None),
    ("GLB cube", lambda s: render_glb(s, "a wooden chair"), None),
]


def timed(call, repeats: int) -> tuple[float, float, int]:
    """Best wall ms and best CPU ms (all threads: what a busy machine stretches the wall time
    by) over ``repeats`` seeds, each a fresh encode, and the size of the last file."""
    best, cpu, size = float("inf"), float("inf"), 0
    for seed in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        data = call(seed)
        best = min(best, (time.perf_counter() - start) * 1000)
        cpu = min(cpu, (time.process_time() - start_cpu) * 1000)
        size = len(data)
    return best, cpu, size


def main(repeats: int) -> None:
    # first use loads PyAV and pygltflib: not part of an encode
    render_mp4(64, 64, 24, 0.1, 0), render_mp3(0.1, 0), render_glb(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{'file':<28} | {'best ms':>8} | {'CPU ms':>8} | {'target ms':>9} | {'met':>3} | {'bytes':>9}")
    print("-" * 81)
    for what, call, target in CASES:
        ms, cpu, size = timed(call, repeats)
        met = "-" if target is None else ("yes" if ms <= target else "NO")
        print(f"{what:<28} | {ms:>8.1f} | {cpu:>8.1f} | {target or '-':>9} | {met:>3} | {size:>9}")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    facts = video_facts(1920, 1080, 24, 8)
    print(f"\n8 s 1080p: {facts.num_frames} frames; peak RSS (ru_maxrss) {after / 1024:.1f} MiB "
          f"(was {before / 1024:.1f} MiB before the encodes); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores (wall times stretch when others run)")


if __name__ == "__main__":
    arg = sys.argv[1] if len(sys.argv) > 1 else "5"
    main(1 if arg == "--smoke" else int(arg))
