"""Queue hot paths: submit, status and result requests/s, and the submit -> COMPLETED -> result
round trip, on the ``instant`` profile.

    python bench/bench_queue.py            # 5 s per wrk run, 32 connections
    python bench/bench_queue.py --smoke    # 1 s runs: proves the bench still works (CI)

Needs ``wrk`` (Debian: ``apt-get install wrk``) on PATH.  The server and the load
generator share this machine's cores, as in the peers' side-by-side runs.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

APP = "fal-ai/wan-25-preview"
ENDPOINT = f"{APP}/image-to-image"
BODY = {"prompt": "Reimagine the scene under a raging thunderstorm at night",
        "image_urls": ["https://example.com/a.png"], "seed": 42}
AUTH = "Key bench:secret"


def wrk(url: str, seconds: float, connections: int, script: str | None = None) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(seconds))}s", "--latency", "-H", f"Authorization: {AUTH}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50": pct("50"), "p99": pct("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": sum(map(int, errors.groups())) if errors else 0}


def post_script(folder: Path) -> str:
    """A wrk script that POSTs :data:`BODY` as JSON (written into ``folder``); its path."""
    script = Path(folder) / "post.lua"
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = {json.dumps(json.dumps(BODY))}\n")
    return str(script)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": AUTH}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


def round_trips(port: int, count: int) -> list[float]:
    """Sequential submit -> status (until COMPLETED) -> result, on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(BODY).encode()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        _, raw = request(conn, "POST", f"/queue/{ENDPOINT}", body)
        rid = json.loads(raw)["request_id"]
        while True:
            status, raw = request(conn, "GET", f"/queue/{APP}/requests/{rid}/status")
            if status == 200:
                break
        status, raw = request(conn, "GET", f"/queue/{APP}/requests/{rid}")
        assert status == 200, raw
        times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--round-trips", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="1 s runs and 50 round trips")
    parser.add_argument("--persist", action="store_true", help="serve with --state-dir (a temporary folder): persistence on")
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.round_trips = 1.0, 50
    if shutil.which("wrk") is None:
        print("bench_queue: wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp, \
            ServerProcess(["--profile", "instant", "--max-requests", "10000"]
                          + (["--state-dir", str(Path(tmp) / "state"), "--persist"] if args.persist else [])) as server:
        base = server.url
        conn = http.client.HTTPConnection("127.0.0.1", server.port)
        _, raw = request(conn, "POST", f"/queue/{ENDPOINT}", json.dumps(BODY).encode())
        rid = json.loads(raw)["request_id"]
        request(conn, "GET", f"/queue/{APP}/requests/{rid}/status")
        request(conn, "GET", f"/queue/{APP}/requests/{rid}")  # renders once; later GETs are cached
        conn.close()
        script = post_script(Path(tmp))
        # warm up both paths once, then measure
        wrk(f"{base}/queue/{APP}/requests/{rid}/status?logs=0", 1, args.connections)
        rows = {
            "status": wrk(f"{base}/queue/{APP}/requests/{rid}/status?logs=0", args.duration, args.connections),
            "result": wrk(f"{base}/queue/{APP}/requests/{rid}", args.duration, args.connections),
            "submit": wrk(f"{base}/queue/{ENDPOINT}", args.duration, args.connections, script),
        }
        trips = round_trips(server.port, args.round_trips)
        trips.sort()
    targets = {"status": 4000, "submit": 2000, "result": None}
    print(f"fal-mock queue bench ({platform.node()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"wrk -t1 -c{args.connections} -d{args.duration:g}s; server and wrk on the same machine"
          f"{'; persistence on' if args.persist else ''})")
    print(f"{'path':<12}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'errors':>8}{'target':>10}")
    for name, row in rows.items():
        target = f">= {targets[name]:,}" if targets[name] else ""
        print(f"{name:<12}{row['rps']:>10,.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}{row['non2xx']:>9}{row['errors']:>8}{target:>10}")
    p50 = statistics.median(trips)
    p99 = trips[min(len(trips) - 1, int(len(trips) * 0.99))]
    print(f"{'round trip':<12}{'':>10}{p50:>9.2f}{p99:>9.2f}{'':>9}{'':>8}{'p50 <= 5':>10}")
    print(f"(round trip = submit, status until 200, result; {len(trips)} sequential trips on one connection)")
    bad = any(r["non2xx"] or r["errors"] for r in rows.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
