"""The state folder under stress (issues 20.10-20.12, 21.8): a writer that falls behind holds
the recording calls back, a store that cannot write says so and loses nothing, a damaged folder
starts with one clear line (never a traceback), and the files are private."""
from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from mock_server.emulator import FalMock
from mock_server.features.state_folder import DB_NAME, StateDirUnusable
from mock_server.settings import Settings
from server_process import ServerProcess, ServerStartError

APP = "fal-ai/wan-25-preview"
ENDPOINT = f"{APP}/image-to-image"
BODY = {"prompt": "a lighthouse in a storm", "image_urls": ["https://example.com/a.png"]}
POSIX = os.name != "nt"


def _mock(state: Path, **settings) -> FalMock:
    return FalMock(Settings(profile="instant", persist=True, state_dir=state, **settings))


def _submit(mock: FalMock) -> str:
    endpoint = mock.endpoint(ENDPOINT)
    # in the namespace of the key the HTTP checks below use ("Key a:b": docs/namespaces.md)
    return mock.queue.submit(endpoint, endpoint.parse(json.dumps(BODY).encode()), namespace="a").request_id


def _stored_ids(state: Path) -> set[str]:
    with sqlite3.connect(state / DB_NAME) as db:
        return {row[0] for row in db.execute("SELECT request_id FROM requests")}


# --------------------------------------------------------------------------- 21.8: private files


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_state_files_are_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    mock = _mock(state)
    try:
        _submit(mock)
        mock.files.add_upload("0123456789abcdef-a.txt", b"secret prompt notes", "text/plain")
        assert mock.persistence.wait_written()
        files = [state / DB_NAME, state / f"{DB_NAME}-wal", state / f"{DB_NAME}-shm", state / "state.lock",
                 *(state / "uploads").iterdir()]
        assert len(files) == 5
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        for folder in (state, state / "uploads"):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    finally:
        mock.close()


@pytest.mark.skipif(not POSIX, reason="POSIX file modes")
def test_an_existing_open_folder_is_tightened_on_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    mock = _mock(state)
    mock.files.add_upload("0123456789abcdef-a.txt", b"x", "text/plain")
    mock.close()
    opened = [state, state / "uploads", state / DB_NAME, state / "state.lock", *(state / "uploads").iterdir()]
    for path in opened:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    _mock(state).close()
    for path in opened:
        assert stat.S_IMODE(path.stat().st_mode) == (0o700 if path.is_dir() else 0o600), path


# --------------------------------------------------------------------------- 20.11: a store that cannot write


def _fill_up(mock: FalMock) -> None:
    """The database cannot grow by one page more: every write fails 'database or disk is full'."""
    db = mock.persistence.folder.db
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")


def test_a_full_disk_is_reported_and_nothing_acknowledged_is_dropped(tmp_path: Path) -> None:
    mock = _mock(tmp_path)
    persistence = mock.persistence
    before = _submit(mock)
    assert persistence.wait_written() and persistence.failure is None
    _fill_up(mock)
    during = [_submit(mock) for _ in range(200)]
    mock.files.add_upload("0123456789abcdef-big.bin", os.urandom(64 * 1024), "application/octet-stream")
    assert not persistence.wait_written()
    assert persistence.failure and "full" in persistence.failure
    assert _stored_ids(tmp_path) == {before}  # nothing of it reached the disk...
    more = [_submit(mock) for _ in range(20)]  # ...and later calls queue behind the failed batch
    persistence.folder.db.execute("PRAGMA max_page_count = 1073741823")  # space again
    assert persistence.wait_written(), persistence.failure  # retried on its own
    assert persistence.failure is None
    mock.close()
    assert _stored_ids(tmp_path) == {before, *during, *more}
    again = _mock(tmp_path)
    try:
        assert again.files.get("0123456789abcdef-big.bin") is not None
    finally:
        again.close()


def test_a_failure_at_close_is_one_line_not_a_traceback(tmp_path: Path, caplog) -> None:
    mock = _mock(tmp_path)
    _fill_up(mock)
    for _ in range(200):
        _submit(mock)
    mock.close()
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert errors and all(r.exc_info is None for r in errors)
    assert any("could not be written" in r.getMessage() for r in errors)


# --------------------------------------------------------------------------- 20.10: back-pressure


def test_a_writer_that_falls_behind_holds_the_recording_calls_back(tmp_path: Path) -> None:
    """While the writer is stuck on a commit, recording calls stop at the backlog limit
    (they wait for it) instead of piling up unwritten work a crash would lose."""
    mock = _mock(tmp_path)
    persistence = mock.persistence
    gate, entered = threading.Event(), threading.Event()
    apply = persistence._apply

    def slow_apply(rows):
        if rows:
            entered.set()
            gate.wait(30)
        return apply(rows)

    persistence._apply = slow_apply
    persistence.backlog_limit = 10
    done: list[str] = []

    def record() -> None:
        for _ in range(200):
            done.append(_submit(mock))

    pusher = threading.Thread(target=record)
    try:
        pusher.start()
        assert entered.wait(10)  # the writer took a batch and is stuck in it
        pusher.join(0.5)
        # whatever the timing, no more calls got through than the limit allows (plus the one waiting)
        assert len(done) <= 2 * persistence.backlog_limit + 1
    finally:
        gate.set()
        pusher.join(30)
    assert len(done) == 200
    assert persistence.wait_written()
    mock.close()
    assert _stored_ids(tmp_path) == set(done)


def test_the_backlog_limit_follows_the_writer(tmp_path: Path) -> None:
    mock = _mock(tmp_path)
    try:
        for _ in range(2000):
            _submit(mock)
        assert mock.persistence.wait_written()
        assert mock.persistence.backlog_limit >= 256
    finally:
        mock.close()


# --------------------------------------------------------------------------- 20.12: a damaged folder


def _damage_a_good_folder(state: Path) -> list[str]:
    mock = _mock(state)
    ids = [_submit(mock) for _ in range(3)]
    mock.close()
    return ids


def _refused(flags: list[str], command: list[str] | None = None) -> str:
    server = ServerProcess(flags, command=command, start_timeout=20)
    with pytest.raises(ServerStartError):
        server.start()
    assert server.returncode == 1
    err = "".join(server.stderr_lines)
    assert "Traceback" not in err and "Traceback" not in "".join(server.stdout_lines)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_garbage_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not a database, just garbage" * 200)
    line = _refused(["--profile", "instant", "--state-dir", str(tmp_path)])
    assert "is damaged" in line and f"mv {tmp_path / DB_NAME}" in line


def test_a_truncated_database_is_one_line(tmp_path: Path) -> None:
    mock = _mock(tmp_path)
    for _ in range(300):
        _submit(mock)
    mock.close()
    db = tmp_path / DB_NAME
    data = db.read_bytes()
    assert len(data) > 8192
    db.write_bytes(data[: len(data) // 2])
    for extra in ("-wal", "-shm"):
        (tmp_path / f"{DB_NAME}{extra}").unlink(missing_ok=True)
    line = _refused(["--profile", "instant", "--state-dir", str(tmp_path)])
    assert "is damaged" in line


def test_a_file_instead_of_a_folder_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a folder")
    line = _refused(["--profile", "instant", "--state-dir", str(state)])
    assert "is a file, not a folder" in line and str(state) in line
    state.unlink()
    state.mkdir()
    (state / "uploads").write_text("not a folder either")
    assert "is a file, not a folder" in _refused(["--profile", "instant", "--state-dir", str(state)])


@pytest.mark.skipif(not POSIX, reason="POSIX permissions")
def test_a_read_only_folder_is_one_line() -> None:
    # root writes anywhere: then run the server as nobody, in a folder only root may write
    as_root = os.geteuid() == 0
    if as_root and not os.path.exists("/usr/bin/setpriv"):
        pytest.skip("needs setpriv to drop root")
    base = Path(tempfile.mkdtemp(prefix="fal-mock-ro-"))
    try:
        state = base / "state"
        _damage_a_good_folder(state)
        os.chmod(base, 0o755)
        os.chmod(state, 0o755 if as_root else 0o500)
        command = None
        if as_root:
            os.chmod(state / DB_NAME, 0o644)
            command = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                       sys.executable, "-m", "mock_server", "serve"]
        line = _refused(["--profile", "instant", "--state-dir", str(state)], command=command)
        assert "cannot be written" in line and str(state) in line
    finally:
        os.chmod(base / "state", 0o700)
        import shutil

        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("column,value", [
    ("submitted_at", 1e308), ("eligible_at", float("inf")), ("duration", -5.0),
    ("cancelled_at", 1e300), ("submitted_at", "yesterday"), ("answer_status", 999),
    ("origin", "{not json"), ("answer_status", 200),  # 200 with no body
])
def test_a_bad_row_is_skipped_and_reported(tmp_path: Path, column: str, value) -> None:
    ids = _damage_a_good_folder(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute(f"UPDATE requests SET {column}=? WHERE request_id=?", (value, ids[1]))
    with ServerProcess(["--profile", "instant", "--state-dir", str(tmp_path)], start_timeout=20) as server:
        import httpx

        with httpx.Client(base_url=server.url, headers={"Authorization": "Key a:b"}, timeout=10) as client:
            for rid in (ids[0], ids[2]):
                assert client.get(f"/queue/{APP}/requests/{rid}").status_code == 200
            assert client.get(f"/queue/{APP}/requests/{ids[1]}/status").status_code == 404
            fresh = client.post(f"/queue/{ENDPOINT}", json=BODY)
            assert fresh.status_code == 200
        err = "".join(server.stderr_lines)
    assert "Traceback" not in err
    warned = [line for line in err.splitlines() if "damaged request" in line]
    assert len(warned) == 1 and ids[1] in warned[0]
    assert _stored_ids(tmp_path) >= {ids[0], ids[2]} and ids[1] not in _stored_ids(tmp_path)


def test_damage_raises_the_named_error_in_process(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"garbage" * 1000)
    with pytest.raises(StateDirUnusable, match="is damaged"):
        _mock(tmp_path)
    (tmp_path / DB_NAME).unlink()
    _mock(tmp_path).close()  # the lock was released: the folder is usable once the file is moved


def test_a_call_that_cannot_be_stored_does_not_stop_the_writer(tmp_path: Path, caplog) -> None:
    mock = _mock(tmp_path)
    persistence = mock.persistence
    row = persistence._row

    def broken(op):
        if op[0] == "upload":
            raise TypeError("not storable")
        return row(op)

    persistence._row = broken
    try:
        first = _submit(mock)
        mock.files.add_upload("0123456789abcdef-a.txt", b"x", "text/plain")
        assert persistence.wait_written()
        later = _submit(mock)  # the writer is still there
        assert persistence.wait_written()
    finally:
        mock.close()
    assert _stored_ids(tmp_path) == {first, later}
    assert any("cannot be stored" in r.getMessage() for r in caplog.records)


def test_a_file_instead_of_a_folder_with_tls_is_one_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("not a folder")
    line = _refused(["--profile", "instant", "--tls", "--state-dir", str(state)])
    assert "cannot be used" in line and str(state) in line
