"""Signed webhook delivery for ``?fal_webhook=URL`` (PROTOCOL.md §6, §3.3), as domain logic:
the routes (JWKS, delivery log, switches) are :mod:`mock_server.web.routers.webhooks`.

When a request submitted with ``?fal_webhook=URL`` reaches COMPLETED, the mock POSTs
fal's webhook body to that URL, signed the way fal signs it, and retries on failure.

What is sent (fal's body, its Ed25519 signature headers, the JWKS key) is
:mod:`mock_server.features.webhook_signing`; where it may go (the target guard, issue 21.2)
is :mod:`mock_server.features.webhook_targets`.

Retries ("it will retry 10 times in the span of 2 hours", fal docs): an attempt fails on a
connection error, a timeout (:data:`ATTEMPT_TIMEOUT` real seconds) or any non-2xx answer
(redirects are not followed).  Retry ``n`` is sent :data:`RETRY_DELAYS` ``[n-1]`` seconds
of the *mock's* clock after the failed attempt started: 15 s doubling to a 30 min cap,
10 retries, the last one 7305 s (about two hours) after the first attempt.  A frozen clock
holds retries until it is advanced.

Deliveries (issue 20.5): one HTTP client for all of them (made on the server's loop at the
first delivery, closed at stop), at most :data:`MAX_CONCURRENT` attempts at once (the rest
wait their turn), and nothing held between retries: a retry is a line in a schedule (request
id, URL, attempt, due time); its attempt looks the request up and builds the body again.

The queue advances lazily, so while a request with a webhook is not yet COMPLETED the
dispatcher holds a watch on the emulator's :class:`~mock_server.core.driver.QueueDriver`, which
advances the queue on the mock's clock: a webhook fires when its request completes even if
nobody polls.  (In poll-count mode, ``--polls N``, requests only move on status calls, so the
webhook fires at the Nth poll.)  Deliveries are asyncio tasks on the server's loop.  A ``model_error``/``runner_error`` fault decides the result, so the webhook
carries that error.  The mock's whole reset (``POST /_mock/reset?namespace=*``) also clears the delivery log and
the switches and drops pending retries.

From Python: ``FalMock.webhooks``, a :class:`WebhookDispatcher` (the delivery log, the
switches of :class:`WebhookConfig`, reset).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from mock_server.core.answers import Answer
from mock_server.core.clock import Clock, ClockWaiter
from mock_server.core.driver import QueueDriver
from mock_server.core.journal import Journal, JournalEntry
from mock_server.core.loops import call_on
from mock_server.core.queue import COMPLETED, QueuedRequest, RequestQueue
from mock_server.endpoints.fal_app import netguard
from mock_server.features.webhook_signing import USER_ID, WebhookSigner, signed_headers, webhook_body
from mock_server.features.webhook_targets import TargetRefused, delivery_target
from mock_server.settings import Settings

if TYPE_CHECKING:
    import httpx

# httpx loads on first use (the first delivery), not at server start.

log = logging.getLogger("fal_mock.webhooks")

#: Seconds on the mock's clock between a failed attempt's start and the next attempt.
RETRY_DELAYS: tuple[float, ...] = (15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800)
#: Real seconds one attempt may take (connect + answer) before it counts as failed.
ATTEMPT_TIMEOUT = 10.0
#: How far in the past ``stale_timestamp`` puts the timestamp (verifiers allow 300 s).
STALE_BY = 600
#: Delivery attempts kept in the log (oldest dropped first).
LOG_LIMIT = 1000
#: Attempts in flight at once; the others wait for a free slot.
MAX_CONCURRENT = 16


# -- switches ----------------------------------------------------------------------------
@dataclass
class WebhookConfig:
    """Faults a receiver's tests may ask for (all off by default).

    ``bad_signature``: send a signature that does not verify (one byte flipped).
    ``stale_timestamp``: sign and send a timestamp :data:`STALE_BY` seconds in the past.
    ``duplicate``: after a successful delivery, send the identical request again.
    """

    bad_signature: bool = False
    stale_timestamp: bool = False
    duplicate: bool = False

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


# -- the delivery log --------------------------------------------------------------------
class DeliveryLog:
    """Every delivery attempt, oldest first (at most :data:`LOG_LIMIT`, oldest dropped first);
    other threads may wait for entries to arrive."""

    def __init__(self, limit: int = LOG_LIMIT) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=limit)
        self._logged = threading.Condition()

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first (a copy)."""
        with self._logged:
            return list(self._entries)

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Block until at least ``count`` entries are logged (or ``timeout``); returns them."""
        with self._logged:
            self._logged.wait_for(lambda: len(self._entries) >= count, timeout)
            return list(self._entries)

    def clear(self) -> None:
        with self._logged:
            self._entries.clear()

    def append(self, record: dict[str, Any], outcome: str) -> None:
        """Log ``record`` (made by :func:`attempt_record`) with its ``outcome``."""
        record["outcome"] = outcome
        with self._logged:
            self._entries.append(record)
            self._logged.notify_all()


def attempt_record(request_id: str, url: str, attempt: int, at: float, headers: dict[str, str],
                   status: int | None, error: str | None) -> dict[str, Any]:
    """One entry of the delivery log (its ``outcome`` is set when logged)."""
    return {
        "request_id": request_id,
        "url": url,
        "attempt": attempt,
        "at": at,
        "timestamp": headers.get("x-fal-webhook-timestamp"),
        "signature": headers.get("x-fal-webhook-signature"),
        "status_code": status,
        "error": error,
        "outcome": None,
        "next_attempt_at": None,
        "duplicate": False,
    }


# -- the HTTP client ----------------------------------------------------------------------
class DeliveryClient:
    """The one HTTP client every attempt shares (issue 20.5): made on the server's loop at
    the first POST, closed by :meth:`aclose` (the dispatcher's stop); redirects not followed."""

    def __init__(self) -> None:
        self._client: "httpx.AsyncClient | None" = None

    async def post(self, target: netguard.PinnedTarget, headers: dict[str, str], body: bytes,
                   timeout: float) -> tuple[int | None, str | None]:
        """One POST: (status code, None) when an answer came, else (None, what went wrong)."""
        import httpx

        if self._client is None:  # on the server's loop, kept until aclose()
            self._client = httpx.AsyncClient(
                timeout=timeout, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=MAX_CONCURRENT * 2, max_keepalive_connections=MAX_CONCURRENT))
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        try:
            response = await self._client.post(target.url, content=body, headers={**headers, "host": target.host_header},
                                               timeout=timeout, extensions=extensions)
        except httpx.TimeoutException as exc:
            return None, f"timeout after {timeout:g} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return response.status_code, None

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


# -- the dispatcher ----------------------------------------------------------------------
class WebhookDispatcher:
    """Watches the queue for completed requests with a webhook URL and delivers them.

    Reachable as ``FalMock.webhooks``.  ``deliveries`` is the attempt log, ``configure()``
    sets :class:`WebhookConfig` switches, ``reset()`` forgets both and drops pending
    retries, ``wait_for_deliveries()`` blocks (bounded) until the log holds enough entries.
    ``result(request)`` is the request's result answer as its result GET gives it.
    """

    def __init__(self, queue: RequestQueue, clock: Clock, driver: QueueDriver, journal: Journal,
                 result: Callable[[QueuedRequest], Awaitable[Answer]],
                 settings: Callable[[], Settings] | None = None) -> None:
        self.queue = queue
        self._settings = settings or Settings
        self.clock = clock
        self.driver = driver
        self._result = result
        self._signer: WebhookSigner | None = None
        self._signer_lock = threading.Lock()
        self.user_id = USER_ID
        self.config = WebhookConfig()
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.timeout = ATTEMPT_TIMEOUT
        self._log = DeliveryLog()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: ClockWaiter | None = None  # sleeps between retries (made on the server's loop)
        self._tasks: set[asyncio.Task] = set()  # attempts in flight (at most MAX_CONCURRENT)
        self._schedule: list[_Due] = []  # attempts to make, earliest first (a heap)
        self._order = itertools.count()
        self._scheduler: asyncio.Task | None = None
        self._client = DeliveryClient()
        self._early: list[QueuedRequest] = []  # completed before the server's loop was known
        # ids of requests with a webhook, not yet COMPLETED: while there are any, a watch on
        # the queue driver moves the queue on the clock (released when none is left)
        self._awaiting: set[str] = set()
        self._release: Callable[[], None] | None = None
        # Bumped by reset() and stop(): a delivery started under an older generation gives up.
        # (Cancelling alone is not enough: Python 3.11's wait_for can swallow a cancellation
        # that arrives just as the clock waiter wakes, gh-86296.)
        self._generation = 0
        self._stopped = False
        queue.on_change(self.on_change)
        journal.on_record(self.on_journal)  # a submit: maybe a webhook to watch

    # -- Python API ------------------------------------------------------------------
    @property
    def signer(self) -> WebhookSigner:
        """This server's signing key, made at first use and kept until the server stops."""
        if self._signer is None:
            with self._signer_lock:
                if self._signer is None:
                    self._signer = WebhookSigner()
        return self._signer

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Every logged attempt, oldest first (a copy)."""
        return self._log.entries()

    def configure(self, **switches: bool) -> dict[str, bool]:
        """Set some :class:`WebhookConfig` switches; returns the whole config."""
        unknown = sorted(set(switches) - set(WebhookConfig.names()))
        if unknown:
            raise ValueError(f"unknown webhook switch(es): {', '.join(unknown)}; known: {', '.join(WebhookConfig.names())}")
        for name, value in switches.items():
            if not isinstance(value, bool):
                raise ValueError(f"webhook switch {name} must be true or false, not {value!r}")
            setattr(self.config, name, value)
        return self.switches()

    def switches(self) -> dict[str, bool]:
        """The :class:`WebhookConfig` switches as a dict."""
        return asdict(self.config)

    def reset(self) -> None:
        """Clear the log, turn every switch off and drop deliveries still waiting to retry."""
        self._generation += 1
        self._log.clear()
        self.config = WebhookConfig()
        self._early.clear()
        loop = self._loop
        if loop is None or loop.is_closed():
            self._awaiting.clear()
            return
        if _running_loop() is loop:
            self._forget()
        elif loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(_call_async(self._forget), loop).result(5.0)
            except (RuntimeError, concurrent.futures.TimeoutError):  # the loop stopped meanwhile
                pass

    def wait_for_deliveries(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Block until at least ``count`` attempts are logged (or ``timeout``); returns the log."""
        return self._log.wait_for(count, timeout)

    # -- wiring ------------------------------------------------------------------------
    def start(self) -> None:
        """Start-up on the server's loop: bind to it, deliver what completed before, and
        watch the requests with a webhook still to come (e.g. restored from the state folder)."""
        self._stopped = False
        self._bind(asyncio.get_running_loop())
        for request in list(self.queue):
            self._track(request)

    async def stop(self) -> None:
        """Shutdown: release the driver and stop every pending delivery, and wait until they have."""
        self._stopped = True
        self._generation += 1
        self._awaiting.clear()
        self._unwatch()
        self._schedule.clear()
        tasks = list(self._tasks) + ([self._scheduler] if self._scheduler is not None else [])
        self._scheduler = None
        for task in tasks:
            task.cancel()
        if tasks:  # waited for, so no task is left pending on a loop that is about to stop
            await asyncio.wait(tasks, timeout=1.0)
        await self._client.aclose()

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self._loop = loop
        self._waiter = ClockWaiter(self.clock, loop)
        early, self._early = self._early, []
        for request in early:
            self._spawn(request)

    def _forget(self) -> None:
        """On the loop: drop pending deliveries and the requests being watched (a reset)."""
        self._schedule.clear()
        for task in list(self._tasks):
            task.cancel()
        self._awaiting.clear()
        self._unwatch()

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop: now when called there, else soon."""
        running = _running_loop()
        if self._loop is None and running is not None:
            self._bind(running)  # served without a lifespan start-up: adopt the caller's loop
        loop = self._loop
        if loop is None:
            return
        call_on(loop, running is loop, fn, *args)

    def on_change(self, request: QueuedRequest) -> None:
        """Queue listener: schedule a delivery when a request with a webhook completes."""
        if not request.webhook_url:
            return
        if request.status != COMPLETED:
            self._on_loop(self._track, request)
        elif self._loop is None and _running_loop() is None:
            self._early.append(request)
        else:
            self._on_loop(self._completed, request)

    def on_journal(self, entry: JournalEntry) -> None:
        """Journal listener: a submit with ``?fal_webhook=`` brings a request to watch.

        Only those look the request up: a look-up per submit would cost the hot path."""
        if entry.kind == "submit" and "fal_webhook=" in entry.query and entry.request_id:
            request = self.queue.get(entry.request_id)
            if request is not None:
                self._on_loop(self._track, request)

    def _track(self, request: QueuedRequest) -> None:
        """Watch the queue driver until ``request`` (with a webhook) completes."""
        if self._stopped or not request.webhook_url or request.status == COMPLETED:
            return
        rid = request.request_id
        if rid in self._awaiting:
            return
        # requests the queue forgot meanwhile (max_requests) will never complete
        self._awaiting = {r for r in self._awaiting if self.queue.get(r) is not None}
        self._awaiting.add(rid)
        if self._release is None:
            self._release = self.driver.watch()
        self.driver.kick()  # its next event may be this request's

    def _completed(self, request: QueuedRequest) -> None:
        self._awaiting.discard(request.request_id)
        if not self._awaiting:
            self._unwatch()
        self._spawn(request)

    def _unwatch(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    def _spawn(self, request: QueuedRequest) -> None:
        """Schedule the first attempt for ``request`` (now)."""
        if self._stopped or self._loop is None:
            return  # the server is stopping: nothing would wait for this delivery
        assert request.webhook_url is not None
        self._plan(_Due(self.clock.now(), next(self._order), request.request_id, request.webhook_url, 1,
                        self._generation))

    def _plan(self, due: "_Due") -> None:
        """On the loop: add an attempt to the schedule and wake the scheduler."""
        heapq.heappush(self._schedule, due)
        if self._scheduler is None or self._scheduler.done():
            assert self._loop is not None
            self._scheduler = self._loop.create_task(self._run_schedule())
        elif self._waiter is not None:
            self._waiter.notify()

    async def _run_schedule(self) -> None:
        """Start the attempts that are due, at most :data:`MAX_CONCURRENT` at once."""
        waiter = self._waiter
        assert waiter is not None and self._loop is not None
        slots = asyncio.Semaphore(MAX_CONCURRENT)
        while not self._stopped:
            schedule = self._schedule
            if schedule and schedule[0].at <= self.clock.now():
                await slots.acquire()
                if not schedule or schedule[0].at > self.clock.now():  # reset meanwhile
                    slots.release()
                    continue
                due = heapq.heappop(schedule)
                task = self._loop.create_task(self._attempt(due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(lambda _: slots.release())
                continue
            when = schedule[0].at if schedule else self.clock.now() + 3600
            await waiter.sleep_until(when, max_wait=60.0)

    # -- delivery ----------------------------------------------------------------------
    async def _attempt(self, due: "_Due") -> None:
        """One attempt; a failed one schedules the next (nothing else is kept meanwhile)."""
        rid, url, attempt, generation = due.request_id, due.url, due.attempt, due.generation
        at = self.clock.now()
        try:
            request = self.queue.get(rid)
            if request is None:  # forgotten meanwhile (max_requests, reset)
                if generation == self._generation:
                    self._log.append(attempt_record(rid, url, attempt, at, {}, None, "the request was forgotten"), "failed")
                return
            try:
                target = await self._target(url)
            except TargetRefused as refused:
                if generation == self._generation:
                    self._log.append(attempt_record(rid, url, attempt, at, {}, None, f"refused: {refused}"), "refused")
                return
            except (OSError, ValueError, asyncio.TimeoutError) as exc:
                target, error = None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            answer = await self._result(request)
            body = webhook_body(rid, answer.status, answer.body)
            headers = self._headers(rid, at, body)
            if target is not None:
                status, error = await self._client.post(target, headers, body, self.timeout)
            else:
                status = None  # the error says why the target was not reached
            if generation != self._generation:
                return  # reset or stopped meanwhile
            record = attempt_record(rid, url, attempt, at, headers, status, error)
            if status is not None and 200 <= status < 300:
                self._log.append(record, "delivered")
                if self.config.duplicate:
                    again_at = self.clock.now()
                    status, error = await self._client.post(target, headers, body, self.timeout)
                    again = attempt_record(rid, url, attempt, again_at, headers, status, error)
                    again["duplicate"] = True
                    self._log.append(again, "delivered" if status is not None and 200 <= status < 300 else "failed")
                return
            if attempt > len(self.retry_delays):
                self._log.append(record, "failed")
                return
            next_at = at + self.retry_delays[attempt - 1]
            record["next_attempt_at"] = next_at
            self._log.append(record, "retry")
            if not self._stopped:
                self._plan(_Due(next_at, next(self._order), rid, url, attempt + 1, generation))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not kill the loop or go unseen
            log.exception("webhook delivery for %s failed", rid)
            error = f"{type(exc).__name__}: {exc}"
            self._log.append(attempt_record(rid, url, 0, self.clock.now(), {}, None, error), "failed")

    async def _target(self, url: str) -> netguard.PinnedTarget:
        """Where an attempt connects (:func:`~mock_server.features.webhook_targets.delivery_target`)."""
        return await delivery_target(url, self._settings(), self.timeout)

    def _headers(self, request_id: str, at: float, body: bytes) -> dict[str, str]:
        config = self.config
        timestamp = str(int(at) - (STALE_BY if config.stale_timestamp else 0))
        return signed_headers(self.signer, request_id, self.user_id, timestamp, body,
                              bad_signature=config.bad_signature)

@dataclass(order=True, slots=True)
class _Due:
    """One attempt in the schedule: all that is kept of a delivery between its attempts."""

    at: float
    order: int
    request_id: str = field(compare=False)
    url: str = field(compare=False)
    attempt: int = field(compare=False)
    generation: int = field(compare=False)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _call_async(fn: Any) -> None:
    fn()
