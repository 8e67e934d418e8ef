"""The request journal: every call a client made to the fal protocol, bounded.

Recording is cheap (one small object appended to a ring buffer; headers are kept
raw and decoded, with auth redacted, only when someone reads the journal), so it
stays on for every request.  The oldest entries are dropped past ``capacity``; the
number dropped is kept.
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import orjson

from mock_server.core.namespaces import namespace_of

if TYPE_CHECKING:
    from mock_server.core.answers import Answer
    from mock_server.core.queue import LogLine

#: Request bodies are kept up to this many bytes (data URIs can be megabytes).
BODY_KEEP = 64 * 1024
#: Of a call's headers, path and query, an entry keeps this many bytes each (the server refuses
#: a request head over 64 KiB with 431; the journal keeps less of what it lets through).
HEADERS_KEEP = 8 * 1024
PATH_KEEP = 4 * 1024
_REDACTED_HEADERS = frozenset((b"authorization", b"x-fal-cdn-token", b"cookie"))


def redact(name: bytes, value: bytes) -> str:
    """``Key abcd:secret`` -> ``Key abcd:***``; other secrets keep their scheme only."""
    text = value.decode("latin-1")
    if name != b"authorization":
        return "***"
    scheme, _, credential = text.partition(" ")
    key_id, colon, _ = credential.partition(":")
    if colon:
        return f"{scheme} {key_id}:***"
    return f"{scheme} ***" if credential else "***"


@dataclass(slots=True)
class JournalEntry:
    """One HTTP call as the mock saw it."""

    seq: int
    at: float  # the mock clock's time when the call arrived
    method: str
    path: str
    query: str
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes
    body_size: int
    kind: str = "other"  # submit, status, stream, result, cancel, run, storage, file, other
    endpoint_id: str | None = None
    request_id: str | None = None
    status: int | None = None
    duration_ms: float | None = None
    fault: str | None = None
    proxied: bool = False
    target_url: str | None = None
    #: the namespace when the headers do not say it (a CDN call carries only its token)
    owner: str | None = None

    @property
    def namespace(self) -> str:
        """The namespace the call belongs to, read from its headers when asked (recording
        stays free of it: the rule is :func:`mock_server.core.namespaces.namespace_of`)."""
        return self.owner if self.owner is not None else namespace_of(self.raw_headers)
    #: a synchronous run's answer (up to BODY_KEEP bytes) and log lines: the queue keeps those of
    #: a queued request, nothing else keeps a run's (the dashboard shows them)
    answer: "Answer | None" = None
    logs: "list[LogLine] | None" = None

    def __repr__(self) -> str:
        # what pytest prints for a failed assertion about a call: the headers as ``headers``
        # gives them (the key's secret redacted, as on the dashboard), never the raw ones
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _REPR_FIELDS)
        return f"JournalEntry({fields}, headers={self.headers!r}, body={self.body[:200]!r})"

    __str__ = __repr__

    @property
    def headers(self) -> dict[str, str]:
        """Lower-cased headers with credentials redacted."""
        out: dict[str, str] = {}
        for name, value in self.raw_headers:
            key = name.lower()
            text = redact(key, value) if key in _REDACTED_HEADERS else value.decode("latin-1")
            decoded = key.decode("latin-1")
            out[decoded] = f"{out[decoded]}, {text}" if decoded in out else text
        return out

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON (or was cut)."""
        if not self.body or len(self.body) != self.body_size:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    def as_dict(self, with_body: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "seq": self.seq, "at": self.at, "method": self.method, "path": self.path,
            "query": self.query, "kind": self.kind, "endpoint_id": self.endpoint_id,
            "request_id": self.request_id, "status": self.status, "duration_ms": self.duration_ms,
            "fault": self.fault, "proxied": self.proxied, "target_url": self.target_url,
            "namespace": self.namespace, "headers": self.headers, "body_size": self.body_size,
        }
        if with_body:
            parsed = self.json
            if parsed is not None:
                out["body"] = parsed
            else:
                out["body_text"] = self.body.decode("utf-8", "replace")
                out["body_truncated"] = len(self.body) != self.body_size
        return out


_REPR_FIELDS = ("seq", "at", "method", "path", "query", "kind", "endpoint_id", "request_id", "status",
                "duration_ms", "fault", "proxied", "target_url", "body_size")


def _kept_headers(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The first :data:`HEADERS_KEEP` bytes' worth of headers; a value cut short says so."""
    kept: list[tuple[bytes, bytes]] = []
    room = HEADERS_KEEP
    for name, value in raw_headers:
        if room <= len(name):
            kept.append((b"x-fal-mock-journal", b"%d more headers not kept" % (len(raw_headers) - len(kept))))
            break
        room -= len(name)
        if len(value) > room:
            value = value[:room] + b"...(%d bytes)" % len(value)
        room -= min(len(value), room)
        kept.append((name, value))
    return kept


class Journal:
    """A ring buffer of :class:`JournalEntry`, safe to read from another thread."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.dropped = 0
        self._listeners: list[Callable[[JournalEntry], None]] = []

    def on_record(self, listener: "Callable[[JournalEntry], None]") -> None:
        """Call ``listener(entry)`` after every recorded call (on the recording thread)."""
        self._listeners.append(listener)

    def new_entry(self, at: float, method: str, path: str, query: bytes,
                  raw_headers: list[tuple[bytes, bytes]]) -> JournalEntry:
        if sum(len(name) + len(value) for name, value in raw_headers) > HEADERS_KEEP:
            raw_headers = _kept_headers(raw_headers)
        return JournalEntry(0, at, method, path[:PATH_KEEP], query[:PATH_KEEP].decode("latin-1"), raw_headers, b"", 0)

    def record(self, entry: JournalEntry) -> None:
        """Keep ``entry``; its ``seq`` is given now, so seq order is the order calls ended in
        (a poller using ``since=`` never misses a long stream recorded after later calls)."""
        with self._lock:
            entry.seq = next(self._seq)
            if len(self._entries) == self.capacity:
                self.dropped += 1
            self._entries.append(entry)
        for listener in self._listeners:
            listener(entry)

    def entries(
        self,
        *,
        kind: str | Iterable[str] | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        status: int | None = None,
        since: int | None = None,
        namespace: str | None = None,
    ) -> list[JournalEntry]:
        """Entries oldest first, filtered: ``kind`` (one or several), ``method``, ``path``
        (substring), ``request_id``, ``status``, ``since`` (seq greater than), ``namespace``."""
        with self._lock:
            items = list(self._entries)
        kinds = {kind} if isinstance(kind, str) else set(kind) if kind is not None else None
        return [
            e for e in items
            if (kinds is None or e.kind in kinds)
            and (method is None or e.method == method.upper())
            and (path is None or path in e.path)
            and (request_id is None or e.request_id == request_id)
            and (status is None or e.status == status)
            and (since is None or e.seq > since)
            and (namespace is None or e.namespace == namespace)
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.dropped = 0

    def forget_namespace(self, namespace: str) -> None:
        """Drop one namespace's entries (its reset); ``dropped`` keeps counting the cap's."""
        with self._lock:
            self._entries = deque((e for e in self._entries if e.namespace != namespace), maxlen=self.capacity)

    def resize(self, capacity: int) -> None:
        with self._lock:
            self.capacity = capacity
            self._entries = deque(self._entries, maxlen=capacity)
