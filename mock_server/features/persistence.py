"""Opt-in persistence (``--persist``, in ``--state-dir DIR``): requests, results and uploads survive a restart.

The folder itself (layout, lock, private modes, schema, the errors a folder that cannot be
used raises) is :mod:`~mock_server.features.state_folder`'s; what a row holds is
:mod:`~mock_server.features.state_rows`'s (the *input* of the queue's simulation, not its
state); files not in memory are drawn again by :mod:`~mock_server.features.state_files`.
This module records the calls and replays them.

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

Replay at start: submits and cancels are fed to the fresh queue in time order with
their recorded times (``RequestQueue.submit(at=...)``, ``cancel(at=...)``), up to the
last time the old server was seen alive (written with every batch and once a second
when idle); from there the clock (wall time) moves them on as if the server had never
stopped, and webhooks of requests that finished while it was down are delivered then.
Stored requests that cannot be replayed (a damaged row, a time or status out of range)
are skipped, deleted and reported in one warning line.  ``--max-requests`` bounds the
database too: a request the queue forgets is deleted.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import queue as _queue
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from mock_server.core.answers import Answer
from mock_server.core.endpoint import EndpointEnv
from mock_server.features.state_files import StoredFiles, recording_env
from mock_server.features.state_folder import StateFolder, safe_name
from mock_server.features.state_rows import answer_row, cancel_row, replay_events, submit_row

if TYPE_CHECKING:
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


__all__ = ["FLUSH_INTERVAL", "Persistence"]

log = logging.getLogger("fal_mock")

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


class Persistence:
    """The state folder of one :class:`~mock_server.emulator.FalMock` (see the module doc)."""

    def __init__(self, mock: Emulator, directory: Path | str, flush_interval: float = FLUSH_INTERVAL) -> None:
        self.mock = mock
        self.flush_interval = flush_interval
        #: the folder, opened and locked (raises StateDirBusy / StateDirUnusable)
        self.folder = StateFolder(directory, mock.files.upload_bytes)
        self.directory = self.folder.directory
        self.db_path = self.folder.db_path
        self._files = StoredFiles(self.folder, mock.queue, mock.files, lambda: mock.settings)
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
        self._writes: _queue.SimpleQueue = _queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._closed = False

    @property
    def batches(self) -> int:
        """Transactions committed (for tests and benchmarks)."""
        return self.folder.batches

    # -- start -------------------------------------------------------------------------
    def start(self) -> "Persistence":
        """Replay the stored requests into the mock, then start recording."""
        import sqlite3

        try:
            self.load()
        except sqlite3.Error as exc:  # a damaged page met while reading
            raise self.folder.damaged(exc) from None
        queue, files = self.mock.queue, self.mock.files
        queue.on_record(self._on_record)
        files.on_upload = self._on_upload
        files.on_forget = self._on_forget_uploads
        files.loader = self._files.load_file
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
        last_seen, self._seq, records = self.folder.stored()
        events, dropped, skipped = replay_events(records, self.mock.endpoint)
        self.skipped.extend(skipped)
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
                    namespace=record["namespace"],
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
            self.folder.delete_requests(dropped)
        if self.skipped:
            shown = ", ".join(f"{rid} ({why})" for rid, why in self.skipped[:3])
            more = f" and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
            log.warning("fal-mock: skipped %d damaged request(s) in %s and deleted them: %s%s",
                        len(self.skipped), self.db_path, shown, more)
        self._apply(self._take_ops_unlocked())  # requests the replay itself forgot (max_requests)
        self._unwritten = 0
        return len(queue)
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
        if safe_name(name):
            self._push(("upload", name, data, content_type))

    def _on_forget_uploads(self, names: list[str]) -> None:  # a namespace's reset
        self._push(("forget_uploads", tuple(name for name in names if safe_name(name))))

    def answered(self, request: "QueuedRequest", answer: Answer, names: list[str]) -> None:
        """A result was produced (first time): keep its bytes and its files' names."""
        self._push(("answer", request.request_id, answer, tuple(names)))

    def recording_env(self, env: EndpointEnv, names: list[str]) -> EndpointEnv:
        """``env`` noting in ``names`` the images the result registers (see :meth:`answered`)."""
        return recording_env(env, names)

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
            row = submit_row(op[1], self._seq)
            self._seq += 1
            return row
        if kind == "cancel":
            return cancel_row(op[1])
        if kind == "answer":
            _, rid, answer, names = op
            return answer_row(rid, answer, names)
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

    def _apply(self, rows: list[tuple]) -> None:
        """Write ``rows`` in one transaction, marking the server alive at its end."""
        self.folder.apply(rows, self.mock.clock.now)

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
        self.folder.close()
        try:
            atexit.unregister(self.close)
        except Exception:
            pass


