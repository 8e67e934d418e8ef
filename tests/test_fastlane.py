"""The server's fast lane (mock_server/server/fastlane.py, deciding in mock_server/protocol/hot.py)
sends the same bytes as the FastAPI face.

One mock is served twice by the same server protocol: with the fast lane on, and with it off
(``lane=False``: every call goes through the FastAPI routes).  Every call goes to both over raw
sockets, with the same Host header, and the answers are compared byte for byte, except
uvicorn's ``date`` header and the fresh request ids a submit mints.
"""
from __future__ import annotations

import base64
import json
import re
import socket

import pytest

from mock_server.server.background import BackgroundServer
from mock_server.emulator import FalMock
from mock_server.settings import Settings

from recording_transport import RecordingTransport

HOST = b"mock.test:8484"
AUTH = b"Key lane:secret"
SUBMIT = b"/queue/fal-ai/wan-25-preview/image-to-image"
BODY = b'{"prompt": "a lighthouse in fog", "image_urls": ["https://example.com/a.png"], "seed": 7}'
_DATE = re.compile(rb"\r\ndate: [^\r]*")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def servers():
    # mock.test is no loopback name: allowed like a user's --allowed-hosts (the DNS-rebinding guard)
    mock = FalMock(Settings(profile="instant", allowed_hosts=("mock.test", "queue.mock.test")))
    lane = BackgroundServer(mock).start()
    plain = BackgroundServer(mock, lane=False).start()
    yield mock, lane, plain
    lane.stop()
    plain.stop()


class Conn:
    """One keep-alive connection that sends raw bytes and reads whole responses."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def response(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head).group(1))
        while len(rest) < length:
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return head + b"\r\n\r\n" + rest[:length]

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed; got so far: {self.buffer!r}"
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def request(method: str, path: bytes, body: bytes = b"", headers: bytes = b"", version: bytes = b"1.1",
            auth: bytes | None = AUTH) -> bytes:
    lines = [method.encode() + b" " + path + b" HTTP/" + version, b"host: " + HOST]
    if auth is not None:
        lines.append(b"authorization: " + auth)
    if body:
        lines += [b"content-type: application/json", b"content-length: %d" % len(body)]
    raw = b"\r\n".join(lines) + b"\r\n" + headers + b"\r\n"
    return raw + body


def normal(response: bytes) -> bytes:
    return _UUID.sub(b"<id>", _DATE.sub(b"", response))


def both(servers, raw: bytes, count: int = 1) -> tuple[list[bytes], list[bytes]]:
    """Send ``raw`` on a new connection to each server; their first ``count`` responses."""
    _, lane, plain = servers
    out = []
    for server in (lane, plain):
        conn = Conn(server.port)
        conn.send(raw)
        out.append([conn.response() for _ in range(count)])
        conn.close()
    return out[0], out[1]


def submit(servers) -> str:
    _, lane, _ = servers
    conn = Conn(lane.port)
    conn.send(request("POST", SUBMIT, BODY))
    response = conn.response()
    conn.close()
    return _UUID.search(response).group(0).decode()


def test_submit_answers_the_same_bytes(servers):
    lane, plain = both(servers, request("POST", SUBMIT, BODY))
    assert lane[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"status":"IN_QUEUE"' in lane[0]
    assert normal(lane[0]) == normal(plain[0])


def test_status_and_result_answer_the_same_bytes(servers):
    rid = submit(servers).encode()
    base = b"/queue/fal-ai/wan-25-preview/requests/" + rid
    for path in (base + b"/status?logs=0", base + b"/status?logs=1", base + b"/status?logs=true",
                 base + b"/status/", base + b"/status?logs=1&extra=x", base + b"?x=1", base,
                 b"/queue/fal-ai/wan-25-preview/image-to-image/requests/" + rid + b"/status",
                 b"/queue/fal-ai/wan-25-preview/requests/00000000-0000-0000-0000-000000000000/status",
                 b"/queue/fal-ai/wan-25-preview/requests/00000000-0000-0000-0000-000000000000",
                 b"/queue/fal-ai/other-app/requests/" + rid + b"/status",
                 b"/queue/fal-ai/wan-25%2Dpreview/requests/" + rid + b"/status"):
        lane, plain = both(servers, request("GET", path))
        assert lane == plain, path
    lane, _ = both(servers, request("GET", base + b"/status?logs=0"))
    assert lane[0].startswith(b"HTTP/1.1 200 OK\r\n") and b'"status":"COMPLETED"' in lane[0]
    lane, _ = both(servers, request("GET", base))
    assert b'"images":[{' in lane[0]


@pytest.mark.parametrize("auth", [None, b"Bearer", b"Key nocolon", b"Token a:b"])
def test_auth_failures_answer_the_same_bytes(servers, auth):
    rid = submit(servers).encode()
    for raw in (request("GET", b"/queue/fal-ai/wan-25-preview/requests/" + rid + b"/status", auth=auth),
                request("POST", SUBMIT, BODY, auth=auth)):
        lane, plain = both(servers, raw)
        assert lane[0].startswith(b"HTTP/1.1 401 ")
        assert normal(lane[0]) == normal(plain[0])


def test_bad_input_submit_and_its_422_result_match(servers):
    for body in (b'{"prompt": 5}', b"not json", b'{"prompt": "x", "image_urls": []}', b""):
        lane, plain = both(servers, request("POST", SUBMIT, body))
        assert normal(lane[0]) == normal(plain[0])
        rid = _UUID.search(lane[0]).group(0)
        path = b"/queue/fal-ai/wan-25-preview/requests/" + rid
        both(servers, request("GET", path + b"/status"))
        lane, plain = both(servers, request("GET", path))
        assert lane[0].startswith(b"HTTP/1.1 422 ")
        assert lane == plain


def test_connection_close_and_http_1_0_end_the_connection_after_the_answer(servers):
    rid = submit(servers).encode()
    path = b"/queue/fal-ai/wan-25-preview/requests/" + rid + b"/status"
    for raw in (request("GET", path, headers=b"connection: close\r\n"), request("GET", path, version=b"1.0")):
        _, lane, plain = servers
        answers = []
        for server in (lane, plain):
            conn = Conn(server.port)
            conn.send(raw)
            answers.append(conn.response())
            assert conn.closed()
            conn.close()
        assert b"\r\nconnection: close\r\n" in answers[0]
        assert normal(answers[0]) == normal(answers[1])


def test_pipelined_requests_are_answered_in_order(servers):
    rid = submit(servers).encode()
    base = b"/queue/fal-ai/wan-25-preview/requests/" + rid
    raw = (request("GET", base + b"/status") + request("GET", b"/_mock/health")
           + request("POST", SUBMIT, BODY) + request("GET", base) + request("GET", base + b"/status?logs=1"))
    lane, plain = both(servers, raw, count=5)
    assert [r.split(b"\r\n", 1)[0] for r in lane] == [b"HTTP/1.1 200 OK"] * 5
    assert b'"status":"ok"' in lane[1]  # /_mock/health: not a lane call
    assert b'"images"' in lane[3] and b'"logs":[' in lane[4]
    del lane[1], plain[1]  # the request counts differ: the other server's submit came between
    assert [normal(r) for r in lane] == [normal(r) for r in plain]


def test_a_large_body_leaves_the_lane_and_still_matches(servers):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 90_000)
    body = b'{"prompt": "big", "image_urls": ["data:image/png;base64,' + png + b'"]}'
    assert len(body) > 64 * 1024
    lane, plain = both(servers, request("POST", SUBMIT, body))
    assert lane[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert normal(lane[0]) == normal(plain[0])


def test_lane_calls_are_journaled_like_asgi_calls(servers):
    mock, lane_server, plain_server = servers
    since = max((e.seq for e in mock.journal.entries()), default=0)
    rid = submit(servers).encode()
    base = b"/queue/fal-ai/wan-25-preview/requests/" + rid
    both(servers, request("GET", base + b"/status?logs=1"))
    both(servers, request("GET", base))
    both(servers, request("POST", SUBMIT, BODY))
    entries = mock.journal.entries(since=since)
    assert [e.kind for e in entries] == ["submit", "status", "status", "result", "result", "submit", "submit"]
    fields = ("method", "path", "query", "kind", "endpoint_id", "status", "body", "body_size", "fault", "proxied")
    for a, b in zip(entries[1::2], entries[2::2]):
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
        assert a.raw_headers == b.raw_headers
    assert entries[1].request_id == entries[2].request_id == rid.decode()
    assert entries[5].body == BODY and entries[5].request_id != entries[6].request_id
    assert [e.seq for e in entries] == list(range(since + 1, since + 8))


def test_the_lane_steps_aside_while_fault_rules_are_armed(servers):
    mock, lane_server, _ = servers
    rid = submit(servers).encode()
    mock.faults.add("status", status=503)
    try:
        conn = Conn(lane_server.port)
        conn.send(request("GET", b"/queue/fal-ai/wan-25-preview/requests/" + rid + b"/status"))
        assert conn.response().startswith(b"HTTP/1.1 503 ")
        conn.send(request("GET", b"/queue/fal-ai/wan-25-preview/requests/" + rid + b"/status"))
        assert conn.response().startswith(b"HTTP/1.1 200 ")
        conn.close()
    finally:
        mock.faults.clear()


def test_the_lane_steps_aside_while_writes_are_paused():
    """A client that does not read its answers: once the transport asks the protocol to
    pause writing, hot calls go through uvicorn's cycle, which waits for the socket to
    drain (and stops reading pipelined requests) instead of buffering answer after answer."""
    import asyncio

    from uvicorn.server import ServerState

    from mock_server.web.app import create_app
    from mock_server.server.fastlane import FastLaneProtocol
    from mock_server.server.serving import uvicorn_config

    async def scenario() -> None:
        mock = FalMock(Settings(profile="instant", allowed_hosts=("mock.test",)))
        app = create_app(mock)
        config = uvicorn_config(app, mock.settings)
        config.load()
        protocol = FastLaneProtocol(config, ServerState(), {})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request("POST", SUBMIT, BODY))
        assert len(transport.written) == 1 and protocol.cycle is None  # answered in the lane
        rid = _UUID.search(transport.written[0]).group(0)
        poll = request("GET", b"/queue/fal-ai/wan-25-preview/requests/" + rid + b"/status")
        protocol.pause_writing()
        protocol.data_received(poll + poll)
        assert len(transport.written) == 1  # nothing answered while writes are paused
        assert protocol.cycle is not None and len(protocol.pipeline) == 1  # uvicorn's cycle holds them
        await asyncio.sleep(0.01)
        assert len(transport.written) == 1  # still waiting for the socket to drain
        protocol.resume_writing()
        for _ in range(100):
            if len(transport.written) >= 5:  # each ASGI answer is two writes (head, body)
                break
            await asyncio.sleep(0.001)
        answers = b"".join(transport.written[1:])
        assert answers.count(b"HTTP/1.1 200 OK") == 2
        protocol.connection_lost(None)

    asyncio.run(scenario())


def test_a_remembered_submit_route_follows_a_change_of_validation_profile():
    """The lane remembers where a submit URL leads; configure() swapping the endpoints for
    another validation profile must reach the very next submit."""
    mock = FalMock(Settings(profile="instant", allowed_hosts=("mock.test",)))
    server = BackgroundServer(mock).start()
    long_prompt = json.dumps({"prompt": "x" * 2001, "image_urls": ["https://example.com/a.png"]}).encode()
    try:
        conn = Conn(server.port)
        for validation, valid in (("documented", False), ("published", True), ("documented", False)):
            mock.configure(validation=validation)
            conn.send(request("POST", SUBMIT, long_prompt))
            rid = _UUID.search(conn.response()).group(0).decode()
            assert mock.queue.get(rid).valid is valid, validation  # published: truncated, accepted
        conn.close()
    finally:
        server.stop()


def test_the_two_servers_differ_only_in_the_lane(servers, request):
    _, lane, plain = servers
    assert lane.config.http is plain.config.http  # the same server protocol: the transport extension is there
    assert plain.app.fast_lane is None
    assert (lane.app.fast_lane is None) == request.config.getoption("--no-lane")


def test_the_queue_host_by_its_host_header_answers_the_same_bytes(servers):
    """``Host: queue.*`` serves the queue without the prefix; a 404 names the path as sent."""
    rid = submit(servers).encode()
    queue_host = b"host: queue.mock.test:8484"
    base = b"/fal-ai/wan-25-preview/requests/" + rid
    for method, path, body in (("POST", b"/fal-ai/wan-25-preview/image-to-image", BODY), ("GET", base + b"/status", b""),
                               ("GET", base, b""), ("GET", base + b"/nope", b""), ("GET", b"/fal-ai/unknown-app", b"")):
        raw = request(method, path, body).replace(b"host: " + HOST, queue_host)
        lane, plain = both(servers, raw)
        assert normal(lane[0]) == normal(plain[0]), path
        if path.endswith(b"/nope"):
            assert b'"detail":"Path ' + base + b'/nope not found"' in lane[0]
        if method == "POST":
            assert b'"status_url":"http://queue.mock.test:8484/fal-ai/wan-25-preview/requests/' in lane[0]
