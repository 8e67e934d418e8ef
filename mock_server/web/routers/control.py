"""The control API under ``/_mock/``: what tests and people use to look and steer.

- ``GET  /_mock/health``            200 once the server accepts requests (open even with an admin token)
- ``GET  /_mock/requests``          the request journal (filters: kind, method, path, request_id,
                                    status, since; ``body=0`` leaves bodies out); ``dropped`` counts
                                    entries past the cap
- ``GET  /_mock/queue[/{id}]``      queued requests and their state
- ``POST /_mock/reset``             forget one namespace's requests, uploads, journal, faults
                                    (``?namespace=*``: everything; clock back to real time)
- ``GET|POST /_mock/clock``         ``{"freeze": true}``, ``{"unfreeze": true}``, ``{"advance": 5}``
- ``GET|POST|DELETE /_mock/faults`` list, add (a rule as JSON), clear; ``DELETE /_mock/faults/{id}``
- ``GET|POST /_mock/config``        profile, speed, workers, validation, polls, auth, keys, allow_fetch
- ``GET  /_mock/openapi.json``      fal's per-endpoint OpenAPI document (``?endpoint_id=``)
- ``GET  /_mock/namespaces``        the namespaces that have requests, journal entries or fault rules

``?namespace=NAME`` (docs/namespaces.md) narrows requests, queue, faults and reset to one
namespace.  Reads without it (or with ``?namespace=*``) show every namespace; actions (reset, add,
clear or remove fault rules) need one: ``NAME``, or ``*`` for every namespace at once, and
without it answer 400 (issue 18.3: on a shared server, wiping everyone's state is never the
default).  The clock and the config are the server's, shared by all namespaces: they refuse a
``?namespace=`` with 400.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, create_model

from mock_server.core import fal_errors
from mock_server.core.faults import RULE_KEYS, Fault, FaultError, FaultRule
from mock_server.core.namespaces import EVERY, MAX_LENGTH
from mock_server.emulator import FalMock
from mock_server.settings import Settings
from mock_server.web.control import control_router, ok, only
from mock_server.web.deps import get_emulator, local_caller
from mock_server.web.responses import AnswerResponse, RawResponse

_STRICT = ConfigDict(strict=True, extra="forbid")
#: ``?namespace=NAME``: one namespace, ``*`` every one (docs/namespaces.md); an empty one is a
#: 400, never "all"
Namespace = Annotated[str | None, Query(min_length=1, max_length=MAX_LENGTH)]
#: What an action without ``?namespace=`` answers (400).
NAMESPACE_NEEDED = (f"This action needs a namespace: name one with ?namespace=NAME (GET /_mock/namespaces "
                    f"lists them), or act on every namespace with ?namespace={EVERY}")


class ClockChange(BaseModel):
    """``POST /_mock/clock``: unfreeze, then freeze (at ``at``, default now), then advance."""

    model_config = _STRICT
    freeze: bool = False
    unfreeze: bool = False
    at: float | None = None
    advance: float | None = None


def _strict_body_of(fields_of: type, name: str, doc: str, *, only: tuple[str, ...] | None = None,
                    base: type[BaseModel] | None = None, **more: Any) -> type[BaseModel]:
    """A strict request body with the fields (names, types, defaults) of a core dataclass,
    which stays the one home of those fields (``only`` those named; ``more`` besides, on
    ``base``)."""
    hints = typing.get_type_hints(fields_of)
    fields: dict[str, Any] = {f.name: (hints[f.name], f.default) for f in dataclasses.fields(fields_of)
                              if only is None or f.name in only}
    options: dict[str, Any] = {"__base__": base} if base is not None else {"__config__": _STRICT}
    return create_model(name, __doc__=doc, __module__=__name__, **options, **fields, **more)


#: What happens to a call a rule picks: :class:`mock_server.core.faults.Fault`'s fields.
FaultSpec = _strict_body_of(Fault, "FaultSpec", "What happens to a call a rule picks (mock_server.core.faults.Fault).")
#: ``POST /_mock/faults``: which calls (:class:`mock_server.core.faults.FaultRule`'s rule keys)
#: get what (a ``fault`` object, or its keys inline); ``FaultPlan.add_json`` checks the values.
FaultRuleSpec = _strict_body_of(
    FaultRule, "FaultRuleSpec", "POST /_mock/faults: which calls (rule keys) get what (a fault object, or its keys inline).",
    only=RULE_KEYS, base=FaultSpec, fault=(FaultSpec | None, None))


class ConfigChange(BaseModel):
    """``POST /_mock/config``: what to change from now on (as the CLI flags of the same names);
    ``polls: null`` goes back to the clock, no ``polls`` leaves poll-count mode as it is."""

    model_config = _STRICT
    profile: str | None = None
    speed: float | None = None
    workers: int | None = None
    validation: str | None = None
    polls: int | None = None
    auth: bool | None = None
    keys: list[str] | None = None
    allow_fetch: bool | None = None


def redacted_key(key: str) -> str:
    """``id:secret`` -> ``id:***`` (as the journal shows an Authorization header)."""
    key_id, colon, _ = key.partition(":")
    return f"{key_id}:***" if colon else "***"


def settings_view(settings: Settings) -> dict[str, Any]:
    """The settings the control API shows; keys redacted (issue 21.6): the secrets are the
    user's, who passed them with --keys."""
    return {
        "profile": settings.profile, "speed": settings.speed, "workers": settings.workers,
        "validation": settings.validation, "polls": settings.polls, "auth": settings.auth,
        "keys": [redacted_key(key) for key in settings.keys], "allow_fetch": settings.allow_fetch,
        "max_requests": settings.max_requests, "journal_size": settings.journal_size,
    }


def _bad(exc: Exception) -> AnswerResponse:
    return AnswerResponse(fal_errors.bad_request(str(exc)))


router = APIRouter()
_open = control_router(admin=False, tags=["control"])
_guarded = control_router(prefix="/_mock", tags=["control"])


@_open.get("/_mock/health")
async def health(request: Request, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """200 once the server accepts requests; ``preloaded`` once everything is in memory.  503
    ``degraded`` with ``store_error`` while the state folder cannot be written (``--state-dir``:
    what is acknowledged is kept in memory and retried; submits answer 503 meanwhile)."""
    failure = mock.store_failure()
    body = {"status": "ok" if failure is None else "degraded", "requests": len(mock.queue),
            "preloaded": request.app.state.preloaded()}
    if failure is not None:
        body["store_error"] = failure
    return ok(body, 200 if failure is None else 503)


only(_open, "/_mock/health", ("GET",))


def _server_wide(namespace: str | None, what: str) -> AnswerResponse | None:
    """The refusal of one namespace's name on a server-wide route (``*``, every one, is its reach)."""
    if namespace is None or namespace == EVERY:
        return None
    return AnswerResponse(fal_errors.bad_request(
        f"The {what} is the server's, shared by every namespace: call it without ?namespace= "
        f"(or with ?namespace={EVERY})"))


def _scope(namespace: str | None) -> str | None:
    """The namespace a call acts on or shows: None for every namespace (``*``, or a read without one)."""
    return None if namespace == EVERY else namespace


def _unnamed(namespace: str | None) -> AnswerResponse | None:
    """An action's refusal when it names no namespace (``*`` names every one)."""
    return AnswerResponse(fal_errors.bad_request(NAMESPACE_NEEDED)) if namespace is None else None


@_guarded.get("/namespaces")
async def namespaces(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Every namespace the mock holds something of, with its request count."""
    counts: dict[str, int] = {}
    for queued in mock.queue:
        counts[queued.namespace] = counts.get(queued.namespace, 0) + 1
    for name in {e.namespace for e in mock.journal.entries()} | {r.namespace for r in mock.faults.rules if r.namespace}:
        counts.setdefault(name, 0)
    return ok({"namespaces": [{"namespace": name, "requests": counts[name]} for name in sorted(counts)]})


@_guarded.get("/requests")
async def requests(kind: str | None = None, method: str | None = None, path: str | None = None,
                   request_id: str | None = None, status: int | None = None, since: int | None = None,
                   body: str = "1", namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """The request journal, oldest first; ``kind`` is comma-separated, ``body=0`` leaves bodies out."""
    entries = mock.journal.entries(kind=kind.split(",") if kind is not None else None, method=method,
                                   path=path, request_id=request_id, status=status, since=since,
                                   namespace=_scope(namespace))
    with_body = body not in ("0", "false")
    items = []
    for entry in entries:
        item = entry.as_dict(with_body)
        if entry.request_id:
            queued = mock.queue.get(entry.request_id)
            item["request_state"] = queued.status if queued is not None else None
        items.append(item)
    return ok({"requests": items, "count": len(items), "dropped": mock.journal.dropped})


@_guarded.get("/queue")
async def queue(namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Every request the queue holds (one namespace's with ``?namespace=``), and how many it
    forgot (``max_requests``)."""
    mock.queue.advance()
    namespace = _scope(namespace)
    return ok({"requests": [mock.summary(r) for r in mock.queue if namespace is None or r.namespace == namespace],
               "forgotten": mock.queue.forgotten})


@_guarded.get("/queue/{request_id}")
async def queued_request(request_id: str, namespace: Namespace = None,
                         mock: FalMock = Depends(get_emulator)) -> RawResponse:
    found = mock.queue.get(request_id)
    namespace = _scope(namespace)
    if found is None or (namespace is not None and found.namespace != namespace):
        return AnswerResponse(fal_errors.detail(404, "Request not found"))
    return ok(mock.summary(found))


@_guarded.post("/reset")
async def reset(namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """``?namespace=NAME``: forget that namespace's requests, uploads, journal and faults.
    ``?namespace=*``: forget requests, files, journal, faults (and every feature's state), clock
    to real time."""
    refused = _unnamed(namespace)
    if refused is not None:
        return refused
    if namespace != EVERY:
        mock.reset_namespace(namespace)
        return ok({"status": "ok", "namespace": namespace})
    mock.reset()
    return ok({"status": "ok", "namespace": EVERY})


@_guarded.get("/clock")
async def clock(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    return ok(mock.clock.state())


@_guarded.post("/clock")
async def change_clock(change: ClockChange | None = None, namespace: Namespace = None,
                       mock: FalMock = Depends(get_emulator)) -> RawResponse:
    refused = _server_wide(namespace, "clock")
    if refused is not None:
        return refused
    change = change or ClockChange()
    clock = mock.clock
    try:  # the clock refuses times it cannot show (past the year 9999, NaN): 400, not 500
        if change.unfreeze:
            clock.unfreeze()
        if change.freeze:
            clock.freeze(change.at)
        if change.advance is not None:
            clock.advance(change.advance)
    except ValueError as exc:
        return _bad(exc)
    mock.queue.advance()
    return ok(clock.state())


@_guarded.get("/faults")
async def faults(namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    return ok({"rules": [rule.as_dict() for rule in mock.faults.rules_of(_scope(namespace))]})


@_guarded.post("/faults", status_code=201)
async def add_fault(rule: FaultRuleSpec | None = None, namespace: Namespace = None,  # type: ignore[valid-type]
                    mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Add a rule: for one namespace's calls with ``?namespace=NAME``, for every call with ``*``."""
    refused = _unnamed(namespace)
    if refused is not None:
        return refused
    spec = rule.model_dump(exclude_unset=True) if rule is not None else {}
    try:
        added = mock.faults.add_json(spec, _scope(namespace))
    except (FaultError, ValueError, TypeError) as exc:
        return _bad(exc)
    return ok(added.as_dict(), 201)


@_guarded.delete("/faults")
async def clear_faults(namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Remove one namespace's rules (``*``: every rule)."""
    refused = _unnamed(namespace)
    if refused is not None:
        return refused
    mock.faults.clear(_scope(namespace))
    return ok({"rules": []})


@_guarded.delete("/faults/{rule_id}")
async def remove_fault(rule_id: str, namespace: Namespace = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Remove a rule one namespace set (``*``: whoever set it)."""
    refused = _unnamed(namespace)
    if refused is not None:
        return refused
    if not mock.faults.remove(rule_id, _scope(namespace)):
        return AnswerResponse(fal_errors.detail(404, f"No fault rule {rule_id}"))
    return ok({"removed": rule_id})


@_guarded.get("/config")
async def config(mock: FalMock = Depends(get_emulator)) -> RawResponse:
    return ok(settings_view(mock.settings))


@_guarded.post("/config")
async def change_config(request: Request, change: ConfigChange | None = None, namespace: Namespace = None,
                        mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """Change settings.  What guards the fal routes (``auth``, ``keys``) changes only with the
    admin token (the router checks it when one is set) or, without one, from this machine
    (a loopback peer; the router's guard has already refused cross-site calls)."""
    refused = _server_wide(namespace, "config")
    if refused is not None:
        return refused
    changes = change.model_dump(exclude_unset=True) if change is not None else {}
    if ("auth" in changes or "keys" in changes) and not mock.settings.admin_token and not local_caller(request):
        return AnswerResponse(fal_errors.detail(
            403, "Changing auth or keys needs the admin token (--admin-token) or a caller on this machine"))
    changes.setdefault("polls", False)  # no polls: leave poll-count mode as it is
    try:
        mock.configure(**changes)
    except (ValueError, TypeError) as exc:
        return _bad(exc)
    return ok(settings_view(mock.settings))


@_guarded.get("/openapi.json")
async def openapi(endpoint_id: str | None = None, mock: FalMock = Depends(get_emulator)) -> RawResponse:
    """fal's OpenAPI document of one endpoint (``endpoint_id``; optional with one endpoint)."""
    endpoints = mock.endpoints
    endpoint = mock.endpoint(endpoint_id) if endpoint_id else (endpoints[0] if len(endpoints) == 1 else None)
    if endpoint is None:
        return AnswerResponse(fal_errors.detail(404, f"Unknown endpoint_id {endpoint_id!r}"))
    return ok(endpoint.openapi())


for _path, _allowed in (("/requests", ("GET",)), ("/queue", ("GET",)), ("/queue/{request_id}", ("GET",)),
                        ("/reset", ("POST",)), ("/clock", ("GET", "POST")),
                        ("/faults", ("GET", "POST", "DELETE")), ("/faults/{rule_id}", ("DELETE",)),
                        ("/config", ("GET", "POST")), ("/openapi.json", ("GET",)), ("/namespaces", ("GET",))):
    only(_guarded, _path, _allowed)

router.include_router(_open)
router.include_router(_guarded)
