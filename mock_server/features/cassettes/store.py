"""Cassettes on disk: one folder per endpoint, one JSON file per recorded request, media beside it.

::

    DIR/
      fal-ai/wan-25-preview/image-to-image/
        3f2a9c0d41b7e215.json        # the request: input, states, logs, result, media list
        3f2a9c0d41b7e215-0.png       # the media files the result points to
      _uploads/
        9b1e0f2c7d3a4e51.png         # an uploaded input's bytes ...
        9b1e0f2c7d3a4e51.json        # ... and what fal answered for it (URL, content type)

A cassette's name is the first 16 hex digits of the SHA-256 of its normalised input
(:func:`mock_server.features.cassettes.matching.input_key`), so the same call always lands
in the same file.  Writes are deterministic (sorted keys, two-space indent, a final newline)
and a re-record that changes nothing but timings and the request id leaves the file as it
was (:func:`same_recording`): re-recording the same calls makes no diff.
"""
from __future__ import annotations

import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

FORMAT = 1
UPLOADS = "_uploads"
#: The result body keeps a media URL as this prefix plus the media file's name.
MEDIA_REF = "fal-mock-cassette:"
#: ... and a media file's name as fal gave it (``file_name``: random on every run) as this
#: prefix plus the media file's name (a replay gives the name of the file it serves).
MEDIA_NAME_REF = "fal-mock-cassette-name:"
#: The normalised input names an uploaded file by its content: this prefix plus its SHA-256.
UPLOAD_REF = "fal-mock-upload:sha256:"
#: Recorded timings closer than this (seconds) to the kept ones are the same recording.
TIMING_TOLERANCE = 0.5

_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "video/mp4": ".mp4",
               "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/mpeg": ".mp3", "model/gltf-binary": ".glb",
               "application/json": ".json", "text/plain": ".txt"}


def extension_for(content_type: str) -> str:
    base = (content_type or "").split(";")[0].strip().lower()
    ext = _EXTENSIONS.get(base) or mimetypes.guess_extension(base) or ".bin"
    return ".data" if ext == ".json" else ext  # a media .json beside the cassettes would read as one


def dumps(value: Any) -> str:
    """The one way a cassette file is written: sorted keys, indented, final newline."""
    return json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Cassette:
    """One recorded request (the JSON file's content, plus where it lives)."""

    data: dict[str, Any]
    path: Path

    @property
    def endpoint_id(self) -> str:
        return self.data["endpoint_id"]

    @property
    def input(self) -> dict[str, Any]:
        return self.data["input"]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def states(self) -> list[dict[str, Any]]:
        return self.data.get("states", [])

    @property
    def logs(self) -> list[dict[str, Any]]:
        return self.data.get("logs", [])

    @property
    def result(self) -> dict[str, Any]:
        return self.data["result"]

    @property
    def media(self) -> list[dict[str, Any]]:
        return self.data.get("media", [])

    def media_path(self, entry: dict[str, Any]) -> Path:
        return self.folder / entry["file"]


class CassetteDir:
    """The cassettes of one folder (``--record DIR`` / ``--replay DIR``)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # -- reading ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Cassette]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.rglob("*.json")):
            if UPLOADS in path.relative_to(self.root).parts:
                continue
            cassette = self.read(path)
            if cassette is not None:
                yield cassette

    @staticmethod
    def read(path: Path) -> Cassette | None:
        """The cassette in ``path``, or None for a file that is not one."""
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("cassette") != FORMAT or "endpoint_id" not in data:
            return None
        return Cassette(data, path)

    def folder_of(self, endpoint_id: str) -> Path:
        parts = [part for part in endpoint_id.split("/") if part not in ("", ".", "..")]
        return self.root.joinpath(*parts)

    def path_of(self, endpoint_id: str, name: str) -> Path:
        return self.folder_of(endpoint_id) / f"{name}.json"

    def upload_bytes(self, digest: str) -> tuple[bytes, str] | None:
        """An uploaded input's bytes and content type, by its SHA-256."""
        meta = self.root / UPLOADS / f"{digest[:16]}.json"
        try:
            info = json.loads(meta.read_text("utf-8"))
            return (self.root / UPLOADS / info["file"]).read_bytes(), info["content_type"]
        except (OSError, ValueError, KeyError):
            return None

    # -- writing ---------------------------------------------------------------------
    def write(self, data: dict[str, Any], media: list[tuple[str, bytes]]) -> Cassette:
        """Write one cassette (already scrubbed) and its media files; a file whose content
        would not change is left untouched, and so is a cassette that differs from the kept one
        only in what changes on every run (see :func:`same_recording`)."""
        data = {**data, "cassette": FORMAT}
        path = self.path_of(data["endpoint_id"], data["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        for file_name, content in media:
            _write_if_changed(path.parent / file_name, content)
        kept = self.read(path) if path.exists() else None
        if kept is not None and same_recording(kept.data, data):
            return kept
        _write_if_changed(path, dumps(data).encode("utf-8"))
        return Cassette(data, path)

    def write_upload(self, data: bytes, content_type: str, upstream_url: str) -> str:
        """Keep an uploaded input (once per content); returns its SHA-256."""
        digest = sha256(data)
        folder = self.root / UPLOADS
        folder.mkdir(parents=True, exist_ok=True)
        file_name = digest[:16] + extension_for(content_type)
        _write_if_changed(folder / file_name, data)
        meta = folder / f"{digest[:16]}.json"
        if not meta.exists():  # the first URL fal gave stays: a re-upload gets a new one every time
            info = {"content_type": content_type, "file": file_name, "sha256": digest, "size": len(data),
                    "upstream_url": upstream_url}
            meta.write_text(dumps(info), "utf-8")
        return digest

    # -- pruning ---------------------------------------------------------------------
    def orphans(self) -> list[Path]:
        """Files no cassette refers to: media left by a cassette since deleted or re-recorded,
        uploads no recorded input uses."""
        used: set[Path] = set()
        uploads: set[str] = set()
        for cassette in self:
            used.add(cassette.path)
            used.update(cassette.media_path(entry) for entry in cassette.media)
            uploads.update(u[:16] for u in cassette.data.get("uploads", []))
        found = []
        for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
            if UPLOADS in path.relative_to(self.root).parts:
                if path.name.split(".")[0] not in uploads:
                    found.append(path)
            elif path not in used:
                found.append(path)
        return found


#: What changes on every run of the same calls: the timings and fal's request id.
def _stable(data: dict[str, Any]) -> dict[str, Any]:
    stable = {k: v for k, v in data.items() if k not in ("volatile",)}
    stable["states"] = [{k: v for k, v in s.items() if k != "at"} for s in data.get("states", [])]
    stable["logs"] = [{k: v for k, v in line.items() if k != "at"} for line in data.get("logs", [])]
    return stable


def _timings(data: dict[str, Any]) -> list[float]:
    return [float(item.get("at", 0.0)) for item in [*data.get("states", []), *data.get("logs", [])]]


def same_recording(kept: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether ``new`` records what ``kept`` does: equal but for the request id, and timings
    within :data:`TIMING_TOLERANCE` of each other."""
    if _stable(kept) != _stable(new):
        return False
    return all(abs(a - b) <= TIMING_TOLERANCE for a, b in zip(_timings(kept), _timings(new)))


def _write_if_changed(path: Path, content: bytes) -> None:
    try:
        if path.read_bytes() == content:
            return
    except OSError:
        pass
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)
