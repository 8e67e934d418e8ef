"""The media of an output that are not its ``images``: videos, sounds, 3D models and other files.

Found by walking the result's JSON for fal's media objects (a dict with a ``url`` and a
``content_type`` or ``file_name``: ``File``, ``VideoFile``, ``AudioFile``, ``model_glb``,
``model_urls.glb`` ...), since the field names differ per endpoint.  What each is comes from
its ``content_type``, else its file extension.  Only the mock's own files are shown or played
(``/_mock/files/...``, same origin, so the page's CSP ``default-src 'self'`` allows
``<video>``/``<audio>``); any other URL is a caption naming it, never fetched.

A video's still (:func:`video_still`) is its first frame, decoded from the served bytes (PyAV)
and scaled down to a JPEG, so the list shows one image per video instead of loading players.
"""
from __future__ import annotations

import io
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from mock_server.core.paths import FILES_PREFIX, own_file_name
from mock_server.features.dashboard.formatting import short

#: Where a video's still is served: ``/_mock/ui/poster/<file name>``.
POSTER_PREFIX = "/_mock/ui/poster/"
#: Longest side of a still, in pixels.
STILL_MAX = 384
#: Media objects looked for in one result, and how deep into its JSON.
MAX_MEDIA = 16
_MAX_DEPTH = 4
_EXTENSIONS = {
    "video": ("mp4", "webm", "mov", "mkv", "avi", "m4v"),
    "audio": ("wav", "mp3", "ogg", "oga", "flac", "m4a", "aac", "opus", "weba"),
    "model": ("glb", "gltf", "obj", "fbx", "usdz", "ply", "stl"),
    "image": ("png", "jpg", "jpeg", "webp", "gif"),
}


@dataclass(slots=True, frozen=True)
class MediaPreview:
    """One media object of an output, as the row and the detail view show it."""

    kind: str  # "video" | "audio" | "model" | "image" | "file"
    where: str  # the field it was found at: "video", "audio_file", "model_urls.glb"
    label: str  # "video/mp4 · 1280x720 · 5 s · 94.5 KB"
    title: str  # the URL (cut)
    src: str | None = None  # /_mock/files/<name> for the mock's own file, else None (never fetched)
    poster: str | None = None  # a video's still, /_mock/ui/poster/<name>


def media_objects(result: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(field path, object)`` of each media object in a result, ``images`` left out (shown as
    image tiles); at most :data:`MAX_MEDIA`."""
    found: list[tuple[str, dict[str, Any]]] = []

    def walk(value: Any, path: str, depth: int) -> None:
        if len(found) >= MAX_MEDIA or depth > _MAX_DEPTH:
            return
        if isinstance(value, dict):
            if isinstance(value.get("url"), str) and ("content_type" in value or "file_name" in value or depth > 0):
                found.append((path, value))
                return
            for key, item in value.items():
                if depth == 0 and key == "images":
                    continue
                walk(item, f"{path}.{key}" if path else str(key), depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]", depth + 1)

    walk(result, "", 0)
    return found


def media_kind(obj: dict[str, Any]) -> str:
    """video / audio / model / image / file, from the content type, else the file extension."""
    content_type = obj.get("content_type")
    if isinstance(content_type, str):
        major = content_type.split("/", 1)[0].strip().lower()
        if major in ("video", "audio", "image", "model"):
            return major
    name = obj.get("file_name") if isinstance(obj.get("file_name"), str) else ""
    if not name:
        try:
            name = urlsplit(obj["url"]).path
        except ValueError:
            name = ""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    for kind, extensions in _EXTENSIONS.items():
        if extension in extensions:
            return kind
    return "file"


def _size_text(size: Any) -> str | None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return None  # pragma: no cover


def _label(kind: str, obj: dict[str, Any]) -> str:
    parts = [str(obj.get("content_type") or kind)]
    width, height = obj.get("width"), obj.get("height")
    if isinstance(width, int) and isinstance(height, int):
        parts.append(f"{width}x{height}")
    duration = obj.get("duration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        parts.append(f"{duration:g} s")
    size = _size_text(obj.get("file_size"))
    if size:
        parts.append(size)
    return short(" · ".join(parts), 120)


def media_previews(result: Any, own: Callable[[str], str | None]) -> list[MediaPreview]:
    """The previews of a result's media; ``own(url)`` is the file's name when the mock serves it."""
    previews = []
    for where, obj in media_objects(result):
        url = obj["url"]
        kind = media_kind(obj)
        name = own(url)
        src = FILES_PREFIX + name if name is not None else None
        poster = POSTER_PREFIX + name if name is not None and kind == "video" else None
        previews.append(MediaPreview(kind, short(where or "output", 60), _label(kind, obj), short(url, 300), src, poster))
    return previews


def own_media_name(url: str, *, settings: Any, files: Any, host: str) -> str | None:
    """The stored file's name when ``url`` is one of this mock's files, else None.

    Asks the store whether it holds the name (``in``), not for the bytes: a video the cache
    dropped would otherwise be encoded again just to list it.
    """
    name = own_file_name(url, host=settings.host, port=settings.port, caller_host=host)
    if not name or "/" in name or name.startswith(".") or name not in files:
        return None
    return name


class StillCache:
    """Stills of the videos shown lately, by file name (a file's bytes never change)."""

    def __init__(self, size: int = 128) -> None:
        self.size = size
        self._stills: OrderedDict[str, bytes | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, files: Any, name: str) -> bytes | None:
        """The JPEG still of stored video ``name`` (None when there is no such video)."""
        with self._lock:
            if name in self._stills:
                self._stills.move_to_end(name)
                return self._stills[name]
        if "/" in name or name.startswith(".") or name not in files:
            return None
        stored = files.get(name)
        if stored is None or not stored.content_type.startswith("video/"):
            return None
        still = video_still(stored.data)
        with self._lock:
            self._stills[name] = still
            while len(self._stills) > self.size:
                self._stills.popitem(last=False)
        return still

    def clear(self) -> None:
        with self._lock:
            self._stills.clear()


def video_still(data: bytes, max_side: int = STILL_MAX) -> bytes | None:
    """The first frame of a video as a JPEG at most ``max_side`` on its long side; None when
    FFmpeg cannot decode one."""
    import av  # PyAV: loaded on the first still

    try:
        with av.open(io.BytesIO(data)) as container:
            frame = next(container.decode(video=0), None)
            if frame is None:
                return None
            image = frame.to_image()
    except (av.FFmpegError, StopIteration, IndexError, ValueError):
        return None
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()
