"""A generic endpoint's 200 body, built by walking its output schema.

Every required field is filled, and the optional ones a caller relies on (``seed``,
``seeds``, ``timings``, ``has_nsfw_concepts``, prompt echoes, and every field a file object
describes); an optional field with a default gets the default.  Deterministic: a pure function
of (endpoint, validated input, seed, request id), so a re-render after a restart or an
eviction gives the same body and bytes.

Rules chosen here (fal's apps differ; these are the mock's, not fal's):

- images: ``num_images`` of them (bounded by the array's ``minItems``/``maxItems``), image *i*
  with seed ``seed + i``; size from ``image_size`` / ``width``+``height`` / ``aspect_ratio`` +
  ``resolution`` (:func:`~mock_server.endpoints.fal_app.sizes.output_size`), else the input
  image's size when the mock holds that image (:mod:`.inputs`), else 1024x1024;
  format from ``output_format``, else PNG;
- video: size as images (else the input image's, else 1280x720, 16:9 720p), ``fps``/``frames_per_second`` else 24,
  length from ``duration`` ("5", "8s", 5.0) or ``num_frames``, else 5 s (at most 30 s drawn);
- audio: WAV, or MP3 when ``output_format`` asks; length from ``duration`` (or ``duration_seconds``), else from the text to speak (15 characters a second,
  1..30 s), else 5 s; 44.1 kHz mono (an MP3 at the rate ``mp3_<rate>_<kbps>`` names);
- 3D: one GLB; every other requested 3D format (``fbx``, ``obj``, ``usdz``) is the same GLB;
- text fields (``text``, ``output``, ``description``, transcripts...): a sentence naming the
  endpoint and echoing the prompt.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mock_server.core.endpoint import EndpointEnv
from mock_server.endpoints.fal_app.sizes import output_size
from mock_server.endpoints.generic.files import IMAGE_FORMATS, file_kind, render_file
from mock_server.endpoints.generic.sample import sample_object, sample_value
from mock_server.endpoints.generic.schema_model import resolve

__all__ = ["OutputBuilder", "media_plan"]

_SKIP = object()
_PROMPT_ECHOES = frozenset(("prompt", "actual_prompt", "revised_prompt", "expanded_prompt", "enhanced_prompt",
                            "final_prompt", "used_prompt"))
_TEXT_NAMES = re.compile(r"^(output|text|texts|response|answer|caption|transcription|transcript|generated_text|"
                         r"description|lyrics|content|reasoning|result|message|summary)$")
_TEXT_INPUTS = ("text", "prompt", "input", "gen_text", "script", "lyrics")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")
VIDEO_MAX_SECONDS = 30.0
_DEFAULT_IMAGE = (1024, 1024)
_DEFAULT_VIDEO = (1280, 720)


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and value > 0:
        return float(value)
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found and float(found.group(1)) > 0:
            return float(found.group(1))
    return None


@dataclass(slots=True)
class MediaPlan:
    """What every file of a request shows, decided from the input once."""

    image_count: int
    image_size: tuple[int, int]
    image_format: str
    video_size: tuple[int, int]
    fps: float
    video_seconds: float
    audio_seconds: float
    prompt: str
    #: "wav", or "mp3" when ``output_format`` asks for one ("mp3", "mp3_44100_128": fal's TTS
    #: enums); with the sample rate the format names, where MPEG has it
    audio_format: str = "wav"
    audio_rate: int = 44100
    lines: tuple[str, ...] = field(default=())


def media_plan(params: dict[str, Any], endpoint_id: str, seed: int,
               source_size: tuple[int, int] | None = None) -> MediaPlan:
    """The sizes, lengths and formats of a request's files (rules in the module doc);
    ``source_size`` is the input image's, the default size when the input states none."""
    count = params.get("num_images")
    fmt = params.get("output_format")
    fps = next((v for v in (params.get("fps"), params.get("frames_per_second"))
                if isinstance(v, (int, float)) and not isinstance(v, bool) and 1 <= v <= 120), 24)
    seconds = _seconds(params.get("duration")) or _seconds(params.get("duration_seconds"))  # ElevenLabs: duration_seconds
    frames = params.get("num_frames")
    video_seconds = seconds or (frames / fps if isinstance(frames, int) and not isinstance(frames, bool) and frames > 0 else 5.0)
    text = next((v for v in (params.get(k) for k in _TEXT_INPUTS) if isinstance(v, str) and v), "")
    audio_seconds = seconds or (min(30.0, max(1.0, round(len(text) / 15, 2))) if text else 5.0)
    prompt = params.get("prompt") if isinstance(params.get("prompt"), str) else text
    audio_format, audio_rate = _audio_format(fmt)
    return MediaPlan(
        image_count=count if isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= 16 else 1,
        image_size=output_size(params, source_size or _DEFAULT_IMAGE),
        image_format=fmt if isinstance(fmt, str) and fmt in IMAGE_FORMATS else "png",
        video_size=output_size(params, source_size or _DEFAULT_VIDEO),
        fps=float(fps),
        video_seconds=min(VIDEO_MAX_SECONDS, video_seconds),
        audio_seconds=min(VIDEO_MAX_SECONDS, audio_seconds),
        prompt=prompt,
        audio_format=audio_format,
        audio_rate=audio_rate,
        # what the frames show; not the endpoint id, so equal asks of different endpoints draw
        # equal videos (the encode memo in generic/files.py then serves them once)
        lines=(prompt[:200], f"seed {seed}"),
    )


def _audio_format(output_format: Any) -> tuple[str, int]:
    """("mp3", rate) for ``mp3`` and ``mp3_<rate>_<kbps>`` output formats, else ("wav", 44100)
    (other formats fal offers, flac, ogg, m4a, pcm, are answered as WAV: *chosen*)."""
    from mock_server.endpoints.fal_app.media.facts import MP3_SAMPLE_RATES

    if not (isinstance(output_format, str) and output_format.startswith("mp3")):
        return "wav", 44100
    parts = output_format.split("_")
    rate = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 44100
    return "mp3", rate if rate in MP3_SAMPLE_RATES else 44100


def _is_file(schema: dict[str, Any]) -> bool:
    """A file object: a ``url`` (File, Image, VideoFile...), or raw ``content`` with its size
    (the realtime endpoints' ``RawImage {content, content_type, width, height}``)."""
    properties = schema.get("properties") or {}
    return isinstance(properties.get("url"), dict) or (
        isinstance(properties.get("content"), dict) and ("width" in properties or "content_type" in properties))


class OutputBuilder:
    """Builds one request's output body (call :meth:`build` off the event loop: it renders)."""

    def __init__(self, endpoint_id: str, output_kind: str, schema: dict[str, Any], params: dict[str, Any],
                 request_id: str, seed: int, env: EndpointEnv, source_size: tuple[int, int] | None = None) -> None:
        self.endpoint_id = endpoint_id
        self.output_kind = output_kind
        self.schema = schema
        self.defs = schema.get("$defs") or {}
        self.params = params
        self.request_id = request_id
        self.seed = seed
        self.env = env
        self.sync = params.get("sync_mode") is True
        self.plan = media_plan(params, endpoint_id, seed, source_size)
        self.images = 0  # images drawn so far (seeds and has_nsfw_concepts follow them)
        self.files = 0

    def build(self) -> dict[str, Any]:
        _, root = resolve(self.schema, self.defs)
        body = self._object(root, "", top=True)
        # one has_nsfw_concepts entry per image, whichever field came first in the schema
        if isinstance(body.get("has_nsfw_concepts"), list) and self.images:
            body["has_nsfw_concepts"] = [False] * self.images
        if isinstance(body.get("seeds"), list) and self.images:
            body["seeds"] = [self.seed + i for i in range(self.images)]
        return body

    # -- walking ------------------------------------------------------------------------
    def _object(self, schema: dict[str, Any], path: str, top: bool = False, parent: str = "") -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, spec in properties.items():
            value = self._field(name, spec, name in required, f"{path}/{name}", top, parent)
            if value is not _SKIP:
                out[name] = value
        return out

    def _field(self, name: str, spec: Any, required: bool, path: str, top: bool, parent: str) -> Any:
        type_name, plain = resolve(spec, self.defs)
        for key in ("anyOf", "oneOf"):  # a nullable field: its first non-null member
            options = plain.get(key)
            if isinstance(options, list) and options:
                members = [resolve(o, self.defs) for o in options]
                usable = [m for m in members if m[1].get("type") != "null"]
                if usable:
                    type_name, plain = usable[0]
        lowered = name.lower()
        if _is_file(plain):
            if not required and not (top or parent == "model_urls") or (parent == "model_urls" and not required and lowered != "glb"):
                return _SKIP
            return self._file(name if parent != "model_urls" else f"{parent}_{name}", plain, type_name, path)
        if plain.get("type") == "array":
            _, items = resolve(plain.get("items") or {}, self.defs)
            if _is_file(items) and (required or top):
                kind = file_kind(name, items, resolve(plain.get("items") or {}, self.defs)[0], self.output_kind)
                count = self.plan.image_count if kind == "image" else 1
                count = max(count, plain.get("minItems", 0) if isinstance(plain.get("minItems"), int) else 0)
                if isinstance(plain.get("maxItems"), int):
                    count = min(count, plain["maxItems"])
                return [self._file(name, items, resolve(plain.get("items") or {}, self.defs)[0], f"{path}/{i}", i, count)
                        for i in range(count)]
        if top:
            if lowered == "seed" and self._accepts_int(plain):
                return self.seed
            if lowered == "seeds" and plain.get("type") == "array":
                return [self.seed]
            if lowered == "has_nsfw_concepts" and plain.get("type") in ("array", "boolean"):
                return [False] if plain.get("type") == "array" else False
            if lowered == "timings" and plain.get("type") in ("object", None):
                timings = {"inference": 0.5} if "inference" in (plain.get("properties") or {"inference": 0}) else {}
                return {**sample_object(plain, self.defs), **timings}
            if lowered in _PROMPT_ECHOES and plain.get("type") == "string":
                return self.plan.prompt or sample_value(plain, self.defs, name)
        if plain.get("type") == "string" and _TEXT_NAMES.match(lowered) and "enum" not in plain:
            return self._text(name, plain)
        if plain.get("type") == "object" and plain.get("properties") and (required or name == "model_urls"):
            return self._object(plain, path, parent=name)
        if required:
            if plain.get("type") == "array":
                _, items = resolve(plain.get("items") or {}, self.defs)
                if items.get("properties"):
                    return [self._object(items, f"{path}/0", parent=name)]
            return sample_value(plain, self.defs, name)
        if "default" in plain and plain["default"] is not None:
            return plain["default"]
        return _SKIP

    @staticmethod
    def _accepts_int(schema: dict[str, Any]) -> bool:
        return schema.get("type") in ("integer", "number", None)

    def _text(self, name: str, schema: dict[str, Any]) -> str:
        prompt = self.plan.prompt
        text = f"Placeholder {name} from fal-mock for {self.endpoint_id} (seed {self.seed})."
        if prompt:
            text += f" Prompt: {prompt[:500]}"
        high = schema.get("maxLength")
        return text[:high] if isinstance(high, int) else text

    # -- files --------------------------------------------------------------------------
    def _file(self, name: str, schema: dict[str, Any], type_name: str | None, path: str,
              index: int = 0, count: int = 1) -> dict[str, Any]:
        kind = file_kind(name, schema, type_name, self.output_kind)
        plan = self.plan
        key = f"{self.request_id}{path}"
        if kind == "image":
            width, height = plan.image_size
            spec = {"format": plan.image_format, "width": width, "height": height, "seed": self.seed + self.images,
                    "index": index, "count": count, "prompt": plan.prompt}
            self.images += 1
        elif kind == "video":
            width, height = plan.video_size
            spec = {"width": width, "height": height, "fps": plan.fps, "duration": plan.video_seconds,
                    "seed": self.seed + index, "lines": plan.lines}
        elif kind == "audio":
            spec = {"duration": plan.audio_seconds, "seed": self.seed + index, "format": plan.audio_format,
                    "sample_rate": plan.audio_rate}
        else:
            spec = {"seed": self.seed + index, "label": plan.prompt[:80] or self.endpoint_id}
        properties = schema.get("properties") or {}
        raw = "url" not in properties  # raw content: the bytes themselves, base64 in JSON
        rendered = render_file(kind, key, spec, self.env, self.sync or raw)
        self.files += 1
        out: dict[str, Any] = {}
        required = set(schema.get("required") or ())
        for prop, prop_spec in properties.items():
            if prop == "url":
                out[prop] = rendered.url
            elif prop == "content" and raw:
                out[prop] = rendered.url.split(",", 1)[1]
            elif prop in rendered.facts:
                out[prop] = rendered.facts[prop]
            elif prop in required:
                out[prop] = sample_value(prop_spec, self.defs, prop)
        return out
