"""The dashboard's rows: the journal grouped by request, and what each row's request is now.

A *row* is one request id (a queue submit or a synchronous run, with its status, result and
cancel calls), or one submit/run call that never got an id (a fault answered it).  Rows are
built from the journal on demand (one pass over at most ``--journal-size`` entries), so the
dashboard needs no state of its own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from mock_server.core.queue import COMPLETED, IN_PROGRESS, IN_QUEUE, QueuedRequest, RequestQueue

if TYPE_CHECKING:
    from mock_server.core.answers import Answer
    from mock_server.core.journal import Journal, JournalEntry

#: The calls that open a row of their own (status, result and cancel join their request's).
ROW_KINDS = frozenset(("submit", "run"))
#: The list's status filter: a queue status, or ``error`` (any request that failed).
STATUS_FILTERS = (IN_QUEUE, IN_PROGRESS, COMPLETED, "error")


@dataclass(slots=True)
class Row:
    key: str  # the request id, or "call-<seq>" for a submit/run that never got one
    order: int  # seq of its first journal entry (newest first = highest first)
    queued: QueuedRequest | None
    entries: list["JournalEntry"] = field(default_factory=list)

    @property
    def first(self) -> "JournalEntry | None":
        for entry in self.entries:
            if entry.kind in ROW_KINDS:
                return entry
        return self.entries[0] if self.entries else None


@dataclass(slots=True)
class State:
    status: str  # IN_QUEUE / IN_PROGRESS / COMPLETED, or what happened to a call without a request
    css: str  # the filter class: IN_QUEUE / IN_PROGRESS / COMPLETED / error
    error: str | None  # the error type (or HTTP status) the client sees


def row_key(entry: "JournalEntry") -> str | None:
    """The row a journal entry belongs to, or None (a call that is no request's)."""
    if entry.request_id:
        return entry.request_id
    if entry.kind in ROW_KINDS:
        return f"call-{entry.seq}"
    return None


def group_rows(journal: "Journal", queue: RequestQueue, keys: set[str] | None = None) -> dict[str, Row]:
    """Rows by key (insertion order = oldest first); only ``keys`` when given."""
    rows: dict[str, Row] = {}
    skip: set[str] = set()
    for entry in journal.entries():
        key = row_key(entry)
        if key is None or (keys is not None and key not in keys) or key in skip:
            continue
        row = rows.get(key)
        if row is None:
            rid = entry.request_id
            queued = queue.get(rid) if rid else None
            if queued is None and entry.kind not in ROW_KINDS:
                skip.add(key)  # a status/result call for an id the mock does not know
                continue
            row = rows[key] = Row(key, entry.seq, queued)
        row.entries.append(entry)
    return rows


def find_row(journal: "Journal", queue: RequestQueue, key: str) -> Row | None:
    """One row; a queued request whose calls left the journal is a row without entries."""
    row = group_rows(journal, queue, {key}).get(key)
    if row is None and (queued := queue.get(key)) is not None:
        row = Row(key, 0, queued)
    return row


def answer_error(status: int, body: bytes) -> str:
    """The error type an error answer carries: ``error_type``, a 422's first ``type``, or ``HTTP n``."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("error_type"), str):
            return data["error_type"]
        detail = data.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict) and isinstance(detail[0].get("type"), str):
            return detail[0]["type"]
    if status == 499:
        return "cancelled"
    return f"HTTP {status}"


def row_state(row: Row) -> State:
    """Where the row's request is, and the error its client sees (if any)."""
    queued = row.queued
    if queued is not None:
        status = queued.status
        if status != COMPLETED:
            return State(status, status, None)
        error = None
        if queued.cancelled:
            error = "cancelled"
        elif queued.error_type:
            error = queued.error_type
        elif queued.answer is not None and not (200 <= queued.answer.status < 300):
            error = answer_error(queued.answer.status, queued.answer.body)
        elif not queued.valid:
            parsed = queued.parsed
            error = answer_error(parsed.status, parsed.body)  # type: ignore[union-attr]
        return State(status, "error" if error else COMPLETED, error)
    first = row.first
    code = first.status if first is not None else None
    fault = first.fault if first is not None else None
    if code is not None and 200 <= code < 300:
        if first is not None and first.kind == "submit":
            return State("forgotten", COMPLETED, None)  # the queue dropped it (--max-requests)
        return State(COMPLETED, COMPLETED, None)
    if code is None:
        return State("no answer", "error", fault or "connection closed")
    answer = row_answer(row)  # a run's error answer names its type
    return State(f"HTTP {code}", "error", fault or (answer_error(code, answer.body) if answer else f"HTTP {code}"))


def row_endpoint(row: Row) -> str:
    if row.queued is not None:
        return row.queued.endpoint.endpoint_id
    for entry in row.entries:
        if entry.endpoint_id:
            return entry.endpoint_id
    return ""


def row_params(row: Row) -> dict[str, Any]:
    """The request's input: the validated parameters, else the submitted JSON."""
    queued = row.queued
    if queued is not None and queued.valid:
        params = queued.parsed.params  # type: ignore[union-attr]
        dump = getattr(params, "model_dump", None)
        if dump is not None:
            return dump(mode="json")
        if isinstance(params, dict):
            return params
    first = row.first
    data = first.json if first is not None and first.kind in ROW_KINDS else None
    return data if isinstance(data, dict) else {}


def row_input_urls(row: Row) -> list[Any]:
    """The ``image_urls`` as submitted, used and ignored alike (the journal keeps a body up to
    64 KiB), else the ones the request kept (only those it uses)."""
    first = row.first
    data = first.json if first is not None and first.kind in ROW_KINDS else None
    urls = data.get("image_urls") if isinstance(data, dict) else None
    if not isinstance(urls, list):
        urls = row_params(row).get("image_urls")
    return urls if isinstance(urls, list) else []


def row_answer(row: Row) -> "Answer | None":
    """The request's result answer: the queue's, or a synchronous run's (kept on its journal
    entry); None until it is produced."""
    if row.queued is not None:
        return row.queued.answer
    first = row.first
    return first.answer if first is not None and first.kind == "run" else None


def row_outputs(row: Row) -> list[str] | None:
    """URLs of the output images once the result exists, else None."""
    answer = row_answer(row)
    if answer is None or not (200 <= answer.status < 300):
        return None
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return []
    images = data.get("images") if isinstance(data, dict) else None
    return [image["url"] for image in images or [] if isinstance(image, dict) and isinstance(image.get("url"), str)]


def row_caller_key(row: Row) -> str:
    """The credentials the request came with, as the journal keeps them (redacted)."""
    first = row.first
    if first is None:
        return ""
    value = first.headers.get("authorization")
    if value:
        return value
    return "via proxy (server key)" if first.proxied else "none"


def row_namespace(row: Row) -> str:
    """The namespace a row's request (or call) belongs to (docs/namespaces.md)."""
    if row.queued is not None:
        return row.queued.namespace
    first = row.first
    return first.namespace if first is not None else ""
