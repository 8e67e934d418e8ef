"""bench/bench_durability.py still runs (issue 20.10): a short smoke, checking the table only."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_durability.py"


def test_bench_durability_smoke() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "loss window ms" in done.stdout and "worst loss window" in done.stdout, done.stdout
