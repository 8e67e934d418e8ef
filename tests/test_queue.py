"""The queue state machine on a frozen clock: no server, no sleeping."""
from __future__ import annotations

import pytest

from echo_endpoint import EchoEndpoint
from mock_server.core.clock import Clock
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

ENDPOINT = EchoEndpoint()
FIXED_10S = TimingProfile("fixed", queue_delay=0.0, min_duration=10.0, max_duration=10.0)


def make_queue(timing: TimingProfile = FIXED_10S, workers: int = 1, **kw) -> tuple[RequestQueue, Clock]:
    clock = Clock()
    clock.freeze(1_000_000.0)
    return RequestQueue(clock, timing, workers=workers, **kw), clock


def submit(queue: RequestQueue):
    return queue.submit(ENDPOINT, Parsed({"x": 1}))


def test_instant_profile_completes_on_first_read():
    queue, _ = make_queue(TimingProfile.named("instant"))
    request = submit(queue)
    assert request.status == IN_QUEUE
    assert queue.get(request.request_id).status == COMPLETED
    assert request.inference_time == 0.0


def test_queue_position_counts_down_as_workers_free_up():
    queue, clock = make_queue(workers=1)
    a, b, c = submit(queue), submit(queue), submit(queue)
    queue.advance()
    assert (a.status, b.status, c.status) == (IN_PROGRESS, IN_QUEUE, IN_QUEUE)
    assert [queue.queue_position(r) for r in (b, c)] == [0, 1]
    clock.advance(10)
    queue.advance()
    assert (a.status, b.status, c.status) == (COMPLETED, IN_PROGRESS, IN_QUEUE)
    assert queue.queue_position(c) == 0
    clock.advance(20)
    queue.advance()
    assert c.status == COMPLETED
    # each started when the previous one freed the worker, exactly
    assert (b.started_at - a.started_at, c.started_at - b.started_at) == (10.0, 10.0)


def test_two_workers_run_two_requests_at_once():
    queue, clock = make_queue(workers=2)
    a, b, c = submit(queue), submit(queue), submit(queue)
    queue.advance()
    assert (a.status, b.status, c.status) == (IN_PROGRESS, IN_PROGRESS, IN_QUEUE)
    assert queue.queue_position(c) == 0


def test_a_big_clock_jump_replays_every_transition_in_order():
    queue, clock = make_queue(workers=1)
    requests = [submit(queue) for _ in range(5)]
    clock.advance(1000)
    queue.advance()
    assert all(r.status == COMPLETED for r in requests)
    assert [r.finished_at - 1_000_000.0 for r in requests] == [10.0, 20.0, 30.0, 40.0, 50.0]


def test_queue_delay_keeps_a_request_queued_even_with_a_free_worker():
    queue, clock = make_queue(TimingProfile("d", 2.0, 1.0, 1.0), workers=4)
    request = submit(queue)
    clock.advance(1.9)
    assert queue.get(request.request_id).status == IN_QUEUE
    clock.advance(0.1)
    assert queue.get(request.request_id).status == IN_PROGRESS


def test_cancel_of_a_queued_request_removes_it_and_moves_the_rest_up():
    queue, clock = make_queue(workers=1)
    _, b, c = submit(queue), submit(queue), submit(queue)
    assert queue.cancel(b.request_id) == CANCELLATION_REQUESTED
    assert b.status == COMPLETED and b.cancelled
    assert queue.queue_position(c) == 0
    clock.advance(10)
    queue.advance()
    assert c.status == IN_PROGRESS


def test_cancel_of_a_running_request_frees_its_worker():
    queue, clock = make_queue(workers=1)
    a, b = submit(queue), submit(queue)
    queue.advance()
    clock.advance(3)
    assert queue.cancel(a.request_id) == CANCELLATION_REQUESTED
    queue.advance()
    assert a.status == COMPLETED and a.inference_time == 3.0
    assert b.status == IN_PROGRESS and b.started_at == a.finished_at


def test_cancel_of_completed_request_is_refused_and_unknown_is_not_found():
    queue, clock = make_queue(TimingProfile.named("instant"))
    request = submit(queue)
    queue.advance()
    assert queue.cancel(request.request_id) == ALREADY_COMPLETED
    assert queue.cancel("no-such-id") == NOT_FOUND


def test_logs_appear_over_the_run_time():
    queue, clock = make_queue(workers=1)
    request = queue.submit(ENDPOINT, Parsed({"note": "hi"}, ["note: hi"]))
    queue.advance()
    start = clock.now()
    assert [line.message for line in request.logs_until(start)] == ["note: hi"]
    # four lines spread evenly over the 10 s run: at 0, 2.5, 5 and 7.5 s
    clock.advance(2.5)
    assert [line.message for line in request.logs_until(clock.now())] == ["note: hi", "step 1"]
    clock.advance(7.5)
    queue.advance()
    assert [line.message for line in request.logs_until(clock.now())] == ["note: hi", "step 1", "step 2", "step 3"]


def test_rejected_input_is_queued_and_completes_without_running_time():
    queue, clock = make_queue(workers=1)
    rejected = queue.submit(ENDPOINT, ENDPOINT.parse(b'{"bad": 1}'))
    queue.advance()
    assert rejected.status == COMPLETED and rejected.inference_time == 0.0
    assert not rejected.valid


def test_finished_requests_beyond_the_cap_are_forgotten_oldest_first():
    queue, _ = make_queue(TimingProfile.named("instant"), max_requests=3)
    ids = [submit(queue).request_id for _ in range(5)]
    queue.advance()
    submit(queue)
    assert queue.get(ids[0]) is None and queue.get(ids[1]) is None
    assert queue.get(ids[4]) is not None
    assert queue.forgotten >= 2 and len(queue) <= 4


def test_next_event_time_names_the_next_transition():
    queue, clock = make_queue(workers=1)
    assert queue.next_event_time() is None
    submit(queue)
    assert queue.next_event_time() == clock.now()
    queue.advance()
    assert queue.next_event_time() == clock.now() + 10


def test_timing_durations_are_fixed_per_request_id_and_scaled_by_speed():
    realistic = TimingProfile.named("realistic")
    assert realistic.duration("abc") == realistic.duration("abc")
    assert 60 <= realistic.duration("abc") <= 120
    fast = TimingProfile.named("realistic", speed=10)
    assert fast.duration("abc") == pytest.approx(realistic.duration("abc") / 10)
    with pytest.raises(ValueError):
        TimingProfile.named("nope")


def test_request_ids_come_from_the_os_cryptographic_source(monkeypatch):
    """Ids are unpredictable (not a seeded PRNG an observer could reconstruct): their bits are
    read from os.urandom, 256 ids per read; they stay unique and in UUID v4 layout."""
    import uuid

    from mock_server.core import queue as queue_module

    reads: list[int] = []
    real = queue_module.os.urandom

    def counting(n: int) -> bytes:
        reads.append(n)
        return real(n)

    monkeypatch.setattr(queue_module.os, "urandom", counting)
    monkeypatch.setattr(queue_module, "_unused_ids", [])
    ids = [queue_module.new_request_id() for _ in range(300)]
    assert reads == [16 * 256, 16 * 256]
    assert len(set(ids)) == 300
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_the_clock_refuses_times_past_the_year_9999_and_nan():
    """``advance: 1e308`` used to be accepted and then break every status, stream and page."""
    import math

    import pytest

    from mock_server.core.clock import LATEST, Clock

    clock = Clock()
    clock.freeze(1000.0)
    for bad in (1e308, math.inf, math.nan, LATEST):
        with pytest.raises(ValueError):
            clock.advance(bad)
    with pytest.raises(ValueError):
        clock.freeze(1e308)
    assert clock.now() == 1000.0, "a refused move leaves the clock where it was"
    assert clock.advance(5) == 1005.0


def test_a_backtracking_prompt_pattern_gives_up_instead_of_holding_the_loop():
    """``(a+)+$`` on 29 a's and a b took 12 s with re; the search is time-bounded now."""
    import time

    import pytest

    from mock_server.core.faults import PROMPT_SEARCH_SECONDS, Fault, FaultError, FaultRule

    rule = FaultRule(Fault(kind="http_error", status=503), prompt="(a+)+$")
    started = time.perf_counter()
    assert rule.applies("submit", "a" * 29 + "b") is False
    assert time.perf_counter() - started < 20 * PROMPT_SEARCH_SECONDS
    assert rule.applies("submit", "aaa") is True  # an ordinary match still fires
    with pytest.raises(FaultError):
        FaultRule(Fault(), prompt="(unclosed")


def test_waiting_work_is_bounded_and_a_full_queue_refuses_submits():
    from mock_server.core.queue import QueueFull

    queue, clock = make_queue(max_pending=3)
    for _ in range(3):
        submit(queue)
    with pytest.raises(QueueFull) as refused:
        submit(queue)
    assert refused.value.limit == 3
    clock.advance(10)  # the first one finishes: room for one more
    submit(queue)


def test_a_backlog_larger_than_max_requests_never_forgets_a_result_as_it_completes():
    """With more requests waiting than max_requests, each result was forgotten the moment it
    completed (COMPLETED, then 404); only finished requests count towards the bound now."""
    queue, clock = make_queue(max_requests=2, max_pending=100)
    requests = [submit(queue) for _ in range(10)]
    for done in range(1, 11):
        clock.advance(10)
        latest = requests[done - 1]
        assert queue.get(latest.request_id) is latest and latest.status == COMPLETED
    kept = [r for r in requests if queue.peek(r.request_id) is not None]
    assert kept == requests[-2:] and queue.forgotten == 8


def test_a_journal_entry_keeps_a_bounded_part_of_huge_headers_path_and_query():
    from mock_server.core.journal import HEADERS_KEEP, PATH_KEEP, Journal

    journal = Journal(10)
    headers = [(b"host", b"x"), (b"x-big", b"a" * 10_000_000)] + [(b"x-%d" % i, b"v") for i in range(5000)]
    entry = journal.new_entry(0.0, "GET", "/" + "p" * 1_000_000, b"q=" + b"z" * 1_000_000, headers)
    kept = sum(len(n) + len(v) for n, v in entry.raw_headers)
    assert kept < HEADERS_KEEP + 200
    assert entry.raw_headers[0] == (b"host", b"x") and entry.raw_headers[1][1].endswith(b"...(10000000 bytes)")
    assert len(entry.path) == PATH_KEEP and len(entry.query) == PATH_KEEP
    small = [(b"host", b"x"), (b"authorization", b"Key a:b")]
    assert journal.new_entry(0.0, "GET", "/", b"", small).raw_headers is small  # the common case: kept as is
