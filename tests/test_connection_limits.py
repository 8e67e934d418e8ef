"""What one connection may hold (issue 20, points 2 and 9), on a real server and real sockets.

- a request head (request line + headers) above 64 KiB is answered 431 in fal's error shape
  and the connection is closed, without the server reading (or the parser buffering) more
  than the limit of it;
- a connection that sends no complete request head within ``Settings.request_head_timeout``
  (from its opening, or from its last answer) is closed: silent sockets, a slow-loris that
  drips header bytes, a keep-alive connection that starts a next request and stalls;
  a request whose head is complete is never cut by that timer (a slow body, a long answer).

Waits poll with deadlines; nothing sleeps and hopes.
"""
from __future__ import annotations

import json
import select
import socket
import time

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.server.fastlane import HEAD_MAX
from mock_server.settings import Settings
from recording_transport import RecordingTransport

TIMEOUT = 0.3  # the servers' request_head_timeout here
HEALTH = b"GET /_mock/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
SUBMIT = b"/queue/fal-ai/wan-25-preview/image-to-image"
BODY = b'{"prompt": "a lighthouse in fog", "image_urls": ["https://example.com/a.png"], "seed": 7}'


@pytest.fixture(scope="module")
def server():
    server = BackgroundServer(FalMock(Settings(profile="instant", request_head_timeout=TIMEOUT))).start()
    yield server
    server.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_within(conn: socket.socket, seconds: float) -> bytes | None:
    """What the server sent until it closed the connection, or None if still open after ``seconds``."""
    deadline = time.monotonic() + seconds
    chunks = []
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([conn], [], [], left)
        if not readable:
            break
        try:
            chunk = conn.recv(65536)
        except ConnectionResetError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    return None


class Answers:
    """Whole answers (with a content-length), one by one, from a keep-alive connection;
    what arrives beyond one answer is kept for the next."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buffer = b""

    def _more(self) -> None:
        chunk = self.conn.recv(65536)
        if not chunk:
            pytest.fail(f"closed mid-answer: {self.buffer[:200]!r}")
        self.buffer += chunk

    def next(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._more()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        while len(rest) < length:
            self._more()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]


# -- 431 -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [HEAD_MAX + 1, 1024 * 1024, 10 * 1024 * 1024])
def test_a_head_above_64_kib_is_answered_431_and_the_connection_closed(server, size):
    filler = size - len(HEALTH) - len(b"X-Big: \r\n\r\n")
    with connect(server) as conn:
        conn.sendall(HEALTH + b"X-Big: " + b"a" * filler + b"\r\n\r\n")
        data = closed_within(conn, 5)
    assert data is not None, "the connection stayed open"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert {b"content-type: application/json", b"connection: close"} <= set(lines)
    assert json.loads(body) == {"detail": "Request header fields too large: the request line and "
                                          "headers must fit in 65536 bytes"}
    assert httpx.get(server.url + "/_mock/health").status_code == 200


def test_a_head_of_exactly_64_kib_is_served(server):
    end = b"Connection: close\r\n\r\n"
    filler = HEAD_MAX - len(HEALTH) - len(b"X-Big: \r\n") - len(end)
    request = HEALTH + b"X-Big: " + b"a" * filler + b"\r\n" + end
    assert len(request) == HEAD_MAX
    with connect(server) as conn:
        conn.sendall(request)
        data = closed_within(conn, 5)
    assert data is not None and data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_long_url_counts_toward_the_limit(server):
    with connect(server) as conn:
        conn.sendall(b"GET /_mock/health?" + b"q" * HEAD_MAX + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = closed_within(conn, 5)
    assert data is not None and data.startswith(b"HTTP/1.1 431 ")


def test_bodies_and_pipelined_requests_do_not_count_toward_the_limit(server):
    """Only the head is counted: a 200 KiB body read with its head in one go, and 2,000
    small pipelined requests (far above 64 KiB together) are all answered."""
    big = json.dumps({"prompt": "p" * 200_000, "image_urls": ["https://example.com/a.png"]}).encode()
    post = (b"POST " + SUBMIT + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big)) + big
    with connect(server) as conn:
        answers = Answers(conn)
        conn.sendall(post)
        assert answers.next().startswith(b"HTTP/1.1 200 OK\r\n")  # queued (checked when it runs)
        conn.sendall((HEALTH + b"\r\n") * 2000)
        for _ in range(2000):
            assert answers.next().startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_parser_never_buffers_more_than_the_limit_of_one_head():
    """httptools keeps a header value whole until it ends: fed 10 MiB of one value in the
    protocol, Python's allocations stay far below it (without the limit they reach 20 MiB)."""
    import asyncio
    import tracemalloc

    from uvicorn.server import ServerState

    from mock_server.server.fastlane import FastLaneProtocol
    from mock_server.server.serving import uvicorn_config
    from mock_server.web.app import create_app

    async def scenario() -> None:
        mock = FalMock(Settings(profile="instant"))
        config = uvicorn_config(create_app(mock), mock.settings)
        config.load()
        protocol = FastLaneProtocol(config, ServerState(), {})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        chunk = b"a" * 65536
        tracemalloc.start()
        try:
            protocol.data_received(HEALTH + b"X-Big: ")
            for _ in range(160):
                if transport.closed:
                    break
                protocol.data_received(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert transport.closed and transport.written[0].startswith(b"HTTP/1.1 431 ")
        assert peak < 1024 * 1024, peak
        protocol.connection_lost(None)
        mock.close()

    asyncio.run(scenario())


# -- the request-head timeout ------------------------------------------------------------------------


def test_silent_sockets_are_closed_while_others_are_served(server):
    idle = [connect(server) for _ in range(50)]
    opened = time.monotonic()
    try:
        with httpx.Client(base_url=server.url) as client:  # served meanwhile, on one connection
            for _ in range(20):
                assert client.get("/_mock/health").status_code == 200
        for conn in idle:
            assert closed_within(conn, 5) == b""  # closed without a word
        assert time.monotonic() - opened >= TIMEOUT * 0.9  # not before the timeout
    finally:
        for conn in idle:
            conn.close()


def test_a_slow_loris_dripping_header_bytes_is_closed():
    server = BackgroundServer(FalMock(Settings(profile="instant", request_head_timeout=0.5))).start()
    try:
        with connect(server) as conn:
            conn.sendall(HEALTH)
            start = time.monotonic()
            closed = None
            while time.monotonic() - start < 5:
                try:
                    conn.sendall(b"X-A: b\r\n")  # a header line every 20 ms, never the blank line
                except OSError:
                    closed = b""
                    break
                closed = closed_within(conn, 0.02)
                if closed is not None:
                    break
            elapsed = time.monotonic() - start
        assert closed == b"", closed
        assert 0.45 <= elapsed < 2, elapsed
    finally:
        server.stop()


@pytest.mark.parametrize("first", ["lane", "asgi"])
def test_the_timer_restarts_after_each_answer(server, first):
    """A keep-alive connection that was answered (by the fast lane or by the ASGI app) and
    then sends only part of its next head is closed too; a full next request in time is
    answered (uvicorn's own keep-alive timer stops at the first byte received)."""
    if first == "lane":
        request = (b"POST " + SUBMIT + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY)) + BODY
    else:
        request = HEALTH + b"\r\n"
    with connect(server) as conn:
        answers = Answers(conn)
        for _ in range(3):
            conn.sendall(request)
            assert answers.next().split(b" ")[1] in (b"200", b"202")
        conn.sendall(b"GET /_mock/health HTTP/1.1\r\nHo")
        assert closed_within(conn, 5) == b""


def test_a_request_whose_head_is_complete_is_not_cut(server):
    """The timer covers heads only: a body sent slowly over several timeouts is read and answered."""
    body = json.dumps({"prompt": "slow body", "image_urls": ["https://example.com/a.png"]}).encode()
    with connect(server) as conn:
        conn.sendall(b"POST " + SUBMIT + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body))
        pieces = [body[i:i + 8] for i in range(0, len(body), 8)]
        step = TIMEOUT * 4 / len(pieces)
        for piece in pieces:
            assert closed_within(conn, step) is None  # still open; the wait paces the body
            conn.sendall(piece)
        assert Answers(conn).next().startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_timeout_is_a_setting():
    assert Settings().request_head_timeout == 10.0


# -- descriptors running out -------------------------------------------------------------------------

_LOW_FD_SERVER = """
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings
server = BackgroundServer(FalMock(Settings(profile="instant", request_head_timeout=0.5))).start()
print(server.port, flush=True)
sys.stdin.read()
"""


def test_a_server_out_of_descriptors_keeps_running_and_serves_again():
    """At a 128-descriptor limit, 300 silent sockets exhaust the server's descriptors (the
    red-team run: ~1,000 at ``ulimit -n 1024`` locked every client out).  Accept errors
    (EMFILE) do not stop the server, and once the silent sockets time out a client is served."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", _LOW_FD_SERVER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    idle: list[socket.socket] = []
    try:
        port = int(process.stdout.readline())
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        deadline = time.monotonic() + 10
        status = None
        while status is None and time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/_mock/health", timeout=1).status_code
            except httpx.TransportError:  # accepted and dropped while no descriptor is free
                assert process.poll() is None, process.stderr.read().decode()
        assert status == 200
        assert process.poll() is None
    finally:
        for conn in idle:
            conn.close()
        process.kill()
        process.wait()
