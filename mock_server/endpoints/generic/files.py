"""The media files a generic endpoint outputs: which kind a field holds, and the file itself
(drawn, registered in the FileStore as a re-renderable recipe, described in fal's fields).

Kind (issue 16: fal's typing is inconsistent, ``video`` is a plain ``File`` in most video
endpoints): the field's name, its type's name and its description, by the catalogue's rules
(``mock_server.endpoints.catalog.kinds.field_kind``); then the content type its schema names
(default or example); then the endpoint's ``output_kind``.

Images use the placeholder card of :mod:`mock_server.endpoints.fal_app.rendering`, re-encoded
to the asked ``output_format``; video, audio and 3D use :mod:`mock_server.endpoints.fal_app.media`.
Every file is registered with a recipe (a pure function of its arguments): the same request
serves the same bytes, after eviction too, and the metadata is computed from the bytes.
"""
from __future__ import annotations

import base64
import functools
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from mock_server.core.endpoint import EndpointEnv
from mock_server.endpoints.fal_app.cdn import cdn_file_name

__all__ = ["MEDIA_KINDS", "Rendered", "file_kind", "render_file"]

MEDIA_KINDS = ("image", "video", "audio", "3d")

_CONTENT_KINDS = (("image/", "image"), ("video/", "video"), ("audio/", "audio"), ("model/", "3d"))

#: output_format value -> (Pillow format, content type, extension); fal's image apps offer
#: jpeg/png/webp (their schemas' ``output_format`` enums). The ``.jpg`` extension is chosen.
IMAGE_FORMATS = {"png": ("PNG", "image/png", "png"), "jpeg": ("JPEG", "image/jpeg", "jpg"),
                 "jpg": ("JPEG", "image/jpeg", "jpg"), "webp": ("WEBP", "image/webp", "webp")}


def _content_type_hint(schema: dict[str, Any]) -> str:
    spec = (schema.get("properties") or {}).get("content_type")
    if not isinstance(spec, dict):
        return ""
    for value in (spec.get("default"), *(spec.get("examples") or ())):
        if isinstance(value, str):
            return value
    return ""


def file_kind(name: str, schema: dict[str, Any], type_name: str | None, output_kind: str) -> str:
    """The media kind of a file field (see the module doc); never None: a file of unknown
    content is drawn as the endpoint's own kind, else as an image.

    The name and type rules are the catalogue's (``field_kind``, one home for them); a file
    object written inline, without a type name, is asked about as a ``File``."""
    from mock_server.endpoints.catalog.kinds import field_kind

    ref = type_name or "File"
    kind = field_kind(name, {"$ref": f"#/$defs/{ref}", "description": schema.get("description", "")}, {ref: schema})
    if kind in MEDIA_KINDS:
        return kind
    hint = _content_type_hint(schema)
    for prefix, found in _CONTENT_KINDS:
        if hint.startswith(prefix):
            return found
    return output_kind if output_kind in MEDIA_KINDS else "image"


@dataclass(frozen=True, slots=True)
class Rendered:
    """One output file: its URL (or data URI) and the fields fal reports about it."""

    url: str
    facts: dict[str, Any]  # content_type, file_name, file_size, width, height, fps, ...


def render_image(fmt: str, **card: Any) -> bytes:
    """The placeholder card as ``fmt`` (a Pillow format name) bytes."""
    from mock_server.endpoints.fal_app.rendering import render_placeholder

    png = render_placeholder(**card)
    if fmt == "PNG":
        return png
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, fmt, quality=85)
    return out.getvalue()


#: Bytes of recent videos kept by :func:`_memo_mp4`.
VIDEO_MEMO_BYTES = 32 * 1024 * 1024
_video_memo: OrderedDict[tuple, bytes] = OrderedDict()
_video_memo_size = 0
_video_memo_lock = threading.Lock()


def _memo_mp4(width: int, height: int, fps: float, duration: float, seed: int, lines: tuple[str, ...]) -> bytes:
    """:func:`render_mp4`, keeping recent videos up to :data:`VIDEO_MEMO_BYTES`: an encode costs
    up to seconds, and test suites ask for the same video again and again (the same input and
    seed, often through several endpoints of one family).  Written here because
    ``functools.lru_cache`` bounds entries, not bytes."""
    global _video_memo_size
    key = (width, height, fps, duration, seed, lines)
    with _video_memo_lock:
        data = _video_memo.get(key)
        if data is not None:
            _video_memo.move_to_end(key)
            return data
    from mock_server.endpoints.fal_app import media

    data = media.render_mp4(width, height, fps, duration, seed, lines)
    with _video_memo_lock:
        if key not in _video_memo and len(data) <= VIDEO_MEMO_BYTES:
            _video_memo[key] = data
            _video_memo_size += len(data)
            while _video_memo_size > VIDEO_MEMO_BYTES:
                _, old = _video_memo.popitem(last=False)
                _video_memo_size -= len(old)
    return data


def _register(env: EndpointEnv, name: str, recipe: Callable[[], bytes], content_type: str, sync: bool) -> tuple[str, bytes]:
    data = recipe()
    if sync:  # fal answers sync_mode media as data URIs, not stored (fal docs, "sync_mode")
        return f"data:{content_type};base64,{base64.b64encode(data).decode()}", data
    env.files.add_rendered(name, recipe, content_type, data)
    return env.file_url(name), data


def render_file(kind: str, key: str, spec: dict[str, Any], env: EndpointEnv, sync: bool) -> Rendered:
    """Draw, register and describe one file of ``kind``; ``key`` names it (request id and
    field path); ``spec`` holds what to draw (sizes, seed, text lines, format)."""
    if kind == "image":
        fmt, content_type, ext = IMAGE_FORMATS.get(spec.get("format", "png"), IMAGE_FORMATS["png"])
        width, height = spec["width"], spec["height"]
        recipe = functools.partial(render_image, fmt, seed=spec["seed"], index=spec.get("index", 0),
                                   count=spec.get("count", 1), width=width, height=height,
                                   prompt=spec.get("prompt", ""))
        name = cdn_file_name(key, ext)
        url, data = _register(env, name, recipe, content_type, sync)
        return Rendered(url, {"content_type": content_type, "file_name": name, "file_size": len(data),
                              "width": width, "height": height})
    from mock_server.endpoints.fal_app import media

    if kind == "video":
        facts = media.video_facts(spec["width"], spec["height"], spec["fps"], spec["duration"])
        recipe = functools.partial(_memo_mp4, facts.width, facts.height, spec["fps"], spec["duration"],
                                   spec["seed"], tuple(spec.get("lines", ())))
        ext = "mp4"
    elif kind == "audio":
        ext = "mp3" if spec.get("format") == "mp3" else "wav"
        rate, channels = spec.get("sample_rate", 44100), spec.get("channels", 1)
        facts = media.audio_facts(spec["duration"], rate, channels, audio_format=ext)
        recipe = functools.partial(media.render_mp3 if ext == "mp3" else media.render_wav,
                                   spec["duration"], spec["seed"], rate, channels)
    else:
        facts = media.glb_facts()
        recipe = functools.partial(media.render_glb, spec["seed"], spec.get("label", ""))
        ext = "glb"
    name = cdn_file_name(key, ext)
    url, data = _register(env, name, recipe, facts.content_type, sync)
    reported = facts.sized(data).output(url)
    reported.pop("url")
    reported["file_name"] = name
    return Rendered(url, reported)
