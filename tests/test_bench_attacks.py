"""bench/bench_attacks.py still runs (issue 20: peak RSS under each memory attack).

Only that the smoke completes and prints its table with every attack answered is checked,
never a figure; the 431 row is the one answer the server's head limit fixes.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_attacks.py"


def test_bench_attacks_smoke() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--smoke"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"bench_attacks failed:\n{done.stdout}\n{done.stderr}"
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()
            if line.startswith("| ") and "peak RSS MB" not in line}
    assert set(rows) == {"1 MB headers", "status, new Host each", "1 MB unused image URL",
                         "1 MiB %-encoded data URI"}, done.stdout
    assert rows["1 MB headers"].endswith("| 431: 5"), done.stdout
    assert "200: 2,000" in rows["status, new Host each"], done.stdout
