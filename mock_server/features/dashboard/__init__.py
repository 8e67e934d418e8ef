"""The dashboard: a live page of the requests the mock saw, served by the mock at ``/_mock/``.

Server-rendered HTML (Jinja2 templates with autoescaping, :mod:`.pages`) of a view model in
plain Python (:mod:`.view`, :mod:`.rows`, :mod:`.images`), one small script and one
stylesheet shipped in the package: no build step, no CDN.  The list works without
JavaScript; with it, rows change in place from the mock's own server-sent event stream
(:mod:`.feed`).  The routes are the web face's (``mock_server.web.routers.dashboard``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

from mock_server.features.dashboard import pages
from mock_server.features.dashboard.feed import CLIENT_QUEUE, LiveFeed, Subscriber
from mock_server.features.dashboard.images import INLINE_MAX
from mock_server.features.dashboard.rows import Row, row_endpoint, row_namespace, row_state
from mock_server.features.dashboard.view import PAGE_SIZE, DashboardView, Deliveries

if TYPE_CHECKING:
    from mock_server.features.dashboard.emulator import Emulator

__all__ = ["CLIENT_QUEUE", "INLINE_MAX", "PAGE_SIZE", "Dashboard", "Subscriber"]


class Dashboard:
    """The dashboard of one emulator: its pages, and the live feed of its rows."""

    def __init__(self, emulator: "Emulator", deliveries: Deliveries | None = None) -> None:
        self.emulator = emulator
        self.view = DashboardView(emulator, deliveries)
        self.feed = LiveFeed(emulator, self._row_events, self.view.clock_view)

    def rows(self, keys: set[str] | None = None) -> dict[str, Row]:
        return self.view.rows(keys)

    def index_page(self, query: Mapping[str, str], host: str) -> str:
        return pages.index_page(self.view.list_view(query, host))

    def rows_fragment(self, query: Mapping[str, str], host: str) -> tuple[str, int]:
        """(the rows of one page, as HTML; how many rows pass the filters)."""
        view = self.view.list_view(query, host)
        return pages.rows_fragment(view), view.total

    def detail_page(self, key: str, host: str) -> tuple[str, bool]:
        """(the detail page, whether the request exists)."""
        view = self.view.detail_view(key, host)
        return pages.detail_page(key, view, self.view.clock_view() if view is None else view.clock), view is not None

    def _row_events(self, keys: set[str]) -> Iterable[dict[str, Any]]:
        rows = self.view.rows(keys)
        for key in keys:
            row = rows.get(key)
            if row is None:
                continue
            state = row_state(row)
            yield {"key": key, "order": row.order, "status": state.css, "endpoint": row_endpoint(row),
                   "namespace": row_namespace(row),
                   "html": pages.row_fragment(self.view.row_view(row, state))}
