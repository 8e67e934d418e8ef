"""Soak: 100,000 submits against one ``fal-mock serve --profile instant``; the server's resident
memory (VmRSS) sampled every 10,000, with status polls and result GETs mixed in
(every 1,000th request: result and image; --result-every 100 also fills the render cache,
which grows toward its 64 MiB cap).

    python bench/bench_soak.py                 # 100,000 requests (about a minute)
    python bench/bench_soak.py --smoke         # 5,000 requests, a few seconds (CI)
    python bench/bench_soak.py --state-dir D   # the same with persistence on

Targets (issues 6 and 8): RSS under 200 MB (and <= 100 MB) at the end, and flat: the last
sample within 10 % of the first.  Exit status 1 when a target or a request fails.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

APP = "fal-ai/wan-25-preview"
ENDPOINT = f"{APP}/image-to-image"
HEADERS = {"Authorization": "Key bench:secret", "Content-Type": "application/json"}
RSS_LIMIT_MB = 200.0
RSS_GOAL_MB = 100.0
FLAT = 0.10


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Counter:
    def __init__(self, total: int) -> None:
        self.total = total
        self.next = 0
        self.lock = threading.Lock()
        self.errors: list[str] = []

    def take(self, n: int) -> range:
        with self.lock:
            start = self.next
            self.next = min(self.total, start + n)
            return range(start, self.next)


def worker(port: int, counter: Counter, done: list[int], every: int, results_every: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        while True:
            chunk = counter.take(50)
            if not chunk:
                return
            for i in chunk:
                # distinct prompts and seeds: no two requests share anything
                body = json.dumps({"prompt": f"soak request {i}", "image_urls": ["https://example.com/a.png"],
                                   "seed": i}).encode()
                conn.request("POST", f"/queue/{ENDPOINT}", body, HEADERS)
                response = conn.getresponse()
                raw = response.read()
                if response.status != 200:
                    counter.errors.append(f"submit {response.status} {raw[:100]!r}")
                    continue
                rid = json.loads(raw)["request_id"]
                if i % every == 0:
                    conn.request("GET", f"/queue/{APP}/requests/{rid}/status?logs=1", headers=HEADERS)
                    response = conn.getresponse()
                    response.read()
                    if response.status != 200:
                        counter.errors.append(f"status {response.status}")
                if i % results_every == 0:
                    conn.request("GET", f"/queue/{APP}/requests/{rid}", headers=HEADERS)
                    response = conn.getresponse()
                    raw = response.read()
                    if response.status != 200:
                        counter.errors.append(f"result {response.status}")
                    else:  # and the image: rendered into the bounded cache
                        url = json.loads(raw)["images"][0]["url"]
                        conn.request("GET", url[url.index("/_mock/"):], headers=HEADERS)
                        image = conn.getresponse()
                        image.read()
                        if image.status != 200:
                            counter.errors.append(f"file {image.status}")
                with counter.lock:
                    done[0] += 1
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--status-every", type=int, default=10, help="poll the status of every Nth request")
    parser.add_argument("--result-every", type=int, default=1000, help="GET the result and image of every Nth request")
    parser.add_argument("--state-dir", default=None, help="run the server with persistence in this folder")
    parser.add_argument("--smoke", action="store_true", help="5,000 requests: proves the bench works (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.requests = 5_000
    step = max(1, args.requests // 10)
    flags = ["--profile", "instant"] + (["--state-dir", args.state_dir, "--persist"] if args.state_dir else [])
    counter = Counter(args.requests)
    done = [0]
    rows: list[tuple[int, float, float, float]] = []
    with ServerProcess(flags) as server:
        pid = server.process.pid
        baseline = rss_mb(pid)
        threads = [threading.Thread(target=worker, args=(server.port, counter, done, args.status_every, args.result_every),
                                    daemon=True) for _ in range(args.threads)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        mark = step
        last_t, last_n = start, 0
        while any(t.is_alive() for t in threads) or mark <= args.requests:
            time.sleep(0.02)
            n = done[0]
            if n >= mark or not any(t.is_alive() for t in threads):
                now = time.perf_counter()
                rate = (n - last_n) / (now - last_t) if now > last_t else 0.0
                rows.append((n, rss_mb(pid), rate, now - start))
                last_t, last_n = now, n
                mark += step
                if not any(t.is_alive() for t in threads):
                    break
        elapsed = time.perf_counter() - start
        queue = json.loads(_get(server.port, "/_mock/queue") or b"{}")
    print(f"fal-mock soak ({platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.requests:,} submits on {args.threads} keep-alive connections, status every {args.status_every}th, "
          f"result + image every {args.result_every}th; profile instant{'; persistence on' if args.state_dir else ''})")
    print(f"{'requests':>10}{'RSS MB':>9}{'req/s':>9}{'elapsed s':>11}")
    print(f"{0:>10,}{baseline:>9.1f}{'':>9}{0.0:>11.1f}")
    for n, rss, rate, at in rows:
        print(f"{n:>10,}{rss:>9.1f}{rate:>9,.0f}{at:>11.1f}")
    first, last = rows[0][1], rows[-1][1]
    growth = (last - first) / first
    kept = len(queue.get("requests", [])) if isinstance(queue, dict) else "?"
    print(f"total {done[0]:,} in {elapsed:.1f} s ({done[0] / elapsed:,.0f} req/s); errors {len(counter.errors)}; "
          f"requests kept by the server {kept}")
    print(f"end RSS {last:.1f} MB (limit {RSS_LIMIT_MB:.0f}, goal <= {RSS_GOAL_MB:.0f}); "
          f"growth first->last sample {growth:+.1%} (target within {FLAT:.0%})")
    for error in counter.errors[:5]:
        print("  error:", error)
    ok = not counter.errors and done[0] == args.requests and last < RSS_LIMIT_MB
    if not args.smoke:
        ok = ok and abs(growth) <= FLAT
    return 0 if ok else 1


def _get(port: int, path: str) -> bytes | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.read()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
