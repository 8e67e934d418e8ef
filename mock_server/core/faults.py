"""Fault injection: make chosen calls fail the way fal fails, one-shot or by rule.

A :class:`FaultRule` says *which* calls (``on``: submit, status, stream, result,
cancel, run, storage or any; after N matching calls; with a probability from a
seeded RNG, so a failing run replays exactly; or when the prompt matches) get
*what* (:class:`Fault`):

- ``http_error``: the call answers an HTTP error: 429 with ``Retry-After``, or a
  5xx in fal's request-error shape (``{"detail", "error_type"}`` + ``X-Fal-Error-Type``),
  with or without ``x-fal-request-id``, or as an nginx HTML page (what fal_client
  treats as an ingress error and retries, PROTOCOL.md §4.3);
  401, 403 and 404 answer the bodies fal's gateway sends for them (an unknown key, a locked
  account, an unknown request);
- ``exhausted_balance``: any call answers fal's 403 for an account out of credits
  (``{"detail": "User is locked. Reason: Exhausted balance. ..."}``);
- ``latency``: the call is answered normally after ``delay`` seconds;
- ``drop``: the connection is closed without an answer;
- ``truncate``: the answer's body is cut in half and the connection closed;
- ``model_error`` (submit/run): the request ends COMPLETED and its result is one of
  fal's typed model errors (``content_policy_violation`` ...; WAN25.md §3.2);
- ``runner_error`` (submit/run): the request ends COMPLETED with ``error`` and
  ``error_type`` on its status, and the result answers the request error
  (``runner_disconnected``, ``request_timeout`` ...; PROTOCOL.md §5).
"""
from __future__ import annotations

import itertools
import random
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import orjson

from mock_server.core import fal_errors

FAULT_KINDS = ("http_error", "exhausted_balance", "latency", "drop", "truncate", "model_error", "runner_error")
#: The kinds that answer the call at once with :meth:`Fault.http_answer`.
ANSWERING = frozenset(("http_error", "exhausted_balance"))
CALLS = ("any", "submit", "status", "stream", "result", "cancel", "run", "storage")
REQUEST_LEVEL = frozenset(("model_error", "runner_error"))

# fal's documented model errors: type -> (status, loc, msg)  (WAN25.md §3.2, fal errors doc)
MODEL_ERRORS: dict[str, tuple[int, list[Any], str]] = {
    "content_policy_violation": (422, ["body", "prompt"], fal_errors.TYPED_ERROR_MESSAGES["content_policy_violation"]),
    "no_media_generated": (422, ["body"], fal_errors.TYPED_ERROR_MESSAGES["no_media_generated"]),
    "image_load_error": (422, ["body", "image_urls", 0], fal_errors.TYPED_ERROR_MESSAGES["image_load_error"]),
    "file_download_error": (422, ["body", "image_urls", 0], fal_errors.TYPED_ERROR_MESSAGES["file_download_error"]),
    "face_detection_error": (422, ["body", "image_urls", 0], fal_errors.TYPED_ERROR_MESSAGES["face_detection_error"]),
    "feature_not_supported": (422, ["body"], fal_errors.TYPED_ERROR_MESSAGES["feature_not_supported"]),
    "generation_timeout": (504, ["body"], fal_errors.TYPED_ERROR_MESSAGES["generation_timeout"]),
    "internal_server_error": (500, ["body"], fal_errors.TYPED_ERROR_MESSAGES["internal_server_error"]),
    "downstream_service_error": (400, ["body"], fal_errors.TYPED_ERROR_MESSAGES["downstream_service_error"]),
    "downstream_service_unavailable": (500, ["body"], fal_errors.TYPED_ERROR_MESSAGES["downstream_service_unavailable"]),
}

# fal's request (platform) errors: error_type -> (typical status, detail)  (PROTOCOL.md §5)
REQUEST_ERRORS: dict[str, tuple[int, str]] = {
    "request_timeout": (504, "Request timed out"),
    "startup_timeout": (504, "Startup timed out"),
    "runner_scheduling_failure": (503, "Runner scheduling failure"),
    "runner_connection_timeout": (503, "Runner connection timed out"),
    "runner_disconnected": (503, "Runner disconnected"),
    "runner_connection_refused": (503, "Runner connection refused"),
    "runner_connection_error": (503, "Runner connection error"),
    "runner_incomplete_response": (502, "Runner returned an incomplete response"),
    "runner_server_error": (500, "Runner server error"),
    "client_disconnected": (499, "Client disconnected"),
    "client_cancelled": (499, "Client cancelled"),
    "bad_request": (400, "Bad request"),
    "internal_error": (500, "Internal error"),
}
_STATUS_ERROR_TYPE = {500: "internal_error", 502: "runner_incomplete_response", 503: "runner_connection_error",
                      504: "request_timeout", 400: "bad_request", 499: "client_disconnected"}
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}


# what fal's gateway answers with these statuses (core/fal_errors.py cites the recordings)
_GATEWAY_ANSWERS = {401: fal_errors.unknown_key, 403: fal_errors.exhausted_balance,
                    404: fal_errors.result_not_found}


class FaultError(ValueError):
    """A fault or rule description that does not make sense."""


@dataclass
class Fault:
    """What happens to a call a rule picked (see the module docstring)."""

    kind: str = "http_error"
    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    request_id_header: bool = True
    nginx: bool = False
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise FaultError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if self.kind == "model_error":
            self.error_type = self.error_type or "content_policy_violation"
            if self.error_type not in MODEL_ERRORS:
                raise FaultError(f"unknown model error type {self.error_type!r}; one of {', '.join(MODEL_ERRORS)}")
        if self.kind == "runner_error":
            self.error_type = self.error_type or "runner_disconnected"
            if self.error_type not in REQUEST_ERRORS:
                raise FaultError(f"unknown request error type {self.error_type!r}; one of {', '.join(REQUEST_ERRORS)}")
        if self.kind == "http_error":
            self.status = self.status or 500
            if not 400 <= self.status <= 599:
                raise FaultError("an http_error status is 4xx or 5xx")
            if self.status == 429 and self.retry_after is None:
                self.retry_after = 1.0
        if self.kind == "exhausted_balance":
            self.status = 403
        if self.delay < 0:
            raise FaultError("delay must be >= 0")

    @property
    def label(self) -> str:
        """How the journal names this fault, e.g. ``http_error 503`` or ``model_error content_policy_violation``."""
        detail = self.status if self.kind == "http_error" else self.error_type or (self.delay if self.kind == "latency" else "")
        return f"{self.kind} {detail}".strip()

    def http_answer(self, request_id: str | None) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        """(status, body, headers, content type) of an ``http_error``."""
        status = self.status or 500
        headers: list[tuple[bytes, bytes]] = []
        if self.retry_after is not None:
            headers.append((b"retry-after", str(int(self.retry_after) if float(self.retry_after).is_integer() else self.retry_after).encode()))
        if self.nginx:
            reason = _REASONS.get(status, "Error")
            page = (f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
                    f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
            return status, page.encode(), headers, b"text/html"
        if self.kind == "exhausted_balance":
            gateway = fal_errors.exhausted_balance
        else:  # a rule that words its own error keeps the request-error shape
            gateway = None if self.error_type or self.message else _GATEWAY_ANSWERS.get(status)
        if gateway is not None:
            answer = gateway()
            if self.request_id_header and request_id:
                headers.append((b"x-fal-request-id", request_id.encode()))
            return status, answer.body, headers, b"application/json"
        if status == 429:
            body = {"detail": self.message or "Too many requests"}
        else:
            error_type = self.error_type or _STATUS_ERROR_TYPE.get(status, "internal_error")
            body = {"detail": self.message or REQUEST_ERRORS.get(error_type, (status, "Internal error"))[1],
                    "error_type": error_type}
            headers.append((b"x-fal-error-type", error_type.encode()))
        if self.request_id_header and request_id:
            headers.append((b"x-fal-request-id", request_id.encode()))
        return status, orjson.dumps(body), headers, b"application/json"

    @property
    def status_error(self) -> tuple[str, str] | None:
        """(error, error_type) shown on the COMPLETED status, for runner errors only."""
        if self.kind != "runner_error":
            return None
        return self.message or REQUEST_ERRORS[self.error_type or "runner_disconnected"][1], self.error_type or ""


_ids = itertools.count(1)

#: The longest a rule's ``prompt`` pattern may search one prompt; a pattern that backtracks
#: for longer (``(a+)+$``) does not match, rather than hold the server's loop.
PROMPT_SEARCH_SECONDS = 0.05


def _compile_prompt(pattern: str):
    # the ``regex`` package: re's syntax (VERSION0) with a time bound on each search, which the
    # standard library's re lacks
    import regex

    if not isinstance(pattern, str):
        raise FaultError("prompt is a regular expression (a string)")
    try:
        return regex.compile(pattern)
    except regex.error as exc:
        raise FaultError(f"prompt is not a valid regular expression: {exc}") from None


def _search(pattern, text: str) -> bool:
    try:
        return pattern.search(text, timeout=PROMPT_SEARCH_SECONDS) is not None
    except TimeoutError:
        return False


#: The keys of a rule that say which calls it picks (the control API's JSON, FaultPlan.add_json).
RULE_KEYS = ("on", "times", "after", "probability", "seed", "prompt")


@dataclass
class FaultRule:
    """Which calls get a fault.  ``times=None`` fires forever; ``after`` skips the first N matches."""

    fault: Fault
    on: str = "any"
    times: int | None = 1
    after: int = 0
    probability: float = 1.0
    seed: int | None = None
    prompt: str | None = None
    #: the namespace whose calls it picks (docs/namespaces.md); None: every namespace's
    namespace: str | None = None
    id: str = field(default_factory=lambda: f"rule-{next(_ids)}")
    seen: int = 0
    fired: int = 0

    def __post_init__(self) -> None:
        if self.on not in CALLS:
            raise FaultError(f"unknown call {self.on!r}; one of {', '.join(CALLS)}")
        if self.fault.kind in REQUEST_LEVEL and self.on not in ("any", "submit", "run"):
            raise FaultError(f"{self.fault.kind} applies to submit or run calls only")
        if not 0.0 <= self.probability <= 1.0:
            raise FaultError("probability is between 0 and 1")
        self._rng = random.Random(self.seed)
        self._prompt = _compile_prompt(self.prompt) if self.prompt else None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def applies(self, call: str, prompt: "str | None | Callable[[], str | None]", namespace: str | None = None) -> bool:
        """Count this call and say whether the fault fires on it (``prompt`` may be a getter)."""
        if self.exhausted or (self.on != "any" and self.on != call):
            return False
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.fault.kind in REQUEST_LEVEL and call not in ("submit", "run"):
            return False
        if self._prompt is not None:
            text = prompt() if callable(prompt) else prompt
            if not isinstance(text, str) or not _search(self._prompt, text):
                return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.probability < 1.0 and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "on": self.on, "times": self.times, "after": self.after,
                "probability": self.probability, "seed": self.seed, "prompt": self.prompt,
                "namespace": self.namespace, "seen": self.seen, "fired": self.fired, "fault": asdict(self.fault)}


class FaultPlan:
    """The rules in force, checked in the order they were added (the first that fires wins)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, on: str = "any", *, times: int | None = 1, after: int = 0, probability: float = 1.0,
            seed: int | None = None, prompt: str | None = None, namespace: str | None = None,
            **fault: Any) -> FaultRule:
        """Add a rule; keyword arguments beyond the rule's are the :class:`Fault`'s
        (``namespace``: only that namespace's calls; None: every namespace's)."""
        rule = FaultRule(Fault(**fault), on=on, times=times, after=after, probability=probability,
                         seed=seed, prompt=prompt, namespace=namespace)
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_json(self, data: dict[str, Any], namespace: str | None = None) -> FaultRule:
        """A rule from the control API's JSON: rule keys plus a ``fault`` object (or fault keys
        inline), for ``namespace``'s calls (None: every namespace's)."""
        data = dict(data)
        fault = data.pop("fault", None) or {k: data.pop(k) for k in list(data) if k in Fault.__dataclass_fields__}
        unknown = set(data) - set(RULE_KEYS)
        if unknown:
            raise FaultError(f"unknown rule field(s): {', '.join(sorted(unknown))}")
        try:
            return self.add(**data, **fault, namespace=namespace)
        except TypeError as exc:
            raise FaultError(str(exc)) from None

    def match(self, call: str, prompt: "str | None | Callable[[], str | None]" = None,
              namespace: str | None = None) -> Fault | None:
        """The fault for this call (made in ``namespace``), if a rule fires (the rule's counters move)."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.applies(call, prompt, namespace):
                    return rule.fault
        return None

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def rules_of(self, namespace: str | None) -> list[FaultRule]:
        """The rules one namespace set (None: every rule)."""
        return [r for r in self._rules if namespace is None or r.namespace == namespace]

    @property
    def active(self) -> bool:
        """Whether any rule is in force (checked on every call: no copy, no lock)."""
        return bool(self._rules)

    def remove(self, rule_id: str, namespace: str | None = None) -> bool:
        """Remove a rule (only one ``namespace`` set, when given)."""
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules
                           if r.id != rule_id or (namespace is not None and r.namespace != namespace)]
            return len(self._rules) != before

    def clear(self, namespace: str | None = None) -> None:
        """Remove every rule (only those one ``namespace`` set, when given)."""
        with self._lock:
            if namespace is None:
                self._rules.clear()
            else:
                self._rules = [r for r in self._rules if r.namespace != namespace]
