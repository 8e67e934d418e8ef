"""The dashboard with a full journal: server time of ``GET /_mock/`` and first paint in Chromium.

    python bench/bench_dashboard.py              # 1,000 journal entries, 50 timed GETs per case
    python bench/bench_dashboard.py --smoke      # fewer GETs: proves the bench still works (CI)

Two journals of 1,000 entries each: "mixed" (submit, status and result per request: ~333 rows,
with output images) and "submits" (1,000 submits: 1,000 rows, the most a journal can hold).
First paint needs Chromium (Debian's ``chromium``, or ``FAL_MOCK_CHROMIUM``) and the Python
``playwright`` package; without them that column says why.  The target: first paint < 200 ms.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from mock_server.features import dashboard  # noqa: E402
from mock_server.server.background import BackgroundServer  # noqa: E402
from mock_server.emulator import FalMock  # noqa: E402
from mock_server.settings import Settings  # noqa: E402
from mock_server.web.routers.dashboard import dashboard_of  # noqa: E402

ENDPOINT = "fal-ai/wan-25-preview/image-to-image"
AUTH = {"Authorization": "Key bench:secret"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def timed_get(client: httpx.Client, path: str, runs: int) -> dict[str, float]:
    times = []
    size = 0
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        size = len(answer.content)
        assert answer.status_code == 200, answer.status_code
    times.sort()
    return {"p50": statistics.median(times), "p95": times[max(0, int(len(times) * 0.95) - 1)], "kb": size / 1024}


def first_paint(url: str, runs: int) -> str:
    executable = os.environ.get("FAL_MOCK_CHROMIUM") or shutil.which("chromium")
    if not executable:
        return "no chromium"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "no playwright"
    paints, loads = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        for i in range(runs + 1):
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.wait_for_function("() => performance.getEntriesByName('first-contentful-paint').length > 0")
            fcp = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0].startTime")
            load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
            page.close()
            if i:  # the first run warms the browser's caches of the script and stylesheet
                paints.append(fcp)
                loads.append(load)
        browser.close()
    return f"{statistics.median(paints):.0f} ms (load {statistics.median(loads):.0f} ms)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--paint-runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.paint_runs = 5, 1
    rows = []
    for mode in ("mixed", "submits"):
        server = BackgroundServer(FalMock(Settings(profile="instant", journal_size=args.entries)))
        server.start()
        try:
            with httpx.Client(base_url=server.url, headers=AUTH, timeout=30) as client:
                started = time.perf_counter()
                i = 0
                while len(server.mock.journal) < args.entries:
                    body = {"prompt": f"bench request {i} <b>escaped</b>", "image_urls": ["https://example.com/a.png"], "seed": i}
                    submitted = client.post(f"/queue/{ENDPOINT}", json=body).json()
                    if mode == "mixed":
                        client.get(submitted["status_url"])
                        client.get(submitted["response_url"])
                    i += 1
                fill_s = time.perf_counter() - started
                count = len(server.call(dashboard_of(server.app.face).rows))
                last = max(1, -(-count // dashboard.PAGE_SIZE))
                cases = {"/_mock/": "page 1", f"/_mock/?page={last}": "last page",
                         "/_mock/?status=COMPLETED": "status filter", "/_mock/ui/rows": "rows fragment"}
                for path, label in cases.items():
                    stats = timed_get(client, path, args.runs)
                    paint = first_paint(server.url + path, args.paint_runs) if path == "/_mock/" else ""
                    rows.append((mode, len(server.mock.journal), count, label, stats, paint))
                print(f"# {mode}: filled {len(server.mock.journal)} journal entries ({count} rows) in {fill_s:.1f} s",
                      file=sys.stderr)
        finally:
            server.stop()
    print(f"dashboard bench · Python {platform.python_version()} · {os.cpu_count()} cores · "
          f"{args.runs} GETs per case (server and client on this machine)\n")
    print("| journal | entries | rows | page | GET p50 | GET p95 | HTML | first paint (Chromium) |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, entries, count, label, stats, paint in rows:
        print(f"| {mode} | {entries} | {count} | {label} | {stats['p50']:.1f} ms | {stats['p95']:.1f} ms | "
              f"{stats['kb']:.0f} KB | {paint} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
