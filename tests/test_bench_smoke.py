"""Every benchmark still runs (issue 8: CI runs a short smoke of each so none can rot).

The figures they print are for people (README "Performance"); these tests only check
that each bench completes and prints its table, never a speed.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

SMOKES = {
    "bench_app.py": (["--n", "2000"], "µs/request"),
    "bench_render.py": (["--smoke"], "5000x5000"),
    "bench_media.py": (["--smoke"], "video 8 s 1920x1080"),
    "bench_fixture.py": (["--trials", "2", "--polls", "50"], "server start"),
    "bench_startup.py": (["--smoke"], "launch -> first 2xx submit"),
    "bench_queue.py": (["--smoke"], "round trip"),
    "bench_soak.py": (["--smoke"], "RSS"),
    "bench_load.py": (["--smoke"], "lost"),
    "bench_dashboard.py": (["--smoke"], "first paint"),
    "bench_generic.py": (["--smoke"], "build validator"),
    "bench_catalog.py": (["--smoke"], "| index load (first ids()) |"),
    "run_all.py": (["--smoke"], "| target (issues 8, 15) | met | figure |"),
}


@pytest.mark.parametrize("script", sorted(SMOKES))
def test_bench_smoke(script: str) -> None:
    args, expected = SMOKES[script]
    if script in ("bench_queue.py", "run_all.py") and shutil.which("wrk") is None:
        pytest.fail(f"{script} needs wrk on PATH (Debian: apt-get install wrk)", pytrace=False)
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    assert expected in done.stdout, f"{script} printed no table:\n{done.stdout}"
