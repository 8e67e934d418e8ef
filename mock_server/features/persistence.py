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

Back-pressure keeps that window at any rate: the writer measures how many calls it commits
in one flush interval (``backlog_limit``); when more than that are unwritten, the recording
call hands what is gathered to the writer and waits (at most ``BACKPRESSURE_WAIT``) until it
has caught up.  On the server that call runs on the event loop, so the server accepts calls
only as fast as the disk takes them.  When the writer keeps up, the hot path costs one
comparison.

A store that cannot write (disk full, folder gone read-only) is said so, never silently:
the failed batch is kept, in order, and written again (with what came after) every
``RETRY_INTERVAL``; :attr:`Persistence.failure` holds the reason until a write succeeds
again, for the HTTP layer to report in health and to refuse new submits with.

A folder that cannot be used at start (not a folder, not writable, a damaged database)
raises :class:`StateDirUnusable`, whose message is one line saying what is wrong and how to
recover; stored requests that cannot be replayed (a damaged row, a time or status out of
range) are skipped, deleted and reported in one warning line.  The folder is kept private:
0700, with the database, its WAL files, the lock and uploads 0600 (tightened at start).

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
import math
import os
import queue as _queue
import stat
import threading
import time
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


__all__ = ["DB_NAME", "FLUSH_INTERVAL", "Persistence", "StateDirBusy", "StateDirUnusable"]

log = logging.getLogger("fal_mock")

DB_NAME = "state.sqlite3"
LOCK_NAME = "state.lock"
UPLOADS = "uploads"
SCHEMA_VERSION = "1"
#: Seconds between batch commits: the most a crash can lose.
FLUSH_INTERVAL = 0.05
#: Seconds between "still alive" marks when nothing else is written.
HEARTBEAT = 1.0
#: Seconds between attempts to write a batch that failed (disk full, read-only folder).
RETRY_INTERVAL = 1.0
#: Longest a recording call waits for a writer that fell behind (seconds).
BACKPRESSURE_WAIT = 1.0
#: Unwritten calls always allowed before a recording call waits (the measured limit's floor).
MIN_BACKLOG = 256
#: Stored times and durations beyond this (seconds; year 5138) are damage, not data.
_MAX_TIME = 1e11
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


class StateDirUnusable(RuntimeError):
    """The state folder cannot be used (not a folder, not writable, its database damaged);
    the message is one line saying what is wrong and how to recover."""


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
        self.uploads_dir = self.directory / UPLOADS
        self.db_path = self.directory / DB_NAME
        try:
            _private_folder(self.directory)
            _private_folder(self.uploads_dir)
        except OSError as exc:
            raise StateDirUnusable(_folder_problem(self.directory, exc)) from None
        self._lock_fd = _acquire_lock(self.directory / LOCK_NAME)
        import sqlite3

        try:
            _private_file(self.db_path)  # SQLite gives its -wal and -shm files the database's mode
            for suffix in ("-wal", "-shm"):
                _private_file(self.db_path.with_name(DB_NAME + suffix), create=False)
            for upload in self.uploads_dir.iterdir():
                _private_file(upload, create=False)
            self._db = self._connect()
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._reader = self._connect()
        except (OSError, sqlite3.Error) as exc:
            _release_lock(self._lock_fd)
            raise StateDirUnusable(_database_problem(self.directory, self.db_path, exc)) from None
        except BaseException:
            _release_lock(self._lock_fd)
            raise
        self._reader_lock = threading.Lock()
        self._ops: list[tuple] = []
        self._ops_lock = threading.Lock()
        #: signalled when the writer commits (or fails): recording calls held back wait on it
        self._written = threading.Condition(self._ops_lock)
        self._unwritten = 0  # calls recorded and not yet committed
        #: unwritten calls allowed before a recording call waits for the writer: what it
        #: commits in one flush interval, as measured (at least MIN_BACKLOG)
        self.backlog_limit = MIN_BACKLOG
        self._op_cost: float | None = None  # writer seconds per call (moving average)
        self._retry: list[tuple] = []  # rows of batches that failed, written again first
        self._attempts = 0  # transactions tried (committed or not)
        #: Why the store cannot write right now (disk full, read-only folder...), or None.
        #: While set, nothing recorded is lost (it is kept and retried) but nothing new is
        #: safe either: the HTTP layer reports it in health and answers submits 503.
        self.failure: str | None = None
        #: (request id, reason) of stored requests skipped at start as damaged
        self.skipped: list[tuple[str, str]] = []
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
        import sqlite3

        try:
            self.load()
        except sqlite3.Error as exc:  # a damaged page met while reading
            self._db.close()
            self._reader.close()
            _release_lock(self._lock_fd)
            raise StateDirUnusable(_database_problem(self.directory, self.db_path, exc)) from None
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
        """Feed the stored submits and cancels to the queue; returns how many requests came back.

        A stored request that cannot be replayed as it is (a damaged row: a time or status
        out of range, unreadable JSON) is skipped, deleted and reported in one warning line.
        """
        db = self._db
        row = db.execute("SELECT value FROM meta WHERE key='last_seen'").fetchone()
        last_seen = _stored_time(row[0]) if row else None
        self._seq = (db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM requests WHERE typeof(seq)='integer'").fetchone()[0]) + 1
        self._upload_seq, self._upload_total = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(SUM(size), 0) FROM uploads "
            "WHERE typeof(seq)='integer' AND typeof(size)='integer'").fetchone()
        events: list[tuple] = []
        dropped: list[str] = []
        for row in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM requests").fetchall():
            record = dict(zip(_COLUMNS, row))
            endpoint = self.mock.endpoint(record["endpoint_id"]) if isinstance(record["endpoint_id"], str) else None
            if endpoint is None:
                dropped.append(record["request_id"])
                continue
            try:
                replay = self._replay_of(endpoint, record)
            except Exception as exc:  # damage of any kind: this request cannot come back
                dropped.append(record["request_id"])
                self.skipped.append((str(record["request_id"]), str(exc) or type(exc).__name__))
                continue
            events.append((record["submitted_at"], 0, record["seq"], endpoint, replay))
            if record["cancelled_at"] is not None:
                events.append((record["cancelled_at"], 1, record["seq"], endpoint, replay))
        events.sort(key=lambda e: e[:3])
        queue = self.mock.queue
        self._replaying = True
        try:
            for at, kind, _, endpoint, replay in events:
                record, parsed, origin, answer = replay
                if kind == 1:
                    queue.cancel(record["request_id"], at=at)
                    continue
                request = queue.submit(
                    endpoint, parsed, record["request_id"],
                    at=at, eligible_at=record["eligible_at"], duration=record["duration"],
                )
                request.webhook_url = record["webhook_url"]
                if origin is not None:
                    request.origin = origin
                request.error, request.error_type = record["error"], record["error_type"]
                if answer is not None:
                    request.answer = answer
            # Up to the last moment the old server was alive: what finished then was already
            # seen (and its webhook sent); later completions happen live, listeners and all.
            if last_seen is not None:
                queue.advance(min(last_seen, self.mock.clock.now()))
        finally:
            self._replaying = False
        if dropped:
            db.executemany("DELETE FROM requests WHERE request_id=?", [(rid,) for rid in dropped])
        if self.skipped:
            shown = ", ".join(f"{rid} ({why})" for rid, why in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            log.warning("fal-mock: skipped %d damaged request(s) in %s and deleted them: %s%s",
                        len(self.skipped), self.db_path, shown, more)
        self._apply(self._take_ops_unlocked())  # requests the replay itself forgot (max_requests)
        self._unwritten = 0
        return len(queue)

    def _replay_of(self, endpoint: Any, record: dict) -> tuple:
        """A stored request checked and made ready to replay: (record, parsed, origin, answer).
        Raises ValueError (or any decoding error) for a damaged row."""
        if not isinstance(record["request_id"], str) or not record["request_id"]:
            raise ValueError("no request id")
        if not isinstance(record["seq"], int):
            raise ValueError("bad sequence number")
        for column in ("submitted_at", "eligible_at", "duration", "cancelled_at"):
            value = record[column]
            if value is None and column == "cancelled_at":
                continue
            if _stored_time(value) is None:
                raise ValueError(f"{column} out of range")
        parsed = self._parsed(endpoint, record)
        if isinstance(parsed, Answer) and not _is_status(parsed.status):
            raise ValueError("stored status out of range")
        origin = None
        if record["origin"]:
            origin = tuple(orjson.loads(record["origin"]))
            if len(origin) != 2 or not all(isinstance(part, str) for part in origin):
                raise ValueError("bad origin")
        answer = None
        if record["answer_status"] is not None:
            if not _is_status(record["answer_status"]):
                raise ValueError("stored status out of range")
            answer = Answer(record["answer_status"], bytes(record["answer_body"]),
                            _headers_of(record["answer_headers"]))
        for column in ("webhook_url", "error", "error_type"):
            if record[column] is not None and not isinstance(record[column], str):
                raise ValueError(f"bad {column}")
        return record, parsed, origin, answer

    @staticmethod
    def _parsed(endpoint: Any, record: dict) -> Parsed | Answer:
        if record["params"] is None:
            return Answer(record["rejected_status"], bytes(record["rejected_body"] or b""),
                          _headers_of(record["rejected_headers"]))
        notes = orjson.loads(record["notes"]) if record["notes"] else []
        if not isinstance(notes, list):
            raise ValueError("bad notes")
        parsed = endpoint.parse(bytes(record["params"]))  # params as used: parse is the identity
        if isinstance(parsed, Answer):
            # Rules changed between runs (--validation): keep the rejection it now gets.
            return parsed
        return Parsed(parsed.params, notes)

    # -- hooks (any thread; cheap) --------------------------------------------------------
    def _push(self, op: tuple) -> None:
        with self._ops_lock:
            self._ops.append(op)
            self._unwritten += 1
            if self._unwritten > self.backlog_limit and self.failure is None and self._writer is not None:
                self._wait_for_writer()
            if self._scheduled or self._closed:
                return
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop here: the writer thread's idle tick flushes it
            self._scheduled = True
        loop.call_later(self.flush_interval, self.flush)

    def _wait_for_writer(self) -> None:
        """Back-pressure (lock held): the writer is a flush interval behind.  Hand it what is
        gathered and wait, bounded, until it has committed that.  The call just recorded stays
        for the next flush: the HTTP layer still sets its webhook URL and origin."""
        ops, self._ops = self._ops[:-1], self._ops[-1:]
        if ops:
            self._writes.put(ops)
        self._written.wait_for(
            lambda: self._unwritten <= len(self._ops) or self.failure is not None or self._closed,
            timeout=BACKPRESSURE_WAIT)

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
                batch = self._writes.get(timeout=RETRY_INTERVAL if self._retry else HEARTBEAT)
            except _queue.Empty:
                with self._ops_lock:  # calls made where no loop runs (sync use)
                    pending = bool(self._ops) and not self._scheduled
                if pending:
                    self.flush()
                    continue
                self._commit([])  # heartbeat (still alive), or a retry of what failed
                continue
            if batch is None:
                self._commit([])
                return
            batches, stop = [batch], False
            while True:  # coalesce what else is waiting into this transaction
                try:
                    more = self._writes.get_nowait()
                except _queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batches.append(more)
            self._commit([op for ops in batches for op in ops])
            if stop:
                return

    def _commit(self, ops: list[tuple]) -> None:
        """Write the rows that failed before, then ``ops``, in one transaction.  On failure
        keep them all for the next attempt and say why in :attr:`failure`."""
        started, cpu = time.perf_counter(), time.thread_time()
        rows = self._retry + self._rows(ops)
        try:
            self._apply(rows)
        except Exception as exc:
            self._retry = rows
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            failure = (f"cannot write the state folder {self.directory}: {reason}; "
                       f"{len(rows)} recorded calls kept in memory and retried")
            if self.failure is None:
                log.error("fal-mock: %s", failure)
            with self._ops_lock:
                self.failure = failure
                self._attempts += 1
                self._written.notify_all()
            return
        if self.failure is not None:
            log.warning("fal-mock: the state folder %s is written again", self.directory)
        self._retry = []
        if len(rows) >= 64:  # per-call cost, from batches large enough to show it
            # what the writer needs of the process: its own CPU time plus what it waited for the
            # disk, not the time it waited for the GIL (the loop yields it while held back)
            wall, own = time.perf_counter() - started, time.thread_time() - cpu
            cost = min(wall, 2 * own) / len(rows)
            self._op_cost = cost if self._op_cost is None else 0.7 * self._op_cost + 0.3 * cost
            self.backlog_limit = max(MIN_BACKLOG, int(self.flush_interval / self._op_cost))
        with self._ops_lock:
            self.failure = None
            self._attempts += 1
            self._unwritten -= len(rows)
            self._written.notify_all()

    def _rows(self, ops: list[tuple]) -> list[tuple]:
        """The rows of ``ops``; a call that cannot be turned into one (a bug, not the disk) is
        logged and counted as written, so that the writer thread never dies of it."""
        rows = []
        for op in ops:
            try:
                rows.append(self._row(op))
            except Exception as exc:
                log.error("fal-mock: a %s call cannot be stored (%s: %s); skipped", op[0], type(exc).__name__, exc)
                rows.append(("skipped",))
        return rows

    def wait_written(self, timeout: float = 10.0) -> bool:
        """Hand what is gathered to the writer and wait until every recorded call is committed
        (True), or the writer's next attempt fails, or ``timeout`` passes (False).  For tests
        and benchmarks."""
        self.flush()
        with self._ops_lock:
            attempts = self._attempts
            return self._written.wait_for(
                lambda: self._unwritten <= 0 or (self.failure is not None and self._attempts > attempts),
                timeout) and self._unwritten <= 0

    def _apply(self, ops: list[tuple]) -> None:
        import sqlite3

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
            if db.in_transaction:  # SQLite may have rolled back already (disk full)
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            try:  # the upload totals counted what was rolled back
                self._upload_seq, self._upload_total = db.execute(
                    "SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(SUM(size), 0) FROM uploads").fetchone()
            except sqlite3.Error:
                pass
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
        elif kind == "skipped":
            pass
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
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
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
        with self._ops_lock:
            self._closed = True
            self._written.notify_all()
        self._writes.put(None)
        if self._writer is not None:
            self._writer.join(30)
        with self._ops_lock:
            rest, self._ops = self._ops, []
        self._commit(rest)  # anything pushed while stopping (and what failed before); marks last_seen
        if self._retry:
            log.error("fal-mock: %d recorded calls could not be written to %s and are lost: %s",
                      len(self._retry), self.directory, self.failure)
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


def _stored_time(value: Any) -> float | None:
    """A stored time or duration, or None when it is not one (damage: text, NaN, 1e308)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= _MAX_TIME else None


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599


def _private_folder(path: Path) -> None:
    """Create ``path`` (0700), or tighten an existing one to 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.is_dir():  # mkdir's exist_ok passes a symlink to a file
        raise NotADirectoryError(20, "Not a directory", str(path))
    _tighten(path, 0o700)


def _private_file(path: Path, create: bool = True) -> None:
    """Make ``path`` 0600 (creating it empty, already private, when ``create``)."""
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    _tighten(path, 0o600)


def _tighten(path: Path, mode: int) -> None:
    if os.name == "nt":  # POSIX modes do not apply
        return
    try:
        if stat.S_IMODE(path.stat().st_mode) & ~mode:
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) & mode)
    except FileNotFoundError:
        pass
    except PermissionError:  # not the owner: we can still use it, others may read it
        log.warning("fal-mock: could not make %s private (mode %o): not its owner", path, mode)


def _folder_problem(directory: Path, exc: OSError) -> str:
    import errno

    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return (f"fal-mock: the state folder {directory} (or a folder in it) is a file, not a folder: "
                "move that file away or give another --state-dir")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"fal-mock: the state folder {directory} cannot be written ({exc.strerror}): "
                "make it writable by this user or give another --state-dir")
    return f"fal-mock: the state folder {directory} cannot be used ({exc.strerror or exc}): give another --state-dir"


def _database_problem(directory: Path, db_path: Path, exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError):
        return _folder_problem(directory, exc)
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return (f"fal-mock: the state folder {directory} cannot be written ({text}): "
                "make it and its files writable by this user or give another --state-dir")
    return (f"fal-mock: the state database {db_path} is damaged ({text}): move it aside "
            f"(mv {db_path} {db_path}.damaged) to start with an empty state, or give another --state-dir")


def _acquire_lock(path: Path) -> int:
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StateDirUnusable(_folder_problem(path.parent, exc)) from None
    _tighten(path, 0o600)
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
