"""Stored files (rendered outputs and uploads) at ``/_mock/files/{name}``: GET and HEAD.
Uploads (PUT/POST there) are storage's routes."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from mock_server.core import fal_errors
from mock_server.core.paths import FILES_PREFIX
from mock_server.protocol.calls import note
from mock_server.web.outcomes import FalRoute, fal_call, fal_calls
from mock_server.web.responses import AnswerResponse, RawResponse

router = APIRouter()

_CACHED = [(b"cache-control", b"public, max-age=31536000, immutable")]
#: A stored file never runs as the mock's origin (issue 21.1: an uploaded HTML or SVG file
#: would be same-origin with /_mock/): no sniffing, no script, no plugin, a sandbox; and
#: anything but a raster image is a download, not a page.
_INERT = [(b"x-content-type-options", b"nosniff"),
          (b"content-security-policy", b"default-src 'none'; sandbox")]
_ATTACHMENT = (b"content-disposition", b"attachment")
#: Shown inline: raster images (what endpoints render and browsers display as images only).
INLINE_TYPES = frozenset(("image/png", "image/jpeg", "image/webp", "image/gif"))


def file_headers(content_type: str) -> list[tuple[bytes, bytes]]:
    """The headers every stored file is served with (besides its type and length)."""
    headers = _CACHED + _INERT
    if content_type.split(";", 1)[0].strip().lower() not in INLINE_TYPES:
        headers = headers + [_ATTACHMENT]
    return headers


async def stored_file(request: Request):
    """A stored file, rendered again if the cache dropped it; HEAD sends no body."""
    call = fal_call(request)
    note(call, "file", None)
    name = request.path_params["name"]
    if "/" in name or not name or name.startswith("."):
        return AnswerResponse(fal_errors.path_not_found(call.path))
    stored = await asyncio.to_thread(fal_calls(request).emulator.files.get, name)
    if stored is None:
        return AnswerResponse(fal_errors.detail(404, "File not found"))
    response = RawResponse(200, stored.data, file_headers(stored.content_type), content_type=stored.content_type.encode("latin-1"))
    if request.method == "HEAD":
        response.body = b""  # its content-length stays the file's
    return response


router.add_route(FILES_PREFIX + "{name:path}", FalRoute(stored_file), methods=["GET", "HEAD"], include_in_schema=False)
