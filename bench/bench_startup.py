"""Start-up costs, each in a fresh process (issue 15's targets).

    python bench/bench_startup.py [--trials 7] [--smoke]

- ``serve``: launch of ``fal-mock serve`` -> its first 2xx submit (the fast lane answers
  before the web face is built) and -> its first 2xx ``/_mock/health`` (the face is built:
  what a call that needs the face waits for at most).
- ``plugin``: what the pytest plugin adds to a session that has pytest loaded and never uses
  the fixture (its import).
- ``fixture``: the fixture's server in a fresh process, FastAPI included: imports, then
  start, until the first answer; and the per-test reset.
- ``fastapi``: ``import fastapi`` alone, the machine's yardstick for the figures above.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = ("POST", "/queue/fal-ai/wan-25-preview/image-to-image",
          json.dumps({"prompt": "x", "image_urls": ["https://example.com/a.png"]}).encode())
HEALTH = ("GET", "/_mock/health", b"")
HEADERS = {"Authorization": "Key bench:secret", "Content-Type": "application/json"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answered(port: int, call: tuple[str, str, bytes]) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request(call[0], call[1], body=call[2] or None, headers=HEADERS)
        response = conn.getresponse()
        response.read()
        conn.close()
        return 200 <= response.status < 300
    except OSError:
        return False


def serve_trial() -> tuple[float, float]:
    """ms from launch to the first 2xx submit, and to the first 2xx health."""
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "mock_server", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        marks = []
        for call in (SUBMIT, HEALTH):
            while not answered(port, call):
                if proc.poll() is not None or time.perf_counter() - start > 30:
                    raise RuntimeError("fal-mock serve did not come up")
                time.sleep(0.002)
            marks.append((time.perf_counter() - start) * 1000)
        return marks[0], marks[1]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()


def python_ms(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it prints a JSON dict of figures."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


PLUGIN = """
import json, time, pytest
t = time.perf_counter()
import mock_server.pytest_plugin
print(json.dumps({"plugin": (time.perf_counter() - t) * 1000}))
"""

FIXTURE = """
import http.client, json, time, pytest
t0 = time.perf_counter()
from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings
t1 = time.perf_counter()
server = BackgroundServer(FalMock(Settings(profile="instant"))).start()
conn = http.client.HTTPConnection("127.0.0.1", server.port)
conn.request("GET", "/_mock/health")
conn.getresponse().read()
t2 = time.perf_counter()
resets = []
for _ in range(200):
    s = time.perf_counter()
    server.mock.reset()
    resets.append(time.perf_counter() - s)
server.stop()
print(json.dumps({"imports": (t1 - t0) * 1000, "start": (t2 - t1) * 1000, "total": (t2 - t0) * 1000,
                  "reset": sorted(resets)[len(resets) // 2] * 1000}))
"""

FASTAPI = """
import json, time
t = time.perf_counter()
import fastapi
print(json.dumps({"fastapi": (time.perf_counter() - t) * 1000}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="two trials: checks the bench runs, no figure to trust")
    args = parser.parse_args()
    trials = 2 if args.smoke else args.trials
    serve = [serve_trial() for _ in range(trials)]
    plugin = [python_ms(PLUGIN)["plugin"] for _ in range(trials)]
    fixture = [python_ms(FIXTURE) for _ in range(trials)]
    fastapi = [python_ms(FASTAPI)["fastapi"] for _ in range(trials)]
    med = statistics.median
    rows = [
        ("serve: launch -> first 2xx submit", med(s[0] for s in serve), "<= 400"),
        ("serve: launch -> web face ready", med(s[1] for s in serve), ""),
        ("plugin import, fixture unused", med(plugin), "< 10"),
        ("fixture: imports", med(f["imports"] for f in fixture), ""),
        ("fixture: start -> first answer", med(f["start"] for f in fixture), ""),
        ("fixture: total, FastAPI included", med(f["total"] for f in fixture), "< 300"),
        ("fixture: reset per test", med(f["reset"] for f in fixture), "< 5"),
        ("yardstick: import fastapi alone", med(fastapi), ""),
    ]
    print(f"start-up ({trials} trials each, fresh processes, medians)")
    print(f"{'figure':<38}{'ms':>9}{'target':>10}")
    for label, value, target in rows:
        print(f"{label:<38}{value:>9.1f}{target:>10}")


if __name__ == "__main__":
    main()
