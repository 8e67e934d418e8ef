"""``--state-dir DIR`` (or ``--persist``): requests, results, cancels and uploads survive a restart (issue 6, item 2)."""
from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from mock_server.emulator import FalMock
from mock_server.features.persistence import FLUSH_INTERVAL
from mock_server.features.state_folder import DB_NAME, StateDirBusy
from mock_server.settings import Settings
from server_process import ServerProcess, ServerStartError

APP = "fal-ai/wan-25-preview"
ENDPOINT = f"{APP}/image-to-image"
AUTH = {"Authorization": "Key fal-mock:secret"}
BODY = {"prompt": "a lighthouse in a storm", "image_urls": ["https://example.com/a.png"]}


def submit(client: httpx.Client, body: dict = BODY) -> str:
    response = client.post(f"/queue/{ENDPOINT}", json=body)
    assert response.status_code == 200, response.text
    return response.json()["request_id"]


def status(client: httpx.Client, rid: str) -> dict:
    return client.get(f"/queue/{APP}/requests/{rid}/status").json()


def wait_completed(client: httpx.Client, rid: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = status(client, rid)
        if body["status"] == "COMPLETED":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.02)


def upload(client: httpx.Client, data: bytes, name: str = "input.png", content_type: str = "image/png") -> str:
    initiated = client.post("/_mock/rest/storage/upload/initiate?storage_type=gcs",
                            json={"file_name": name, "content_type": content_type})
    assert initiated.status_code == 200, initiated.text
    put = httpx.put(initiated.json()["upload_url"], content=data, headers={"Content-Type": content_type})
    assert put.status_code == 200, put.text
    return initiated.json()["file_url"]


def client_for(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=AUTH, timeout=10.0, trust_env=False)


def test_restart_loses_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    flags = ["--profile", "default", "--speed", "20", "--workers", "1", "--state-dir", str(state), "--persist"]
    first = ServerProcess(flags)
    first.start()
    port = str(first.port)
    with client_for(first) as client:
        done = submit(client, {**BODY, "num_images": 2})
        wait_completed(client, done)
        result = client.get(f"/queue/{APP}/requests/{done}")
        assert result.status_code == 200
        images = [client.get(image["url"]).content for image in result.json()["images"]]
        uploaded = upload(client, b"\x89PNG not really an image", "notes.png")
        queued = [submit(client) for _ in range(4)]  # one runner: these wait their turn
        cancelled = queued.pop()
        assert client.put(f"/queue/{APP}/requests/{cancelled}/cancel").status_code == 202
        assert status(client, queued[-1])["status"] == "IN_QUEUE"
    assert first.stop() == 0
    assert (state / DB_NAME).exists()

    with ServerProcess(flags + ["--port", port]) as second, client_for(second) as client:
        # the finished request: same status, same result bytes, same image bytes (drawn again)
        assert wait_completed(client, done)["request_id"] == done
        again = client.get(f"/queue/{APP}/requests/{done}")
        assert again.status_code == 200
        assert again.content == result.content
        assert [client.get(image["url"]).content for image in again.json()["images"]] == images
        # requests queued before the restart run after it
        for rid in queued:
            wait_completed(client, rid)
            answer = client.get(f"/queue/{APP}/requests/{rid}")
            assert answer.status_code == 200, answer.text
            assert len(answer.json()["images"]) == 1
        # the cancel holds
        assert status(client, cancelled)["status"] == "COMPLETED"
        assert client.get(f"/queue/{APP}/requests/{cancelled}").status_code == 499
        assert client.put(f"/queue/{APP}/requests/{cancelled}/cancel").status_code == 400
        # the upload is served with its bytes and type
        served = client.get(uploaded)
        assert served.status_code == 200
        assert served.content == b"\x89PNG not really an image"
        assert served.headers["content-type"] == "image/png"
        # an unknown id is still unknown
        assert client.get(f"/queue/{APP}/requests/nope/status").status_code == 404
    assert second.returncode == 0


def test_validation_rejections_and_faults_survive(tmp_path: Path) -> None:
    flags = ["--profile", "instant", "--state-dir", str(tmp_path), "--persist"]
    with ServerProcess(flags) as first, client_for(first) as client:
        bad = submit(client, {"prompt": ""})
        client.post("/_mock/faults?namespace=*", json={"on": "submit", "kind": "runner_error", "error_type": "request_timeout"})
        failed = submit(client)
        rejected = client.get(f"/queue/{APP}/requests/{bad}")
        failed_status = wait_completed(client, failed)
        failed_result = client.get(f"/queue/{APP}/requests/{failed}")
        port = str(first.port)
    with ServerProcess(flags + ["--port", port]) as second, client_for(second) as client:
        again = client.get(f"/queue/{APP}/requests/{bad}")
        assert (again.status_code, again.content) == (422, rejected.content)
        assert wait_completed(client, failed) == failed_status
        assert client.get(f"/queue/{APP}/requests/{failed}").content == failed_result.content


def test_crash_loses_at_most_the_last_batch(tmp_path: Path) -> None:
    flags = ["--profile", "instant", "--state-dir", str(tmp_path), "--persist"]
    server = ServerProcess(flags)
    server.start()
    with client_for(server) as client:
        ids = [submit(client) for _ in range(20)]
    time.sleep(FLUSH_INTERVAL * 4)  # a batch window and its commit
    server.process.send_signal(signal.SIGKILL)
    server.stop()
    with ServerProcess(flags) as again, client_for(again) as client:
        for rid in ids:
            assert status(client, rid)["status"] == "COMPLETED"


def test_second_server_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    flags = ["--profile", "instant", "--state-dir", str(tmp_path), "--persist"]
    with ServerProcess(flags):
        second = ServerProcess(flags)
        with pytest.raises(ServerStartError) as caught:
            second.start()
        assert "in use by another fal-mock" in str(caught.value)
        assert second.returncode == 1


def test_without_state_dir_nothing_is_written(tmp_path: Path) -> None:
    home, state = tmp_path / "home", tmp_path / "state"
    home.mkdir()
    env = {"HOME": str(home), "FAL_MOCK_STATE_DIR": str(state), "XDG_STATE_HOME": None}
    with ServerProcess(["--profile", "instant"], env=env) as server, client_for(server) as client:
        rid = submit(client)
        wait_completed(client, rid)
        assert client.get(f"/queue/{APP}/requests/{rid}").status_code == 200
        assert client.get(upload(client, b"bytes", "a.bin", "application/octet-stream")).content == b"bytes"
    assert not state.exists()
    assert list(home.iterdir()) == []


def _rows(directory: Path) -> int:
    with sqlite3.connect(directory / DB_NAME) as db:
        return db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]


def test_max_requests_bounds_the_database(tmp_path: Path) -> None:
    mock = FalMock(Settings(profile="instant", max_requests=5, persist=True, state_dir=tmp_path))
    endpoint = mock.endpoint(ENDPOINT)
    for _ in range(20):
        mock.queue.submit(endpoint, endpoint.parse(json.dumps(BODY).encode()))
    mock.queue.advance()
    kept = {request.request_id for request in mock.queue}
    mock.close()
    assert _rows(tmp_path) == len(kept) <= 6
    again = FalMock(Settings(profile="instant", max_requests=5, persist=True, state_dir=tmp_path))
    try:
        assert {request.request_id for request in again.queue} == kept
    finally:
        again.close()


def test_reset_forgets_the_stored_state(tmp_path: Path) -> None:
    mock = FalMock(Settings(profile="instant", persist=True, state_dir=tmp_path))
    endpoint = mock.endpoint(ENDPOINT)
    mock.queue.submit(endpoint, endpoint.parse(json.dumps(BODY).encode()))
    mock.files.add_upload("0123456789abcdef-a.txt", b"x", "text/plain")
    mock.reset()
    mock.close()
    assert _rows(tmp_path) == 0
    assert list((tmp_path / "uploads").iterdir()) == []


def test_in_process_lock(tmp_path: Path) -> None:
    mock = FalMock(Settings(persist=True, state_dir=tmp_path))
    try:
        with pytest.raises(StateDirBusy):
            FalMock(Settings(persist=True, state_dir=tmp_path))
    finally:
        mock.close()
    FalMock(Settings(persist=True, state_dir=tmp_path)).close()  # released on close


def test_an_explicit_state_dir_turns_persistence_on(tmp_path: Path) -> None:
    """``--state-dir DIR`` given on the command line is the opt-in (issue 6); ``--persist`` is implied."""
    with ServerProcess(["--profile", "instant", "--state-dir", str(tmp_path)]) as server, client_for(server) as client:
        wait_completed(client, submit(client))
    assert (tmp_path / DB_NAME).is_file() and _rows(tmp_path) == 1
