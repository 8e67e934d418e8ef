"""Load: many simultaneous ``fal_client.subscribe_async`` calls (the real async Python client,
unmodified, wired by URL) against one ``fal-mock serve`` process.

    python bench/bench_load.py                     # 1, 50, 200 and 500 concurrent clients
    python bench/bench_load.py --clients 500       # one level
    python bench/bench_load.py --smoke             # 20 clients, instant profile: seconds (CI)

Each client submits its own prompt and seed, polls until COMPLETED (the client's own loop,
0.1 s interval) and reads the result.  Per level: throughput (completed calls/s), p50/p99
latency of a whole subscribe, errors, and lost requests: every request the client saw
enqueued must be COMPLETED in the server's ``/_mock/queue`` with a 200 result whose
``seeds`` are the ones sent.  The bar is zero errors and zero lost.

The server is single-process: its queue is an in-process simulation (one clock, one FIFO
of emulated runners), so uvicorn ``--workers`` > 1 would split it into unrelated queues.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

APP = "fal-ai/wan-25-preview/image-to-image"
KEY = "fal-mock:secret"


def wire(url: str):
    """Point the real fal_client at the mock (as mock_server.pytest_plugin does)."""
    os.environ["FAL_KEY"] = KEY
    import fal_client
    import fal_client.client as client_module

    client_module.RUN_URL_FORMAT = url + "/"
    client_module.QUEUE_URL_FORMAT = url + "/queue/"
    client_module.REST_URL = url + "/_mock/rest"
    client_module.CDN_URL = url + "/_mock/cdn"
    return fal_client


async def one_level(fal_client, clients: int, seed_base: int) -> dict:
    client = fal_client.AsyncClient(key=KEY, default_timeout=120.0)
    enqueued: dict[int, str] = {}
    latencies: list[float] = []
    errors: list[str] = []
    wrong: list[str] = []

    async def one(i: int) -> None:
        seed = seed_base + i
        start = time.perf_counter()
        try:
            result = await client.subscribe(
                APP, {"prompt": f"load client {i}", "image_urls": ["https://example.com/a.png"], "seed": seed},
                on_enqueue=lambda rid: enqueued.__setitem__(i, rid),
            )
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors.append(f"{type(exc).__name__}: {exc}"[:200])
            return
        latencies.append(time.perf_counter() - start)
        if result.get("seeds") != [seed] or len(result.get("images", [])) != 1:
            wrong.append(f"client {i}: {str(result)[:120]}")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    if "_client" in client.__dict__:
        await (await client._client).aclose()
    latencies.sort()
    return {"clients": clients, "elapsed": elapsed, "latencies": latencies, "errors": errors,
            "wrong": wrong, "enqueued": enqueued}


def check_server(port: int, enqueued: dict[int, str]) -> list[str]:
    """Request ids the server does not show COMPLETED with a 200 result (lost requests)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/_mock/queue")
    states = {r["request_id"]: r for r in json.loads(conn.getresponse().read())["requests"]}
    lost = []
    for rid in enqueued.values():
        state = states.get(rid)
        if state is None or state["status"] != "COMPLETED" or state["cancelled"] or state["error_type"]:
            lost.append(rid)
            continue
        conn.request("GET", f"/queue/fal-ai/wan-25-preview/requests/{rid}", headers={"Authorization": f"Key {KEY}"})
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            lost.append(rid)
    conn.close()
    return lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="*", default=[1, 50, 200, 500])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--workers", type=int, default=100, help="emulated runners (the mock's --workers)")
    parser.add_argument("--smoke", action="store_true", help="20 clients on the instant profile (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.profile, args.speed = [20], "instant", 1.0
    flags = ["--profile", args.profile, "--speed", str(args.speed), "--workers", str(args.workers),
             "--max-requests", "100000"]
    rows = []
    bad = False
    with ServerProcess(flags) as server:
        fal_client = wire(server.url)
        seed_base = 0
        for clients in args.clients:
            row = asyncio.run(one_level(fal_client, clients, seed_base))
            seed_base += clients
            row["lost"] = check_server(server.port, row["enqueued"])
            row["not_enqueued"] = clients - len(row["enqueued"])
            rows.append(row)
            bad = bad or bool(row["errors"] or row["wrong"] or row["lost"] or row["not_enqueued"])
    print(f"fal-mock load ({platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"real fal_client AsyncClient.subscribe, one server process; profile {args.profile} "
          f"--speed {args.speed:g} --workers {args.workers}; server and clients on the same machine)")
    print(f"{'clients':>8}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'lost':>6}{'wrong':>7}")
    for row in rows:
        lat = row["latencies"]
        p50 = statistics.median(lat) * 1000 if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else float("nan")
        top = lat[-1] * 1000 if lat else float("nan")
        rate = len(lat) / row["elapsed"]
        print(f"{row['clients']:>8}{rate:>9,.0f}{p50:>9.0f}{p99:>9.0f}{top:>9.0f}{len(row['errors']):>8}"
              f"{len(row['lost']) + row['not_enqueued']:>6}{len(row['wrong']):>7}")
        for error in (row["errors"] + row["wrong"])[:3]:
            print("   ", error)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
