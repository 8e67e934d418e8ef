"""The queue: stored requests and the one place where a request's status changes.

Plain Python, no HTTP.  Time comes from a :class:`~mock_server.core.clock.Clock`; the
state is advanced lazily (every read calls :meth:`RequestQueue.advance`), as a
discrete-event simulation of ``workers`` emulated runners taking requests in
FIFO order.  So ``queue_position`` is real when many requests are submitted at
once, and a frozen clock freezes the whole queue.

Status values are fal's: IN_QUEUE -> IN_PROGRESS -> COMPLETED.  fal never sends a
FAILED status: failed and cancelled requests end COMPLETED too (PROTOCOL.md §3.4).
"""
from __future__ import annotations

import heapq
import itertools
import os
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from mock_server.core.clock import Clock
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, Parsed
from mock_server.core.namespaces import DEFAULT
from mock_server.core.timing import TimingProfile

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"

# Cancel outcomes, as fal documents them (fal.ai/docs/inference-api/queue/cancel;
# docs.fal.ai/documentation/deployment/requests): 202 / 400 / 404.
CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
ALREADY_COMPLETED = "ALREADY_COMPLETED"
NOT_FOUND = "NOT_FOUND"


# UUID version 4 layout: version nibble 4, variant bits 10
_UUID_CLEAR = ~((0xF000 << 64) | (0xC << 60)) & ((1 << 128) - 1)
_UUID_SET = (0x4000 << 64) | (0x8 << 60)
_INF = float("inf")
_IDS_PER_READ = 256
_unused_ids: list[str] = []


def _id_batch() -> list[str]:
    raw = os.urandom(16 * _IDS_PER_READ)
    batch = []
    for at in range(0, len(raw), 16):
        h = (int.from_bytes(raw[at:at + 16], "big") & _UUID_CLEAR | _UUID_SET).to_bytes(16, "big").hex()
        batch.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return batch


def new_request_id() -> str:
    """A random UUID (version 4 layout), like fal's request ids, and unpredictable: the bits
    come from the OS's cryptographic source (as ``uuid.uuid4()``'s do), read for 256 ids at a
    time rather than once per id (the submit path's cost stays where it was).  ``list.pop``
    is atomic, so threads never share an id."""
    try:
        return _unused_ids.pop()
    except IndexError:
        _unused_ids.extend(_id_batch())
        return _unused_ids.pop()


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float
    message: str
    level: str = "INFO"

    def as_json(self) -> dict[str, object]:
        # fal's recorded stream capture (its queue docs): {"timestamp": "2024-12-20T15:37:17.120314"
        # (UTC, no offset), "message", "labels": {}} and nothing else; fal-js types/common.ts
        # declares level and source, which fal does not send (``level`` stays the mock's own)
        stamp = datetime.fromtimestamp(self.at, timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds")
        return {"timestamp": stamp, "message": self.message, "labels": {}}


def spread_log_lines(start: float, duration: float, messages: list[str]) -> list[LogLine]:
    """A run's log lines spread over its run time: the first at ``start``, the last before the end
    (a queued request's and a synchronous run's alike)."""
    count = len(messages)
    return [LogLine(start + duration * i / count, message) for i, message in enumerate(messages)]


class QueuedRequest:
    """One request submitted to the queue, from IN_QUEUE to COMPLETED."""

    __slots__ = (
        "request_id", "endpoint", "parsed", "submitted_at", "eligible_at", "duration",
        "started_at", "finished_at", "status", "cancelled", "error", "error_type",
        "answer", "producing", "notes", "webhook_url", "origin", "version", "_plan",
        "status_cache", "polls", "namespace",
    )

    def __init__(
        self,
        request_id: str,
        endpoint: Endpoint,
        parsed: Parsed | Answer,
        submitted_at: float,
        eligible_at: float,
        duration: float,
        namespace: str = DEFAULT,
    ) -> None:
        self.request_id = request_id
        #: whose request it is (docs/namespaces.md): another namespace's calls never find it
        self.namespace = namespace
        self.endpoint = endpoint
        self.parsed = parsed
        self.submitted_at = submitted_at
        self.eligible_at = eligible_at
        self.duration = duration
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.status = IN_QUEUE
        self.cancelled = False
        #: Set on runner-level failures and cancellation; shown on COMPLETED status
        #: (Python surfaces them as Completed.error / error_type).
        self.error: str | None = None
        self.error_type: str | None = None
        #: The result answer once produced (cached: produced at most once).
        self.answer: Answer | None = None
        self.producing: Any = None  # an asyncio.Future while the answer is being produced
        self.notes: list[str] = list(parsed.notes) if isinstance(parsed, Parsed) else []
        self.webhook_url: str | None = None
        #: (scheme, host) the submit came in on: the URLs a webhook or a restart hands out lead there
        self.origin: tuple[str, str] | None = None
        self.version = 0  # bumps at every status change
        self._plan: list[LogLine] | None = None
        self.status_cache: dict[Any, bytes] | None = None  # the COMPLETED status bodies, once built
        self.polls = 0  # status calls seen (drives progression in poll-count mode)

    @property
    def valid(self) -> bool:
        return isinstance(self.parsed, Parsed)

    def log_plan(self) -> list[LogLine]:
        """Every log line this request will print, with the clock time it appears."""
        if self._plan is None:
            start = self.started_at if self.started_at is not None else self.submitted_at
            messages = list(self.notes)
            if isinstance(self.parsed, Parsed):
                messages += self.endpoint.processing_notes(self.parsed.params)
            lines = spread_log_lines(start, self.duration, messages)
            if self.cancelled:
                lines.append(LogLine(self.finished_at or start, "Request cancelled", "WARN"))
            self._plan = lines
        return self._plan

    def logs_until(self, now: float) -> list[LogLine]:
        if self.status == IN_QUEUE:
            return []
        return [line for line in self.log_plan() if line.at <= now]

    @property
    def inference_time(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return round(self.finished_at - self.started_at, 6)


Listener = Callable[[QueuedRequest], None]
#: ``recorder(kind, request)`` with kind ``"submit"``, ``"cancel"`` or ``"forget"`` (persistence).
Recorder = Callable[[str, QueuedRequest], None]


class QueueFull(Exception):
    """A submit found ``max_pending`` requests already waiting or running (answered 429)."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class RequestQueue:
    """Stores requests and moves them through IN_QUEUE -> IN_PROGRESS -> COMPLETED.

    Bounded both ways: at most ``max_pending`` requests wait or run at once (a submit beyond
    raises :class:`QueueFull`), and at most ``max_requests`` finished ones are remembered, the
    oldest forgotten first, so a result is never forgotten before newer ones have finished."""

    def __init__(
        self,
        clock: Clock,
        timing: TimingProfile,
        workers: int = 2,
        max_requests: int = 10_000,
        polls: int | None = None,
        max_pending: int = 10_000,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if polls is not None and polls < 1:
            raise ValueError("polls must be >= 1")
        #: Poll-count mode: the Nth status call of a request finds it COMPLETED (the first
        #: IN_QUEUE, the ones between IN_PROGRESS), whatever the clock says.
        self.polls = polls
        self.clock = clock
        self.timing = timing
        self.workers = workers
        self.max_requests = max_requests
        self.max_pending = max_pending
        self._requests: dict[str, QueuedRequest] = {}
        self._pending: deque[QueuedRequest] = deque()
        self._running: list[tuple[float, int, QueuedRequest]] = []
        self._idle: list[float] = [float("-inf")] * workers  # when each idle worker became free
        self._finished: deque[str] = deque()
        self._seq = itertools.count()
        self.forgotten = 0  # finished requests dropped to honour max_requests
        self._listeners: list[Listener] = []
        self._recorders: list[Recorder] = []

    # -- observers ----------------------------------------------------------------
    def on_change(self, listener: Listener) -> None:
        """Call ``listener(request)`` after every status change (on the caller's thread)."""
        self._listeners.append(listener)

    def on_record(self, recorder: Recorder) -> None:
        """Call ``recorder(kind, request)`` after a submit, a successful cancel, and when a
        finished request is forgotten (``"submit"`` / ``"cancel"`` / ``"forget"``)."""
        self._recorders.append(recorder)

    def _record(self, kind: str, request: QueuedRequest) -> None:
        for recorder in self._recorders:
            recorder(kind, request)

    def _changed(self, request: QueuedRequest) -> None:
        request.version += 1
        request.status_cache = None
        for listener in self._listeners:
            listener(request)

    # -- submit / lookup ----------------------------------------------------------
    def submit(
        self,
        endpoint: Endpoint,
        parsed: Parsed | Answer,
        request_id: str | None = None,
        *,
        at: float | None = None,
        eligible_at: float | None = None,
        duration: float | None = None,
        namespace: str = DEFAULT,
    ) -> QueuedRequest:
        """Enqueue a request (valid or not: fal accepts bad input at submit, PROTOCOL.md §3.6).

        ``at`` / ``eligible_at`` / ``duration`` replay a recorded submit (persistence): the
        simulation is advanced to ``at`` only, and the recorded times are kept as they were.
        """
        now = self.clock.now() if at is None else at
        self.advance(now)
        if at is None and len(self._pending) + len(self._running) >= self.max_pending:
            raise QueueFull(self.max_pending)
        request_id = request_id or new_request_id()
        if duration is None:
            # A request the schema rejected never reaches a model: it runs for no time.
            duration = self.timing.duration(request_id) if isinstance(parsed, Parsed) else 0.0
        if eligible_at is None:
            eligible_at = now + self.timing.queue_wait()
        request = QueuedRequest(request_id, endpoint, parsed, now, eligible_at, duration, namespace)
        self._requests[request_id] = request
        self._pending.append(request)
        if self._recorders:
            self._record("submit", request)
        return request

    def get(self, request_id: str) -> QueuedRequest | None:
        """The request with that id (state brought up to the clock's now), or None."""
        request = self._requests.get(request_id)
        if request is not None and request.status != COMPLETED:
            self.advance()
        return request

    def peek(self, request_id: str) -> QueuedRequest | None:
        """The request with that id as it stands, without a simulation step, or None."""
        return self._requests.get(request_id)

    def queue_position(self, request: QueuedRequest) -> int:
        """How many requests are ahead of this one (0-based), for IN_QUEUE requests.

        *Chosen*: every namespace's requests count (the emulated runners are shared by all, as
        fal's position counts every caller's requests ahead on the app), so it tells how long
        the wait is; it names none of them."""
        if request.status != IN_QUEUE:
            return 0
        pending = self._pending
        if pending and pending[-1] is request:
            return len(pending) - 1  # the one just submitted: no scan on the submit path
        try:
            return pending.index(request)
        except ValueError:
            return 0

    def __len__(self) -> int:
        return len(self._requests)

    def __iter__(self):
        return iter(list(self._requests.values()))

    # -- the state machine ----------------------------------------------------------
    def observe(self, request: QueuedRequest) -> None:
        """A status call saw this request: in poll-count mode, move it one step on."""
        if self.polls is None or request.status == COMPLETED:
            return
        request.polls += 1
        now = self.clock.now()
        if request.polls >= self.polls or request.polls >= 2:
            if request.status == IN_QUEUE:
                self._pending.remove(request)
                request.started_at = now
                request.status = IN_PROGRESS
                self._changed(request)
            if request.polls >= self.polls:
                request.duration = now - (request.started_at or now)
                self._finish(request, now)

    def advance(self, now: float | None = None) -> None:
        """Run the simulation up to ``now``: start and finish requests whose time has come."""
        if self.polls is not None:
            return  # poll-count mode: only status calls move requests (see observe)
        if now is None:
            now = self.clock.now()
        pending, running, idle = self._pending, self._running, self._idle
        while pending or running:
            t_start = max(pending[0].eligible_at, idle[0]) if pending and idle else _INF
            t_finish = running[0][0] if running else _INF
            if t_finish <= t_start:
                if t_finish > now:
                    break
                _, _, request = heapq.heappop(running)
                if len(idle) + len(running) < self.workers:  # else the worker retires
                    heapq.heappush(idle, t_finish)
                self._finish(request, t_finish)
            else:
                if t_start > now:
                    break
                heapq.heappop(idle)
                request = pending.popleft()
                request.started_at = t_start
                request.status = IN_PROGRESS
                heapq.heappush(running, (t_start + request.duration, next(self._seq), request))
                self._changed(request)

    def _finish(self, request: QueuedRequest, at: float) -> None:
        request.finished_at = at
        request.status = COMPLETED
        self._finished.append(request.request_id)
        self._changed(request)
        # only finished requests count: a backlog of waiting ones never pushes out a result
        # that has just been produced
        while len(self._finished) > self.max_requests:
            old = self._finished.popleft()
            dropped = self._requests.pop(old, None)
            if dropped is not None:
                self.forgotten += 1
                if self._recorders:
                    self._record("forget", dropped)

    def next_event_time(self) -> float | None:
        """When the next status change is due (None when nothing is waiting)."""
        times = []
        if self._pending and self._idle:
            times.append(max(self._pending[0].eligible_at, self._idle[0]))
        if self._running:
            times.append(self._running[0][0])
        return min(times) if times else None

    def cancel(self, request_id: str, *, at: float | None = None) -> str:
        """Cancel a request: CANCELLATION_REQUESTED, ALREADY_COMPLETED or NOT_FOUND.

        A queued request is removed from the queue; a running one is stopped (fal
        "sends a cancellation signal to the runner"; the mock's runner always obeys).
        Either way it ends COMPLETED and its result answers fal's 499 (see fal_errors.cancelled).
        ``at`` replays a recorded cancel (persistence) at that time instead of the clock's now.
        """
        now = self.clock.now() if at is None else at
        self.advance(now)
        request = self._requests.get(request_id)
        if request is None:
            return NOT_FOUND
        if request.status == COMPLETED:
            return ALREADY_COMPLETED
        if request.status == IN_QUEUE:
            self._pending.remove(request)
            request.started_at = now
        elif self.polls is not None:
            pass  # poll-count mode keeps no worker accounting
        else:
            self._running = [entry for entry in self._running if entry[2] is not request]
            heapq.heapify(self._running)
            if len(self._idle) + len(self._running) < self.workers:
                heapq.heappush(self._idle, now)
        request.cancelled = True
        request._plan = None
        if self._recorders:
            request.finished_at = now  # the cancel's time, for the recorder
            self._record("cancel", request)  # before _finish, which may forget it at once
        self._finish(request, now)
        return CANCELLATION_REQUESTED

    def forget_namespace(self, namespace: str) -> int:
        """Forget one namespace's requests (waiting, running or finished), as :meth:`reset`
        forgets all; a running one frees its worker now.  Returns how many were forgotten."""
        self.advance()
        mine = [r for r in self._requests.values() if r.namespace == namespace]
        if not mine:
            return 0
        gone = {id(r) for r in mine}
        self._pending = deque(r for r in self._pending if id(r) not in gone)
        running = [entry for entry in self._running if id(entry[2]) not in gone]
        if len(running) != len(self._running) and self.polls is None:
            now = self.clock.now()
            for _ in range(len(self._running) - len(running)):
                if len(self._idle) + len(running) < self.workers:
                    heapq.heappush(self._idle, now)
        heapq.heapify(running)
        self._running = running
        ids = {r.request_id for r in mine}
        self._finished = deque(rid for rid in self._finished if rid not in ids)
        for request in mine:
            del self._requests[request.request_id]
            if self._recorders:
                self._record("forget", request)
        return len(mine)

    def reset(self) -> None:
        """Forget every request; workers become idle."""
        self._requests.clear()
        self._pending.clear()
        self._running.clear()
        self._idle = [float("-inf")] * self.workers
        self._finished.clear()
        self.forgotten = 0

    def reconfigure(self, timing: TimingProfile | None = None, workers: int | None = None,
                    polls: int | None | bool = False) -> None:
        """Change the timing profile, the worker count or poll-count mode (``polls=None`` ends it).

        Applies to requests submitted from now on; call :meth:`reset` first for a clean slate.
        """
        if polls is not False:
            if polls is not None and polls < 1:
                raise ValueError("polls must be >= 1")
            self.polls = polls  # type: ignore[assignment]
        if timing is not None:
            self.timing = timing
        if workers is not None and workers != self.workers:
            if workers < 1:
                raise ValueError("workers must be >= 1")
            # Fewer workers: idle ones leave now, busy ones when their request ends
            # (advance only re-idles a worker while there are fewer than `workers`).
            self.workers = workers
            keep = max(workers - len(self._running), 0)
            self._idle = sorted(self._idle)[:keep] + [float("-inf")] * max(keep - len(self._idle), 0)
            heapq.heapify(self._idle)
