"""Peak memory of ``fal-mock serve`` under the memory attacks of issue 20, one fresh server each.

    python bench/bench_attacks.py            # the sizes of the red-team run (a minute or two)
    python bench/bench_attacks.py --smoke    # small sizes: proves the bench works (CI, ~10 s)

Each attack runs against its own ``python -m mock_server serve --profile instant`` subprocess
(the code of this checkout); the figure is the process's peak resident memory (``VmHWM`` in
``/proc/<pid>/status``, Linux) at the end, next to its resident memory once started:

- ``10 MB headers``: requests whose head carries one 10 MB header (answered 431: heads above
  64 KiB are refused, ``mock_server/server/fastlane.py``);
- ``status, new Host each``: one finished request polled through a single keep-alive
  connection (pipelined 500 at a time), each poll naming another ``Host`` (``hN.localhost``);
- ``20 MB unused image URL``: submits whose third ``image_urls`` entry (never used) is 20 MB;
- ``30 MiB %-encoded data URI``: one submit whose image is ``data:image/png,%41%41...``,
  followed until its request has finished.

"answers" counts the HTTP statuses the attack's requests got.  The bench measures whatever
the code does; it states no target and exits 0 unless a server fails to start.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from server_process import ServerProcess  # noqa: E402

APP = "fal-ai/wan-25-preview"
SUBMIT = f"/queue/{APP}/image-to-image"
AUTH = b"Authorization: Key bench:secret\r\n"
IMAGE = "https://example.com/a.png"
MB = 1024 * 1024


def memory_mb(pid: int, field: str) -> float:
    """``VmHWM`` (peak resident) or ``VmRSS`` (resident now) of a process, in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


class Connection:
    """A raw keep-alive HTTP/1.1 connection that reads answers by their content-length."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def close(self) -> None:
        self.sock.close()

    def answers(self, count: int) -> list[tuple[int, bytes]]:
        """The next ``count`` answers as (status, body); fewer if the server closes."""
        got: list[tuple[int, bytes]] = []
        while len(got) < count:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = self.buffer[:end].split(b"\r\n")
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if len(self.buffer) >= end + 4 + length:
                    got.append((int(head[0].split(b" ")[1]), self.buffer[end + 4:end + 4 + length]))
                    self.buffer = self.buffer[end + 4 + length:]
                    continue
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                break
            self.buffer += chunk
        return got


def request(method: str, path: str, body: bytes = b"", host: bytes = b"127.0.0.1", extra: bytes = b"") -> bytes:
    head = (f"{method} {path} HTTP/1.1\r\n".encode() + b"Host: " + host + b"\r\n" + AUTH + extra
            + (b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body) if body or method == "POST" else b""))
    return head + b"\r\n" + body


def submit_body(image_urls: list[str]) -> bytes:
    return json.dumps({"prompt": "a lighthouse in fog", "image_urls": image_urls, "seed": 7}).encode()


def finish(conn: Connection, request_id: str, deadline_s: float = 300.0) -> str:
    """Poll a request's status until it is COMPLETED (or the deadline); its last status."""
    deadline = time.monotonic() + deadline_s
    state = "?"
    while time.monotonic() < deadline:
        conn.sock.sendall(request("GET", f"/queue/{APP}/requests/{request_id}/status"))
        (status, body), = conn.answers(1)
        state = json.loads(body).get("status", str(status)) if status in (200, 202) else str(status)
        if state == "COMPLETED":
            break
        time.sleep(0.01)
    return state


# -- the attacks: each returns (requests sent, Counter of answer statuses) -----------------------


def big_headers(port: int, count: int, size: int) -> tuple[int, collections.Counter]:
    seen: collections.Counter = collections.Counter()
    value = b"a" * size
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            try:
                sock.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + value + b"\r\n\r\n")
            except OSError:
                pass  # the server answered and closed before all of it was sent
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
        seen[data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "no answer"] += 1
    return count, seen


def status_new_host_each(port: int, count: int) -> tuple[int, collections.Counter]:
    seen: collections.Counter = collections.Counter()
    conn = Connection(port)
    try:
        conn.sock.sendall(request("POST", SUBMIT, submit_body([IMAGE])))
        (status, body), = conn.answers(1)
        request_id = json.loads(body)["request_id"]
        finish(conn, request_id)
        path = f"/queue/{APP}/requests/{request_id}/status"
        batch = 500
        for start in range(0, count, batch):
            n = min(batch, count - start)
            conn.sock.sendall(b"".join(request("GET", path, host=b"h%d.localhost" % (start + i)) for i in range(n)))
            for status, _ in conn.answers(n):
                seen[str(status)] += 1
    finally:
        conn.close()
    return count, seen


def unused_image_url(port: int, count: int, size: int) -> tuple[int, collections.Counter]:
    seen: collections.Counter = collections.Counter()
    body = submit_body([IMAGE, IMAGE, "https://example.com/" + "a" * size])
    conn = Connection(port)
    try:
        for _ in range(count):
            conn.sock.sendall(request("POST", SUBMIT, body))
            for status, _ in conn.answers(1):
                seen[str(status)] += 1
    finally:
        conn.close()
    return count, seen


def percent_encoded_data_uri(port: int, size: int) -> tuple[int, collections.Counter]:
    seen: collections.Counter = collections.Counter()
    conn = Connection(port)
    try:
        conn.sock.sendall(request("POST", SUBMIT, submit_body(["data:image/png," + "%41" * (size // 3)])))
        (status, body), = conn.answers(1)
        seen[str(status)] += 1
        if status == 200:
            request_id = json.loads(body)["request_id"]
            seen["status " + finish(conn, request_id)] += 1
            conn.sock.sendall(request("GET", f"/queue/{APP}/requests/{request_id}"))
            for status, _ in conn.answers(1):
                seen[f"result {status}"] += 1
    finally:
        conn.close()
    return 1, seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes: proves the bench works (CI)")
    args = parser.parse_args()
    if args.smoke:
        attacks = [
            ("1 MB headers", lambda port: big_headers(port, 5, MB)),
            ("status, new Host each", lambda port: status_new_host_each(port, 2_000)),
            ("1 MB unused image URL", lambda port: unused_image_url(port, 3, MB)),
            ("1 MiB %-encoded data URI", lambda port: percent_encoded_data_uri(port, MB)),
        ]
    else:
        attacks = [
            ("10 MB headers", lambda port: big_headers(port, 100, 10 * 10**6)),
            ("status, new Host each", lambda port: status_new_host_each(port, 100_000)),
            ("20 MB unused image URL", lambda port: unused_image_url(port, 50, 20 * 10**6)),
            ("30 MiB %-encoded data URI", lambda port: percent_encoded_data_uri(port, 30 * MB)),
        ]
    rows = []
    for label, attack in attacks:
        with ServerProcess(["--profile", "instant"]) as server:
            pid = server.process.pid
            started = memory_mb(pid, "VmRSS")
            t0 = time.perf_counter()
            sent, seen = attack(server.port)
            elapsed = time.perf_counter() - t0
            rows.append((label, sent, started, memory_mb(pid, "VmHWM"), elapsed, seen))
    print(f"fal-mock memory under attack ({platform.node()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; one fresh `serve --profile instant` per attack)")
    print(f"| {'attack':<26} | {'requests':>9} | {'start RSS MB':>12} | {'peak RSS MB':>11} | {'time s':>7} | answers seen")
    print(f"|{'-' * 28}|{'-' * 11}|{'-' * 14}|{'-' * 13}|{'-' * 9}|{'-' * 14}")
    for label, sent, started, peak, elapsed, seen in rows:
        answers = ", ".join(f"{status}: {n:,}" for status, n in sorted(seen.items()))
        print(f"| {label:<26} | {sent:>9,} | {started:>12.1f} | {peak:>11.1f} | {elapsed:>7.1f} | {answers}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
