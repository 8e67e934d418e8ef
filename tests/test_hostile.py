"""Hostile input and abuse, over real HTTP: each case asserts the exact answer, and that a
bystander's request submitted before it still completes with its result intact.

The server runs the real Wan 2.5 endpoint on a frozen clock (profile ``default``): the
bystander sits IN_QUEUE while the abuse happens, then the clock is advanced and its status,
result and output file are checked byte for byte against what the endpoint renders.
"""
from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import threading
import time
import tracemalloc

import httpx
import pytest
from PIL import Image
from sample_images import bomb_png, data_uri, png

from mock_server.endpoints.fal_app import inputs
from mock_server.server.background import BackgroundServer
from mock_server.core.fal_errors import TYPED_ERROR_MESSAGES
from mock_server.endpoints.wan25 import output_file_name
from mock_server.emulator import FalMock
from mock_server.settings import Settings

KEY = {"Authorization": "Key a:b"}
ENDPOINT = "fal-ai/wan-25-preview/image-to-image"
APP = "fal-ai/wan-25-preview"
DOCS = "https://docs.fal.ai/errors#"
BIG_CAP = 32 * 1024 * 1024  # Settings.max_body_bytes default
FETCH_CAP = 10 * 1024 * 1024  # Settings.fetch_max_bytes default


# -- helpers ------------------------------------------------------------------------------


def encoded(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 400), (1, 2, 3)).save(out, fmt)
    return out.getvalue()


SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><rect width="400" height="400"/></svg>'


class Mock:
    """One server on a frozen clock, an httpx client, and a bystander request."""

    def __init__(self, server: BackgroundServer) -> None:
        self.server = server
        self.url = server.url
        self.port = server.port
        self.client = httpx.Client(base_url=server.url, headers=KEY, timeout=10)

    def submit(self, body: dict) -> dict:
        response = self.client.post(f"/queue/{ENDPOINT}", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def advance(self, seconds: float = 60.0) -> None:
        self.server.mock.clock.advance(seconds)

    def result_of(self, body: dict) -> httpx.Response:
        status = self.client.get(body["status_url"])
        assert (status.status_code, status.json()["status"]) == (200, "COMPLETED"), status.text
        return self.client.get(body["response_url"])


class Bystander:
    """A valid request submitted before the abuse; :meth:`check` proves it was not harmed."""

    BODY = {"prompt": "a lighthouse", "image_urls": ["https://example.com/a.png"], "seed": 7}

    def __init__(self, mock: Mock) -> None:
        self.mock = mock
        self.body = mock.submit(self.BODY)
        self.rid = self.body["request_id"]
        queued = mock.client.get(self.body["status_url"])
        assert (queued.status_code, queued.json()["status"]) == (202, "IN_QUEUE")

    def check(self) -> None:
        mock = self.mock
        mock.advance(60)
        result = mock.result_of(self.body)
        assert result.status_code == 200, result.text
        name = output_file_name(self.rid, 0)
        file = mock.client.get(f"/_mock/files/{name}")
        assert (file.status_code, file.headers["content-type"]) == (200, "image/png")
        assert result.json() == {
            "images": [{"url": f"{mock.url}/_mock/files/{name}", "content_type": "image/png", "file_name": name,
                        "file_size": len(file.content), "width": 512, "height": 512}],
            "seeds": [7],
            "actual_prompt": "a lighthouse",
        }
        assert Image.open(io.BytesIO(file.content)).size == (512, 512)
        assert mock.client.get("/_mock/health").status_code == 200


@pytest.fixture
def mock():
    server = BackgroundServer(FalMock(Settings(profile="default", workers=2))).start()
    server.mock.clock.freeze()
    wrapped = Mock(server)
    try:
        yield wrapped
    finally:
        wrapped.client.close()
        server.stop()


@pytest.fixture
def bystander(mock: Mock):
    watcher = Bystander(mock)
    yield watcher
    watcher.check()  # after the hostile case: the earlier request completes intact


def raw(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def split_response(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status_line, headers, body


def typed_error(type_: str, msg: str, index: int, input_: str, ctx: dict | None = None) -> dict:
    item = {"loc": ["body", "image_urls", index], "msg": msg, "type": type_, "url": DOCS + type_}
    if ctx is not None:
        item["ctx"] = ctx
    item["input"] = input_
    return {"detail": [item]}


# -- body and input limits ----------------------------------------------------------------


def test_oversized_body_is_413_in_fals_request_error_shape(mock, bystander):
    with socket.create_connection(("127.0.0.1", mock.port), timeout=10) as conn:
        size = BIG_CAP + 1
        conn.sendall(f"POST /queue/{ENDPOINT} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = b" " * (1024 * 1024)
        sent = 0
        try:  # the server may answer (and stop reading) before the whole body is sent
            while sent < size:
                part = chunk[: min(len(chunk), size - sent)]
                conn.sendall(part)
                sent += len(part)
        except OSError:
            pass
        conn.settimeout(10)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 10:
            more = conn.recv(65536)
            if not more:
                break
            data += more
    status_line, headers, body = split_response(data)
    assert status_line == "HTTP/1.1 413 Request Entity Too Large"
    assert headers["x-fal-error-type"] == "bad_request"
    length = int(headers["content-length"])
    assert json.loads(body[:length]) == {"detail": f"Request body is larger than {BIG_CAP} bytes", "error_type": "bad_request"}
    assert [r["request_id"] for r in mock.client.get("/_mock/queue").json()["requests"]] == [bystander.rid]


def test_oversized_data_uri_is_file_too_large_without_decoding(mock, bystander):
    uri = "data:image/png;base64," + "A" * (FETCH_CAP // 3 * 4 + 8)  # decodes to just over 10 MiB
    body = mock.submit({"prompt": "x", "image_urls": [uri]})
    mock.advance()
    result = mock.result_of(body)
    assert result.status_code == 422
    echo = f"{uri[:inputs.ECHO_KEEP_CHARS]}...({len(uri)} chars)"
    assert result.json() == typed_error("file_too_large", "File too large", 0, echo, {"max_size": FETCH_CAP})


def test_decompression_bomb_png_is_refused_before_any_pixel_is_allocated(mock, bystander):
    bomb = bomb_png(60000, 60000)
    assert len(bomb) < 100
    # in-process: the refusal allocates almost nothing (60000² RGB would be 10.8 GB)
    tracemalloc.start()
    try:
        with pytest.raises(inputs.InputError) as caught:
            inputs._decode(bomb, 0, "u", inputs.InputLimits(), "input 1:")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"
    assert json.loads(caught.value.answer.body)["detail"][0]["type"] == "image_too_large"
    # over HTTP: the exact typed error
    uri = data_uri(bomb)
    body = mock.submit({"prompt": "x", "image_urls": [uri]})
    mock.advance()
    result = mock.result_of(body)
    assert result.status_code == 422
    assert result.json() == typed_error("image_too_large", "Image too large", 0, uri, {"max_height": 5000, "max_width": 5000})


UNSUPPORTED = typed_error("unsupported_image_format", "Unsupported image format. Supported formats are .jpg, .jpeg, .png, .webp, .bmp.",
                          1, "", {"supported_formats": [".jpg", ".jpeg", ".png", ".webp", ".bmp"]})


@pytest.mark.parametrize("kind,payload,mime", [
    ("gif", lambda: encoded("GIF"), "image/gif"),
    ("tiff", lambda: encoded("TIFF"), "image/tiff"),
    ("svg", lambda: SVG, "image/svg+xml"),
    ("ico", lambda: encoded("ICO"), "image/x-icon"),
])
def test_images_outside_png_jpeg_webp_bmp_are_unsupported_image_format(mock, bystander, kind, payload, mime):
    good = data_uri(png())
    bad = data_uri(payload(), mime)
    body = mock.submit({"prompt": "x", "image_urls": [good, bad]})
    mock.advance()
    result = mock.result_of(body)
    expected = json.loads(json.dumps(UNSUPPORTED))
    expected["detail"][0]["input"] = bad if len(bad) <= inputs.ECHO_MAX_CHARS else f"{bad[:inputs.ECHO_KEEP_CHARS]}...({len(bad)} chars)"
    assert (result.status_code, result.json()) == (422, expected)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_the_four_supported_formats_are_read(mock, bystander, fmt):
    body = mock.submit({"prompt": "x", "image_urls": [data_uri(encoded(fmt))], "seed": 1})
    mock.advance()
    result = mock.result_of(body)
    assert result.status_code == 200 and result.json()["seeds"] == [1]


def test_bytes_that_are_no_image_are_image_load_error(mock, bystander):
    uri = data_uri(b"hello, not an image at all", "text/plain")
    body = mock.submit({"prompt": "x", "image_urls": [uri]})
    mock.advance()
    result = mock.result_of(body)
    assert (result.status_code, result.json()) == (422, typed_error("image_load_error", TYPED_ERROR_MESSAGES["image_load_error"], 0, uri))


# -- file routes ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw_path,detail", [
    ("/_mock/files/..%2f..%2f..%2fetc%2fpasswd", "Path /_mock/files/../../../etc/passwd not found"),
    ("/_mock/files/%2e%2e/%2e%2e/etc/passwd", "Path /_mock/files/../../etc/passwd not found"),
    ("/_mock/files/../../etc/passwd", "Path /_mock/files/../../etc/passwd not found"),
    ("/_mock/files/%2e%2e", "Path /_mock/files/.. not found"),
    ("/_mock/files/.hidden", "Path /_mock/files/.hidden not found"),
    ("/_mock/files//etc/passwd", "Path /_mock/files//etc/passwd not found"),
    ("/_mock/files/%2Fetc%2Fpasswd", "Path /_mock/files//etc/passwd not found"),
    ("/_mock/files/", "Path /_mock/files/ not found"),
    ("/_mock/files/a%00b.png", "File not found"),
    ("/_mock/files/%252e%252e%252fetc%252fpasswd", "File not found"),
    ("/_mock/files/..\\..\\etc\\passwd", "Path /_mock/files/..\\..\\etc\\passwd not found"),
    ("/_mock/files/x..\\..\\etc\\passwd", "File not found"),
    ("/_mock/files/passwd", "File not found"),
])
def test_path_traversal_on_file_routes_is_404_json(mock, bystander, raw_path, detail):
    data = raw(mock.port, f"GET {raw_path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    status_line, headers, body = split_response(data)
    assert status_line == "HTTP/1.1 404 Not Found"
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": detail}
    assert b"root:" not in data


def test_nul_byte_in_a_raw_path_is_refused_by_the_parser(mock, bystander):
    data = raw(mock.port, b"GET /_mock/files/\x00 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and data.endswith(b"Invalid HTTP request received.")


# -- header, query, method and protocol abuse --------------------------------------------------


def test_huge_header_values_and_thousands_of_headers_do_not_hurt_the_server(mock, bystander):
    request = b"GET /_mock/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    # a head above 64 KiB is refused (issue 20; tests/test_connection_limits.py), the server unhurt
    big = raw(mock.port, request + b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n\r\n")
    assert big.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    many = raw(mock.port, request + b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n")
    assert many.startswith(b"HTTP/1.1 200 OK\r\n") and many.endswith(b'{"status":"ok","requests":1,"preloaded":false}')
    # a huge Authorization header is just a wrong key format
    response = mock.client.get(bystander.body["status_url"], headers={"Authorization": "Key " + "a" * 60_000})
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid Key Authorization header format. Expected '<key_id>:<key_secret>'."})
    assert mock.client.get(bystander.body["status_url"]).status_code == 202


def test_query_abuse_is_answered_normally(mock, bystander):
    body = mock.submit({"prompt": "q", "image_urls": ["https://example.com/a.png"]})
    mock.advance()
    status = body["status_url"]

    def logs(query: str):
        response = mock.client.get(f"{status}?{query}")
        assert response.status_code == 200, response.text
        return response.json()["logs"]

    assert logs("logs=garbage") is None
    assert logs("logs=%ff%fe%00") is None
    assert logs("logs=1&logs=0") is None  # the last value wins
    assert isinstance(logs("logs=0&logs=1"), list)
    assert isinstance(logs("x=" + "y" * 10_000 + "&logs=1"), list)
    assert logs("&&&==&=&logs") is None
    # a 100k-character request line is past the 64 KiB head limit (issue 20): 431
    data = raw(mock.port, f"GET {status[len(mock.url):]}?{'a' * 100_000} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


@pytest.mark.parametrize("method,path,expect", [
    ("BREW", "/_mock/health", (400, None)),
    ("FOO", f"/queue/{ENDPOINT}", (400, None)),
    ("PATCH", f"/queue/{ENDPOINT}", (405, {"detail": "Method Not Allowed"})),
    ("PROPFIND", f"/queue/{APP}/requests/x/status", (405, {"detail": "Method Not Allowed"})),
    ("DELETE", f"/queue/{APP}/requests/x/cancel", (405, {"detail": "Method Not Allowed"})),
    ("TRACE", f"/{ENDPOINT}", (405, {"detail": "Method Not Allowed"})),
])
def test_unknown_methods(mock, bystander, method, path, expect):
    data = raw(mock.port, f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\nConnection: close\r\n\r\n".encode())
    status_line, headers, body = split_response(data)
    status, payload = expect
    assert status_line.split(" ", 2)[1] == str(status)
    if payload is None:  # methods httptools does not know never reach the app
        assert (headers["content-type"], body) == ("text/plain; charset=utf-8", b"Invalid HTTP request received.")
    else:
        assert json.loads(body) == payload


def test_http_1_0_without_host_is_answered_and_closed(mock, bystander):
    path = bystander.body["status_url"][len(mock.url):]
    data = raw(mock.port, f"GET {path} HTTP/1.0\r\nAuthorization: Key a:b\r\n\r\n".encode())
    status_line, headers, body = split_response(data)
    assert status_line == "HTTP/1.1 202 Accepted" and headers["connection"] == "close"
    base = f"http://127.0.0.1:{mock.port}/queue/{APP}/requests/{bystander.rid}"
    assert json.loads(body) == {"status": "IN_QUEUE", "request_id": bystander.rid, "response_url": base,
                                "status_url": base + "/status", "cancel_url": base + "/cancel",
                                "logs": None, "metrics": {}, "queue_position": 0}


def test_pipelined_requests_are_answered_in_order(mock, bystander):
    path = bystander.body["status_url"][len(mock.url):]
    one = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\n\r\n"
    health = "GET /_mock/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
    result = f"GET {path[:-len('/status')]} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\nConnection: close\r\n\r\n"
    data = raw(mock.port, (one + health + result).encode())
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", data)
    assert statuses == [b"202", b"200", b"400"]
    assert b'"queue_position":0' in data and b'{"status":"ok","requests":1,"preloaded":false}' in data
    # the still-in-progress body, keys in fal's alphabetical order: status_url last
    assert data.endswith(b'"status_url":"http://localhost/queue/' + f"{APP}/requests/{bystander.rid}/status".encode() + b'"}')
    assert b'"detail":"Request is still in progress"' in data


def test_a_client_sending_headers_byte_by_byte_does_not_stall_others(mock, bystander):
    path = bystander.body["status_url"][len(mock.url):]
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\nConnection: close\r\n\r\n".encode()
    answer: dict[str, bytes] = {}
    started = threading.Event()

    def slow() -> None:
        with socket.create_connection(("127.0.0.1", mock.port), timeout=10) as conn:
            for i in range(len(request)):
                conn.sendall(request[i:i + 1])
                started.set()
                time.sleep(0.01)  # ~170 bytes: ~1.7 s in all
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            answer["data"] = b"".join(chunks)

    thread = threading.Thread(target=slow)
    thread.start()
    assert started.wait(5)
    slowest = 0.0
    served = 0
    while thread.is_alive() and served < 500:
        t0 = time.perf_counter()
        assert mock.client.get(bystander.body["status_url"]).status_code == 202
        slowest = max(slowest, time.perf_counter() - t0)
        served += 1
    thread.join(10)
    assert served >= 20, served
    assert slowest < 0.5, f"a status call took {slowest:.3f} s while a slow client was sending"
    status_line, _, body = split_response(answer["data"])
    assert status_line == "HTTP/1.1 202 Accepted" and json.loads(body)["request_id"] == bystander.rid


# -- many open status streams ------------------------------------------------------------------

STREAMS = 1000


async def _open_stream(port: int, path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Key a:b\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = b""
    while b"\n\n" not in data.partition(b"\r\n\r\n")[2]:
        more = await reader.read(4096)
        if not more:
            break
        data += more
    return reader, writer, data


_EVENT = re.compile(rb"data: (\{.*?\})\n\n")


def test_a_thousand_open_sse_streams_leave_the_server_responsive(mock, bystander):
    submitted = [mock.submit({"prompt": f"s{i}", "image_urls": ["https://example.com/a.png"]}) for i in range(10)]
    paths = [body["status_url"][len(mock.url):] + "/stream" for body in submitted]

    async def scenario() -> dict:
        figures: dict = {}
        t0 = time.perf_counter()
        gate = asyncio.Semaphore(200)

        async def opened(i: int):
            async with gate:
                return await asyncio.wait_for(_open_stream(mock.port, paths[i % len(paths)]), 10)

        streams = await asyncio.gather(*(opened(i) for i in range(STREAMS)))
        figures["open_s"] = time.perf_counter() - t0
        for i, (_, _, data) in enumerate(streams):
            assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data[:200]
            first = json.loads(_EVENT.search(data).group(1))
            assert first["status"] == "IN_QUEUE" and first["request_id"] == submitted[i % 10]["request_id"]
        # with 1,000 streams open, other clients are served at once
        async with httpx.AsyncClient(base_url=mock.url, headers=KEY, timeout=5) as client:
            latencies = []
            for _ in range(20):
                t1 = time.perf_counter()
                response = await client.get(bystander.body["status_url"])
                latencies.append(time.perf_counter() - t1)
                assert response.status_code == 202
            t1 = time.perf_counter()
            extra = await client.post(f"/queue/{ENDPOINT}", json=Bystander.BODY)
            latencies.append(time.perf_counter() - t1)
            assert extra.status_code == 200
        figures["max_latency_s"] = max(latencies)
        # half the clients hang up; the clock moves; the other half see COMPLETED, then EOF
        for _, writer, _ in streams[::2]:
            writer.close()
        mock.advance(600)

        async def finish(reader: asyncio.StreamReader, head: bytes) -> dict:
            rest = await reader.read()  # until the server closes
            events = _EVENT.findall(head + rest)
            return json.loads(events[-1])

        t2 = time.perf_counter()
        last = await asyncio.wait_for(asyncio.gather(*(finish(r, d) for r, _, d in streams[1::2])), 15)
        figures["complete_s"] = time.perf_counter() - t2
        assert [event["status"] for event in last] == ["COMPLETED"] * (STREAMS // 2)
        for _, writer, _ in streams[1::2]:
            writer.close()
        return figures

    t0 = time.perf_counter()
    figures = asyncio.run(scenario())
    assert time.perf_counter() - t0 < 20
    assert figures["max_latency_s"] < 1.0, figures
    print(f"\n{STREAMS} SSE streams: opened in {figures['open_s']:.2f} s, other calls' worst latency "
          f"{figures['max_latency_s'] * 1000:.1f} ms, {STREAMS // 2} streams completed in {figures['complete_s']:.2f} s")
    for body in submitted:
        assert mock.result_of(body).status_code == 200


# -- races -------------------------------------------------------------------------------------

_ALLOWED = {
    "cancel": {(202, "CANCELLATION_REQUESTED"), (400, "ALREADY_COMPLETED")},
    "status": {(202, "IN_QUEUE"), (202, "IN_PROGRESS"), (200, "COMPLETED")},
    "result": {(400, "Request is still in progress"), (499, "Request cancelled by the client.")},
}
_ORDER = {"IN_QUEUE": 0, "IN_PROGRESS": 1, "COMPLETED": 2}


@pytest.mark.parametrize("started", [False, True], ids=["queued", "in_progress"])
def test_concurrent_cancel_result_status_on_one_request(mock, bystander, started):
    body = mock.submit({"prompt": "race", "image_urls": ["https://example.com/a.png"]})
    rid = body["request_id"]
    if started:
        mock.advance(0.5)  # default profile: 0.5 s in queue, then a free worker takes it
        assert mock.client.get(body["status_url"]).json()["status"] == "IN_PROGRESS"

    async def scenario():
        async with httpx.AsyncClient(headers=KEY, timeout=10, limits=httpx.Limits(max_connections=60)) as client:
            async def one(kind: str, i: int):
                seen = []
                for _ in range(5):
                    if kind == "cancel":
                        r = await client.put(body["cancel_url"])
                        seen.append((r.status_code, r.json()["status"]))
                    elif kind == "status":
                        r = await client.get(body["status_url"])
                        seen.append((r.status_code, r.json()["status"]))
                    else:
                        r = await client.get(body["response_url"])
                        seen.append((r.status_code, r.json()["detail"]))
                return kind, seen

            return await asyncio.gather(*(one(kind, i) for i in range(20) for kind in ("cancel", "status", "result")))

    outcomes = asyncio.run(scenario())
    accepted = 0
    for kind, seen in outcomes:
        assert set(seen) <= _ALLOWED[kind], (kind, seen)
        if kind == "cancel":
            accepted += seen.count((202, "CANCELLATION_REQUESTED"))
        if kind == "status":
            ranks = [_ORDER[s] for _, s in seen]
            assert ranks == sorted(ranks), f"status went backwards: {seen}"
    assert accepted == 1, "exactly one cancel wins"
    final = mock.client.get(f"/_mock/queue/{rid}").json()
    assert (final["status"], final["cancelled"]) == ("COMPLETED", True)
    result = mock.client.get(body["response_url"])
    assert (result.status_code, result.json()) == (499, {"detail": "Request cancelled by the client."})
    again = mock.client.put(body["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"detail": "Request is already completed", "status": "ALREADY_COMPLETED"})


def test_concurrent_result_reads_of_one_completed_request_agree_byte_for_byte(mock, bystander):
    body = mock.submit({"prompt": "many readers", "image_urls": ["https://example.com/a.png"], "seed": 3, "num_images": 2})
    mock.advance(60)

    async def scenario():
        async with httpx.AsyncClient(headers=KEY, timeout=10) as client:
            responses = await asyncio.gather(*(client.get(body["response_url"]) for _ in range(50)),
                                             *(client.put(body["cancel_url"]) for _ in range(10)))
            return responses

    responses = asyncio.run(scenario())
    results, cancels = responses[:50], responses[50:]
    assert {r.status_code for r in results} == {200}
    assert len({r.content for r in results}) == 1
    assert results[0].json()["seeds"] == [3, 4]
    assert {(r.status_code, r.json()["status"]) for r in cancels} == {(400, "ALREADY_COMPLETED")}
