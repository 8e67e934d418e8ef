"""One budget for everything upload-related (issue 20.8): stored uploads, unfinished
multipart parts and the bodies being received count together against the FileStore's
``upload_bytes`` (512 MiB; 1 MB here), and a body that would pass it is fal's 413."""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.server.background import BackgroundServer
from mock_server.settings import Settings

KEY = {"Authorization": "Key a:b"}
BUDGET = 1_000_000


@pytest.fixture
def server():
    mock = FalMock(Settings(profile="instant"))
    mock.files.upload_bytes = BUDGET
    with BackgroundServer(mock) as background:
        yield background


def signed(server: BackgroundServer, name: str = "a.bin") -> dict:
    started = httpx.post(f"{server.url}/_mock/rest/storage/upload/initiate",
                         json={"file_name": name, "content_type": "application/octet-stream"}, headers=KEY)
    return started.json()


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_bodies_in_flight_count_against_the_budget(server):
    uploads = server.mock.uploads
    first = signed(server, "first.bin")
    target = urlsplit(first["upload_url"])
    with socket.create_connection((target.hostname, target.port), timeout=10) as slow:
        slow.sendall(f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 700000\r\n"
                     "Connection: close\r\n\r\n".encode() + b"a" * 600_000)
        wait_until(lambda: uploads.in_flight >= 600_000)
        # 600 kB still arriving + 500 kB more would pass 1 MB: fal's 413, nothing kept
        second = signed(server, "second.bin")
        refused = httpx.put(second["upload_url"], content=b"b" * 500_000)
        assert refused.status_code == 413 and refused.json()["error_type"] == "bad_request", refused.text
        assert uploads.kept_bytes <= BUDGET
        slow.sendall(b"a" * 100_000)
        answer = b""
        while chunk := slow.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert uploads.in_flight == 0 and uploads.kept_bytes == 700_000
    # now there is room again: the oldest stored upload makes way for the new one
    assert httpx.put(second["upload_url"], content=b"b" * 500_000).status_code == 200
    assert uploads.kept_bytes <= BUDGET and httpx.get(first["file_url"]).status_code == 404
    assert httpx.get(second["file_url"]).content == b"b" * 500_000


def test_a_body_larger_than_the_budget_is_refused_before_it_is_read(server):
    too_big = httpx.put(signed(server)["upload_url"], content=b"x" * (BUDGET + 1))
    assert too_big.status_code == 413 and str(BUDGET) in too_big.json()["detail"]
    assert server.mock.uploads.kept_bytes == 0


def test_stored_unfinished_and_arriving_bytes_stay_within_the_budget(server):
    uploads = server.mock.uploads
    token = httpx.post(f"{server.url}/_mock/rest/storage/auth/token?storage_type=fal-cdn-v3", headers=KEY).json()
    cdn = {"Authorization": f"Bearer {token['token']}"}
    for round_ in range(4):
        assert httpx.post(f"{server.url}/_mock/cdn/files/upload", content=b"c" * 300_000, headers=cdn).status_code == 200
        assert httpx.put(signed(server)["upload_url"], content=b"s" * 300_000).status_code == 200
        started = httpx.post(f"{server.url}/_mock/cdn/files/upload/multipart", headers=cdn).json()
        part = f"{started['access_url']}/multipart/{started['uploadId']}"
        assert httpx.put(f"{part}/1", content=b"m" * 250_000).status_code == 200
        assert httpx.put(f"{part}/2", content=b"m" * 250_000).status_code == 200
        assert uploads.kept_bytes <= BUDGET, round_
        done = httpx.post(f"{part}/complete", json={"parts": [{"partNumber": 1}, {"partNumber": 2}]})
        assert done.status_code == 200 and uploads.kept_bytes <= BUDGET
        assert httpx.get(done.json()["access_url"]).content == b"m" * 500_000
