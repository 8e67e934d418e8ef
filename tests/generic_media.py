"""Decoding checks for the files a generic endpoint serves: the bytes decode, and what the
output says about them (size, length, rate) is what the decoder reads."""
from __future__ import annotations

import base64
import io
import json
import struct
from typing import Any, Callable

from PIL import Image

_MAGIC = {"image/png": b"\x89PNG", "image/jpeg": b"\xff\xd8\xff", "image/webp": b"RIFF",
          "video/mp4": b"ftyp", "audio/wav": b"RIFF", "audio/mpeg": b"ID3", "model/gltf-binary": b"glTF"}


def file_bytes(url: str, fetch: Callable[[str], bytes]) -> bytes:
    if url.startswith("data:"):
        return base64.b64decode(url.split(",", 1)[1])
    return fetch(url)


def check_file(described: dict[str, Any], data: bytes) -> None:
    """Assert ``data`` decodes as ``described['content_type']`` and matches the reported fields."""
    content_type = described.get("content_type", "")
    if "file_size" in described:
        assert described["file_size"] == len(data)
    magic = _MAGIC.get(content_type)
    assert magic is not None, f"unexpected content type {content_type!r}"
    assert magic in data[:12], f"{content_type} magic missing: {data[:12]!r}"
    if content_type.startswith("image/"):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.format.lower() in content_type.replace("jpeg", "jpeg")
            if "width" in described:
                assert (image.width, image.height) == (described["width"], described["height"])
    elif content_type in ("video/mp4", "audio/wav", "audio/mpeg"):
        import av

        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0] if content_type == "video/mp4" else container.streams.audio[0]
            decoded = sum(1 for _ in container.decode(stream))
            assert decoded > 0
            if content_type == "video/mp4":
                if "width" in described:
                    assert (stream.codec_context.width, stream.codec_context.height) == (described["width"], described["height"])
                if "num_frames" in described:
                    assert decoded == described["num_frames"]
                if "fps" in described:
                    assert abs(float(stream.average_rate) - described["fps"]) < 1e-3
            elif "sample_rate" in described:
                assert stream.rate == described["sample_rate"]
    else:  # GLB: header, then a JSON chunk that parses as glTF
        magic_, version, length = struct.unpack_from("<4sII", data)
        assert version == 2 and length == len(data)
        chunk_length, chunk_type = struct.unpack_from("<I4s", data, 12)
        assert chunk_type == b"JSON"
        gltf = json.loads(data[20:20 + chunk_length])
        assert gltf["asset"]["version"] == "2.0" and gltf.get("meshes")


def files_in(value: Any) -> list[dict[str, Any]]:
    """Every file object (a dict with a ``url``) in an output body."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if isinstance(value.get("url"), str):
            found.append(value)
        elif isinstance(value.get("content"), str) and "content_type" in value:  # a realtime RawImage
            found.append({**value, "url": f"data:{value['content_type']};base64,{value['content']}"})
        else:
            for item in value.values():
                found += files_in(item)
    elif isinstance(value, list):
        for item in value:
            found += files_in(item)
    return found
