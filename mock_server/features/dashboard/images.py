"""The image tiles of a row: its inputs (used or ignored) and its outputs (planned or made).

Only the mock's own files and ``data:`` inputs are shown as images; a remote input URL is
never fetched (it shows as a tile naming its host), nor is SVG ever shown (it can carry
script when opened directly).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from mock_server.core.paths import FILES_PREFIX, own_file_name
from mock_server.features.dashboard.formatting import data_uri, short

UI = "/_mock/ui/"
#: A ``data:`` input this long or shorter is inlined in the page; longer ones are re-served.
INLINE_MAX = 4096
#: Input types shown as images (never SVG: it can carry script when opened directly).
RASTER_TYPES = frozenset(("image/png", "image/jpeg", "image/jpg", "image/webp", "image/gif", "image/bmp"))
try:
    from mock_server.endpoints.fal_app.inputs import MAX_INPUTS_READ as USED_INPUTS
except ImportError:  # pragma: no cover
    USED_INPUTS = 2


@dataclass(slots=True, frozen=True)
class Tile:
    """One ``<figure class="tile">``: an image (``src``, linking to ``link``) or a placeholder
    (``lines`` of text); ``caption`` says whether an input is used."""

    css: str  # "tile", "tile ph", "tile ph remote", "tile ph planned"
    lines: tuple[str, ...] = ()
    title: str | None = None
    link: str | None = None
    src: str | None = None
    img_css: str = ""  # "in" or "out"
    alt: str = ""
    caption: str | None = None  # "used" / "ignored" for inputs


def own_file(url: str, *, settings: Any, files: Any, host: str) -> str | None:
    """``/_mock/files/<name>`` when ``url`` is one of this mock's stored files, else None."""
    name = own_file_name(url, host=settings.host, port=settings.port, caller_host=host)
    if name is None:
        return None
    if not name or "/" in name or name.startswith(".") or files.get(name) is None:
        return None
    return FILES_PREFIX + name


def input_tile(key: str, index: int, url: Any, own: Callable[[str], str | None]) -> Tile:
    """The tile of input image ``index`` of request ``key``."""
    caption = "used" if index < USED_INPUTS else "ignored"
    if not isinstance(url, str):
        return Tile("tile ph", ("not a URL",), caption=caption)
    alt = f"input {index + 1}"
    if url[:5].lower() == "data:":
        mime, data = data_uri(url)
        if data is not None and mime in RASTER_TYPES:
            full = f"{UI}input/{key}/{index}"
            src = url if len(url) <= INLINE_MAX else full
            return Tile("tile", link=full, src=src, img_css="in", alt=alt, caption=caption)
        return Tile("tile ph", ("data:", short(mime or "?", 24)), title=short(url, 80), caption=caption)
    found = own(url)
    if found is not None:
        return Tile("tile", link=found, src=found, img_css="in", alt=alt, caption=caption)
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # "http://[" and other URLs urlsplit refuses: shown, never a 500
        return Tile("tile ph", ("not a URL",), title=short(url, 300), caption=caption)
    if parts.scheme not in ("http", "https"):
        what = f"{parts.scheme}: URL" if parts.scheme else "not a URL"
        return Tile("tile ph", (short(what, 28),), title=short(url, 300), caption=caption)
    return Tile("tile ph remote", ("remote", short(hostname or "?", 28)), title=short(url, 300), caption=caption)


def output_tiles(urls: list[str] | None, planned: int | None, own: Callable[[str], str | None]) -> list[Tile]:
    """The output tiles: ``planned`` (a count, before the result exists) or one per URL."""
    if urls is None:
        return [] if planned is None else [Tile("tile ph planned", (f"{planned} planned",))]
    tiles = []
    for index, url in enumerate(urls):
        found = own(url)
        if found is None:
            tiles.append(Tile("tile ph remote", ("not a mock file",), title=short(url, 300)))
        else:
            tiles.append(Tile("tile", link=found, src=found, img_css="out", alt=f"output {index + 1} of {len(urls)}"))
    return tiles
