"""The dashboard: a live page of the requests the mock saw, served by the mock at ``/_mock/``.

Server-rendered HTML (``string.Template`` files in ``mock_server/dashboard/``, every value
from a request passed through :func:`html.escape`), one small script and one stylesheet
shipped in the package: no build step, no CDN, no new dependency.  The list works without
JavaScript; with it, rows change in place from the mock's own server-sent event stream.

Routes (mounted last on ``/_mock/``, so every other ``/_mock/...`` route wins first; any
path not listed answers fal's 404 ``{"detail": "Path ... not found"}``):

- ``GET /_mock/``                          the request list, newest first, one row per request
                                           (``?status=IN_QUEUE|IN_PROGRESS|COMPLETED|error``,
                                           ``?endpoint=<id>``, ``?page=N``; 50 rows a page)
- ``GET /_mock/ui/rows``                   the same rows as an HTML fragment (the script's resync)
- ``GET /_mock/ui/requests/{key}``         the detail view: request(s), answer, logs, images
- ``POST /_mock/ui/requests/{id}/cancel``  cancel a queued or running request (JSON content type
                                           required, so a cross-site form cannot trigger it)
- ``GET /_mock/ui/events``                 server-sent events: ``hello``, ``row``, ``clock``, ``reset``
- ``GET /_mock/ui/input/{key}/{i}``        input image ``i`` of a request when it is a ``data:`` URI
                                           (raster types only; remote URLs are never fetched)
- ``GET /_mock/ui/static/{name}``          ``dashboard.js`` and ``dashboard.css``

A *row* is one request id (a queue submit or a synchronous run, with its status, result and
cancel calls), or one submit/run call that never got an id (a fault answered it).  Rows are
built from the journal on demand (one pass over at most ``--journal-size`` entries), so the
page needs no state of its own; only one page of rows is rendered.

Live updates: ``journal.on_record`` and ``queue.on_change`` mark rows dirty; a flush (at most
every :data:`FLUSH_DELAY` s) renders each dirty row once and puts it on every connected
browser's bounded queue (a browser that falls :data:`CLIENT_QUEUE` events behind is dropped;
its ``EventSource`` reconnects and resyncs).  While a browser is connected, a task advances
the queue on the mock's clock (a frozen clock moved by hand wakes it), so rows turn
COMPLETED without anybody polling.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import html
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import unquote_to_bytes, urlencode, urlsplit

import orjson

from mock_server.core import fal_errors
from mock_server._asgi import HttpRequest, Send, send_bytes
from mock_server.core.paths import DASHBOARD_ROOT, FILES_PREFIX, own_file_name
from mock_server.core.queue import COMPLETED, IN_PROGRESS, IN_QUEUE, QueuedRequest

if TYPE_CHECKING:
    from mock_server.app import FalMockApp
    from mock_server.core.journal import JournalEntry

ROOT = DASHBOARD_ROOT
UI = "/_mock/ui/"
PAGE_SIZE = 50
#: Events a browser may fall behind before it is dropped (it reconnects and resyncs).
CLIENT_QUEUE = 512
#: Seconds a burst of changes is collected before the rows are rendered and sent.
FLUSH_DELAY = 0.03
#: Seconds between ``: ping`` comments on an idle event stream.
PING_EVERY = 15.0
#: A ``data:`` input this long or shorter is inlined in the page; longer ones are re-served.
INLINE_MAX = 4096
#: Input types shown as images (never SVG: it can carry script when opened directly).
RASTER_TYPES = frozenset(("image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif", "image/bmp"))
#: Strings in the detail view's JSON longer than this are cut (data URIs can be megabytes).
SHOW_CHARS = 300
ROW_KINDS = frozenset(("submit", "run"))
STATUS_FILTERS = (IN_QUEUE, IN_PROGRESS, COMPLETED, "error")
_LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1"))
try:
    from mock_server.endpoints.fal_app.inputs import MAX_INPUTS_READ as USED_INPUTS
except ImportError:  # pragma: no cover
    USED_INPUTS = 2

CSP = (b"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
       b"frame-ancestors 'none'")
_PAGE_HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
_HTML = b"text/html; charset=utf-8"
_STATIC_TYPES = {"dashboard.js": b"text/javascript; charset=utf-8", "dashboard.css": b"text/css; charset=utf-8"}

e = html.escape


def _asset(name: str) -> str:
    return resources.files("mock_server").joinpath("dashboard", name).read_text("utf-8")


_templates: dict[str, Template] = {}
_static: dict[str, bytes] = {}


def asset_version() -> str:
    """A short hash of the script and stylesheet: their URLs change when they do (cached for good)."""
    found = _static.get("version")
    if found is None:
        import hashlib

        digest = hashlib.sha256(_static_file("dashboard.js") + _static_file("dashboard.css")).hexdigest()[:12]
        found = _static["version"] = digest.encode()
    return found.decode()


def _template(name: str) -> Template:
    found = _templates.get(name)
    if found is None:
        found = _templates[name] = Template(_asset(name))
    return found


def preload() -> None:
    """Read the page templates and static files into memory (:mod:`mock_server.server.preload`)."""
    for name in ("index.html", "detail.html"):
        _template(name)
    asset_version()


def _static_file(name: str) -> bytes:
    found = _static.get(name)
    if found is None:
        found = _static[name] = _asset(name).encode("utf-8")
    return found


# -- rows: the journal grouped by request -------------------------------------------------
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
    return State(f"HTTP {code}", "error", fault or f"HTTP {code}")


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


def row_outputs(row: Row) -> list[str] | None:
    """URLs of the output images once the result exists, else None."""
    queued = row.queued
    answer = queued.answer if queued is not None else None
    if answer is None or not (200 <= answer.status < 300):
        return None
    try:
        data = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return []
    images = data.get("images") if isinstance(data, dict) else None
    return [image["url"] for image in images or [] if isinstance(image, dict) and isinstance(image.get("url"), str)]


def _fmt_time(at: float | None) -> tuple[str, str]:
    if at is None:
        return "", ""
    stamp = datetime.fromtimestamp(at, timezone.utc)
    return stamp.strftime("%H:%M:%S.%f")[:-3], stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_cell(label: str, at: float | None, since: float | None = None) -> str:
    text, iso = _fmt_time(at)
    if not text:
        return f'<div class="t"><span class="tl">{label}</span> <span class="muted">–</span></div>'
    delta = f' <span class="muted">+{at - since:.2f}s</span>' if since is not None and at is not None else ""
    return f'<div class="t"><span class="tl">{label}</span> <time datetime="{e(iso)}" title="{e(iso)}">{e(text)}</time>{delta}</div>'


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def _data_uri(url: str) -> tuple[str, bytes | None]:
    """(media type, bytes or None when malformed) of a ``data:`` URI."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        return "", None
    parts = header.split(";")
    mime = parts[0].strip().lower() or "text/plain"
    try:
        if any(p.strip().lower() == "base64" for p in parts[1:]):
            return mime, base64.b64decode(unquote_to_bytes(payload), validate=False)
        return mime, unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return mime, None


def _json_block(value: Any) -> str:
    def cut(item: Any) -> Any:
        if isinstance(item, str) and len(item) > SHOW_CHARS:
            return f"{item[:SHOW_CHARS]}… ({len(item)} characters)"
        if isinstance(item, dict):
            return {k: cut(v) for k, v in item.items()}
        if isinstance(item, list):
            return [cut(v) for v in item]
        return item

    return f'<pre class="json">{e(orjson.dumps(cut(value), option=orjson.OPT_INDENT_2).decode())}</pre>'


def _headers_table(headers: Iterable[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{e(k)}</th><td>{e(_short(v, 500))}</td></tr>" for k, v in headers)
    return f'<table class="kv">{cells or "<tr><td class=muted>none</td></tr>"}</table>'


# -- the SSE fan-out ------------------------------------------------------------------------
class _Client:
    __slots__ = ("queue", "gone")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(CLIENT_QUEUE)
        self.gone = asyncio.Event()

    def offer(self, chunk: bytes) -> None:
        if self.gone.is_set():
            return
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:  # too slow: drop it; its EventSource reconnects and resyncs
            self.gone.set()


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Dashboard:
    """The dashboard of one :class:`~mock_server.app.FalMockApp` (see the module docstring)."""

    def __init__(self, app: "FalMockApp") -> None:
        self.app = app
        self.mock = app.mock
        self.clients: set[_Client] = set()
        self.dropped = 0  # browsers dropped for falling behind
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._dirty: set[str] = set()
        self._flush_pending = False
        self._kick: asyncio.Event | None = None
        self._advancer: asyncio.Task | None = None
        self.mock.journal.on_record(self._on_record)
        self.mock.queue.on_change(self._on_change)
        self.mock.clock.on_change(self._on_clock)
        self.mock.on_reset(self._on_reset)

    # -- loop binding and thread hops ----------------------------------------------------
    def bind(self) -> None:
        """Start-up hook (and first event stream): remember the server's loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()
            self._kick = asyncio.Event()

    def _soon(self, fn, *args) -> None:
        """Run ``fn(*args)`` on the server's loop (now, when already on it)."""
        loop = self._loop
        if loop is None or not self.clients:
            return
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # loop closed
                pass

    # -- listeners (any thread) ------------------------------------------------------------
    def _on_record(self, entry: "JournalEntry") -> None:
        if not self.clients:
            return
        if entry.request_id:
            self._soon(self._mark, entry.request_id)
        elif entry.kind in ROW_KINDS:
            self._soon(self._mark, f"call-{entry.seq}")

    def _on_change(self, request: QueuedRequest) -> None:
        if self.clients:
            self._soon(self._mark, request.request_id)

    def _on_clock(self) -> None:
        if self.clients:
            self._soon(self._clock_changed)

    def _on_reset(self) -> None:
        if self.clients:
            self._soon(self._reset_changed)

    # -- on the loop -----------------------------------------------------------------------
    def _wake_advancer(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake_advancer()  # a new submit may need the queue moved on
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_later(FLUSH_DELAY, self._flush)

    def _broadcast(self, chunk: bytes) -> None:
        for client in list(self.clients):
            client.offer(chunk)

    def _flush(self) -> None:
        self._flush_pending = False
        keys, self._dirty = self._dirty, set()
        if not self.clients or not keys:
            return
        rows = self.rows(keys)
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            state = row_state(row)
            self._broadcast(_event("row", {
                "key": key, "order": row.order, "status": state.css, "endpoint": row_endpoint(row),
                "html": self.row_html(row, state),
            }))

    def _clock_changed(self) -> None:
        self._wake_advancer()
        self._broadcast(_event("clock", self.clock_view()))

    def _reset_changed(self) -> None:
        self._dirty.clear()
        self._wake_advancer()
        self._broadcast(_event("reset", self.clock_view()))

    async def _advance_while_watched(self) -> None:
        """Move the queue on the mock's clock while a browser watches (a frozen clock moved by
        hand, a new submit or a reset wakes it), so rows change without anybody polling."""
        queue, clock = self.mock.queue, self.mock.clock
        kick = self._kick
        assert kick is not None
        try:
            while self.clients:
                kick.clear()
                queue.advance()
                due = queue.next_event_time()
                now = clock.now()
                if due is None or clock.frozen or queue.polls is not None or due <= now:
                    wait = PING_EVERY
                else:
                    wait = min(due - now, PING_EVERY)
                try:
                    await asyncio.wait_for(kick.wait(), wait)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._advancer = None

    async def stop(self) -> None:
        for client in list(self.clients):
            client.gone.set()
        task = self._advancer
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- data ------------------------------------------------------------------------------
    def rows(self, keys: set[str] | None = None) -> dict[str, Row]:
        """Rows by key (insertion order = oldest first); only ``keys`` when given."""
        queue = self.mock.queue
        rows: dict[str, Row] = {}
        skip: set[str] = set()
        for entry in self.mock.journal.entries():
            rid = entry.request_id
            if rid:
                key = rid
            elif entry.kind in ROW_KINDS:
                key = f"call-{entry.seq}"
            else:
                continue
            if (keys is not None and key not in keys) or key in skip:
                continue
            row = rows.get(key)
            if row is None:
                queued = queue.get(rid) if rid else None
                if queued is None and entry.kind not in ROW_KINDS:
                    skip.add(key)  # a status/result call for an id the mock does not know
                    continue
                row = rows[key] = Row(key, entry.seq, queued)
            row.entries.append(entry)
        return rows

    def deliveries(self, request_id: str) -> list[dict[str, Any]]:
        """Webhook delivery attempts for a request (none when webhooks are not installed)."""
        try:
            found = getattr(getattr(self.app, "webhooks", None), "deliveries", None) or []
            return [d for d in found if isinstance(d, dict) and d.get("request_id") == request_id]
        except Exception:  # a feature in progress must not break the page
            return []

    def clock_view(self) -> dict[str, Any]:
        clock = self.mock.clock
        now = clock.now()
        text, iso = _fmt_time(now)
        return {"now": now, "frozen": clock.frozen, "text": f"{'frozen' if clock.frozen else 'running'} · {text} UTC",
                "faults": len(self.mock.faults.rules)}

    def own_file(self, url: str, host: str) -> str | None:
        """``/_mock/files/<name>`` when ``url`` is one of this mock's stored files, else None."""
        settings = self.mock.settings
        name = own_file_name(url, host=settings.host, port=settings.port, caller_host=host)
        if name is None:
            return None
        if not name or "/" in name or name.startswith(".") or self.mock.files.get(name) is None:
            return None
        return FILES_PREFIX + name

    # -- HTML pieces -------------------------------------------------------------------------
    def _input_tile(self, key: str, index: int, url: Any, host: str, big: bool = False) -> str:
        used = index < USED_INPUTS
        mark = f'<figcaption class="{"used" if used else "unused"}">{"used" if used else "ignored"}</figcaption>'
        size = 192 if big else 56
        if not isinstance(url, str):
            return f'<figure class="tile ph"><span>not a URL</span>{mark}</figure>'
        if url[:5].lower() == "data:":
            mime, data = _data_uri(url)
            if data is not None and mime in RASTER_TYPES:
                full = f"{UI}input/{e(key)}/{index}"
                src = e(url) if len(url) <= INLINE_MAX else full
                return (f'<figure class="tile"><a href="{full}" target="_blank" rel="noopener">'
                        f'<img class="thumb in" src="{src}" width="{size}" height="{size}" alt="input {index + 1}" '
                        f'loading="lazy" decoding="async"></a>{mark}</figure>')
            return f'<figure class="tile ph" title="{e(_short(url, 80))}"><span>data:<br>{e(_short(mime or "?", 24))}</span>{mark}</figure>'
        own = self.own_file(url, host)
        if own is not None:
            return (f'<figure class="tile"><a href="{e(own)}" target="_blank" rel="noopener">'
                    f'<img class="thumb in" src="{e(own)}" width="{size}" height="{size}" alt="input {index + 1}" '
                    f'loading="lazy" decoding="async"></a>{mark}</figure>')
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            what = f"{parts.scheme}: URL" if parts.scheme else "not a URL"
            return f'<figure class="tile ph" title="{e(_short(url, 300))}"><span>{e(_short(what, 28))}</span>{mark}</figure>'
        return (f'<figure class="tile ph remote" title="{e(_short(url, 300))}"><span>remote<br>'
                f'{e(_short(parts.hostname or "?", 28))}</span>{mark}</figure>')

    def _outputs(self, row: Row, state: State, params: dict[str, Any], host: str, big: bool = False) -> str:
        urls = row_outputs(row)
        size = 192 if big else 56
        if urls is None:
            if state.error or row.queued is None:
                return ""
            count = params.get("num_images", 1)
            count = count if isinstance(count, int) else 1
            return f'<figure class="tile ph planned"><span>{count} planned</span></figure>'
        tiles = []
        for index, url in enumerate(urls):
            own = self.own_file(url, host)
            if own is None:
                tiles.append(f'<figure class="tile ph remote" title="{e(_short(url, 300))}"><span>not a mock file</span></figure>')
                continue
            tiles.append(f'<figure class="tile"><a href="{e(own)}" target="_blank" rel="noopener">'
                         f'<img class="thumb out" src="{e(own)}" width="{size}" height="{size}" '
                         f'alt="output {index + 1} of {len(urls)}" loading="lazy" decoding="async"></a></figure>')
        return "".join(tiles)

    def _images(self, row: Row, state: State, params: dict[str, Any], host: str, big: bool = False) -> str:
        urls = params.get("image_urls")
        inputs = "".join(self._input_tile(row.key, i, u, host, big) for i, u in enumerate(urls)) if isinstance(urls, list) else ""
        outputs = self._outputs(row, state, params, host, big)
        arrow = '<span class="arrow" aria-hidden="true">→</span>' if outputs else ""
        return f'<div class="imgs"><div class="ins">{inputs}</div>{arrow}<div class="outs">{outputs}</div></div>'

    def _notes(self, row: Row) -> str:
        parts = []
        for entry in row.entries:
            if entry.fault:
                parts.append(f'<li class="fault">fault on {e(entry.kind)}: <b>{e(entry.fault)}</b></li>')
        queued = row.queued
        if queued is not None and queued.webhook_url:
            host = urlsplit(queued.webhook_url).netloc or queued.webhook_url
            attempts = self.deliveries(row.key)
            if attempts:
                for d in attempts[-3:]:
                    code = d.get("status_code")
                    what = e(str(code)) if code is not None else e(_short(str(d.get("error") or "no answer"), 60))
                    parts.append(f'<li class="hook">webhook #{e(str(d.get("attempt")))} → {e(host)}: {what} '
                                 f'<span class="muted">{e(str(d.get("outcome")))}</span></li>')
            else:
                parts.append(f'<li class="hook">webhook → {e(host)} <span class="muted">pending</span></li>')
        counts: dict[str, int] = {}
        for entry in row.entries:
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        calls = ", ".join(f"{n}× {k}" if n > 1 else k for k, n in counts.items())
        parts.append(f'<li class="muted">calls: {e(calls)}</li>')
        return f'<ul class="notes">{"".join(parts)}</ul>'

    def _key_of(self, row: Row) -> str:
        first = row.first
        if first is None:
            return ""
        value = first.headers.get("authorization")
        if value:
            return value
        return "via proxy (server key)" if first.proxied else "none"

    def row_html(self, row: Row, state: State | None = None, host: str | None = None) -> str:
        state = state or row_state(row)
        host = host or f"{self.mock.settings.host}:{self.mock.settings.port}"
        queued = row.queued
        first = row.first
        params = row_params(row)
        endpoint = row_endpoint(row)
        kind = first.kind if first is not None else ""
        prompt = params.get("prompt")
        other = " · ".join(f"{e(k)}={e(_short(_param_text(v), 60))}" for k, v in params.items()
                          if k not in ("prompt", "image_urls"))
        if queued is not None:
            submitted, started = queued.submitted_at, queued.started_at
            finished = queued.finished_at if queued.status == COMPLETED else None
        else:
            submitted = first.at if first is not None else None
            started = None
            finished = submitted + (first.duration_ms or 0) / 1000 if first is not None and submitted is not None and first.duration_ms is not None else None
        times = (_time_cell("submitted", submitted) + _time_cell("started", started, submitted)
                 + _time_cell("finished", finished, submitted))
        cancel = ""
        if queued is not None and queued.status != COMPLETED:
            cancel = f'<button type="button" class="js-only small" data-action="cancel" data-id="{e(row.key)}">Cancel</button>'
        error = f'<div class="err">{e(state.error)}</div>' if state.error else ""
        prompt_html = (f'<p class="prompt" title="{e(_short(prompt, 2000))}">{e(_short(prompt, 240))}</p>'
                       if isinstance(prompt, str) else '<p class="prompt muted">(no prompt)</p>')
        rid = row.key if not row.key.startswith("call-") else f"(no id) #{row.key[5:]}"
        return (
            f'<div id="r-{e(row.key)}" class="row st-{e(state.css)}" role="row" data-key="{e(row.key)}" data-order="{row.order}" '
            f'data-status="{e(state.css)}" data-endpoint="{e(endpoint)}">'
            f'<div class="c-req" role="cell"><a class="rid" href="{UI}requests/{e(row.key)}">{e(_short(rid, 13))}</a>'
            f'<div class="sub">{e(kind)} · {e(endpoint)}</div></div>'
            f'<div class="c-status" role="cell"><span class="badge b-{e(state.css)}">{e(state.status)}</span>{error}{cancel}</div>'
            f'<div class="c-times" role="cell">{times}</div>'
            f'<div class="c-key" role="cell"><code>{e(self._key_of(row))}</code></div>'
            f'<div class="c-input" role="cell">{prompt_html}<p class="params">{other}</p></div>'
            f'<div class="c-images" role="cell">{self._images(row, state, params, host)}</div>'
            f'<div class="c-notes" role="cell">{self._notes(row)}</div>'
            f"</div>"
        )

    # -- pages -------------------------------------------------------------------------------
    def _select(self, name: str, current: str, options: Iterable[tuple[str, str]]) -> str:
        items = "".join(f'<option value="{e(v)}"{" selected" if v == current else ""}>{e(label)}</option>'
                        for v, label in options)
        return f'<select name="{e(name)}" id="f-{e(name)}">{items}</select>'

    def list_view(self, query: dict[str, str], host: str) -> tuple[str, dict[str, Any]]:
        """(the tbody's rows, facts for the page) for one page of the filtered list."""
        status = query.get("status", "")
        status = status if status in STATUS_FILTERS else ""
        endpoint = query.get("endpoint", "")
        try:
            page = max(1, int(query.get("page", "1")))
        except ValueError:
            page = 1
        rows = self.rows()
        endpoints = sorted({ep.endpoint_id for ep in self.mock.endpoints} | {row_endpoint(r) for r in rows.values()} - {""})
        picked: list[tuple[Row, State]] = []
        for row in reversed(rows.values()):  # newest first
            if endpoint and row_endpoint(row) != endpoint:
                continue
            state = row_state(row)
            if status and state.css != status:
                continue
            picked.append((row, state))
        pages = max(1, math.ceil(len(picked) / PAGE_SIZE))
        page = min(page, pages)
        shown = picked[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        body = "".join(self.row_html(row, state, host) for row, state in shown)
        if not body:
            body = '<div id="empty" class="empty">No requests yet. Submit one and it appears here.</div>'
        facts = {"status": status, "endpoint": endpoint, "page": page, "pages": pages, "total": len(picked),
                 "endpoints": endpoints, "all": len(rows)}
        return body, facts

    def index_page(self, query: dict[str, str], host: str) -> str:
        body, facts = self.list_view(query, host)
        status, endpoint, page, pages = facts["status"], facts["endpoint"], facts["page"], facts["pages"]

        def link(to: int) -> str:
            params = {k: v for k, v in (("status", status), ("endpoint", endpoint)) if v}
            if to > 1:
                params["page"] = str(to)
            return ROOT + ("?" + urlencode(params) if params else "")

        prev_link = f'<a rel="prev" href="{e(link(page - 1))}">← newer</a>' if page > 1 else '<span class="muted">← newer</span>'
        next_link = f'<a rel="next" href="{e(link(page + 1))}">older →</a>' if page < pages else '<span class="muted">older →</span>'
        clock = self.clock_view()
        filters = (
            self._select("status", status, [("", "any status")] + [(s, s) for s in STATUS_FILTERS])
            + self._select("endpoint", endpoint, [("", "any endpoint")] + [(x, x) for x in facts["endpoints"]])
        )
        return _template("index.html").substitute(
            version=asset_version(),
            clock=e(clock["text"]),
            faults=str(clock["faults"]),
            filters=filters,
            status=e(status),
            endpoint=e(endpoint),
            page=str(page),
            pages=str(pages),
            page_size=str(PAGE_SIZE),
            total=str(facts["total"]),
            prev=prev_link,
            next=next_link,
            rows=body,
            journal=str(len(self.mock.journal)),
            dropped=str(self.mock.journal.dropped),
        )

    def detail_page(self, key: str, host: str) -> str | None:
        rows = self.rows({key})
        row = rows.get(key)
        if row is None:
            queued = self.mock.queue.get(key)
            if queued is None:
                return None
            row = Row(key, 0, queued)  # its calls left the journal
        state = row_state(row)
        params = row_params(row)
        queued = row.queued
        summary = self.row_html(row, state, host)
        sections = []
        sections.append(f'<section><h2>Images</h2>{self._images(row, state, params, host, big=True)}'
                        '<p class="muted">Click an image for its full size. Remote input URLs are never '
                        'fetched: they show as a tile with their host.</p></section>')
        sections.append(f"<section><h2>Input</h2>{_json_block(params)}</section>")
        if queued is not None:
            sections.append(f"<section><h2>Queue state</h2>{_json_block(self.mock.summary(queued))}</section>")
            lines = queued.logs_until(self.mock.clock.now())
            if lines:
                items = "".join(f'<tr><td><time>{e(line.as_json()["timestamp"])}</time></td><td>{e(line.level)}</td>'
                                f"<td>{e(line.message)}</td></tr>" for line in lines)
                logs = f'<table class="logs">{items}</table>'
            else:
                logs = '<p class="muted">No log lines yet.</p>'
            sections.append(f"<section><h2>Logs</h2>{logs}</section>")
            answer = queued.answer
            if answer is not None:
                try:
                    shown = _json_block(orjson.loads(answer.body))
                except orjson.JSONDecodeError:
                    shown = f'<pre class="json">{e(answer.body.decode("utf-8", "replace"))}</pre>'
                sections.append(f"<section><h2>Result answer: HTTP {answer.status}</h2>"
                                f"{_headers_table(answer.headers)}{shown}</section>")
            else:
                sections.append('<section><h2>Result answer</h2><p class="muted">Not produced yet: it is made at the '
                                "first result GET (or webhook), once the request is COMPLETED.</p></section>")
            attempts = self.deliveries(key)
            if queued.webhook_url or attempts:
                sections.append(f"<section><h2>Webhook</h2><p>{e(queued.webhook_url or '')}</p>"
                                f"{_json_block(attempts) if attempts else '<p class=muted>No delivery yet.</p>'}</section>")
        for entry in row.entries:
            data = entry.as_dict(with_body=True)
            target = f' <span class="muted">(proxied: {e(entry.target_url or "")})</span>' if entry.proxied else ""
            query = f"?{entry.query}" if entry.query else ""
            fault = f' <span class="fault">fault: {e(entry.fault)}</span>' if entry.fault else ""
            if "body" in data:
                body = _json_block(data["body"])
            elif entry.body_size:
                cut = " (cut: the journal keeps 64 KiB)" if data.get("body_truncated") else ""
                body = f'<pre class="json">{e(_short(data.get("body_text", ""), 4000))}</pre><p class="muted">{entry.body_size} bytes{cut}</p>'
            else:
                body = '<p class="muted">no body</p>'
            at, iso = _fmt_time(entry.at)
            sections.append(
                f'<section class="call"><h2>#{entry.seq} {e(entry.kind)}: {e(entry.method)} {e(entry.path)}{e(query)}'
                f' → {e(str(entry.status) if entry.status is not None else "no answer")}</h2>'
                f'<p class="muted"><time datetime="{e(iso)}">{e(at)}</time> · {e(str(entry.duration_ms))} ms{target}{fault}</p>'
                f"<h3>Request headers</h3>{_headers_table(data['headers'].items())}<h3>Request body</h3>{body}</section>"
            )
        return _template("detail.html").substitute(
            version=asset_version(), key=e(key), clock=e(self.clock_view()["text"]), summary=summary, sections="".join(sections),
        )

    # -- HTTP ----------------------------------------------------------------------------------
    async def _send_html(self, send: Send, status: int, text: str) -> None:
        await send_bytes(send, status, text.encode("utf-8"), list(_PAGE_HEADERS), _HTML)

    async def handle(self, request: HttpRequest, send: Send) -> None:
        path, method = request.path, request.method
        if path == ROOT:
            if method not in ("GET", "HEAD"):
                await self.app.send_answer(send, fal_errors.method_not_allowed())
                return
            await self._send_html(send, 200, self.index_page(request.query, request.host))
            return
        if not path.startswith(UI):
            await self.app.send_answer(send, fal_errors.path_not_found(path))
            return
        rest = path[len(UI):]
        parts = rest.split("/")
        if parts[0] == "requests" and len(parts) == 3 and parts[2] == "cancel":
            await self._cancel(request, send, parts[1])
            return
        if method not in ("GET", "HEAD"):
            known = rest in ("events", "rows") or parts[0] in ("requests", "static", "input")
            answer = fal_errors.method_not_allowed() if known else fal_errors.path_not_found(path)
            await self.app.send_answer(send, answer)
            return
        if rest == "events":
            await self._events(request, send)
        elif rest == "rows":
            body, facts = self.list_view(request.query, request.host)
            await send_bytes(send, 200, body.encode("utf-8"), list(_PAGE_HEADERS) + [
                (b"x-dashboard-total", str(facts["total"]).encode())], _HTML)
        elif parts[0] == "static" and len(parts) == 2 and parts[1] in _STATIC_TYPES:
            await send_bytes(send, 200, _static_file(parts[1]), [
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"public, max-age=31536000, immutable" if request.query.get("v") == asset_version() else b"no-cache"),
            ], _STATIC_TYPES[parts[1]])
        elif parts[0] == "requests" and len(parts) == 2 and parts[1]:
            page = self.detail_page(parts[1], request.host)
            if page is None:
                await self._send_html(send, 404, _template("detail.html").substitute(
                    version=asset_version(), key=e(parts[1]), clock=e(self.clock_view()["text"]),
                    summary="", sections='<p class="empty">No such request (unknown id, or forgotten).</p>'))
            else:
                await self._send_html(send, 200, page)
        elif parts[0] == "input" and len(parts) == 3:
            await self._input(send, parts[1], parts[2], path)
        else:
            await self.app.send_answer(send, fal_errors.path_not_found(path))

    async def _input(self, send: Send, key: str, index_text: str, path: str) -> None:
        """A ``data:`` input image, decoded from the request's stored parameters."""
        row = self.rows({key}).get(key)
        if row is None and (queued := self.mock.queue.get(key)) is not None:
            row = Row(key, 0, queued)
        urls = row_params(row).get("image_urls") if row is not None else None
        try:
            index = int(index_text)
            url = urls[index] if isinstance(urls, list) and index >= 0 else None
        except (ValueError, IndexError):
            url = None
        if not isinstance(url, str) or url[:5].lower() != "data:":
            await self.app.send_answer(send, fal_errors.path_not_found(path))
            return
        mime, data = _data_uri(url)
        if data is None or mime not in RASTER_TYPES:
            await self.app.send_answer(send, fal_errors.detail(415, "Not a raster image data URI"))
            return
        await send_bytes(send, 200, data, [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'none'; sandbox"),
            (b"cache-control", b"no-store"),
        ], mime.encode("latin-1"))

    async def _cancel(self, request: HttpRequest, send: Send, request_id: str) -> None:
        """Cancel through the queue (as ``PUT .../cancel`` does, without needing a client key)."""
        if request.method != "POST":
            await self.app.send_answer(send, fal_errors.method_not_allowed())
            return
        if not (request.header("content-type") or "").startswith("application/json"):
            # a cross-site <form> cannot send this type without a CORS preflight (which fails)
            await self.app.send_answer(send, fal_errors.detail(415, "Send Content-Type: application/json"))
            return
        outcome = self.mock.queue.cancel(request_id)
        status = {"CANCELLATION_REQUESTED": 202, "ALREADY_COMPLETED": 400}.get(outcome, 404)
        await send_bytes(send, status, orjson.dumps({"status": outcome}))

    async def _events(self, request: HttpRequest, send: Send) -> None:
        self.bind()
        client = _Client()
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff"),
        ]})
        hello = b"retry: 1000\n\n" + _event("hello", self.clock_view())
        await send({"type": "http.response.body", "body": hello, "more_body": True})
        self.clients.add(client)
        if self._advancer is None:
            self._advancer = asyncio.ensure_future(self._advance_while_watched())
        else:
            self._wake_advancer()

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        gone = asyncio.ensure_future(client.gone.wait())
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while not self.app._closing:
                getter = asyncio.ensure_future(client.queue.get())
                done, _ = await asyncio.wait({getter, watcher, gone}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    chunk = getter.result()
                    while not client.queue.empty() and len(chunk) < 256 * 1024:
                        chunk += client.queue.get_nowait()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    last = loop.time()
                    continue
                getter.cancel()
                if watcher in done or gone in done:
                    if gone in done and watcher not in done:
                        self.dropped += 1
                    break
                if loop.time() - last >= PING_EVERY:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                    last = loop.time()
        except OSError:  # the browser went away mid-write
            pass
        finally:
            self.clients.discard(client)
            watcher.cancel()
            gone.cancel()
            if not self.clients and self._advancer is not None:
                self._wake_advancer()  # lets it see there is nobody left and end
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # already closed
            pass


def install(app: "FalMockApp") -> Dashboard:
    """Mount the dashboard on ``/_mock/`` (in the place the app reserved for it, after every
    other feature: prefixes match in order, and this one matches every ``/_mock/...`` path
    left over).  The app installs it on the first call there, maybe after start-up: the
    event stream binds the dashboard to the server's loop itself."""
    dashboard = Dashboard(app)
    app.on_startup(dashboard.bind)
    app.on_shutdown(dashboard.stop)
    app.mount(ROOT, dashboard.handle)
    return dashboard
