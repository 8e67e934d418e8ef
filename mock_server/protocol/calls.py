"""fal's queue and run calls (PROTOCOL.md §3): submit, status, status stream, result, cancel
and the synchronous run, as plain code answering ``(status, body, headers)``.

:meth:`FalCalls.queue_call` and :meth:`FalCalls.run_call` take a call from the URL grammar to
its :class:`Outcome` (key check, fault rules, the call); the fast lane
(:mod:`mock_server.protocol.hot`) calls the same reply functions for the hot calls.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import orjson

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.core.clock import ClockWaiter
from mock_server.core.endpoint import Endpoint, Parsed
from mock_server.core.faults import Fault
from mock_server.core.journal import BODY_KEEP
from mock_server.core.queue import (
    ALREADY_COMPLETED,
    CANCELLATION_REQUESTED,
    COMPLETED,
    IN_PROGRESS,
    IN_QUEUE,
    QueuedRequest,
    QueueFull,
    new_request_id,
    spread_log_lines,
)
from mock_server.emulator import FalMock
from mock_server.endpoints.registry import app_of
from mock_server.protocol import faults
from mock_server.protocol.auth import KeyCheck
from mock_server.protocol.not_emulated import streaming_call
from mock_server.protocol.paths import (
    QUEUE_ACTIONS,
    QUEUE_CALLS,
    is_app_path,
    logs_flag,
    queue_path,
    request_urls,
    segments,
)
from mock_server.protocol.request import HttpRequest
from mock_server.protocol.stream import status_events


#: ``(status, body, extra headers)``: sent after content-type (JSON) and content-length.
Reply = tuple[int, bytes, list[tuple[bytes, bytes]]]

JSON = b"application/json"
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
               (b"x-accel-buffering", b"no")]
_CANCEL_STATUS = {CANCELLATION_REQUESTED: 202, ALREADY_COMPLETED: 400}
#: Headers fal's run host adds to a successful answer (recorded on fal.run 200s, issue 17
#: point 14). ``x-fal-served-from`` is "the internal identifier of the runner that served the
#: request" (fal docs, model APIs' request headers): its value here is chosen, the mock's name.
RUN_HEADERS = [(b"x-fal-served-from", b"fal-mock"), (b"x-robots-tag", b"noindex"),
               (b"strict-transport-security", b"max-age=31536000; includeSubDomains")]
#: COMPLETED status bodies kept per request: one per (queue base, app path, logs) asked,
#: at most this many (the queue base holds the caller's ``Host``, the caller's to vary).
STATUS_BODIES_KEPT = 4


class Outcome:
    """What a fal call answers: a complete reply (``status``, ``body``, ``headers`` after
    content-type and content-length), a status stream (``events``: SSE chunks after
    ``headers``), or nothing at all (``dropped``: a fault closed the connection).
    ``truncate``: a fault cuts the answer in half and closes the connection."""

    __slots__ = ("status", "body", "headers", "content_type", "events", "dropped", "truncate")

    def __init__(self, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
                 content_type: bytes = JSON, events: AsyncIterator[bytes] | None = None,
                 dropped: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        self.content_type = content_type
        self.events = events
        self.dropped = dropped
        self.truncate = False

    @classmethod
    def of(cls, reply: Reply) -> "Outcome":
        return cls(*reply)

    @classmethod
    def answer(cls, answer: Answer, request_id: str | None = None) -> "Outcome":
        return cls(*reply_of(answer, request_id))


def reply_of(answer: Answer, request_id: str | None = None) -> Reply:
    """An :class:`Answer` as a reply: status, body, extra headers (and the request id's)."""
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    if request_id:
        headers.append((b"x-fal-request-id", request_id.encode()))
    return answer.status, answer.body, headers


def note(call: HttpRequest, kind: str, endpoint_id: str | None, request_id: str | None = None) -> None:
    """Tell the call's journal entry what the call was."""
    entry = call.entry
    if entry is not None:
        entry.kind = kind
        if endpoint_id is not None:
            entry.endpoint_id = endpoint_id
        if request_id is not None:
            entry.request_id = request_id


class FalCalls:
    """The queue and run calls of one emulator."""

    def __init__(self, emulator: FalMock) -> None:
        self.emulator = emulator
        self.keys = KeyCheck(emulator)
        self._waiter: ClockWaiter | None = None
        self.closing = False  # the server is stopping: open status streams end
        emulator.queue.on_change(self._on_change)

    # -- waiting on the clock -------------------------------------------------------------
    @property
    def waiter(self) -> ClockWaiter:
        """Sleeps on the emulator's clock (created on the running loop at first use)."""
        if self._waiter is None:
            self._waiter = ClockWaiter(self.emulator.clock, asyncio.get_running_loop())
        return self._waiter

    def _on_change(self, request: QueuedRequest) -> None:
        if self._waiter is not None:
            self._waiter.notify()

    def begin_shutdown(self) -> None:
        """The server is stopping: end open status streams now.  Safe from a signal handler."""
        self.closing = True
        if self._waiter is not None:
            self._waiter._poke()

    # -- the hosts ------------------------------------------------------------------------
    async def queue_call(self, call: HttpRequest, path: str, queue_base: str, proxied: bool = False) -> Outcome:
        """A call to the queue host's ``path`` (submit, status, stream, result, cancel)."""
        denied = self.keys.denied(call.raw_header(b"authorization"), proxied)
        if denied is not None:
            return Outcome.answer(denied)
        emulator = self.emulator
        method = call.method
        parts = segments(path)
        target = queue_path(parts)
        if target is None:
            if not parts:
                return Outcome.answer(fal_errors.path_not_found(path))
            endpoint = emulator.endpoint("/".join(parts))
            if endpoint is None:
                return Outcome.answer(fal_errors.app_not_found("/".join(parts)))
            if method != "POST":
                return Outcome.answer(fal_errors.method_not_allowed())
            note(call, "submit", endpoint.endpoint_id)
            body = await call.body(emulator.settings.max_body_bytes)
            applied = await faults.apply(emulator.faults, "submit", call, None, body)
            if applied is not None and (applied.reply is not None or applied.dropped):
                return _applied_outcome(applied)
            outcome = Outcome.of(self.submit(call, endpoint, body, queue_base,
                                             applied.request_fault if applied is not None else None))
            return _cut(outcome, applied)
        app_path, request_id, action = target
        if not is_app_path(app_path):  # the full endpoint path: fal routes it as no call of its own
            return Outcome.answer(fal_errors.method_not_allowed())
        if not emulator.knows_app(app_path):
            return Outcome.answer(fal_errors.app_not_found(app_path))
        name = QUEUE_CALLS.get((action, method))
        if name is None:
            if action in QUEUE_ACTIONS:
                return Outcome.answer(fal_errors.method_not_allowed())
            return Outcome.answer(fal_errors.path_not_found(call.path))
        note(call, name, None, request_id)
        applied = await faults.apply(emulator.faults, name, call, request_id)
        if applied is not None and (applied.reply is not None or applied.dropped):
            return _applied_outcome(applied)
        if name == "result":
            outcome = Outcome.of(await self.result(call, request_id, app_path, queue_base))
        elif name == "status":
            outcome = Outcome.of(self.status(call, request_id, app_path, queue_base))
        elif name == "stream":
            outcome = self.stream(call, request_id, app_path, queue_base)
        else:
            outcome = Outcome.of(self.cancel(request_id, app_path, call.namespace))
        return _cut(outcome, applied)

    async def run_call(self, call: HttpRequest, path: str, proxied: bool = False) -> Outcome:
        """A call to the run host: ``POST /{endpoint_id}`` answers the result synchronously."""
        denied = self.keys.denied(call.raw_header(b"authorization"), proxied)
        if denied is not None:
            return Outcome.answer(denied)
        emulator = self.emulator
        parts = segments(path)
        if len(parts) < 2:  # no alias: fal.run's router answers before any app (issue 17 point 10)
            return Outcome(404, b"404: Not Found", content_type=b"text/plain; charset=utf-8")
        endpoint_id = "/".join(parts)
        endpoint = emulator.endpoint(endpoint_id)
        if endpoint is None:
            streaming = streaming_call(emulator, call, endpoint_id)  # fal_client.stream(): not emulated
            if streaming is not None:
                return Outcome(*streaming)
            if emulator.knows_app(app_of(endpoint_id)):  # the app's own 404 for a path it lacks
                return Outcome.answer(fal_errors.path_not_found(path))
            return Outcome.answer(fal_errors.app_not_found(endpoint_id))
        if call.method != "POST":
            return Outcome.answer(fal_errors.method_not_allowed())
        body = await call.body(emulator.settings.max_body_bytes)
        request_id = new_request_id()
        note(call, "run", endpoint.endpoint_id, request_id)
        applied = await faults.apply(emulator.faults, "run", call, request_id, body)
        if applied is not None and (applied.reply is not None or applied.dropped):
            return _applied_outcome(applied)
        answer = await self.run(call, endpoint, body, request_id,
                                applied.request_fault if applied is not None else None)
        if call.entry is not None and len(answer.body) <= BODY_KEEP:
            call.entry.answer = answer  # for the dashboard: the run's result
        outcome = Outcome.answer(answer, request_id)
        if answer.ok:
            outcome.headers += RUN_HEADERS
        return _cut(outcome, applied)

    # -- the calls ------------------------------------------------------------------------
    def lookup(self, request_id: str, app_path: str, namespace: str) -> QueuedRequest | None:
        """The request, if it exists under that app in that namespace (another namespace's
        request is not found: docs/namespaces.md)."""
        found = self.emulator.queue.get(request_id)
        if found is None or found.namespace != namespace:
            return None
        endpoint_id = found.endpoint.endpoint_id
        if app_path != endpoint_id and app_of(endpoint_id) != app_path:
            return None  # the id exists, but under another app
        return found

    def submit(self, call: HttpRequest, endpoint: Endpoint, body: bytes, queue_base: str,
               fault: Fault | None = None) -> Reply:
        """Queue a request (fal accepts bad input at submit: its 422 is the result); 429 when
        ``--max-pending`` requests wait or run, 503 while the state folder cannot be written."""
        emulator = self.emulator
        failure = emulator.store_failure()
        if failure is not None:  # chosen: refuse work the mock could not keep across a restart
            return reply_of(fal_errors.request_error(
                503, f"The mock's state folder cannot be written: {failure}", "internal_error"))
        parsed = endpoint.parse(body)
        try:
            queued = emulator.queue.submit(endpoint, parsed, namespace=call.namespace)
        except QueueFull as full:
            return reply_of(fal_errors.queue_full(full.limit))
        if call.entry is not None:
            call.entry.request_id = queued.request_id
        if fault is not None:
            emulator.apply_request_fault(queued, fault)
        webhook = call.query.get("fal_webhook") if call.raw_query else None
        if webhook:
            queued.webhook_url = webhook
        queued.origin = (call.scheme, call.host)
        rid = queued.request_id
        # "logs": null, "metrics": {} before queue_position: four recorded submits (issue 17 point 5)
        payload = orjson.dumps({
            "status": IN_QUEUE,
            **request_urls(queue_base, app_of(endpoint.endpoint_id), rid),
            "logs": None,
            "metrics": {},
            "queue_position": emulator.queue.queue_position(queued),
        })
        return 200, payload, [(b"x-fal-request-id", rid.encode())]

    def status(self, call: HttpRequest, request_id: str, app_path: str, queue_base: str) -> Reply:
        """The status poll: 202 while queued or running, 200 once COMPLETED (its body kept,
        for at most :data:`STATUS_BODIES_KEPT` ways of asking)."""
        if not is_app_path(app_path):
            return reply_of(fal_errors.method_not_allowed())
        queued = self.lookup(request_id, app_path, call.namespace)
        if queued is None:
            return reply_of(fal_errors.status_not_found())
        with_logs = logs_flag(call)
        queue = self.emulator.queue
        if queue.polls is not None:
            queue.observe(queued)
        completed = queued.status == COMPLETED
        key = (queue_base, app_path, with_logs)
        cache = queued.status_cache
        payload = cache.get(key) if completed and cache is not None else None
        if payload is None:
            payload = orjson.dumps(self.status_body(queued, queue_base, app_path, with_logs, self.emulator.clock.now()))
            if completed:
                if cache is None:
                    cache = queued.status_cache = {}
                if len(cache) < STATUS_BODIES_KEPT:
                    cache[key] = payload
        return 200 if completed else 202, payload, [(b"x-fal-request-id", request_id.encode())]

    def status_body(self, queued: QueuedRequest, queue_base: str, app_path: str, with_logs: bool, now: float,
                    logs: list | None = None) -> dict:
        """The status body (PROTOCOL.md §3.4), in fal's key order."""
        status = queued.status
        body: dict = {"status": status, **request_urls(queue_base, app_path, queued.request_id)}
        if status == IN_QUEUE:  # as the submit body (issue 17 point 5)
            body["logs"] = None
            body["metrics"] = {}
            body["queue_position"] = self.emulator.queue.queue_position(queued)
            return body
        if with_logs:
            lines = queued.logs_until(now) if logs is None else logs
            body["logs"] = [line.as_json() for line in lines]
        else:
            body["logs"] = None
        if status == IN_PROGRESS:
            body["metrics"] = {}  # as in fal's recorded status-stream capture
        else:
            body["metrics"] = {"inference_time": queued.inference_time}
            if queued.error is not None:
                body["error"] = queued.error
                body["error_type"] = queued.error_type
        return body

    def kept_result(self, request_id: str, app_path: str, queue_base: str, namespace: str) -> Reply | None:
        """The result GET's reply, or None when the result must be produced first."""
        if not is_app_path(app_path):
            return reply_of(fal_errors.method_not_allowed())
        queued = self.lookup(request_id, app_path, namespace)
        if queued is None:
            return reply_of(fal_errors.result_not_found())
        if queued.status != COMPLETED:
            return reply_of(fal_errors.still_in_progress(request_urls(queue_base, app_path, request_id)), request_id)
        answer = self.emulator.kept_result(queued)
        return None if answer is None else reply_of(answer, request_id)

    async def result(self, call: HttpRequest, request_id: str, app_path: str, queue_base: str) -> Reply:
        """The result GET's reply, producing the result (once) if need be."""
        reply = self.kept_result(request_id, app_path, queue_base, call.namespace)
        if reply is None:  # COMPLETED, its result not produced yet
            queued = self.emulator.queue.get(request_id)
            reply = reply_of(await self.emulator.result(queued, self.emulator.env_for(call.scheme, call.host)), request_id)
        return reply

    def cancel(self, request_id: str, app_path: str, namespace: str) -> Reply:
        """Cancel: 202 CANCELLATION_REQUESTED, 400 ALREADY_COMPLETED, or 404 NOT_FOUND."""
        if self.lookup(request_id, app_path, namespace) is None:
            outcome = "NOT_FOUND"
        else:
            outcome = self.emulator.queue.cancel(request_id)
        body = {"status": outcome}
        if outcome == ALREADY_COMPLETED:
            # fal documents the enum value; aimock's live canary saw a {"detail": ...} body here.
            # Both keys are sent so either reading works; the text is the mock's own.
            body = {"detail": "Request is already completed", "status": outcome}
        return _CANCEL_STATUS.get(outcome, 404), orjson.dumps(body), []

    def stream(self, call: HttpRequest, request_id: str, app_path: str, queue_base: str) -> Outcome:
        """The status as server-sent events (or the 404 of an unknown request)."""
        queued = self.lookup(request_id, app_path, call.namespace)
        if queued is None:
            return Outcome.answer(fal_errors.status_not_found())
        headers = [*SSE_HEADERS, (b"x-fal-request-id", request_id.encode())]
        return Outcome(200, headers=headers, events=status_events(self, call, queued, app_path, queue_base))

    async def run(self, call: HttpRequest, endpoint: Endpoint, body: bytes, request_id: str,
                  fault: Fault | None = None) -> Answer:
        """The synchronous run: the profile's processing time on the mock's clock, then the result."""
        emulator = self.emulator
        parsed = endpoint.parse(body)
        if isinstance(parsed, Parsed):
            clock = emulator.clock
            duration = emulator.queue.timing.duration(request_id)
            done_at = clock.now() + duration
            if call.entry is not None:  # for the dashboard: the run's log lines, as a queued request's
                call.entry.logs = spread_log_lines(clock.now(), duration, endpoint.processing_notes(parsed.params))
            waiter = self.waiter
            while clock.now() < done_at:
                await waiter.sleep_until(done_at)
        if fault is not None:
            return emulator.fault_answer(fault)
        return await emulator.produce(endpoint, parsed, request_id, self.emulator.env_for(call.scheme, call.host))


def _applied_outcome(applied: faults.Applied) -> Outcome:
    if applied.dropped:
        return Outcome(0, dropped=True)
    status, body, headers, content_type = applied.reply
    return Outcome(status, body, headers, content_type)


def _cut(outcome: Outcome, applied: faults.Applied | None) -> Outcome:
    if applied is not None and applied.truncate:
        outcome.truncate = True
    return outcome
