"""Signed webhook delivery for ``?fal_webhook=URL`` (PROTOCOL.md §6, §3.3), as domain logic:
the routes (JWKS, delivery log, switches) are :mod:`mock_server.web.routers.webhooks`.

When a request submitted with ``?fal_webhook=URL`` reaches COMPLETED, the mock POSTs
fal's webhook body to that URL, signed the way fal signs it, and retries on failure.

Payload rules (fal docs, docs.fal.ai/model-endpoints/webhooks; PROTOCOL.md §6):

- ``{"request_id", "gateway_request_id", "status", "payload"}``; ``gateway_request_id``
  equals ``request_id`` (the mock never retries a request on another runner).
- ``status`` is ``"OK"`` when the result GET would answer 2xx, else ``"ERROR"``.
- ``payload`` is the result GET's JSON body (the same answer: it is produced once and
  kept, so file URLs match too).  For ERROR it is the error body,
  e.g. the 422 ``{"detail": [...]}``.
- ``error`` is present only on ERROR: ``"Invalid status code: <code>"``.  fal's current
  page shows no ``error`` key on OK (an older copy showed ``"error": null``); the mock
  follows the current page, so read it with ``body.get("error")``.
- When the result body is not valid JSON: ``payload: null`` and ``payload_error`` says why.
- A cancelled request (PUT .../cancel) completes with the result GET's 499
  ``{"detail": "Request cancelled by the client."}``, so its webhook is ERROR with
  ``"Invalid status code: 499"`` [Inf: fal's docs do not say whether it sends one].

Signature (PROTOCOL.md §6, from public verifiers): Ed25519 over the UTF-8 bytes of
``"{request_id}\\n{user_id}\\n{timestamp}\\n{sha256 hex of the exact body bytes}"``, sent
hex-encoded in ``X-Fal-Webhook-Signature`` with ``X-Fal-Webhook-Request-Id``,
``X-Fal-Webhook-User-Id`` (always :data:`USER_ID`) and ``X-Fal-Webhook-Timestamp``
(unix seconds on the mock's clock, fresh for every attempt).  The key is generated per
server start and kept in memory; its public half is served as a JWKS at
``/_mock/.well-known/jwks.json`` and at ``/_mock/rest/.well-known/jwks.json`` (where the proxy
maps ``https://rest.alpha.fal.ai/.well-known/jwks.json``).

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

Targets (issue 21.2): an attempt first resolves the URL's host (and connects to the address
it checked, like ``--allow-fetch``'s guard, :mod:`mock_server.endpoints.fal_app.netguard`).
It is *refused*, logged with outcome ``"refused"`` and the reason and never retried, when
the target is the mock itself (an address of this machine on the mock's port, or any
``/_mock/`` path on this machine: a webhook must not drive the control API), or, unless
the user allows fetching (``--allow-fetch``), a link-local or cloud-metadata address.

The queue advances lazily, so while a request with a webhook is not yet COMPLETED the
dispatcher holds a watch on the emulator's :class:`~mock_server.core.driver.QueueDriver`, which
advances the queue on the mock's clock: a webhook fires when its request completes even if
nobody polls.  (In poll-count mode, ``--polls N``, requests only move on status calls, so the
webhook fires at the Nth poll.)  Deliveries are asyncio tasks on the server's loop.  A ``model_error``/``runner_error`` fault decides the result, so the webhook
carries that error.  The mock's reset (``POST /_mock/reset``) also clears the delivery log and
the switches and drops pending retries.

From Python: ``FalMock.webhooks``, a :class:`WebhookDispatcher` (the delivery log, the
switches of :class:`WebhookConfig`, reset).
"""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import heapq
import itertools
import logging
import socket
import threading
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson

from mock_server.core.answers import Answer
from mock_server.core.clock import Clock, ClockWaiter
from mock_server.core.driver import QueueDriver
from mock_server.core.journal import Journal, JournalEntry
from mock_server.core.queue import COMPLETED, QueuedRequest, RequestQueue
from mock_server.endpoints.fal_app import netguard
from mock_server.settings import Settings

if TYPE_CHECKING:
    import httpx
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# httpx and cryptography load on first use (first delivery or JWKS fetch), not at server start.

log = logging.getLogger("fal_mock.webhooks")

#: The ``X-Fal-Webhook-User-Id`` every delivery carries (fal sends the account's user id).
USER_ID = "fal-mock-user"
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


# -- payload -----------------------------------------------------------------------------
def webhook_body(request_id: str, status_code: int, result_body: bytes) -> bytes:
    """The exact bytes fal POSTs for a request whose result GET answers ``status_code``/``result_body``."""
    ok = 200 <= status_code < 300
    body: dict[str, Any] = {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK" if ok else "ERROR",
    }
    try:
        body["payload"] = orjson.loads(result_body)
    except orjson.JSONDecodeError as exc:
        body["payload"] = None
        body["payload_error"] = f"Response payload is not valid JSON: {exc}"
    if not ok:
        body["error"] = f"Invalid status code: {status_code}"
    return orjson.dumps(body)


# -- signing -----------------------------------------------------------------------------
def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """What the signature covers: ``request_id \\n user_id \\n timestamp \\n sha256-hex(body)``."""
    return "\n".join((request_id, user_id, timestamp, hashlib.sha256(body).hexdigest())).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class WebhookSigner:
    """One Ed25519 key: signs messages and describes its public half as a JWK."""

    def __init__(self, private_key: "Ed25519PrivateKey | None" = None) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self._key = private_key or Ed25519PrivateKey.generate()
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.x = _b64url(raw)
        # RFC 7638 thumbprint: stable for the key, so a kid tells keys apart across restarts.
        canonical = orjson.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.x})
        self.kid = _b64url(hashlib.sha256(canonical).digest())

    def sign(self, message: bytes) -> str:
        """Hex signature of ``message``."""
        return self._key.sign(message).hex()

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "use": "sig", "alg": "EdDSA"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.jwk()]}


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
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._logged = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiter: ClockWaiter | None = None  # sleeps between retries (made on the server's loop)
        self._tasks: set[asyncio.Task] = set()  # attempts in flight (at most MAX_CONCURRENT)
        self._schedule: list[_Due] = []  # attempts to make, earliest first (a heap)
        self._order = itertools.count()
        self._scheduler: asyncio.Task | None = None
        self._client: "httpx.AsyncClient | None" = None  # shared by every attempt, made on the loop
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
        with self._logged:
            return list(self._log)

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
        with self._logged:
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
        with self._logged:
            self._logged.wait_for(lambda: len(self._log) >= count, timeout)
            return list(self._log)

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
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

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
        if running is loop:
            fn(*args)
        else:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop closed
                pass

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
                    self._append(self._record(rid, url, attempt, at, {}, None, "the request was forgotten"), "failed")
                return
            try:
                target = await self._target(url)
            except _Refused as refused:
                if generation == self._generation:
                    self._append(self._record(rid, url, attempt, at, {}, None, f"refused: {refused}"), "refused")
                return
            except (OSError, ValueError, asyncio.TimeoutError) as exc:
                target, error = None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            answer = await self._result(request)
            body = webhook_body(rid, answer.status, answer.body)
            headers = self._headers(rid, at, body)
            status, error = (await self._post(target, headers, body)) if target is not None else (None, error)
            if generation != self._generation:
                return  # reset or stopped meanwhile
            record = self._record(rid, url, attempt, at, headers, status, error)
            if status is not None and 200 <= status < 300:
                self._append(record, "delivered")
                if self.config.duplicate:
                    again_at = self.clock.now()
                    status, error = await self._post(target, headers, body)
                    again = self._record(rid, url, attempt, again_at, headers, status, error)
                    again["duplicate"] = True
                    self._append(again, "delivered" if status is not None and 200 <= status < 300 else "failed")
                return
            if attempt > len(self.retry_delays):
                self._append(record, "failed")
                return
            next_at = at + self.retry_delays[attempt - 1]
            record["next_attempt_at"] = next_at
            self._append(record, "retry")
            if not self._stopped:
                self._plan(_Due(next_at, next(self._order), rid, url, attempt + 1, generation))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not kill the loop or go unseen
            log.exception("webhook delivery for %s failed", rid)
            self._append(self._record(rid, url, 0, self.clock.now(), {}, None, f"{type(exc).__name__}: {exc}"), "failed")

    async def _target(self, url: str) -> netguard.PinnedTarget:
        """Where an attempt connects: the URL pinned to a checked address of its host.
        Raises :class:`_Refused` (see the module doc), ``OSError``/``ValueError`` when the
        host does not resolve or the URL is unusable (a failed attempt, retried)."""
        from urllib.parse import urlsplit, urlunsplit

        settings = self._settings()
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise _Refused(f"not a usable URL ({exc})") from None
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").rstrip(".").lower()
        if scheme not in ("http", "https") or not host:
            raise _Refused("not an http(s) URL with a host")
        port = port or (443 if scheme == "https" else 80)
        if host in netguard.METADATA_HOSTS and not settings.allow_fetch:
            raise _Refused(f"{host} is a cloud metadata host (allowed with --allow-fetch)")
        loop = asyncio.get_running_loop()

        def resolve() -> tuple[list[str], list[str]]:
            infos = netguard.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            found = [info[4][0] for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
            return found, [address for address in found if _this_machine(address)]

        addresses, local = await asyncio.wait_for(loop.run_in_executor(None, resolve), self.timeout)
        if not addresses:
            raise OSError(f"{host} has no IPv4/IPv6 address")
        if local and (port == settings.port or (parts.path or "/").startswith("/_mock/")):
            raise _Refused(f"{host}:{port} is this fal-mock server (its port or its /_mock/ control API)")
        if not settings.allow_fetch:
            for address in addresses:
                reason = netguard.blocked_reason(address)
                if reason is not None:
                    raise _Refused(f"{host} resolves to {address}, {reason} (allowed with --allow-fetch)")
        address = addresses[0]
        literal = f"[{address}]" if ":" in address else address
        pinned = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2] or host
        return netguard.PinnedTarget(pinned, host_header, host if scheme == "https" else None, address)

    def _headers(self, request_id: str, at: float, body: bytes) -> dict[str, str]:
        config = self.config
        timestamp = str(int(at) - (STALE_BY if config.stale_timestamp else 0))
        signature = self.signer.sign(signed_message(request_id, self.user_id, timestamp, body))
        if config.bad_signature:
            signature = f"{int(signature[:2], 16) ^ 0xFF:02x}" + signature[2:]
        return {
            "content-type": "application/json",
            "user-agent": "fal-mock-webhooks",
            "x-fal-webhook-request-id": request_id,
            "x-fal-webhook-user-id": self.user_id,
            "x-fal-webhook-timestamp": timestamp,
            "x-fal-webhook-signature": signature,
        }

    async def _post(self, target: netguard.PinnedTarget, headers: dict[str, str], body: bytes) -> tuple[int | None, str | None]:
        """One POST: (status code, None) when an answer came, else (None, what went wrong)."""
        import httpx

        if self._client is None:  # on the server's loop, kept until stop()
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, trust_env=False,
                limits=httpx.Limits(max_connections=MAX_CONCURRENT * 2, max_keepalive_connections=MAX_CONCURRENT))
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        try:
            response = await self._client.post(target.url, content=body, headers={**headers, "host": target.host_header},
                                               timeout=self.timeout, extensions=extensions)
        except httpx.TimeoutException as exc:
            return None, f"timeout after {self.timeout:g} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return response.status_code, None

    @staticmethod
    def _record(request_id: str, url: str, attempt: int, at: float, headers: dict[str, str],
                status: int | None, error: str | None) -> dict[str, Any]:
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

    def _append(self, record: dict[str, Any], outcome: str) -> None:
        record["outcome"] = outcome
        with self._logged:
            self._log.append(record)
            self._logged.notify_all()


@dataclass(order=True, slots=True)
class _Due:
    """One attempt in the schedule: all that is kept of a delivery between its attempts."""

    at: float
    order: int
    request_id: str = field(compare=False)
    url: str = field(compare=False)
    attempt: int = field(compare=False)
    generation: int = field(compare=False)


class _Refused(Exception):
    """A target the mock never delivers to (the message says why)."""


def _this_machine(address: str) -> bool:
    """Whether ``address`` is one of this machine's own (a socket can bind to it)."""
    import ipaddress

    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((address, 0))
    except OSError:
        return False
    return True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _call_async(fn: Any) -> None:
    fn()
