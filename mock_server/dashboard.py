"""The dashboard on the raw-ASGI face (``mock_server.app``): its routes over the view model,
pages and live feed of :mod:`mock_server.features.dashboard` (until the web face's router
serves them).  See that package for what the dashboard shows."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson

from mock_server.core import fal_errors
from mock_server._asgi import HttpRequest, Send, send_bytes
from mock_server.core.paths import DASHBOARD_ROOT
from mock_server.features.dashboard import CLIENT_QUEUE, INLINE_MAX, PAGE_SIZE, Dashboard as Service, Subscriber
from mock_server.features.dashboard import pages

if TYPE_CHECKING:
    from mock_server.app import FalMockApp

__all__ = ["CLIENT_QUEUE", "INLINE_MAX", "PAGE_SIZE", "install"]

ROOT = DASHBOARD_ROOT
UI = "/_mock/ui/"
_Client = Subscriber
#: Seconds between ``: ping`` comments on an idle event stream.
PING_EVERY = 15.0
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


class Dashboard(Service):
    """The dashboard's routes on one :class:`~mock_server.app.FalMockApp`."""

    def __init__(self, app: "FalMockApp") -> None:
        super().__init__(app.mock, lambda rid: getattr(getattr(app, "webhooks", None), "deliveries", None) or [])
        self.app = app

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
            body, total = self.rows_fragment(request.query, request.host)
            await send_bytes(send, 200, body.encode("utf-8"), list(_PAGE_HEADERS) + [
                (b"x-dashboard-total", str(total).encode())], _HTML)
        elif parts[0] == "static" and len(parts) == 2 and parts[1] in pages.STATIC_TYPES:
            await send_bytes(send, 200, pages.static_file(parts[1]) or b"", [
                (b"x-content-type-options", b"nosniff"),
                (b"cache-control", b"public, max-age=31536000, immutable" if request.query.get("v") == pages.asset_version() else b"no-cache"),
            ], pages.STATIC_TYPES[parts[1]].encode())
        elif parts[0] == "requests" and len(parts) == 2 and parts[1]:
            page, found = self.detail_page(parts[1], request.host)
            await self._send_html(send, 200 if found else 404, page)
        elif parts[0] == "input" and len(parts) == 3:
            await self._input(send, parts[1], parts[2], path)
        else:
            await self.app.send_answer(send, fal_errors.path_not_found(path))

    async def _input(self, send: Send, key: str, index_text: str, path: str) -> None:
        """A ``data:`` input image, decoded from the request's stored parameters."""
        found = self.view.input_image(key, index_text)
        if found is None:
            await self.app.send_answer(send, fal_errors.path_not_found(path))
            return
        mime, data = found
        if data is None:
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
        status, outcome = self.view.cancel(request_id)
        await send_bytes(send, status, orjson.dumps({"status": outcome}))

    async def _events(self, request: HttpRequest, send: Send) -> None:
        feed = self.feed
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"), (b"x-content-type-options", b"nosniff"),
        ]})
        client, hello = feed.subscribe()
        await send({"type": "http.response.body", "body": hello, "more_body": True})

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        gone = asyncio.ensure_future(client.gone.wait())
        loop = asyncio.get_running_loop()
        last = loop.time()
        dropped = False
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
                    dropped = gone in done and watcher not in done
                    break
                if loop.time() - last >= PING_EVERY:
                    await send({"type": "http.response.body", "body": b": ping\n\n", "more_body": True})
                    last = loop.time()
        except OSError:  # the browser went away mid-write
            pass
        finally:
            feed.unsubscribe(client, dropped=dropped)
            watcher.cancel()
            gone.cancel()
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception:  # already closed
            pass


def install(app: "FalMockApp") -> Dashboard:
    """Mount the dashboard on ``/_mock/`` (in the place the app reserved for it, after every
    other feature: prefixes match in order, and this one matches every ``/_mock/...`` path
    left over)."""
    dashboard = Dashboard(app)
    app.on_shutdown(dashboard.feed.close)
    app.mount(ROOT, dashboard.handle)
    return dashboard
