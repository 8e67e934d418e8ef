"""Durability: how much a SIGKILL loses at full submit rate (issue 20.10).

    python bench/bench_durability.py                 # 3 rounds of 6 s at full speed
    python bench/bench_durability.py --seconds 10 --rounds 1
    python bench/bench_durability.py --smoke         # one ~3 s round (CI)
    python bench/bench_durability.py --source DIR    # the server from another checkout (before/after)

Each round starts ``python -m mock_server serve --state-dir D --profile instant`` as a
subprocess, drives submits at it from several processes (raw HTTP/1.1 keep-alive sockets on
loopback, a few connections each, one request in flight per connection) for N seconds,
SIGKILLs it mid-load, starts it again on the same folder and counts the acknowledged
request ids (a 200 with its id was read before the kill) that are gone.  The loss window is
the time from the oldest lost acknowledgment to the kill: the README promises ~50 ms (one
flush interval, plus the batch being written).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

APP = "fal-ai/wan-25-preview/image-to-image"
BODY = json.dumps({"prompt": "durability", "image_urls": ["https://example.com/a.png"]}).encode()
RID = re.compile(rb'"request_id":\s*"([^"]+)"')


def _request(port: int) -> bytes:
    return (f"POST /queue/{APP} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Key fal-mock:secret\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY


class _Conn:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def response(self) -> bytes | None:
        """One whole response's body (None for a non-200); raises OSError when the server is gone."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(rest) < length:
            rest += self._recv()
        body, self.buf = rest[:length], rest[length:]
        return body if head.startswith(b"HTTP/1.1 200") else None

    def _recv(self) -> bytes:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed")
        return data

    def _more(self) -> None:
        self.buf += self._recv()


def _driver(port: int, connections: int, until: float, out_path: str) -> None:
    """Submit as fast as the server answers until ``until`` or until it dies; write
    ``request_id ack_time`` lines."""
    request = _request(port)
    conns = [_Conn(port) for _ in range(connections)]
    acks: list[tuple[bytes, float]] = []
    try:
        while time.time() < until:
            for conn in conns:
                conn.sock.sendall(request)
            for conn in conns:
                body = conn.response()
                now = time.time()
                if body is not None:
                    match = RID.search(body)
                    if match:
                        acks.append((match.group(1), now))
    except (OSError, ValueError, AttributeError):
        pass  # killed under us: what was read so far is what was acknowledged
    with open(out_path, "w") as out:
        out.writelines(f"{rid.decode()} {at!r}\n" for rid, at in acks)


def _stored(state: Path) -> set[str]:
    with sqlite3.connect(state / "state.sqlite3") as db:
        return {row[0] for row in db.execute("SELECT request_id FROM requests")}


def one_round(seconds: float, processes: int, connections: int, source: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="fal-mock-durability-") as tmp:
        state = Path(tmp) / "state"
        flags = ["--profile", "instant", "--state-dir", str(state), "--max-requests", "100000000"]
        server = ServerProcess(flags, cwd=source)
        server.start()
        outs = [str(Path(tmp) / f"acks-{i}.txt") for i in range(processes)]
        until = time.time() + seconds + 30  # the kill ends them, not the clock
        ctx = mp.get_context("fork")
        workers = [ctx.Process(target=_driver, args=(server.port, connections, until, out)) for out in outs]
        for worker in workers:
            worker.start()
        time.sleep(seconds)  # the load runs for N seconds; the kill lands mid-stream
        killed_at = time.time()
        server.process.send_signal(signal.SIGKILL)
        server.stop()
        for worker in workers:
            worker.join(60)
        acks: dict[str, float] = {}
        for out in outs:
            for line in Path(out).read_text().splitlines():
                rid, at = line.split()
                acks[rid] = float(at)
        again = ServerProcess(flags, cwd=source)
        again.start()  # replays the folder: what it holds now is what survived
        assert again.stop() == 0
        kept = _stored(state)
    lost = [at for rid, at in acks.items() if rid not in kept]
    first = min(acks.values()) if acks else killed_at
    return {
        "acked": len(acks), "lost": len(lost), "rate": len(acks) / max(killed_at - first, 1e-9),
        "window_ms": (killed_at - min(lost)) * 1000 if lost else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="load before the kill (default 6)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--connections", type=int, default=8, help="per process (default 8)")
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose server to run (default: this one)")
    parser.add_argument("--smoke", action="store_true", help="one ~3 s round (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds = 3.0, 1
    rows = [one_round(args.seconds, args.processes, args.connections, args.source) for _ in range(args.rounds)]
    print(f"SIGKILL after {args.seconds:g} s of submits at full speed "
          f"({args.processes} processes x {args.connections} connections), then a restart:")
    print(f"{'round':>6}{'submits/s':>11}{'acknowledged':>14}{'lost':>8}{'loss window ms':>16}")
    for i, row in enumerate(rows, 1):
        print(f"{i:>6}{row['rate']:>11.0f}{row['acked']:>14}{row['lost']:>8}{row['window_ms']:>16.1f}")
    worst = max(row["window_ms"] for row in rows)
    print(f"worst loss window: {worst:.1f} ms (documented: ~50 ms, one flush interval plus the batch being written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
