"""The dashboard's HTML: Jinja2 templates (autoescaped) and its two static files, all in memory.

The templates (``templates/``) lay out the view model (:mod:`.view`); every value from a
request is escaped by Jinja2's autoescaping, and nothing in them needs an inline script or
style, an ``on...=`` attribute or anything from elsewhere (the page's CSP forbids it).
``dashboard.js`` and ``dashboard.css`` (``static/``) are served under a URL carrying a hash of
both (:func:`asset_version`), so a browser may cache them for good.

:func:`preload` compiles every template and reads the static files, so that a server whose
installed package is replaced under it keeps serving the dashboard
(:mod:`mock_server.server.preload`); the environment never reloads a template.
"""
from __future__ import annotations

import hashlib
import threading
from importlib import resources
from typing import Any

import jinja2

from mock_server.features.dashboard.formatting import short
from mock_server.features.dashboard.view import DetailView, ListView, RowView

#: The static files and their content types.
STATIC_TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader(__package__, "templates"),
    autoescape=True,
    auto_reload=False,  # compiled once (preload): a replaced package folder cannot break a page
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,  # the pages end as their files do
)
_env.filters["short"] = short
_env.filters["pair"] = lambda value: (value, value)

_static: dict[str, bytes] = {}
_lock = threading.Lock()


def _template(name: str) -> jinja2.Template:
    return _env.get_template(name)


def static_file(name: str) -> bytes | None:
    """A static file's bytes (None for any other name)."""
    if name not in STATIC_TYPES:
        return None
    found = _static.get(name)
    if found is None:
        with _lock:
            found = _static[name] = resources.files(__package__).joinpath("static", name).read_bytes()
    return found


def asset_version() -> str:
    """A short hash of the script and stylesheet: their URLs change when they do (cached for good)."""
    found = _static.get("version")
    if found is None:
        digest = hashlib.sha256(b"".join(static_file(name) or b"" for name in STATIC_TYPES)).hexdigest()[:12]
        found = _static["version"] = digest.encode()
    return found.decode()


def index_page(view: ListView) -> str:
    """The list: ``GET /_mock/``."""
    return _template("index.html").render(view=view, version=asset_version())


def rows_fragment(view: ListView) -> str:
    """One page of rows alone (the script's resync)."""
    return _template("rows.html").render(view=view)


def row_fragment(row: RowView) -> str:
    """One row alone (a live ``row`` event)."""
    return _template("row.html").render(r=row)


def detail_page(key: str, view: DetailView | None, clock: dict[str, Any]) -> str:
    """A request's detail page; ``view`` None says no such request."""
    return _template("detail.html").render(key=key, d=view, clock=clock, version=asset_version())


def preload() -> None:
    """Compile every template and read the static files into memory (see the module docstring)."""
    for name in _env.list_templates():
        _template(name)
    _template("macros.html").module  # the macros the pages import, built once
    asset_version()
