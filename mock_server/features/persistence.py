"""Opt-in persistence (``--persist``, in ``--state-dir DIR``): requests, results and uploads survive a restart.

Layout of ``DIR`` (the TLS CA lives beside it in ``DIR/tls/``)::

    state.sqlite3     SQLite, WAL mode: tables meta, requests, files, uploads
    uploads/<name>    uploaded bytes (content type in the uploads table)
    state.lock        held (flock) by the one server using DIR; a second one is refused

What is stored is the *input* of the queue's simulation, not its state: per request the
submit (id, endpoint, params as used -- with the drawn seed --, parse notes or the 422
it was rejected with, submit time, time it may start, run time, webhook URL, origin,
a fault's answer and status error) and the time of a cancel.  Durations are stored,
so a restart with another profile does not change a request's course.  The first
produced result is stored byte for byte (status, headers, body), with the names of
the image files it registered; those are drawn again from the request's params when
first asked for (the renderer is a pure function of them).

Write path: the queue and the file store call hooks that only append to a list (no I/O,
no serialisation on the request's path).  A timer on the server's loop turns the list
into rows every ``flush_interval`` (50 ms) -- on the loop, so a request's webhook URL and
origin, set by the HTTP layer right after the submit, are there -- and hands the batch
to a writer thread, which applies it in one transaction (``synchronous=NORMAL``).  A
crash (SIGKILL, power loss aside) loses at most the batch being gathered: 50 ms of
calls plus the one being written.  A clean stop (SIGTERM, Ctrl-C, ``close()``) loses
nothing.

Replay at start: submits and cancels are fed to the fresh queue in time order with
their recorded times (``RequestQueue.submit(at=...)``, ``cancel(at=...)``), up to the
last time the old server was seen alive (written with every batch and once a second
when idle); from there the clock (wall time) moves them on as if the server had never
stopped, and webhooks of requests that finished while it was down are delivered then.
``--max-requests`` bounds the database too: a request the queue forgets is deleted.
"""
from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import queue as _queue
import threading
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol
from urllib.parse import urlsplit

import orjson

from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv, Parsed
from mock_server.core.files import StoredFile
from mock_server.core.paths import FILES_PREFIX

if TYPE_CHECKING:
    import sqlite3

    from mock_server.core.clock import Clock
    from mock_server.core.endpoint import Endpoint
    from mock_server.core.files import FileStore
    from mock_server.core.queue import QueuedRequest, RequestQueue
    from mock_server.settings import Settings

class Emulator(Protocol):
    """What persistence uses of the emulator that owns it (:class:`mock_server.emulator.FalMock`,
    which builds it: the emulator sits above the features and is not imported here)."""

    settings: "Settings"
    queue: "RequestQueue"
    files: "FileStore"
    clock: "Clock"

    def endpoint(self, endpoint_id: str) -> "Endpoint | None": ...
    def on_reset(self, hook: Callable[[], None]) -> None: ...


__all__ = ["DB_NAME", "FLUSH_INTERVAL", "Persistence", "StateDirBusy"]

log = logging.getLogger("fal_mock")

DB_NAME = "state.sqlite3"
LOCK_NAME = "state.lock"
UPLOADS = "uploads"
SCHEMA_VERSION = "1"
#: Seconds between batch commits: the most a crash can lose.
FLUSH_INTERVAL = 0.05
#: Seconds between "still alive" marks when nothing else is written.
HEARTBEAT = 1.0
_LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1", "[::1]"))

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    request_id   TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,
    endpoint_id  TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    eligible_at  REAL NOT NULL,
    duration     REAL NOT NULL,
    params       BLOB,            -- JSON of the params as used; NULL when rejected at parse
    notes        TEXT,            -- JSON list of parse notes (log lines)
    rejected_status INTEGER, rejected_headers TEXT, rejected_body BLOB,
    webhook_url  TEXT,
    origin       TEXT,            -- JSON [scheme, host] the request was submitted to
    error        TEXT, error_type TEXT,
    cancelled_at REAL,
    answer_status INTEGER, answer_headers TEXT, answer_body BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS files (
    name TEXT PRIMARY KEY, request_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_request ON files(request_id);
CREATE TABLE IF NOT EXISTS uploads (
    name TEXT PRIMARY KEY, content_type TEXT NOT NULL, size INTEGER NOT NULL, seq INTEGER NOT NULL
);
"""


class StateDirBusy(RuntimeError):
    """Another fal-mock process holds the state folder."""


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits (an unbounded seed)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _params_json(params: Any) -> bytes:
    dump = getattr(params, "model_dump_json", None)
    if dump is not None:  # pydantic: the params as used, every field
        return dump().encode()
    return _dumps(params)


def _headers_json(headers: tuple[tuple[str, str], ...]) -> bytes:
    return orjson.dumps(headers)


def _headers_of(text: bytes | str | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in orjson.loads(text)) if text else ()


def _safe_name(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and "\0" not in name


class _RecordingFiles:
    """A FileStore seen through one result's production: notes the rendered names."""

    def __init__(self, files: Any, names: list[str]) -> None:
        self._files = files
        self._names = names

    def add_rendered(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._names.append(name)
        self._files.add_rendered(name, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._files, attr)

    def __contains__(self, name: str) -> bool:
        return name in self._files


class Persistence:
    """The state folder of one :class:`~mock_server.emulator.FalMock` (see the module doc)."""

    def __init__(self, mock: Emulator, directory: Path | str, flush_interval: float = FLUSH_INTERVAL) -> None:
        self.mock = mock
        self.directory = Path(directory).expanduser()
        self.flush_interval = flush_interval
        self.directory.mkdir(parents=True, exist_ok=True)
        self.uploads_dir = self.directory / UPLOADS
        self.uploads_dir.mkdir(exist_ok=True)
        self._lock_fd = _acquire_lock(self.directory / LOCK_NAME)
        self.db_path = self.directory / DB_NAME
        try:
            self._db = self._connect()
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._reader = self._connect()
        except BaseException:
            _release_lock(self._lock_fd)
            raise
        self._reader_lock = threading.Lock()
        self._ops: list[tuple] = []
        self._ops_lock = threading.Lock()
        self._scheduled = False
        self._replaying = False
        self._seq = 0
        self._upload_seq = 0
        self._upload_total = 0
        self._upload_cap = mock.files.upload_bytes
        self._writes: _queue.SimpleQueue = _queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # transactions committed (for tests and benchmarks)
        self._reproduce_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # here, not at module level: serving without --state-dir never needs it

        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    # -- start -------------------------------------------------------------------------
    def start(self) -> "Persistence":
        """Replay the stored requests into the mock, then start recording."""
        self.load()
        queue, files = self.mock.queue, self.mock.files
        queue.on_record(self._on_record)
        files.on_upload = self._on_upload
        files.loader = self.load_file
        self.mock.on_reset(self.clear)
        self._writer = threading.Thread(target=self._write_forever, name="fal-mock-persistence", daemon=True)
        self._writer.start()
        atexit.register(self.close)
        return self

    def load(self) -> int:
        """Feed the stored submits and cancels to the queue; returns how many requests came back."""
        db = self._db
        row = db.execute("SELECT value FROM meta WHERE key='last_seen'").fetchone()
        last_seen = float(row[0]) if row else None
        self._seq = (db.execute("SELECT COALESCE(MAX(seq), 0) FROM requests").fetchone()[0]) + 1
        self._upload_seq, self._upload_total = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(SUM(size), 0) FROM uploads").fetchone()
        events: list[tuple] = []
        dropped: list[str] = []
        for row in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM requests ORDER BY seq").fetchall():
            record = dict(zip(_COLUMNS, row))
            endpoint = self.mock.endpoint(record["endpoint_id"])
            if endpoint is None:
                dropped.append(record["request_id"])
                continue
            events.append((record["submitted_at"], 0, record["seq"], endpoint, record))
            if record["cancelled_at"] is not None:
                events.append((record["cancelled_at"], 1, record["seq"], endpoint, record))
        events.sort(key=lambda e: e[:3])
        queue = self.mock.queue
        self._replaying = True
        try:
            for at, kind, _, endpoint, record in events:
                if kind == 1:
                    queue.cancel(record["request_id"], at=at)
                    continue
                request = queue.submit(
                    endpoint, self._parsed(endpoint, record), record["request_id"],
                    at=at, eligible_at=record["eligible_at"], duration=record["duration"],
                )
                request.webhook_url = record["webhook_url"]
                if record["origin"]:
                    request.origin = tuple(orjson.loads(record["origin"]))
                request.error, request.error_type = record["error"], record["error_type"]
                if record["answer_status"] is not None:
                    request.answer = Answer(record["answer_status"], bytes(record["answer_body"]),
                                            _headers_of(record["answer_headers"]))
            # Up to the last moment the old server was alive: what finished then was already
            # seen (and its webhook sent); later completions happen live, listeners and all.
            if last_seen is not None:
                queue.advance(min(last_seen, self.mock.clock.now()))
        finally:
            self._replaying = False
        if dropped:
            db.executemany("DELETE FROM requests WHERE request_id=?", [(rid,) for rid in dropped])
        self._apply(self._take_ops_unlocked())  # requests the replay itself forgot (max_requests)
        return len(queue)

    @staticmethod
    def _parsed(endpoint: Any, record: dict) -> Parsed | Answer:
        if record["params"] is None:
            return Answer(record["rejected_status"], bytes(record["rejected_body"] or b""),
                          _headers_of(record["rejected_headers"]))
        notes = orjson.loads(record["notes"]) if record["notes"] else []
        parsed = endpoint.parse(bytes(record["params"]))  # params as used: parse is the identity
        if isinstance(parsed, Answer):
            # Rules changed between runs (--validation): keep the rejection it now gets.
            return parsed
        return Parsed(parsed.params, notes)

    # -- hooks (any thread; cheap) --------------------------------------------------------
    def _push(self, op: tuple) -> None:
        with self._ops_lock:
            self._ops.append(op)
            if self._scheduled or self._closed:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop here: the writer thread's idle tick flushes it
            self._scheduled = True
        loop.call_later(self.flush_interval, self.flush)

    def _on_record(self, kind: str, request: "QueuedRequest") -> None:
        if kind == "forget":
            self._push(("forget", request.request_id, request.answer is not None))
        elif not self._replaying:
            self._push((kind, request))

    def _on_upload(self, name: str, data: bytes, content_type: str) -> None:
        if _safe_name(name):
            self._push(("upload", name, data, content_type))

    def answered(self, request: "QueuedRequest", answer: Answer, names: list[str]) -> None:
        """A result was produced (first time): keep its bytes and its files' names."""
        self._push(("answer", request.request_id, answer, tuple(names)))

    def recording_env(self, env: EndpointEnv, names: list[str]) -> EndpointEnv:
        return replace(env, files=_RecordingFiles(env.files, names))

    def clear(self) -> None:
        """The mock was reset: forget everything stored."""
        self._push(("clear",))

    # -- batching ----------------------------------------------------------------------
    def _take_ops_unlocked(self) -> list[tuple]:
        ops, self._ops = self._ops, []
        return [self._row(op) for op in ops]

    def flush(self) -> None:
        """Turn the gathered calls into rows and hand them to the writer (runs on the loop)."""
        with self._ops_lock:
            ops, self._ops = self._ops, []
            self._scheduled = False
        if ops:
            # rows are built by the writer thread: by now the HTTP layer has set what it sets
            # right after a submit (webhook URL, origin, a fault's answer)
            self._writes.put(ops)

    def _row(self, op: tuple) -> tuple:
        kind = op[0]
        if kind == "submit":
            request = op[1]
            parsed = request.parsed
            if isinstance(parsed, Parsed):
                params, notes = _params_json(parsed.params), orjson.dumps(parsed.notes) if parsed.notes else None
                rejected = (None, None, None)
            else:
                params, notes = None, None
                rejected = (parsed.status, _headers_json(parsed.headers), parsed.body)
            answer = request.answer  # a model_error / runner_error fault decided it at submit
            origin = request.origin
            seq, self._seq = self._seq, self._seq + 1
            return ("submit", (
                request.request_id, seq, request.endpoint.endpoint_id, request.submitted_at,
                request.eligible_at, request.duration, params, notes, *rejected, request.webhook_url,
                orjson.dumps(origin) if origin else None, request.error, request.error_type, None,
                answer.status if answer else None, _headers_json(answer.headers) if answer else None,
                answer.body if answer else None,
            ))
        if kind == "cancel":
            request = op[1]
            return ("cancel", (request.finished_at, request.request_id))
        if kind == "answer":
            _, rid, answer, names = op
            return ("answer", (answer.status, _headers_json(answer.headers), answer.body, rid), rid, names)
        return op

    # -- the writer thread -------------------------------------------------------------
    def _write_forever(self) -> None:
        while True:
            try:
                batch = self._writes.get(timeout=HEARTBEAT)
            except _queue.Empty:
                with self._ops_lock:  # calls made where no loop runs (sync use)
                    pending = bool(self._ops) and not self._scheduled
                if pending:
                    self.flush()
                    continue
                self._commit([])  # heartbeat: still alive
                continue
            if batch is None:
                return
            ops = [self._row(op) for op in batch]
            while True:  # coalesce what else is waiting into this transaction
                try:
                    more = self._writes.get_nowait()
                except _queue.Empty:
                    break
                if more is None:
                    self._commit(ops)
                    return
                ops.extend(self._row(op) for op in more)
            self._commit(ops)

    def _commit(self, ops: list[tuple]) -> None:
        try:
            self._apply(ops)
        except Exception:
            log.exception("fal-mock: writing the state folder failed")

    def _apply(self, ops: list[tuple]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            i = 0
            while i < len(ops):  # runs of the same kind go through executemany
                kind = ops[i][0]
                j = i
                while j < len(ops) and ops[j][0] == kind and kind in ("submit", "cancel", "forget"):
                    j += 1
                if j > i:
                    self._apply_run(db, kind, ops[i:j])
                    i = j
                else:
                    self._apply_one(db, ops[i])
                    i += 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seen', ?)", (repr(self.mock.clock.now()),))
            db.execute("COMMIT")
            self.batches += 1
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _apply_run(self, db: sqlite3.Connection, kind: str, ops: list[tuple]) -> None:
        if kind == "submit":
            db.executemany(f"INSERT OR REPLACE INTO requests ({', '.join(_COLUMNS)}) VALUES (" + ",".join("?" * len(_COLUMNS)) + ")", [op[1] for op in ops])
        elif kind == "cancel":
            db.executemany("UPDATE requests SET cancelled_at=? WHERE request_id=?", [op[1] for op in ops])
        else:
            db.executemany("DELETE FROM requests WHERE request_id=?", [(op[1],) for op in ops])
            # only a request whose result was produced has files (and a restored one may)
            db.executemany("DELETE FROM files WHERE request_id=?", [(op[1],) for op in ops if op[2]])

    def _apply_one(self, db: sqlite3.Connection, op: tuple) -> None:
        kind = op[0]
        if kind == "answer":
            _, values, rid, names = op
            cursor = db.execute("UPDATE requests SET answer_status=?, answer_headers=?, answer_body=? WHERE request_id=?", values)
            if cursor.rowcount:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", [(name, rid) for name in names])
        elif kind == "upload":
            _, name, data, content_type = op
            self._write_upload(db, name, data, content_type)
        elif kind == "clear":
            db.execute("DELETE FROM requests")
            db.execute("DELETE FROM files")
            db.execute("DELETE FROM uploads")
            for path in self.uploads_dir.iterdir():
                path.unlink(missing_ok=True)
            self._upload_total = 0

    def _write_upload(self, db: sqlite3.Connection, name: str, data: bytes, content_type: str) -> None:
        path = self.uploads_dir / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        old = db.execute("SELECT size FROM uploads WHERE name=?", (name,)).fetchone()
        if old:
            self._upload_total -= old[0]
        db.execute("INSERT OR REPLACE INTO uploads VALUES (?, ?, ?, ?)", (name, content_type, len(data), self._upload_seq))
        self._upload_seq += 1
        self._upload_total += len(data)
        # Uploads on disk are bounded like those in memory (oldest dropped first).
        while self._upload_total > self._upload_cap:
            oldest = db.execute("SELECT name, size FROM uploads WHERE name != ? ORDER BY seq LIMIT 1", (name,)).fetchone()
            if oldest is None:
                break
            db.execute("DELETE FROM uploads WHERE name=?", (oldest[0],))
            (self.uploads_dir / oldest[0]).unlink(missing_ok=True)
            self._upload_total -= oldest[1]

    # -- files not in memory -------------------------------------------------------------
    def load_file(self, name: str) -> StoredFile | None:
        """FileStore's loader: an upload read from disk, or an output image drawn again."""
        if not _safe_name(name):
            return None
        with self._reader_lock:
            upload = self._reader.execute("SELECT content_type FROM uploads WHERE name=?", (name,)).fetchone()
            owner = None if upload else self._reader.execute(
                "SELECT request_id FROM files WHERE name=?", (name,)).fetchone()
        if upload:
            try:
                return StoredFile((self.uploads_dir / name).read_bytes(), upload[0])
            except OSError:
                return None
        if owner is None:
            return None
        return self._reproduce(owner[0], name)

    def _reproduce(self, request_id: str, name: str) -> StoredFile | None:
        """Produce the request's result again (answer discarded): its files get registered."""
        files = self.mock.files
        request = self.mock.queue.peek(request_id)
        if request is None or not isinstance(request.parsed, Parsed):
            return None
        with self._reproduce_lock:  # one at a time: a burst of GETs renders once
            if name not in files:
                env = self._env_for(request)
                result: list[Any] = []

                def run() -> None:
                    result.append(asyncio.run(request.endpoint.produce(request.parsed.params, request_id, env)))

                thread = threading.Thread(target=run, name="fal-mock-reproduce", daemon=True)
                thread.start()  # its own loop, whatever thread (or loop) asked
                thread.join()
        if name not in files:
            return None
        return files.get(name)

    def _env_for(self, request: "QueuedRequest") -> EndpointEnv:
        """What the HTTP layer's ``env_for`` gives, for the request's origin (same own-file rules)."""
        settings = self.mock.settings
        scheme, host = request.origin or (settings.scheme, f"{settings.host}:{settings.port}")
        files_base = f"{scheme}://{host}{FILES_PREFIX}"

        def own_file_name(url: str) -> str | None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.path.startswith(FILES_PREFIX):
                return None
            if (parts.hostname or "") not in _LOOPBACK and parts.hostname != settings.host:
                return None
            if parts.port not in (settings.port, None) and parts.netloc != host:
                return None
            return parts.path[len(FILES_PREFIX):]

        return EndpointEnv(
            files=self.mock.files, file_url=lambda n: files_base + n, own_file_name=own_file_name,
            allow_fetch=settings.allow_fetch, fetch_timeout=settings.fetch_timeout,
            fetch_max_bytes=settings.fetch_max_bytes, log=log.info,
        )

    # -- stop --------------------------------------------------------------------------
    def close(self) -> None:
        """Write what is gathered, stop the writer, release the folder.  Safe to call twice."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._writes.put(None)
        if self._writer is not None:
            self._writer.join(30)
        with self._ops_lock:
            rest, self._ops = self._ops, []
        try:
            self._apply([self._row(op) for op in rest])  # anything pushed while stopping; marks last_seen
        except Exception:
            log.exception("fal-mock: writing the state folder failed")
        self._db.close()
        with self._reader_lock:
            self._reader.close()
        _release_lock(self._lock_fd)
        try:
            atexit.unregister(self.close)
        except Exception:
            pass


_COLUMNS = (
    "request_id", "seq", "endpoint_id", "submitted_at", "eligible_at", "duration", "params", "notes",
    "rejected_status", "rejected_headers", "rejected_body", "webhook_url", "origin", "error", "error_type",
    "cancelled_at", "answer_status", "answer_headers", "answer_body",
)


def _acquire_lock(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise StateDirBusy(
            f"fal-mock: the state folder {path.parent} is in use by another fal-mock (pid {holder}); "
            "stop that server or give another --state-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _release_lock(fd: int) -> None:
    try:
        os.close(fd)  # closing drops the flock
    except OSError:
        pass
