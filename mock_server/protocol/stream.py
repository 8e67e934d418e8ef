"""The status stream (fal docs, queue/status-stream; PROTOCOL.md §3.5): the request's status
as server-sent events, one per change, COMPLETED last.

fal's recorded stream (its queue docs' capture) writes each event with Python's ``json.dumps``
spacing (``", "`` and ``": "``); the mock does too (:data:`FAL_SPACING`).  That capture also
repeats IN_PROGRESS events with ``"logs": []`` between changes, at a period it does not show;
the mock sends one event per change and a ``: ping`` comment when idle (fal docs)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, AsyncIterator

import orjson

from mock_server.core.queue import COMPLETED, IN_PROGRESS, IN_QUEUE, QueuedRequest
from mock_server.protocol.paths import logs_flag
from mock_server.protocol.request import HttpRequest

KEEPALIVE = 15.0  # seconds between ": ping" comments on an idle status stream (fal docs)
#: Write events as fal's stream does (``{"status": "IN_PROGRESS", ...}``), not compact.
FAL_SPACING = True


def event(body: dict) -> bytes:
    """One ``data:`` event carrying ``body``."""
    data = json.dumps(body).encode() if FAL_SPACING else orjson.dumps(body)
    return b"data: " + data + b"\n\n"


async def status_events(calls: Any, call: HttpRequest, queued: QueuedRequest, app_path: str,
                        queue_base: str) -> AsyncIterator[bytes]:
    """One ``data:`` event per change, COMPLETED last; a ``: ping`` comment keeps an idle
    stream alive every 15 s.

    Each event carries only the log lines that are new since the previous one (fal-js
    accumulates them, queue.ts).  The emulator's queue driver moves the queue on while the
    stream watches; its changes (and hand moves of the clock) wake the stream through the
    clock waiter.  ``calls`` is the :class:`~mock_server.protocol.calls.FalCalls` serving it
    (its waiter and status bodies); the stream ends early when the server stops (``calls.closing``),
    and ends without an event when the request is gone (``POST /_mock/reset``, or forgotten):
    a clean close, as no status of it remains to send.
    """
    with_logs = logs_flag(call)
    waiter = calls.waiter
    emulator = calls.emulator
    clock, queue = emulator.clock, emulator.queue
    loop = asyncio.get_running_loop()
    release = emulator.driver.watch()
    sent_version, sent_logs, sent_position = -1, 0, None
    try:
        while not calls.closing:
            if queue.get(queued.request_id) is not queued:
                break  # reset or forgotten: nothing left to report
            now = clock.now()
            if queue.polls is not None:
                queue.observe(queued)  # poll-count mode: each event counts as a poll
            lines = queued.logs_until(now)
            position = queue.queue_position(queued) if queued.status == IN_QUEUE else None
            if queued.version != sent_version or len(lines) != sent_logs or position != sent_position:
                body = calls.status_body(queued, queue_base, app_path, with_logs, now, lines[sent_logs:])
                sent_version, sent_logs, sent_position = queued.version, len(lines), position
                yield event(body)
            if queued.status == COMPLETED:
                break
            if queue.polls is not None:
                continue
            # the driver's changes wake the waiter; a log line due wakes it on time
            due = _next_log_time(queued, now)
            when = due if due is not None else now + KEEPALIVE
            version, idle_since = queued.version, loop.time()
            await waiter.sleep_until(when, max_wait=KEEPALIVE)
            # the keep-alive is real time, not mock time: a frozen clock still pings
            if queued.version == version and loop.time() - idle_since >= KEEPALIVE:
                yield b": ping\n\n"
    finally:
        release()


def _next_log_time(queued: QueuedRequest, now: float) -> float | None:
    if queued.status != IN_PROGRESS:
        return None
    for line in queued.log_plan():
        if line.at > now:
            return line.at
    return None
