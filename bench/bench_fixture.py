"""The pytest fixture's costs: server start (after import), first answer, status poll, stop.

    python bench/bench_fixture.py [--trials 20]

Measures what a test suite pays for ``fal_mock``: the session server is started and
stopped once per session (BackgroundServer), and each poll is one keep-alive
HTTP/1.1 request from the test thread.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time

from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings

APP = "fal-ai/wan-25-preview"
BODY = json.dumps({"prompt": "x", "image_urls": ["https://example.com/a.png"]}).encode()
HEADERS = {"Authorization": "Key bench:secret", "Content-Type": "application/json"}


def one_trial(polls: int) -> dict[str, float]:
    t0 = time.perf_counter()
    server = BackgroundServer(FalMock(Settings(profile="instant"))).start()
    t1 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", server.port)
    conn.request("GET", "/_mock/health")
    conn.getresponse().read()
    t2 = time.perf_counter()
    conn.request("POST", f"/queue/{APP}/image-to-image", body=BODY, headers=HEADERS)
    rid = json.loads(conn.getresponse().read())["request_id"]
    samples = []
    for _ in range(polls):
        s = time.perf_counter()
        conn.request("GET", f"/queue/{APP}/requests/{rid}/status", headers=HEADERS)
        conn.getresponse().read()
        samples.append(time.perf_counter() - s)
    conn.close()
    t3 = time.perf_counter()
    server.stop()
    t4 = time.perf_counter()
    return {"start": (t1 - t0) * 1000, "first": (t2 - t1) * 1000,
            "poll": statistics.median(samples) * 1000, "stop": (t4 - t3) * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--polls", type=int, default=500)
    args = parser.parse_args()
    one_trial(10)  # warm imports and code paths
    trials = [one_trial(args.polls) for _ in range(args.trials)]
    print(f"fal_mock fixture ({args.trials} trials, medians; imports already loaded)")
    print(f"{'figure':<28}{'median ms':>10}{'max ms':>10}{'target':>12}")
    for key, label, target in (("start", "server start -> ready", "< 50"), ("first", "first answer (health)", ""),
                               ("poll", "status poll (median)", ""), ("stop", "stop", "< 200")):
        values = [t[key] for t in trials]
        print(f"{label:<28}{statistics.median(values):>10.2f}{max(values):>10.2f}{target:>12}")


if __name__ == "__main__":
    main()
