"""The dashboard's view model: what the list, a row and a request's detail show, as plain data.

Built from the emulator (journal, queue, clock, faults, files) on each call; the templates
only lay it out.  No HTTP here: the web face's router turns these into responses.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping
from urllib.parse import urlencode, urlsplit

import orjson

from mock_server.core.namespaces import EVERY
from mock_server.core.paths import DASHBOARD_ROOT
from mock_server.core.queue import COMPLETED
from mock_server.features.dashboard.formatting import clock_text, data_uri, json_text, param_text, short
from mock_server.features.dashboard.images import RASTER_TYPES, Tile, input_tile, output_tiles, own_file
from mock_server.features.dashboard.media import MediaPreview, StillCache, media_previews, own_media_name
from mock_server.features.dashboard.rows import (
    STATUS_FILTERS, Row, State, find_row, group_rows, row_answer, row_caller_key, row_endpoint, row_input_urls,
    row_namespace, row_outputs, row_params, row_state,
)

if TYPE_CHECKING:
    from mock_server.features.dashboard.emulator import Emulator

#: Rows on one page of the list.
PAGE_SIZE = 50

#: Webhook delivery attempts of one request (each a dict with ``request_id``, ``attempt``,
#: ``status_code``, ``error``, ``outcome``); the webhooks feature provides them.
Deliveries = Callable[[str], list[dict[str, Any]]]


@dataclass(slots=True, frozen=True)
class TimeCell:
    label: str  # submitted / started / finished
    text: str  # HH:MM:SS.mmm, "" when it has not happened
    iso: str
    delta: str | None  # "+1.25s" after the submit


@dataclass(slots=True, frozen=True)
class Note:
    """A line of a row's last cell: a fault that hit a call, or a webhook delivery."""

    css: str  # "fault" or "hook"
    what: str  # the call kind (fault) or the webhook's host
    detail: str = ""  # the fault, or the attempt's status code / error
    attempt: str | None = None  # the delivery attempt number
    outcome: str | None = None  # a delivery's outcome, or "pending"


@dataclass(slots=True)
class RowView:
    key: str
    order: int
    state: State
    endpoint: str
    kind: str  # the call that opened it: submit / run
    label: str  # the request id as shown (cut), or "(no id) #seq"
    caller_key: str
    prompt: str | None
    params: list[tuple[str, str]]  # the other parameters, values cut
    times: list[TimeCell]
    cancellable: bool
    inputs: list[Tile]
    outputs: list[Tile]
    notes: list[Note]
    calls: str  # "submit, 3× status, result"
    media: list[MediaPreview] = field(default_factory=list)  # the result's videos, sounds, 3D files


@dataclass(slots=True)
class ListView:
    rows: list[RowView]
    status: str
    endpoint: str
    page: int
    pages: int
    total: int  # rows passing the filters
    endpoints: list[str]
    newer: str | None  # link to the previous page, None on the first
    older: str | None
    clock: dict[str, Any]
    journal: int
    dropped: int
    page_size: int = PAGE_SIZE
    status_filters: tuple[str, ...] = STATUS_FILTERS
    namespace: str = ""  # the page's namespace filter ("": every namespace); its buttons act on it
    namespaces: list[str] = field(default_factory=list)  # every namespace a row is in (the filter's choices)
    first: str = DASHBOARD_ROOT  # page 1 with the same filters


@dataclass(slots=True)
class CallView:
    """One journal entry of a request, as the detail view shows it."""

    seq: int
    kind: str
    method: str
    path: str
    query: str
    status: str  # the HTTP status, or "no answer"
    at: str
    iso: str
    duration_ms: str
    target_url: str | None  # when proxied
    fault: str | None
    headers: list[tuple[str, str]]
    body_json: str | None  # the body as JSON text, when it is JSON
    body_text: str | None  # else its text (cut), with its size
    body_size: int
    body_cut: bool


@dataclass(slots=True)
class AnswerView:
    status: int
    headers: list[tuple[str, str]]
    json: str | None
    text: str | None


@dataclass(slots=True)
class DetailView:
    key: str
    row: RowView
    inputs: list[Tile]  # full size
    outputs: list[Tile]
    params: str  # JSON text
    queued: bool
    summary: str | None = None  # the queue state as JSON text
    logs: list[tuple[str, str, str]] = field(default_factory=list)  # (timestamp, level, message)
    answer: AnswerView | None = None
    webhook_url: str | None = None
    deliveries: str | None = None  # JSON text of the attempts
    calls: list[CallView] = field(default_factory=list)
    clock: dict[str, Any] = field(default_factory=dict)


class DashboardView:
    """The view model of one emulator's dashboard (see the module docstring)."""

    def __init__(self, emulator: "Emulator", deliveries: Deliveries | None = None) -> None:
        self.emulator = emulator
        self._deliveries = deliveries
        self._stills = StillCache()

    def rows(self, keys: set[str] | None = None) -> dict[str, Row]:
        """Rows by key (insertion order = oldest first); only ``keys`` when given."""
        return group_rows(self.emulator.journal, self.emulator.queue, keys)

    def deliveries(self, request_id: str) -> list[dict[str, Any]]:
        """Webhook delivery attempts for a request (none when webhooks are not installed)."""
        try:
            found = self._deliveries(request_id) if self._deliveries is not None else []
            return [d for d in found if isinstance(d, dict) and d.get("request_id") == request_id]
        except Exception:  # a feature in progress must not break the page
            return []

    def clock_view(self) -> dict[str, Any]:
        """The clock line of every page (and of the live feed's ``hello``, ``clock``, ``reset``)."""
        clock = self.emulator.clock
        now = clock.now()
        text, _ = clock_text(now)
        return {"now": now, "frozen": clock.frozen, "text": f"{'frozen' if clock.frozen else 'running'} · {text} UTC",
                "faults": len(self.emulator.faults.rules)}

    def _own(self, host: str) -> Callable[[str], str | None]:
        settings, files = self.emulator.settings, self.emulator.files
        return lambda url: own_file(url, settings=settings, files=files, host=host)

    def _default_host(self) -> str:
        settings = self.emulator.settings
        return f"{settings.host}:{settings.port}"

    # -- a row --------------------------------------------------------------------------
    def _images(self, row: Row, state: State, params: dict[str, Any], host: str) -> tuple[list[Tile], list[Tile]]:
        own = self._own(host)
        inputs = [input_tile(row.key, i, u, own) for i, u in enumerate(row_input_urls(row))]
        planned = None
        if not state.error and row.queued is not None:
            count = params.get("num_images", 1)
            planned = count if isinstance(count, int) else 1
        return inputs, output_tiles(row_outputs(row), planned, own)

    def _notes(self, row: Row) -> tuple[list[Note], str]:
        notes = [Note("fault", entry.kind, entry.fault) for entry in row.entries if entry.fault]
        queued = row.queued
        if queued is not None and queued.webhook_url:
            try:
                host = urlsplit(queued.webhook_url).netloc or queued.webhook_url
            except ValueError:  # a URL urlsplit refuses: shown as sent
                host = queued.webhook_url
            attempts = self.deliveries(row.key)
            for d in attempts[-3:]:
                code = d.get("status_code")
                what = str(code) if code is not None else short(str(d.get("error") or "no answer"), 60)
                notes.append(Note("hook", host, what, str(d.get("attempt")), str(d.get("outcome"))))
            if not attempts:
                notes.append(Note("hook", host, outcome="pending"))
        counts: dict[str, int] = {}
        for entry in row.entries:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        return notes, ", ".join(f"{n}× {k}" if n > 1 else k for k, n in counts.items())

    def row_view(self, row: Row, state: State | None = None, host: str | None = None) -> RowView:
        """One row of the list (also the head of a request's detail view)."""
        state = state or row_state(row)
        host = host or self._default_host()
        queued, first = row.queued, row.first
        params = row_params(row)
        if queued is not None:
            submitted, started = queued.submitted_at, queued.started_at
            finished = queued.finished_at if queued.status == COMPLETED else None
        else:
            submitted = first.at if first is not None else None
            started = None
            finished = (submitted + first.duration_ms / 1000
                        if first is not None and submitted is not None and first.duration_ms is not None else None)
        inputs, outputs = self._images(row, state, params, host)
        notes, calls = self._notes(row)
        media = self._media(row, host)
        prompt = params.get("prompt")
        return RowView(
            key=row.key, order=row.order, state=state, endpoint=row_endpoint(row),
            kind=first.kind if first is not None else "",
            label=short(row.key if not row.key.startswith("call-") else f"(no id) #{row.key[5:]}", 13),
            caller_key=row_caller_key(row),
            prompt=prompt if isinstance(prompt, str) else None,
            params=[(k, short(param_text(v), 60)) for k, v in params.items() if k not in ("prompt", "image_urls")],
            times=[_time_cell("submitted", submitted), _time_cell("started", started, submitted),
                   _time_cell("finished", finished, submitted)],
            cancellable=queued is not None and queued.status != COMPLETED,
            inputs=inputs, outputs=outputs, notes=notes, calls=calls, media=media,
        )

    def _media(self, row: Row, host: str) -> list[MediaPreview]:
        """The result's media besides ``images`` (see :mod:`.media`)."""
        answer = row.queued.answer if row.queued is not None else None
        if answer is None or not (200 <= answer.status < 300):
            return []
        try:
            result = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            return []
        settings, files = self.emulator.settings, self.emulator.files
        return media_previews(result, lambda url: own_media_name(url, settings=settings, files=files, host=host))

    def video_still(self, name: str) -> bytes | None:
        """A stored video's first frame as a small JPEG (None when ``name`` is no stored video)."""
        return self._stills.get(self.emulator.files, name)

    # -- the list -----------------------------------------------------------------------
    def list_view(self, query: Mapping[str, str], host: str) -> ListView:
        """One page of the filtered list (``status``, ``endpoint``, ``namespace``, ``page`` from the query)."""
        namespace = query.get("namespace", "")
        namespace = "" if namespace == EVERY else namespace  # ``*``: every namespace, as the control API's
        status = query.get("status", "")
        status = status if status in STATUS_FILTERS else ""
        endpoint = query.get("endpoint", "")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        rows = self.rows()
        endpoints = sorted({ep.endpoint_id for ep in self.emulator.endpoints} | {row_endpoint(r) for r in rows.values()} - {""})
        namespaces = sorted(({row_namespace(r) for r in rows.values()} | {namespace}) - {""})
        picked: list[tuple[Row, State]] = []
        for row in reversed(rows.values()):  # newest first
            if endpoint and row_endpoint(row) != endpoint:
                continue
            if namespace and row_namespace(row) != namespace:
                continue
            state = row_state(row)
            if status and state.css != status:
                continue
            picked.append((row, state))
        pages = max(1, math.ceil(len(picked) / PAGE_SIZE))
        page = min(page, pages)
        shown = picked[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]

        def link(to: int) -> str:
            params = {k: v for k, v in (("status", status), ("endpoint", endpoint), ("namespace", namespace)) if v}
            if to > 1:
                params["page"] = str(to)
            return DASHBOARD_ROOT + ("?" + urlencode(params) if params else "")

        journal = self.emulator.journal
        return ListView(
            rows=[self.row_view(row, state, host) for row, state in shown],
            status=status, endpoint=endpoint, page=page, pages=pages, total=len(picked), endpoints=endpoints,
            newer=link(page - 1) if page > 1 else None, older=link(page + 1) if page < pages else None,
            clock=self.clock_view(), journal=len(journal), dropped=journal.dropped,
            namespace=namespace, namespaces=namespaces, first=link(1),
        )

    # -- a request -----------------------------------------------------------------------
    def detail_view(self, key: str, host: str) -> DetailView | None:
        """Everything about one request (None when the mock does not know it)."""
        emulator = self.emulator
        row = find_row(emulator.journal, emulator.queue, key)
        if row is None:
            return None
        state = row_state(row)
        params = row_params(row)
        inputs, outputs = self._images(row, state, params, host)
        view = DetailView(key=key, row=self.row_view(row, state, host), inputs=inputs, outputs=outputs,
                          params=json_text(params), queued=row.queued is not None, clock=self.clock_view())
        queued = row.queued
        first = row.first
        if queued is not None:
            view.summary = json_text(emulator.summary(queued))
            lines = queued.logs_until(emulator.clock.now())
        else:  # a synchronous run: its journal entry keeps its log lines
            lines = (first.logs if first is not None else None) or []
        view.logs = [(str(line.as_json()["timestamp"]), line.level, line.message) for line in lines]
        answer = row_answer(row)
        if answer is not None:
            try:
                view.answer = AnswerView(answer.status, list(answer.headers), json_text(orjson.loads(answer.body)), None)
            except orjson.JSONDecodeError:
                view.answer = AnswerView(answer.status, list(answer.headers), None, answer.body.decode("utf-8", "replace"))
        if queued is not None:
            attempts = self.deliveries(key)
            view.webhook_url = queued.webhook_url
            view.deliveries = json_text(attempts) if attempts else None
        view.calls = [_call_view(entry) for entry in row.entries]
        return view

    def input_image(self, key: str, index_text: str) -> tuple[str, bytes | None] | None:
        """Input image ``index`` of a request when it is a ``data:`` URI: (media type, bytes;
        None when it is not a raster image), or None when there is no such input."""
        row = find_row(self.emulator.journal, self.emulator.queue, key)
        urls = row_input_urls(row) if row is not None else None
        try:
            index = int(index_text)
            url = urls[index] if isinstance(urls, list) and index >= 0 else None
        except (ValueError, IndexError):
            url = None
        if not isinstance(url, str) or url[:5].lower() != "data:":
            return None
        mime, data = data_uri(url)
        return mime, data if data is not None and mime in RASTER_TYPES else None

    def cancel(self, request_id: str) -> tuple[int, str]:
        """Cancel through the queue, as ``PUT .../cancel`` does: (HTTP status, outcome)."""
        outcome = self.emulator.queue.cancel(request_id)
        return {"CANCELLATION_REQUESTED": 202, "ALREADY_COMPLETED": 400}.get(outcome, 404), outcome


def _time_cell(label: str, at: float | None, since: float | None = None) -> TimeCell:
    text, iso = clock_text(at)
    delta = f"+{at - since:.2f}s" if text and since is not None and at is not None else None
    return TimeCell(label, text, iso, delta)


def _call_view(entry: Any) -> CallView:
    data = entry.as_dict(with_body=True)
    at, iso = clock_text(entry.at)
    body_json = json_text(data["body"]) if "body" in data else None
    body_text = short(data.get("body_text", ""), 4000) if body_json is None and entry.body_size else None
    return CallView(
        seq=entry.seq, kind=entry.kind, method=entry.method, path=entry.path,
        query=f"?{entry.query}" if entry.query else "",
        status=str(entry.status) if entry.status is not None else "no answer",
        at=at, iso=iso, duration_ms=str(entry.duration_ms),
        target_url=(entry.target_url or "") if entry.proxied else None, fault=entry.fault or None,
        headers=list(data["headers"].items()), body_json=body_json, body_text=body_text,
        body_size=entry.body_size or 0, body_cut=bool(data.get("body_truncated")),
    )
