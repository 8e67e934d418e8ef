"""The state folder (``--state-dir DIR``): the folder, its lock, its SQLite database and uploads.

Layout of ``DIR`` (the TLS CA lives beside it in ``DIR/tls/``)::

    state.sqlite3     SQLite, WAL mode: tables meta, requests, files, uploads
    uploads/<name>    uploaded bytes (content type in the uploads table)
    state.lock        held (flock) by the one server using DIR; a second one is refused

A folder that cannot be used at start (not a folder, not writable, a damaged database)
raises :class:`StateDirUnusable`, whose message is one line saying what is wrong and how to
recover; one another fal-mock holds raises :class:`StateDirBusy`.  The folder is kept
private: 0700, with the database, its WAL files, the lock and uploads 0600 (tightened at
start).  What goes into the rows, and when, is :mod:`mock_server.features.persistence`'s.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from mock_server.core.namespaces import DEFAULT
from mock_server.core.files import StoredFile
from mock_server.features.state_rows import COLUMNS, stored_time

if TYPE_CHECKING:
    import sqlite3

__all__ = ["DB_NAME", "StateDirBusy", "StateDirUnusable", "StateFolder"]

log = logging.getLogger("fal_mock")

DB_NAME = "state.sqlite3"
LOCK_NAME = "state.lock"
UPLOADS = "uploads"
#: 2: requests gained ``namespace`` (docs/namespaces.md); a version-1 folder is migrated at open
SCHEMA_VERSION = "2"

_SCHEMA = f"""
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
    answer_status INTEGER, answer_headers TEXT, answer_body BLOB,
    namespace    TEXT NOT NULL DEFAULT '{DEFAULT}'
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


def safe_name(name: str) -> bool:
    """Whether ``name`` can be a file in ``uploads/`` (no path, no hidden file)."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".") and "\0" not in name


class StateFolder:
    """One state folder, opened: private, locked, its schema in place.  Two connections to
    the database: :attr:`db` for the writer thread (and the replay before it starts), and
    one for reading files back from any thread.  Uploads on disk are kept within
    ``upload_cap`` bytes (oldest dropped first), like those in memory."""

    def __init__(self, directory: Path | str, upload_cap: int) -> None:
        self.directory = Path(directory).expanduser()
        self.uploads_dir = self.directory / UPLOADS
        self.db_path = self.directory / DB_NAME
        self._upload_cap = upload_cap
        self._upload_seq = 0
        self._upload_total = 0
        #: transactions committed (for tests and benchmarks)
        self.batches = 0
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
            self.db = self._connect()
            self.db.executescript(_SCHEMA)
            _migrate(self.db)
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._reader = self._connect()
        except (OSError, sqlite3.Error) as exc:
            _release_lock(self._lock_fd)
            raise StateDirUnusable(_database_problem(self.directory, self.db_path, exc)) from None
        except BaseException:
            _release_lock(self._lock_fd)
            raise
        self._reader_lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        import sqlite3  # here, not at module level: serving without --state-dir never needs it

        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def damaged(self, exc: Exception) -> StateDirUnusable:
        """Close the folder after ``exc`` (a damaged page met while reading) and return the
        error to raise."""
        self.db.close()
        self._reader.close()
        _release_lock(self._lock_fd)
        return StateDirUnusable(_database_problem(self.directory, self.db_path, exc))

    # -- reading back ------------------------------------------------------------------
    def stored(self) -> tuple[float | None, int, list[dict[str, Any]]]:
        """What a restart replays: the last time the old server was seen alive (None when
        never, or damaged), the next request sequence number, and the stored requests' rows."""
        db = self.db
        row = db.execute("SELECT value FROM meta WHERE key='last_seen'").fetchone()
        last_seen = stored_time(row[0]) if row else None
        next_seq = db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM requests WHERE typeof(seq)='integer'").fetchone()[0] + 1
        self._upload_seq, self._upload_total = db.execute(
            "SELECT COALESCE(MAX(seq), 0) + 1, COALESCE(SUM(size), 0) FROM uploads "
            "WHERE typeof(seq)='integer' AND typeof(size)='integer'").fetchone()
        rows = [dict(zip(COLUMNS, row)) for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM requests").fetchall()]
        return last_seen, next_seq, rows

    def delete_requests(self, request_ids: list[str]) -> None:
        self.db.executemany("DELETE FROM requests WHERE request_id=?", [(rid,) for rid in request_ids])

    def file(self, name: str) -> StoredFile | str | None:
        """A stored upload (its bytes), else the id of the request whose result registered
        ``name`` (to draw it again), else None.  Any thread."""
        if not safe_name(name):
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
        return None if owner is None else owner[0]

    # -- writing (the writer thread) ---------------------------------------------------
    def apply(self, rows: list[tuple], now: Callable[[], float]) -> None:
        """Write ``rows`` (see :mod:`~mock_server.features.state_rows`) in one transaction,
        with ``now()`` as the last time the server was seen alive; on any error roll back
        and raise."""
        import sqlite3

        db = self.db
        db.execute("BEGIN")
        try:
            i = 0
            while i < len(rows):  # runs of the same kind go through executemany
                kind = rows[i][0]
                j = i
                while j < len(rows) and rows[j][0] == kind and kind in ("submit", "cancel", "forget"):
                    j += 1
                if j > i:
                    self._apply_run(db, kind, rows[i:j])
                    i = j
                else:
                    self._apply_one(db, rows[i])
                    i += 1
            db.execute("INSERT OR REPLACE INTO meta VALUES ('last_seen', ?)", (repr(now()),))
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

    def _apply_run(self, db: sqlite3.Connection, kind: str, rows: list[tuple]) -> None:
        if kind == "submit":
            db.executemany(f"INSERT OR REPLACE INTO requests ({', '.join(COLUMNS)}) VALUES (" + ",".join("?" * len(COLUMNS)) + ")", [row[1] for row in rows])
        elif kind == "cancel":
            db.executemany("UPDATE requests SET cancelled_at=? WHERE request_id=?", [row[1] for row in rows])
        else:
            db.executemany("DELETE FROM requests WHERE request_id=?", [(row[1],) for row in rows])
            # only a request whose result was produced has files (and a restored one may)
            db.executemany("DELETE FROM files WHERE request_id=?", [(row[1],) for row in rows if row[2]])

    def _apply_one(self, db: sqlite3.Connection, row: tuple) -> None:
        kind = row[0]
        if kind == "answer":
            _, values, rid, names = row
            cursor = db.execute("UPDATE requests SET answer_status=?, answer_headers=?, answer_body=? WHERE request_id=?", values)
            if cursor.rowcount:
                db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?)", [(name, rid) for name in names])
        elif kind == "upload":
            _, name, data, content_type = row
            self._write_upload(db, name, data, content_type)
        elif kind == "forget_uploads":  # a namespace's reset: its uploads go from disk too
            for name in row[1]:
                gone = db.execute("SELECT size FROM uploads WHERE name=?", (name,)).fetchone()
                if gone:
                    db.execute("DELETE FROM uploads WHERE name=?", (name,))
                    (self.uploads_dir / name).unlink(missing_ok=True)
                    self._upload_total -= gone[0]
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

    def close(self) -> None:
        """Close the database and release the folder (the writer has stopped)."""
        self.db.close()
        with self._reader_lock:
            self._reader.close()
        _release_lock(self._lock_fd)


def _migrate(db: "sqlite3.Connection") -> None:
    """Bring a state folder written by an older fal-mock to :data:`SCHEMA_VERSION`: version 1
    had no ``namespace`` column (its requests were all the default namespace's)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
    if "namespace" not in columns:
        db.execute(f"ALTER TABLE requests ADD COLUMN namespace TEXT NOT NULL DEFAULT '{DEFAULT}'")


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
