"""Output sizes as fal apps read them from their inputs: ``image_size`` presets or objects,
``aspect_ratio`` with ``resolution``, or plain ``width``/``height``."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# Largest side drawn (a schema that allows 14142 px, flux's, must not make the mock allocate
# gigabytes): the video renderer's, 4K UHD's 3840, for images too (chosen).
from mock_server.endpoints.fal_app.media.facts import MAX_SIDE

__all__ = ["IMAGE_SIZE_PRESETS", "output_size"]

#: Preset -> (width, height); fal SDK ``toolkit/image/image.py`` ``IMAGE_SIZE_PRESETS`` (WAN25.md §2).
IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

#: ``resolution`` values fal's video and image apps take (their schemas' enums: "480p", "720p",
#: "1080p", "1K", "2K", "4K"), as the short side (``p``) or the long side (``K``) in pixels.
#: The K sides are chosen (1K = 1024, as fal's image apps describe "1K" outputs; 4K = 3840, UHD).
_P = re.compile(r"^(\d{3,4})p$", re.IGNORECASE)
_K = {"1k": 1024, "2k": 2048, "4k": MAX_SIDE}
_RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[:x/]\s*(\d+(?:\.\d+)?)\s*$")


def _even(value: float, multiple: int) -> int:
    """``value`` rounded to a multiple of ``multiple`` (H.264 yuv420p needs even sides), at least one."""
    return max(multiple, int(round(value / multiple)) * multiple)


def _ratio(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    found = _RATIO.match(value)
    if not found:
        return None
    w, h = float(found.group(1)), float(found.group(2))
    return w / h if w > 0 and h > 0 else None


def output_size(params: Mapping[str, Any], default: tuple[int, int], multiple: int = 2) -> tuple[int, int]:
    """(width, height) of an output for the validated ``params``, else ``default``.

    Tried in order: ``image_size`` (preset name or ``{width, height}``); ``width`` and
    ``height``; ``aspect_ratio`` ("16:9") and/or ``resolution`` ("720p", "2K"), the missing
    one taken from ``default``; then ``default``.  Sides are clamped to [16, MAX_SIDE] and
    rounded to an even ``multiple`` (H.264 in yuv420p needs even sides).
    """
    size = params.get("image_size")
    width = height = None
    if isinstance(size, str) and size in IMAGE_SIZE_PRESETS:
        width, height = IMAGE_SIZE_PRESETS[size]
    elif isinstance(size, Mapping) and isinstance(size.get("width"), int) and isinstance(size.get("height"), int):
        width, height = size["width"], size["height"]
    elif isinstance(params.get("width"), int) and isinstance(params.get("height"), int):
        width, height = params["width"], params["height"]
    else:
        ratio = _ratio(params.get("aspect_ratio"))
        resolution = params.get("resolution")
        short = long = None
        if isinstance(resolution, str):
            found = _P.match(resolution)
            if found:
                short = int(found.group(1))
            else:
                long = _K.get(resolution.lower())
        if ratio is None and short is None and long is None:
            width, height = default
        else:
            if ratio is None:
                ratio = default[0] / default[1]
            if short is None and long is None:
                long = max(default)
            if short is not None:
                width, height = (short * ratio, short) if ratio >= 1 else (short, short / ratio)
            else:
                width, height = (long, long / ratio) if ratio >= 1 else (long * ratio, long)
    clamp = lambda side: min(MAX_SIDE, max(16, side))  # noqa: E731
    return _even(clamp(width), multiple), _even(clamp(height), multiple)
