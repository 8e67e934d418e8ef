"""The rows of the state database: a recorded call turned into a row, and a stored request
checked and turned back into what the queue replays.

What is stored is the *input* of the queue's simulation, not its state: per request the
submit (id, endpoint, params as used -- with the drawn seed --, parse notes or the 422
it was rejected with, submit time, time it may start, run time, webhook URL, origin,
a fault's answer and status error) and the time of a cancel.  Durations are stored,
so a restart with another profile does not change a request's course.  The first
produced result is stored byte for byte (status, headers, body), with the names of
the image files it registered.

A row is ``(kind, ...)``: ``("submit", values)`` (``values`` in :data:`COLUMNS` order),
``("cancel", (cancelled_at, request_id))``, ``("forget", request_id, had_answer)``,
``("answer", (status, headers, body, request_id), request_id, names)``,
``("upload", name, data, content_type)``, ``("clear",)`` or ``("skipped",)``.
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

import orjson

from mock_server.core.answers import Answer
from mock_server.core.endpoint import Parsed

if TYPE_CHECKING:
    from mock_server.core.endpoint import Endpoint
    from mock_server.core.queue import QueuedRequest

#: The ``requests`` table's columns, in the order a submit row holds them.
COLUMNS = (
    "request_id", "seq", "endpoint_id", "submitted_at", "eligible_at", "duration", "params", "notes",
    "rejected_status", "rejected_headers", "rejected_body", "webhook_url", "origin", "error", "error_type",
    "cancelled_at", "answer_status", "answer_headers", "answer_body", "namespace",
)
#: Stored times and durations beyond this (seconds; year 5138) are damage, not data.
_MAX_TIME = 1e11


# -- calls into rows -------------------------------------------------------------------
def submit_row(request: "QueuedRequest", seq: int) -> tuple:
    """The ``requests`` row of a submit, as the request stands now (webhook URL, origin and a
    fault's answer are set by the HTTP layer right after the submit)."""
    parsed = request.parsed
    if isinstance(parsed, Parsed):
        params, notes = _params_json(parsed.params), orjson.dumps(parsed.notes) if parsed.notes else None
        rejected = (None, None, None)
    else:
        params, notes = None, None
        rejected = (parsed.status, _headers_json(parsed.headers), parsed.body)
    answer = request.answer  # a model_error / runner_error fault decided it at submit
    origin = request.origin
    return ("submit", (
        request.request_id, seq, request.endpoint.endpoint_id, request.submitted_at,
        request.eligible_at, request.duration, params, notes, *rejected, request.webhook_url,
        orjson.dumps(origin) if origin else None, request.error, request.error_type, None,
        answer.status if answer else None, _headers_json(answer.headers) if answer else None,
        answer.body if answer else None, request.namespace,
    ))


def cancel_row(request: "QueuedRequest") -> tuple:
    return ("cancel", (request.finished_at, request.request_id))


def answer_row(request_id: str, answer: Answer, names: tuple[str, ...]) -> tuple:
    return ("answer", (answer.status, _headers_json(answer.headers), answer.body, request_id), request_id, names)


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits (an unbounded seed)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _params_json(params: Any) -> bytes:
    dump = getattr(params, "model_dump_json", None)
    if dump is not None:  # pydantic: the params as used, every field
        return dump().encode()
    return _dumps(params)


def _headers_json(headers: tuple[tuple[str, str], ...]) -> bytes:
    return orjson.dumps(headers)


# -- rows back into requests -----------------------------------------------------------
class StoredRequest(NamedTuple):
    """A stored request checked and ready to replay."""

    record: dict[str, Any]
    parsed: Parsed | Answer
    origin: tuple[str, str] | None
    answer: Answer | None


def stored_request(endpoint: "Endpoint", record: dict[str, Any]) -> StoredRequest:
    """A ``requests`` row (a dict by column) checked and made ready to replay.
    Raises ValueError (or any decoding error) for a damaged row."""
    if not isinstance(record["request_id"], str) or not record["request_id"]:
        raise ValueError("no request id")
    if not isinstance(record["seq"], int):
        raise ValueError("bad sequence number")
    for column in ("submitted_at", "eligible_at", "duration", "cancelled_at"):
        value = record[column]
        if value is None and column == "cancelled_at":
            continue
        if stored_time(value) is None:
            raise ValueError(f"{column} out of range")
    parsed = _parsed(endpoint, record)
    if isinstance(parsed, Answer) and not _is_status(parsed.status):
        raise ValueError("stored status out of range")
    origin = None
    if record["origin"]:
        origin = tuple(orjson.loads(record["origin"]))
        if len(origin) != 2 or not all(isinstance(part, str) for part in origin):
            raise ValueError("bad origin")
    answer = None
    if record["answer_status"] is not None:
        if not _is_status(record["answer_status"]):
            raise ValueError("stored status out of range")
        answer = Answer(record["answer_status"], bytes(record["answer_body"]),
                        _headers_of(record["answer_headers"]))
    if not isinstance(record["namespace"], str) or not record["namespace"]:
        raise ValueError("bad namespace")
    for column in ("webhook_url", "error", "error_type"):
        if record[column] is not None and not isinstance(record[column], str):
            raise ValueError(f"bad {column}")
    return StoredRequest(record, parsed, origin, answer)


def _parsed(endpoint: "Endpoint", record: dict[str, Any]) -> Parsed | Answer:
    if record["params"] is None:
        return Answer(record["rejected_status"], bytes(record["rejected_body"] or b""),
                      _headers_of(record["rejected_headers"]))
    notes = orjson.loads(record["notes"]) if record["notes"] else []
    if not isinstance(notes, list):
        raise ValueError("bad notes")
    parsed = endpoint.parse(bytes(record["params"]))  # params as used: parse is the identity
    if isinstance(parsed, Answer):
        # Rules changed between runs (--validation): keep the rejection it now gets.
        return parsed
    return Parsed(parsed.params, notes)


def _headers_of(text: bytes | str | None) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in orjson.loads(text)) if text else ()


def stored_time(value: Any) -> float | None:
    """A stored time or duration, or None when it is not one (damage: text, NaN, 1e308)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) and 0 <= value <= _MAX_TIME else None


def _is_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599


def replay_events(records: Iterable[dict[str, Any]], endpoint_of: Callable[[str], "Endpoint | None"]
                  ) -> tuple[list[tuple], list[str], list[tuple[str, str]]]:
    """The stored requests as the queue must see them again, in order: ``(at, kind, seq,
    endpoint, stored)`` with kind 0 a submit and 1 a cancel; the ids of requests that cannot
    come back (an endpoint no longer answered, a damaged row); and (id, reason) of the damaged."""
    events: list[tuple] = []
    dropped: list[str] = []
    skipped: list[tuple[str, str]] = []
    for record in records:
        endpoint = endpoint_of(record["endpoint_id"]) if isinstance(record["endpoint_id"], str) else None
        if endpoint is None:
            dropped.append(record["request_id"])
            continue
        try:
            stored = stored_request(endpoint, record)
        except Exception as exc:  # damage of any kind: this request cannot come back
            dropped.append(record["request_id"])
            skipped.append((str(record["request_id"]), str(exc) or type(exc).__name__))
            continue
        events.append((record["submitted_at"], 0, record["seq"], endpoint, stored))
        if record["cancelled_at"] is not None:
            events.append((record["cancelled_at"], 1, record["seq"], endpoint, stored))
    events.sort(key=lambda e: e[:3])
    return events, dropped, skipped
