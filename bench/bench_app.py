"""CPU cost of the mock's own code per request, without a server or a socket.

    python bench/bench_app.py [--n 20000]

Drives the app directly for the hot paths, twice: through the FastAPI face's ASGI entry
(synthetic scope, receive and send; what uvicorn's per-request cycle calls: middleware,
routing, the protocol call) and through the fast lane the server uses for them
(``app.fast_lane``, :mod:`mock_server.protocol.hot`).  It counts this thread's CPU
time, best of several rounds, so the figure is what fal-mock adds on top of the server's
own work and stays steady on a busy machine; wrk figures (bench_queue.py, run_all.py)
also include uvicorn, the kernel and the load generator.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time

from mock_server.web.app import create_app
from mock_server.emulator import FalMock
from mock_server.settings import Settings

BODY = json.dumps({"prompt": "Reimagine the scene under a raging thunderstorm at night",
                   "image_urls": ["https://example.com/a.png"], "seed": 42}).encode()
HEADERS = [(b"host", b"127.0.0.1:8484"), (b"user-agent", b"wrk"), (b"authorization", b"Key bench:secret"),
           (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


def scope(method: str, path: str, query: bytes = b"") -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "root_path": "", "headers": HEADERS, "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8484)}


async def call(app, sc: dict, body: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(sc, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def timed(label: str, n: int, app, sc: dict, body: bytes | list[bytes] = b"") -> float:
    """Best-of-20 CPU µs per call; ``body`` may be a list of ``n`` bodies sent in turn."""
    bodies = body if isinstance(body, list) else [body] * n
    step = n // 20
    for b in bodies[:1000]:
        await call(app, sc, b)
    rounds = []
    for r in range(20):  # the best of 20 rounds: the least disturbed by the rest of the machine
        chunk = bodies[r * step:(r + 1) * step]
        start = time.thread_time()  # CPU time of this thread: other processes' load does not count
        for b in chunk:
            await call(app, sc, b)
        rounds.append((time.thread_time() - start) / step * 1e6)
    per = min(rounds)
    lane = app.fast_lane
    for b in bodies[:1000]:
        lane(sc, b)
    rounds = []
    for r in range(20):
        chunk = bodies[r * step:(r + 1) * step]
        start = time.thread_time()
        for b in chunk:
            lane(sc, b)
        rounds.append((time.thread_time() - start) / step * 1e6)
    fast = min(rounds)
    print(f"{label:<24}{per:>10.1f} µs/request via ASGI {fast:>8.1f} µs via the fast lane  "
          f"(~{1e6 / fast:,.0f}/s of one core for the app alone)")
    return per


async def main(n: int) -> None:
    app = create_app(FalMock(Settings(profile="instant")))
    status, raw = await call(app, scope("POST", "/queue/fal-ai/wan-25-preview/image-to-image"), BODY)
    rid = json.loads(raw)["request_id"]
    base = f"/queue/fal-ai/wan-25-preview/requests/{rid}"
    assert (await call(app, scope("GET", base + "/status", b"logs=0")))[0] == 200
    assert (await call(app, scope("GET", base)))[0] == 200
    print(f"fal-mock app cost per request ({n:,} calls each, no server)")
    await timed("status", n, app, scope("GET", base + "/status", b"logs=0"))
    await timed("result", n, app, scope("GET", base))
    submit = scope("POST", "/queue/fal-ai/wan-25-preview/image-to-image")
    await timed("submit", n, app, submit, BODY)  # one body again and again, as wrk sends it
    # every body new (another seed each): nothing of the validation is reused
    distinct = [BODY.replace(b'"seed": 42', b'"seed": %d' % i) for i in range(n)]
    await timed("submit, every body new", n, app, submit, distinct)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    asyncio.run(main(parser.parse_args().n))
