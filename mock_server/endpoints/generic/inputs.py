"""The size of a request's input image, for outputs whose size the input does not state
otherwise ("size from ... or the input image", issue 16).

Only images the mock holds are read: ``data:`` URIs and the mock's own files (uploads, earlier
outputs).  A remote URL is not fetched for this (chosen: its size is not worth a download, and
the mock never reaches out unless asked); an unreadable input is no size.  Only the image header
is read (Pillow opens lazily), never the pixels.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from mock_server.core.endpoint import EndpointEnv

__all__ = ["input_image_size", "input_image_url"]

_IMAGE_INPUTS = re.compile(r"^(image_url|image_urls|input_image_url|input_image_urls|start_image_url|"
                           r"first_frame_url|reference_image_url|init_image_url)$")


def input_image_url(params: Mapping[str, Any]) -> str | None:
    """The first input image URL of the validated params, if any."""
    for key, value in params.items():
        if not _IMAGE_INPUTS.match(key):
            continue
        if isinstance(value, list):
            value = next((v for v in value if isinstance(v, str)), None)
        if isinstance(value, str) and value:
            return value
    return None


def _data_uri_bytes(url: str, max_bytes: int) -> bytes | None:
    header, _, payload = url.partition(",")
    if len(payload) > max_bytes * 4 // 3 + 4:
        return None
    try:
        return base64.b64decode(payload, validate=False) if header.endswith(";base64") else unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return None


def _size_of(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:  # not an image Pillow reads: no size (never an error for the request)
        return None


async def input_image_size(url: str, env: EndpointEnv) -> tuple[int, int] | None:
    """(width, height) of the image at ``url`` when the mock holds it, else None."""
    if url[:5].lower() == "data:":
        data = _data_uri_bytes(url, env.fetch_max_bytes)
    else:
        name = env.own_file_name(url)
        stored = await asyncio.to_thread(env.files.get, name) if name is not None else None
        data = stored.data if stored is not None else None
    if not data:
        return None
    return await asyncio.to_thread(_size_of, data)
