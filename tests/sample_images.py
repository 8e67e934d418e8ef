"""Small input images for tests: encoded samples, a decompression-bomb header, data URIs."""
from __future__ import annotations

import base64
import io
import struct
import zlib

from PIL import Image


def png(width: int = 400, height: int = 400, fmt: str = "PNG") -> bytes:
    """A solid-colour image of that size, encoded as ``fmt`` (PNG by default)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, fmt)
    return out.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A ~70-byte PNG whose IHDR declares ``width`` x ``height`` (a decompression bomb's header)."""
    data = bytearray(png(1, 1))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
