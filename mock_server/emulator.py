"""The running emulator's state in one object: settings, clock, queue, files, endpoints.

The web face (``mock_server.web``), the CLI and the pytest plugin all drive a
:class:`FalMock`; nothing here speaks HTTP.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable, Iterable

import orjson

from mock_server.core import fal_errors
from mock_server.core.clock import Clock
from mock_server.core.driver import QueueDriver
from mock_server.endpoints import build_endpoints
from mock_server.endpoints.registry import EndpointRegistry
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.core.faults import MODEL_ERRORS, REQUEST_ERRORS, Fault, FaultPlan
from mock_server.core.files import FileStore
from mock_server.core.journal import Journal
from mock_server.core.paths import FILES_PREFIX, own_file_name
from mock_server.core.queue import COMPLETED, QueuedRequest, RequestQueue
from mock_server.settings import Settings
from mock_server.core.timing import TimingProfile
from mock_server.features.storage import UploadSessions
from mock_server.features.webhooks import WebhookDispatcher

if TYPE_CHECKING:
    from mock_server.endpoints.catalog import Catalog

log = logging.getLogger("fal_mock")


class FalMock:
    """Everything one mock server knows; safe to build without a running loop."""

    def __init__(self, settings: Settings | None = None, endpoints: Iterable[Endpoint] | None = None,
                 catalog: "Catalog | None" = None) -> None:
        self.settings = settings or Settings()
        self.clock = Clock()
        self.queue = RequestQueue(
            self.clock,
            TimingProfile.named(self.settings.profile, self.settings.speed),
            workers=self.settings.workers,
            max_requests=self.settings.max_requests,
            max_pending=self.settings.max_pending,
            polls=self.settings.polls,
        )
        self.files = FileStore()
        self.journal = Journal(self.settings.journal_size)
        self.faults = FaultPlan()
        #: moves the queue on the clock while anything watches (webhooks, dashboard, streams)
        self.driver = QueueDriver(self.queue, self.clock)
        self._reset_hooks: list[Callable[[], None]] = [self.driver.kick]
        #: which endpoint answers an id (hand-written modules, the catalogue, features' fallbacks)
        self.registry = EndpointRegistry(lambda: self.settings, endpoints if endpoints is not None
                                         else build_endpoints(self.settings.validation), catalog)
        if self.settings.record_dir is not None or self.settings.replay_dir is not None:
            from mock_server.features import cassettes  # record and replay (--record / --replay)

            cassettes.use_cassettes(self, cassettes.shelf_from_settings(
                self.settings, cassettes.own_file_finder(self), cassettes.caller_key_finder(self)))
        #: The state folder's store when persistence is on (``--state-dir``), else None.
        self.persistence = None
        if self.settings.persist:
            from mock_server.features.persistence import Persistence

            self.persistence = Persistence(self, self.settings.state_dir).start()
        #: Signed webhook delivery for ``?fal_webhook=`` (after the state folder's replay,
        #: whose completions were delivered before the restart).
        self.webhooks = WebhookDispatcher(self.queue, self.clock, self.driver, self.journal, self.origin_result,
                                          lambda: self.settings)
        self.on_reset(self.webhooks.reset)
        #: Upload sessions of the storage stand-ins (CDN tokens, signed PUTs, multipart).
        self.uploads = UploadSessions(self.clock, self.files, lambda: self.settings)
        self.on_reset(self.uploads.forget_uploads)

    async def start(self) -> None:
        """Start-up on the server's event loop: bind what runs tasks there (the queue driver,
        feature services)."""
        self.driver.bind()
        self.webhooks.start()

    async def stop(self) -> None:
        """Server shutdown: stop the tasks :meth:`start` began."""
        await self.webhooks.stop()
        await self.driver.stop()

    def store_failure(self) -> str | None:
        """Why the state folder cannot be written right now (``--state-dir``), else None."""
        return None if self.persistence is None else self.persistence.failure

    def close(self) -> None:
        """Write out and release persisted state (a no-op without persistence)."""
        if self.persistence is not None:
            self.persistence.close()

    # -- endpoints (the registry's, named as callers use them) -------------------------
    def add_endpoint(self, endpoint: Endpoint) -> None:
        self.registry.add(endpoint)

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.registry.in_use()

    @property
    def catalog(self) -> "Catalog":
        return self.registry.catalog

    def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self.registry.get(endpoint_id)

    def knows_app(self, app_path: str) -> bool:
        return self.registry.knows_app(app_path)

    # -- results ----------------------------------------------------------------------
    async def produce(self, endpoint: Endpoint, parsed: Parsed | Answer, request_id: str, env: EndpointEnv) -> Answer:
        """The endpoint's answer for a request: the 422 it was given at parse, or its output."""
        if isinstance(parsed, Answer):
            return parsed
        try:
            return await endpoint.produce(parsed.params, request_id, env)
        except Exception as exc:  # an endpoint bug must not become a traceback on the wire
            return fal_errors.internal_error(f"{type(exc).__name__}: {exc}")

    def apply_request_fault(self, request: QueuedRequest, fault: Fault) -> None:
        """A ``model_error`` / ``runner_error`` fault decides this request's result now."""
        request.answer = self.fault_answer(fault)
        shown = fault.status_error
        if shown is not None:
            request.error, request.error_type = shown

    @staticmethod
    def fault_answer(fault: Fault) -> Answer:
        """The result of a request hit by a ``model_error`` or ``runner_error`` fault."""
        if fault.kind == "model_error":
            from mock_server.endpoints.fal_app.validation import model_error_answer

            status, loc, msg = MODEL_ERRORS[fault.error_type or "content_policy_violation"]
            return model_error_answer(fault.error_type, fault.message or msg, loc, has_input=False,
                                      status=fault.status or status)
        status, detail = REQUEST_ERRORS[fault.error_type or "runner_disconnected"]
        body = {"detail": fault.message or detail, "error_type": fault.error_type}
        return Answer(fault.status or status, orjson.dumps(body), (("x-fal-error-type", fault.error_type or ""),))

    def env_for(self, scheme: str, host: str) -> EndpointEnv:
        """What an endpoint needs to produce a result for a caller who reached the mock as
        ``scheme://host`` (the file URLs it hands out lead back there)."""
        files_base = f"{scheme}://{host}{FILES_PREFIX}"
        settings = self.settings
        return EndpointEnv(
            files=self.files,
            file_url=lambda name: files_base + name,
            own_file_name=lambda url: own_file_name(url, host=settings.host, port=settings.port, caller_host=host),
            allow_fetch=settings.allow_fetch,
            fetch_timeout=settings.fetch_timeout,
            fetch_max_bytes=settings.fetch_max_bytes,
            log=log.info,
        )

    async def origin_result(self, request: QueuedRequest) -> Answer:
        """A COMPLETED request's result as its submitter's result GET gets it (a webhook's)."""
        settings = self.settings
        scheme, host = request.origin or (settings.scheme, f"{settings.host}:{settings.port}")
        return await self.result(request, self.env_for(scheme, host))

    def kept_result(self, request: QueuedRequest) -> Answer | None:
        """A COMPLETED request's result answer when it needs no producing (kept, decided by
        a fault, or a cancel's 499), else None."""
        if request.answer is None and request.cancelled:
            request.answer = fal_errors.cancelled()
        return request.answer

    async def result(self, request: QueuedRequest, env: EndpointEnv) -> Answer:
        """The result GET's answer for a COMPLETED request, produced once and kept."""
        kept = self.kept_result(request)
        if kept is not None:
            return kept
        if request.producing is None:
            request.producing = asyncio.ensure_future(self._produce_kept(request, env))
        answer = await asyncio.shield(request.producing)
        request.answer = answer
        return answer

    async def _produce_kept(self, request: QueuedRequest, env: EndpointEnv) -> Answer:
        persistence = self.persistence
        if persistence is None:
            return await self.produce(request.endpoint, request.parsed, request.request_id, env)
        names: list[str] = []  # the files this result registers, to draw them again after a restart
        answer = await self.produce(request.endpoint, request.parsed, request.request_id,
                                    persistence.recording_env(env, names))
        persistence.answered(request, answer, names)
        return answer

    def reset(self) -> None:
        """Forget every request, file, journal entry and fault; clock back to real time."""
        self.queue.reset()
        self.files.clear()
        self.journal.clear()
        self.faults.clear()
        self.clock.reset()
        for hook in self._reset_hooks:
            hook()

    def reset_namespace(self, namespace: str) -> None:
        """Forget one namespace's requests, uploads, journal entries and fault rules (the
        clock, the settings and other namespaces stay as they are: docs/namespaces.md)."""
        self.queue.forget_namespace(namespace)
        self.files.forget_uploads_of(namespace)
        self.journal.forget_namespace(namespace)
        self.faults.clear(namespace)
        self.driver.kick()

    def on_reset(self, hook: Callable[[], None]) -> None:
        """Also run ``hook()`` on :meth:`reset` (feature modules clear their own state)."""
        self._reset_hooks.append(hook)

    def configure(
        self,
        *,
        profile: str | None = None,
        speed: float | None = None,
        workers: int | None = None,
        validation: str | None = None,
        polls: int | None | bool = False,
        auth: bool | None = None,
        keys: tuple[str, ...] | list[str] | None = None,
        allow_fetch: bool | None = None,
    ) -> Settings:
        """Change how the mock behaves from now on (timing, workers, validation, auth...).

        ``polls=N`` switches to poll-count progression (COMPLETED on the Nth status call);
        ``polls=None`` goes back to the clock.  Returns the new settings.
        """
        changes: dict = {}
        if profile is not None or speed is not None:
            changes["profile"] = profile or self.settings.profile
            changes["speed"] = speed if speed is not None else self.settings.speed
            timing = TimingProfile.named(changes["profile"], changes["speed"])
        else:
            timing = None
        if workers is not None:
            changes["workers"] = workers
        if polls is not False:
            changes["polls"] = polls
        self.queue.reconfigure(timing=timing, workers=workers, polls=polls)
        if validation is not None and validation != self.settings.validation:
            endpoints = build_endpoints(validation)
            changes["validation"] = validation
            for endpoint in endpoints:
                self.add_endpoint(endpoint)
        if auth is not None:
            changes["auth"] = auth
        if keys is not None:
            changes["keys"] = tuple(keys)
        if allow_fetch is not None:
            changes["allow_fetch"] = allow_fetch
        self.settings = self.settings.with_(**changes)
        return self.settings
    def summary(self, request: QueuedRequest) -> dict:
        """A request as the control API lists it."""
        return {
            "request_id": request.request_id,
            "namespace": request.namespace,
            "endpoint_id": request.endpoint.endpoint_id,
            "status": request.status,
            "valid": request.valid,
            "submitted_at": request.submitted_at,
            "started_at": request.started_at,
            "finished_at": request.finished_at if request.status == COMPLETED else None,
            "cancelled": request.cancelled,
            "error_type": request.error_type,
            "queue_position": self.queue.queue_position(request),
        }
