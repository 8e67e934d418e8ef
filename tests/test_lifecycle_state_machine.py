"""The queue's lifecycle as a Hypothesis state machine: plain Python, frozen clock, no server.

Rules: submit (valid or not), advance the clock, read a status, cancel, reconfigure the
worker count.  After every step the invariants below must hold against a simple model:
no request lost or duplicated, every id found until forgotten (only finished ones are
forgotten, oldest finished first), status only moves forward, COMPLETED is sticky, at most
``workers`` requests IN_PROGRESS once the queue has caught up, queue positions are
0..n-1 in FIFO order, and cancel answers match the state.
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from echo_endpoint import EchoEndpoint
from mock_server.core.clock import Clock
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Parsed
from mock_server.core.queue import (
    ALREADY_COMPLETED,
    CANCELLATION_REQUESTED,
    COMPLETED,
    IN_PROGRESS,
    IN_QUEUE,
    NOT_FOUND,
    RequestQueue,
)
from mock_server.core.timing import TimingProfile

RANK = {IN_QUEUE: 0, IN_PROGRESS: 1, COMPLETED: 2}
#: ``RequestQueue.reconfigure(workers=w)`` with fewer workers than requests running used to
#: leave too many idle slots once those finished (test_reducing_workers_below_the_busy_count,
#: found by this machine; fixed in queue.advance: a finishing surplus worker retires).
REDUCE_BELOW_BUSY = True
MAX_REQUESTS = 6
ENDPOINT = EchoEndpoint()


class Lifecycle(RuleBasedStateMachine):
    @initialize(workers=st.integers(1, 3), profile=st.sampled_from(["instant", "default", "realistic"]),
                speed=st.sampled_from([1.0, 10.0]))
    def start(self, workers: int, profile: str, speed: float) -> None:
        self.clock = Clock()
        self.clock.freeze(1_700_000_000.0)
        self.queue = RequestQueue(self.clock, TimingProfile.named(profile, speed), workers=workers,
                                  max_requests=MAX_REQUESTS)
        self.submitted: list[str] = []  # every id, in submit order
        self.seen: dict[str, str] = {}  # id -> last status observed
        self.finished_order: list[str] = []  # ids in the order they reached COMPLETED
        self.cancelled: set[str] = set()
        self.changes: list[tuple[str, str]] = []
        self.queue.on_change(lambda r: self.changes.append((r.request_id, r.status)))
        self.workers_now = workers
        self.max_workers_since = workers  # reducing workers lets running requests finish first
        self.started_before: set[str] = set()  # ids that had started at the last reconfigure

    # -- rules ----------------------------------------------------------------------------
    @rule(valid=st.booleans())
    def submit(self, valid: bool) -> None:
        parsed = Parsed({"x": 1}, []) if valid else Answer(422, b'{"detail":[]}')
        request = self.queue.submit(ENDPOINT, parsed)
        assert request.request_id not in self.submitted, "duplicate id"
        assert request.status == IN_QUEUE
        self.submitted.append(request.request_id)
        self.seen[request.request_id] = IN_QUEUE

    @rule(count=st.integers(2, 4))
    def submit_batch(self, count: int) -> None:
        for _ in range(count):
            self.submit(True)

    @rule(seconds=st.sampled_from([0.0, 0.1, 0.5, 1.0, 3.0, 30.0, 200.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: self.submitted)
    @rule(data=st.data())
    def read_status(self, data) -> None:
        rid = data.draw(st.sampled_from(self.submitted))
        request = self.queue.get(rid)
        if request is None:
            assert rid in self.forgotten_ids(), f"{rid} lost before it was forgotten"
            return
        assert request.request_id == rid

    @precondition(lambda self: self.submitted)
    @rule(data=st.data())
    def cancel(self, data) -> None:
        rid = data.draw(st.sampled_from(self.submitted + ["no-such-id"]))
        before = self.queue._requests.get(rid)
        self.queue.advance()
        state = before.status if before is not None else None
        outcome = self.queue.cancel(rid)
        if rid == "no-such-id" or rid not in self.queue._requests and before is None:
            assert outcome == NOT_FOUND
            return
        if state == COMPLETED:
            assert outcome == ALREADY_COMPLETED
        else:
            assert outcome == CANCELLATION_REQUESTED, (state, outcome)
            self.cancelled.add(rid)
            request = self.queue._requests.get(rid) or before
            assert request.status == COMPLETED and request.cancelled

    @rule(workers=st.integers(1, 4))
    def reconfigure(self, workers: int) -> None:
        self.queue.advance()
        if not REDUCE_BELOW_BUSY and workers < len(self.queue._running):
            return
        self.queue.reconfigure(workers=workers)
        self.workers_now = workers
        self.started_before = {r.request_id for r in self.queue if r.started_at is not None}
        self.max_workers_since = max(workers, len(self.queue._running))

    # -- model bookkeeping -------------------------------------------------------------------
    def forgotten_ids(self) -> set[str]:
        return {rid for rid in self.submitted if rid not in self.queue._requests}

    def _sync(self) -> None:
        for rid, status in self.changes:
            assert RANK[status] >= RANK[self.seen[rid]], f"{rid}: {self.seen[rid]} -> {status}"
            if status == COMPLETED and self.seen[rid] != COMPLETED:
                self.finished_order.append(rid)
            self.seen[rid] = status
        self.changes.clear()

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def no_request_lost_duplicated_or_moved_backwards(self) -> None:
        if not hasattr(self, "queue"):
            return
        self.queue.advance()
        self._sync()
        stored = list(self.queue)
        ids = [r.request_id for r in stored]
        assert len(ids) == len(set(ids)), "duplicated request"
        assert set(ids) <= set(self.submitted)
        forgotten = self.forgotten_ids()
        # only finished requests are forgotten, the oldest finished first, and counted
        assert len(forgotten) == self.queue.forgotten
        assert forgotten == set(self.finished_order[: len(forgotten)]), "forgot a request out of order"
        assert all(self.seen[rid] == COMPLETED for rid in forgotten)
        # the cap is applied when a request finishes: finished ones kept never exceed it
        assert sum(r.status == COMPLETED for r in stored) <= MAX_REQUESTS
        for request in stored:
            assert request.status == self.seen[request.request_id], "a change was not announced"
            if request.request_id in self.cancelled:
                assert request.status == COMPLETED and request.cancelled
            if request.status == COMPLETED:
                assert request.finished_at is not None and request.finished_at <= self.clock.now()
                assert request.started_at is not None and request.started_at <= request.finished_at
            if request.status == IN_PROGRESS:
                assert request.started_at is not None and request.started_at <= self.clock.now()

    @invariant()
    def at_most_workers_in_progress(self) -> None:
        if not hasattr(self, "queue"):
            return
        running = sum(r.status == IN_PROGRESS for r in self.queue)
        assert running <= self.max_workers_since, (running, self.workers_now)
        if running <= self.workers_now:
            self.max_workers_since = self.workers_now  # the overhang from a reduction is gone

    @invariant()
    def run_intervals_never_overlap_more_than_workers(self) -> None:
        """Over the simulated time (not just at step boundaries): requests that started since
        the last reconfigure never run more than ``workers`` at once."""
        if not hasattr(self, "queue"):
            return
        now = self.clock.now()
        edges = []
        for request in self.queue:
            start = request.started_at
            if start is None or request.request_id in self.started_before:
                continue
            end = request.finished_at if request.status == COMPLETED else float("inf")
            if end > start:
                edges += [(start, 1), (end, -1)]
        busy = peak = 0
        for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts at a tie
            busy += step
            peak = max(peak, busy)
        assert peak <= self.workers_now, f"{peak} requests ran at once with workers={self.workers_now} (now {now})"

    @invariant()
    def queue_positions_are_fifo_without_gaps(self) -> None:
        if not hasattr(self, "queue"):
            return
        waiting = [r for r in self.queue if r.status == IN_QUEUE]
        positions = [self.queue.queue_position(r) for r in waiting]
        assert sorted(positions) == list(range(len(waiting)))
        by_position = [r.request_id for r in sorted(waiting, key=self.queue.queue_position)]
        assert by_position == [rid for rid in self.submitted if rid in {r.request_id for r in waiting}], "not FIFO"
        # FIFO service: nothing submitted later has started while an earlier one waits
        if waiting:
            first_waiting = self.submitted.index(by_position[0])
            for rid in self.submitted[first_waiting + 1:]:
                if rid not in self.cancelled and rid in self.queue._requests:
                    assert self.queue._requests[rid].status == IN_QUEUE, "a later request overtook an earlier one"


def test_reducing_workers_below_the_busy_count_never_runs_more_than_workers() -> None:
    """Found by the machine above: 2 running, reconfigure(workers=1), 2 more submitted ->
    both new ones ran at the same time (each finished runner pushed a free slot back)."""
    machine = Lifecycle()
    machine.start(workers=2, profile="default", speed=1.0)
    machine.queue.timing = TimingProfile("fixed", 0.5, 3.0, 3.0)  # every run takes exactly 3 s
    machine.submit_batch(2)
    machine.advance(0.5)
    machine.queue.advance()
    assert len(machine.queue._running) == 2
    machine.queue.reconfigure(workers=1)
    machine.workers_now = 1
    machine.started_before = {r.request_id for r in machine.queue}
    machine.submit_batch(2)
    machine.advance(30.0)
    machine.queue.advance()
    machine.run_intervals_never_overlap_more_than_workers()


Lifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
TestLifecycle = Lifecycle.TestCase
