"""The dashboard's routes: the page at ``/_mock/`` and its ``/_mock/ui/...`` calls.

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
- ``GET /_mock/ui/poster/{name}``          the first frame of stored video ``name``, a small JPEG

Every route needs the admin token when the server has one.  Any other ``/_mock/...`` path
answers fal's 404 ``{"detail": "Path ... not found"}`` (a known path with another method,
405): :data:`router` ends with the dashboard's own catch-all (``/_mock/`` and
``/_mock/ui/...``), :data:`unknown_paths` is the catch-all for the rest of ``/_mock/``, to be
included after every other ``/_mock/`` router.  The dashboard itself (view model, templates,
live feed: :mod:`mock_server.features.dashboard`) loads on the first call here.
"""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.responses import Response

from mock_server.core import fal_errors
from mock_server.core.paths import DASHBOARD_ROOT
from mock_server.web.deps import admin_token, same_site
from mock_server.web.responses import AnswerResponse, RawResponse

if TYPE_CHECKING:
    from mock_server.features.dashboard import Dashboard

UI = "/_mock/ui/"
#: Seconds between ``: ping`` comments on an idle event stream.
PING_EVERY = 15.0
CSP = (b"default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
       b"frame-ancestors 'none'")
PAGE_HEADERS = [
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
HTML = b"text/html; charset=utf-8"
_READ = ["GET", "HEAD"]
_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_lock = threading.Lock()

router = APIRouter(dependencies=[Depends(admin_token)], include_in_schema=False)
unknown_paths = APIRouter(dependencies=[Depends(admin_token)], include_in_schema=False)


def dashboard_of(app: FastAPI) -> "Dashboard":
    """The app's dashboard, built on first use (the templates and Jinja2 load then)."""
    found = getattr(app.state, "dashboard", None)
    if found is None:
        with _lock:  # a test thread may ask for it while the loop serves
            found = getattr(app.state, "dashboard", None)
            if found is None:
                from mock_server.features.dashboard import Dashboard

                emulator = app.state.emulator
                found = app.state.dashboard = Dashboard(emulator, lambda request_id: emulator.webhooks.deliveries)
    return found


def end_streams(app: FastAPI) -> None:
    """The server is stopping: end the open event streams (any thread, a signal handler too)."""
    found = getattr(app.state, "dashboard", None)
    if found is not None:
        found.feed.close()


def get_dashboard(request: Request) -> "Dashboard":
    return dashboard_of(request.app)


def _host(request: Request) -> str:
    """The Host header, else the server's own address (own-file URLs are told by it)."""
    host = request.headers.get("host")
    if host:
        return host
    server = request.scope.get("server")
    return f"{server[0]}:{server[1]}" if server else ""


def _html(status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> RawResponse:
    return RawResponse(status, text.encode("utf-8"), PAGE_HEADERS + (extra or []), HTML)


@router.api_route(DASHBOARD_ROOT, methods=_READ)
async def index(request: Request, dashboard: Any = Depends(get_dashboard)) -> Response:
    return _html(200, dashboard.index_page(request.query_params, _host(request)))


@router.api_route(UI + "rows", methods=_READ)
async def rows(request: Request, dashboard: Any = Depends(get_dashboard)) -> Response:
    body, total = dashboard.rows_fragment(request.query_params, _host(request))
    return _html(200, body, [(b"x-dashboard-total", str(total).encode())])


@router.api_route(UI + "requests/{key}", methods=_READ)
async def detail(key: str, request: Request, dashboard: Any = Depends(get_dashboard)) -> Response:
    page, found = dashboard.detail_page(key, _host(request))
    return _html(200 if found else 404, page)


@router.post(UI + "requests/{request_id}/cancel", dependencies=[Depends(same_site)])
async def cancel(request_id: str, request: Request, dashboard: Any = Depends(get_dashboard)) -> Response:
    """Cancel through the queue (as ``PUT .../cancel`` does, without needing a client key)."""
    if not (request.headers.get("content-type") or "").startswith("application/json"):
        # a cross-site <form> cannot send this type without a CORS preflight (which fails)
        return AnswerResponse(fal_errors.detail(415, "Send Content-Type: application/json"))
    status, outcome = dashboard.view.cancel(request_id)
    return RawResponse(status, orjson.dumps({"status": outcome}))


@router.api_route(UI + "input/{key}/{index}", methods=_READ)
async def input_image(key: str, index: str, request: Request,
                      dashboard: Any = Depends(get_dashboard)) -> Response:
    """A ``data:`` input image, decoded from the request's stored parameters."""
    found = dashboard.view.input_image(key, index)
    if found is None:
        return AnswerResponse(fal_errors.path_not_found(request.url.path))
    mime, data = found
    if data is None:
        return AnswerResponse(fal_errors.detail(415, "Not a raster image data URI"))
    return RawResponse(200, data, [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'none'; sandbox"),
        (b"cache-control", b"no-store"),
    ], mime.encode("latin-1"))


@router.api_route(UI + "poster/{name}", methods=_READ)
async def poster(name: str, request: Request, dashboard: Any = Depends(get_dashboard)) -> Response:
    """A stored video's still: its first frame, decoded and scaled down (the list shows it)."""
    still = await asyncio.to_thread(dashboard.view.video_still, name)
    if still is None:
        return AnswerResponse(fal_errors.path_not_found(request.url.path))
    return RawResponse(200, still, [
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", b"default-src 'none'; sandbox"),
        (b"cache-control", b"no-store"),
    ], b"image/jpeg")


@router.api_route(UI + "static/{name}", methods=_READ)
async def static(name: str, request: Request) -> Response:
    from mock_server.features.dashboard import pages

    data = pages.static_file(name)
    if data is None:
        return AnswerResponse(fal_errors.path_not_found(request.url.path))
    cached = request.query_params.get("v") == pages.asset_version()
    return RawResponse(200, data, [
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"public, max-age=31536000, immutable" if cached else b"no-cache"),
    ], pages.STATIC_TYPES[name].encode())


@router.api_route(UI + "events", methods=_READ)
async def events(dashboard: Any = Depends(get_dashboard)) -> Response:
    return EventStream(dashboard)


@router.api_route(DASHBOARD_ROOT, methods=_ANY)
@router.api_route(UI + "{rest:path}", methods=_ANY)
async def dashboard_other(request: Request) -> Response:
    """A dashboard path with another method (405), or no dashboard path at all (fal's 404)."""
    path = request.url.path
    if path == DASHBOARD_ROOT:
        return AnswerResponse(fal_errors.method_not_allowed())
    rest = path[len(UI):]
    parts = rest.split("/")
    if parts[0] == "requests" and len(parts) == 3 and parts[2] == "cancel":
        return AnswerResponse(fal_errors.method_not_allowed())  # cancel is a POST
    known = rest in ("events", "rows") or parts[0] in ("requests", "static", "input", "poster")
    if request.method not in _READ and known:
        return AnswerResponse(fal_errors.method_not_allowed())
    return AnswerResponse(fal_errors.path_not_found(path))


@unknown_paths.api_route("/_mock/{rest:path}", methods=_ANY)
async def unknown_mock_path(request: Request) -> Response:
    """Any ``/_mock/...`` path no router serves: fal's 404."""
    return AnswerResponse(fal_errors.path_not_found(request.url.path))


class EventStream(Response):
    """The live feed as server-sent events, until the browser leaves, falls too far behind
    (dropped: its ``EventSource`` reconnects and resyncs) or the server stops."""

    def __init__(self, dashboard: "Dashboard") -> None:
        self.feed = dashboard.feed
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff"),
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        feed = self.feed
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        subscriber, hello = feed.subscribe()

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        gone = asyncio.ensure_future(subscriber.gone.wait())
        loop = asyncio.get_running_loop()
        last = loop.time()
        dropped = False
        try:
            await send({"type": "http.response.body", "body": hello, "more_body": True})
            while not feed.closing:
                getter = asyncio.ensure_future(subscriber.queue.get())
                done, _ = await asyncio.wait({getter, watcher, gone}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    chunk = getter.result()
                    while not subscriber.queue.empty() and len(chunk) < 256 * 1024:
                        chunk += subscriber.queue.get_nowait()
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    last = loop.time()
                    continue
                getter.cancel()
                if watcher in done or gone in done:
                    dropped = gone in done and watcher not in done and not feed.closing
                    break
                if loop.time() - last >= PING_EVERY:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                    last = loop.time()
        except OSError:  # the browser went away mid-write
            pass
        finally:
            feed.unsubscribe(subscriber, dropped=dropped)
            watcher.cancel()
            gone.cancel()
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # already closed
            pass
