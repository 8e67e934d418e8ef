"""Placeholder output images: a deterministic PNG that shows what was asked for.

The emulator does not edit images; it draws a card a person can read: the prompt, the
seed, the output size, "image i/N", and thumbnails of the (up to two) input images, on a
seed-coloured striped background so different seeds look different at a glance.

Speed and memory (targets: 512² <= 5 ms, 1024² <= 15 ms, 5000² <= 200 ms on 2 cores):

- everything is drawn once on a small palette ("P") canvas, about 400 px on its long side;
- the PNG is written here, not by Pillow: the canvas is widened to the output width
  (NEAREST) and each output row is either a fresh canvas row (filter None) or a copy of
  the row above, sent as PNG filter "Up" with all-zero bytes.  zlib eats those zero runs
  at memory speed and the full-size image never exists in memory.

Determinism: the output is a pure function of the arguments, given the same Pillow build.
The font is Pillow's built-in bitmap font (``ImageFont.load_default_imagefont``), which
needs no FreeType, so pinning Pillow's major version pins the pixels.  It draws Latin-1
only: other characters (e.g. a Chinese prompt) show as "?".
"""
from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "ACCENT", "Card", "INK", "InputPreview", "LINE_H", "MUTED", "PANEL", "THUMBNAIL_MAX", "TILE", "WHITE",
    "canvas_size", "draw_card", "draw_text", "palette_rgb", "render_placeholder", "seed_colour",
]

#: Longest side of the stored thumbnail of a decoded input image.
THUMBNAIL_MAX = 128
#: Longest side of the low-resolution canvas everything is drawn on.
_CANVAS_MAX = 400
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ROWS_PER_BATCH = 256
#: Line pitch of the bitmap font on the canvas.
_LINE_H = 12
#: More prompt than ever fits on a card; the rest is not even looked at.
_PROMPT_CHARS_SHOWN = 4000

# Palette layout: 0..215 a 6x6x6 colour cube (thumbnails are quantised onto it),
# 216.. fixed UI colours, then seed-derived background colours.
_CUBE = [(r * 51, g * 51, b * 51) for r in range(6) for g in range(6) for b in range(6)]
_WHITE, _INK, _PANEL, _TILE, _ACCENT, _MUTED, _BG0, _BG1 = range(216, 224)
#: Palette entries other placeholders draw with (video time line): the card's UI colours.
WHITE, INK, PANEL, TILE, ACCENT, MUTED = _WHITE, _INK, _PANEL, _TILE, _ACCENT, _MUTED
#: Pitch of one text line on the canvas (the bitmap font's line height plus spacing).
LINE_H = _LINE_H


@dataclass(frozen=True, slots=True)
class InputPreview:
    """What the placeholder shows for one input image.

    Either a decoded image (``thumbnail`` holds RGB bytes of ``thumbnail_size``) or a
    tile with only a caption (a remote URL that was not fetched).  Small and immutable,
    so a render recipe can keep it and draw the same pixels again later.
    """

    caption: str
    thumbnail: bytes | None = None
    thumbnail_size: tuple[int, int] = (0, 0)

    @classmethod
    def from_image(cls, image: Image.Image, caption: str) -> InputPreview:
        """A preview from a loaded image (any mode); shrinks it to a small RGB thumbnail."""
        thumb = image.convert("RGB")
        thumb.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.BILINEAR)
        return cls(caption, thumb.tobytes(), thumb.size)

    @classmethod
    def not_fetched(cls, url: str) -> InputPreview:
        """A labelled tile for a remote URL the mock did not download."""
        parts = urlsplit(url)
        where = (parts.hostname or "?") + (parts.path or "/")
        return cls(f"not fetched: {where}")


Font = ImageFont.ImageFont

#: Characters the bitmap font can draw: printable Latin-1; the rest become "?" / " ".
_PRINTABLE = {i: " " for i in (*range(32), *range(127, 160))}


@functools.lru_cache(maxsize=1)
def _font() -> Font:
    """Pillow's built-in bitmap font (about 6x11 px), the same in every Pillow build.

    Chosen over the FreeType default (``load_default(size=...)``) because it is about 25x
    faster to lay out and draw, and needs no FreeType, so the pixels depend on Pillow
    alone.  Size comes from the canvas scale instead.
    """
    return ImageFont.load_default_imagefont()


def _drawable(text: str) -> str:
    """``text`` reduced to what the Latin-1 bitmap font can draw."""
    return text.encode("latin-1", "replace").decode("latin-1").translate(_PRINTABLE)


@functools.lru_cache(maxsize=1)
def _cube_palette_image() -> Image.Image:
    pal = Image.new("P", (1, 1))
    pal.putpalette([c for rgb in _CUBE for c in rgb])
    return pal


def _seed_colours(seed: int) -> tuple[tuple[int, int, int], tuple[int, int, int], int, int]:
    """Two background colours, a stripe direction and width factor derived from ``seed``."""
    digest = hashlib.sha256(str(seed).encode()).digest()
    hue = digest[0] / 255.0
    c0 = _hsv(hue, 0.55, 0.80)
    c1 = _hsv((hue + 0.08 + digest[1] / 255.0 * 0.1) % 1.0, 0.60, 0.62)
    return c0, c1, digest[2] & 1, 4 + digest[3] % 7


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return round(r * 255), round(g * 255), round(b * 255)


def _palette(seed: int) -> list[int]:
    c0, c1, _, _ = _seed_colours(seed)
    ui = [(255, 255, 255), (20, 20, 24), (32, 34, 40), (58, 60, 68), (255, 196, 64), (170, 172, 180), c0, c1]
    colours = _CUBE + ui
    colours += [(0, 0, 0)] * (256 - len(colours))
    return [c for rgb in colours for c in rgb]


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap into at most ``max_lines`` lines; the last one ends in "..." if cut."""
    if max_lines <= 0 or width <= 0:
        return []
    lines: list[str] = []
    current = ""
    words = text.split()
    truncated = False
    for pos, word in enumerate(words):
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        # A word wider than the line is broken by characters.
        while font.getlength(word) > width and len(lines) < max_lines:
            cut = max(1, _fit_chars(word, font, width))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
        if len(lines) >= max_lines:
            truncated = bool(current) or pos + 1 < len(words)
            break
    if current and len(lines) < max_lines:
        lines.append(current)
    elif current:
        truncated = True
    lines = lines[:max_lines]
    if truncated and lines:
        last = lines[-1]
        while last and font.getlength(last + "...") > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "..."
    return lines


def _fit_chars(word: str, font: Font, width: int) -> int:
    lo, hi = 0, len(word)
    while lo < hi:  # largest prefix that fits
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True, slots=True)
class Card:
    """A drawn card: the low-resolution palette ``canvas`` (about 400 px on its long side)
    that is scaled to the output size with NEAREST, and ``band``, the box (left, top, right,
    bottom; right/bottom exclusive, canvas pixels) kept free at the bottom of the panel for
    what changes over time (a video's time line), or None."""

    canvas: Image.Image
    band: tuple[int, int, int, int] | None = None


def canvas_size(width: int, height: int) -> tuple[int, int]:
    """The size of the low-resolution canvas a ``width`` x ``height`` output is drawn on."""
    scale = max(1, -(-max(width, height) // _CANVAS_MAX))
    return max(1, -(-width // scale)), max(1, -(-height // scale))


def draw_card(
    seed: int,
    width: int,
    height: int,
    caption: str,
    texts: Sequence[str],
    inputs: Sequence[InputPreview] = (),
    band_lines: int = 0,
) -> Card:
    """The seed-coloured card every placeholder (image, video frame, poster) is drawn from.

    ``caption`` is the small line under the seed; ``texts`` are wrapped one after the other
    into the room left; ``inputs`` become tiles along the bottom; ``band_lines`` text lines
    of room (if at least that much is free) are kept below everything as :attr:`Card.band`.
    """
    lw, lh = canvas_size(width, height)
    canvas = Image.new("P", (lw, lh), _BG0)
    canvas.putpalette(_palette(seed))
    draw = ImageDraw.Draw(canvas)

    # Seed-derived diagonal stripes.
    _, _, direction, factor = _seed_colours(seed)
    stripe = max(2, min(lw, lh) // factor)
    for x0 in range(-lh, lw + lh, 2 * stripe):
        if direction:
            poly = [(x0, 0), (x0 + stripe, 0), (x0 + stripe + lh, lh), (x0 + lh, lh)]
        else:
            poly = [(x0 + lh, 0), (x0 + lh + stripe, 0), (x0 + stripe, lh), (x0, lh)]
        draw.polygon(poly, fill=_BG1)

    short = min(lw, lh)
    margin = max(1, short // 24)
    pad = max(1, short // 48)
    font = _font()
    line_h = _LINE_H

    panel = (margin, margin, lw - 1 - margin, lh - 1 - margin)
    if panel[2] <= panel[0] or panel[3] <= panel[1]:
        return Card(canvas)
    draw.rectangle(panel, fill=_PANEL, outline=_INK)
    left, top = panel[0] + pad + 1, panel[1] + pad + 1
    inner_w = panel[2] - left - pad

    # Header: the seed at double size, then the caption.
    _draw_big_text(canvas, (left, top), f"seed {seed}", _ACCENT, inner_w)
    top += 2 * line_h
    draw.text((left, top), caption, font=font, fill=_MUTED)
    top += line_h + pad

    # The band at the very bottom, when there is room for it and a line of text above.
    bottom = panel[3]
    band = None
    if band_lines > 0 and inner_w > 0 and bottom - pad - band_lines * line_h >= top + line_h:
        band = (left, bottom - pad - band_lines * line_h, left + inner_w, bottom - pad)
        bottom = band[1]

    # Input tiles along the bottom, side by side.
    tiles_top = bottom
    if inputs:
        tile_h = max(0, min((bottom - top) * 2 // 5, inner_w // 2))
        if tile_h >= 2 * line_h + 2:
            tiles_top = bottom - pad - tile_h
            _draw_tiles(canvas, draw, inputs, left, tiles_top, inner_w, tile_h, font, line_h, pad)

    # The texts, wrapped into what is left.
    max_lines = max(0, (tiles_top - pad - top) // line_h)
    for text in texts:
        for line in _wrap(_drawable(text[:_PROMPT_CHARS_SHOWN]), font, inner_w, max_lines):
            draw.text((left, top), line, font=font, fill=_WHITE)
            top += line_h
            max_lines -= 1
    return Card(canvas, band)


def draw_text(canvas: Image.Image, at: tuple[int, int], text: str, colour: int = 0) -> None:
    """Draw one line of ``text`` in the card's bitmap font (palette index ``colour``,
    :data:`WHITE` by default)."""
    ImageDraw.Draw(canvas).text(at, _drawable(text), font=_font(), fill=colour or _WHITE)


def palette_rgb(seed: int) -> list[tuple[int, int, int]]:
    """The 256 RGB colours of the card palette for ``seed`` (index = palette entry)."""
    flat = _palette(seed)
    return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, 768, 3)]


def seed_colour(seed: int) -> tuple[int, int, int]:
    """The main background colour of ``seed``'s cards (used where a single colour is drawn)."""
    return _seed_colours(seed)[0]


def _draw_big_text(canvas: Image.Image, at: tuple[int, int], text: str, colour: int, max_width: int) -> None:
    """Draw ``text`` at twice the font size (drawn small, scaled with NEAREST)."""
    font = _font()
    text = _drawable(text)
    width = min(int(font.getlength(text)) + 1, max(1, max_width // 2))
    mask = Image.new("1", (width, _LINE_H))
    ImageDraw.Draw(mask).text((0, 0), text, font=font, fill=1)
    mask = mask.resize((width * 2, _LINE_H * 2), Image.Resampling.NEAREST)
    canvas.paste(colour, (at[0], at[1], at[0] + width * 2, at[1] + _LINE_H * 2), mask)


def _draw_tiles(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    inputs: Sequence[InputPreview],
    left: int,
    top: int,
    width: int,
    height: int,
    font: Font,
    line_h: int,
    pad: int,
) -> None:
    n = len(inputs)
    tile_w = (width - pad * (n - 1)) // n
    for i, preview in enumerate(inputs):
        x0 = left + i * (tile_w + pad)
        box = (x0, top, x0 + tile_w - 1, top + height - 1)
        draw.rectangle(box, fill=_TILE, outline=_MUTED)
        image_h = height - line_h - 2
        if preview.thumbnail is not None and image_h > 2 and tile_w > 4:
            thumb = Image.frombytes("RGB", preview.thumbnail_size, preview.thumbnail)
            fit = min((tile_w - 4) / thumb.width, image_h / thumb.height)
            size = (max(1, int(thumb.width * fit)), max(1, int(thumb.height * fit)))
            thumb = thumb.resize(size, Image.Resampling.BILINEAR)
            quantised = thumb.quantize(palette=_cube_palette_image(), dither=Image.Dither.NONE)
            canvas.paste(quantised, (x0 + (tile_w - size[0]) // 2, top + 1 + (image_h - size[1]) // 2))
        caption = _wrap(_drawable(preview.caption), font, tile_w - 4, 1 if preview.thumbnail is not None else max(1, image_h // line_h))
        y = top + height - line_h - 1 if preview.thumbnail is not None else top + 2
        for line in caption:
            draw.text((x0 + 2, y), line, font=font, fill=_WHITE)
            y += line_h


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_upscaled_png(canvas: Image.Image, width: int, height: int) -> bytes:
    """PNG of ``canvas`` scaled to ``width`` x ``height`` with NEAREST, streamed row by row."""
    lh = canvas.height
    wide = canvas if canvas.width == width else canvas.resize((width, lh), Image.Resampling.NEAREST)
    raw = wide.tobytes()
    same_as_above = b"\x02" + bytes(width)  # filter Up, zero difference
    fresh: dict[int, bytes] = {}
    compressor = zlib.compressobj(1)
    parts: list[bytes] = []
    batch: list[bytes] = []
    previous = -1
    for y in range(height):
        src = (2 * y + 1) * lh // (2 * height)  # pixel-centre sampling
        if src == previous:
            batch.append(same_as_above)
        else:
            row = fresh.get(src)
            if row is None:
                row = fresh[src] = b"\x00" + raw[src * width : (src + 1) * width]
            batch.append(row)
            previous = src
        if len(batch) >= _ROWS_PER_BATCH:
            parts.append(compressor.compress(b"".join(batch)))
            batch.clear()
    parts.append(compressor.compress(b"".join(batch)))
    parts.append(compressor.flush())
    palette = bytes(canvas.getpalette() or [])[: 256 * 3]
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return b"".join(
        (_PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"PLTE", palette), _chunk(b"IDAT", b"".join(parts)), _chunk(b"IEND", b""))
    )


def render_placeholder(
    *,
    seed: int,
    index: int,
    count: int,
    width: int,
    height: int,
    prompt: str,
    inputs: Sequence[InputPreview] = (),
) -> bytes:
    """Render output image ``index`` of ``count`` as PNG bytes (8-bit palette).

    Pure: the same arguments give the same bytes in any process (with the same Pillow).
    ``inputs`` are shown as thumbnails / labelled tiles; at most two are drawn.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    caption = f"{width}x{height} - image {index + 1}/{count}"
    card = draw_card(seed, width, height, caption, (prompt,), tuple(inputs)[:2])
    return _encode_upscaled_png(card.canvas, width, height)
