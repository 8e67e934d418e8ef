"""What an endpoint makes (``output_kind``) and fal's ``category`` for it, decided from the
endpoint id, its field names, the types those fields refer to and their descriptions together.

Why not from the type names alone (issue 16): in ``@fal-ai/client`` 1.10.1's
``endpoints.d.ts`` the ``video`` output of most video endpoints is a plain ``File`` (353 of
them, against 83 ``VideoFile``), ``audio`` is a ``File`` in 63 TTS/music endpoints, and 3D
models are ``File``s named ``model_glb``/``model_mesh``.  So a field's *name* and its
description weigh first, the type name second, and the id's words decide the category when
they name one (``.../image-to-video``, ``.../tts``).
"""
from __future__ import annotations

import re
from typing import Any

OUTPUT_KINDS = ("3d", "video", "audio", "image", "text", "json")  # also the priority order

# fal's category names (``x-fal-metadata.category`` in the served documents, e.g.
# tests/fixtures/fal_ai_flux_dev.json of modbender/ComfyUI-Fal-Gateway: "text-to-image").
_ID_CATEGORIES = (
    "text-to-image", "image-to-image", "text-to-video", "image-to-video", "video-to-video",
    "text-to-speech", "speech-to-text", "text-to-audio", "audio-to-audio", "audio-to-video",
    "video-to-audio", "image-to-3d", "text-to-3d", "speech-to-speech",
)
_ID_ALIASES = {  # id words that name a category without spelling it
    "reference-to-video": "image-to-video", "tts": "text-to-speech", "stt": "speech-to-text",
    "whisper": "speech-to-text", "wizper": "speech-to-text", "transcribe": "speech-to-text",
    "lip-sync": "video-to-video", "lipsync": "video-to-video", "extend-video": "video-to-video",
}

_NAME_KINDS = (  # (kind, pattern over a field's name), checked in this order
    ("3d", re.compile(r"glb|fbx|usdz|(^|_)obj($|_)|mesh|model_urls|model_file|(^|_)3d($|_)|gaussian|splat|\bply\b")),
    ("video", re.compile(r"video(?!_id)")),
    ("audio", re.compile(r"audio|speech|music|song|voice|(^|_)wav($|_)|(^|_)mp3($|_)")),
    ("image", re.compile(r"image|mask|(^|_)img|picture|texture|spritesheet|frame($|s$)|thumbnail")),
)
_TEXT_NAMES = re.compile(r"^(output|text|texts|response|answer|caption|captions|transcription|transcript|"
                         r"generated_text|description|lyrics|results|content|chunks|words|reasoning|prompt)$")
_TYPE_KINDS = (
    ("3d", re.compile(r"3d|mesh|glb|model(?!s?url)", re.I)),
    ("video", re.compile(r"video", re.I)),
    ("audio", re.compile(r"audio|speech", re.I)),
    ("image", re.compile(r"image", re.I)),
)
_DESC_KINDS = (
    ("3d", re.compile(r"\b3d\b|\bglb\b|\bmesh\b", re.I)),
    ("video", re.compile(r"\bvideo\b|\bmp4\b", re.I)),
    ("audio", re.compile(r"\baudio\b|\bspeech\b|\bwav\b|\bmp3\b", re.I)),
    ("image", re.compile(r"\bimages?\b|\bpng\b|\bjpe?g\b", re.I)),
)
_MEDIA_TYPES = re.compile(r"^(File|Image|ImageFile|Video|VideoFile|Audio|AudioFile)$|File$|Image$")


def _ref_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if isinstance(ref, str) else ""


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema itself, its ``anyOf``/``oneOf`` branches and (for arrays) its items."""
    found = [schema]
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []) or []:
            if isinstance(sub, dict):
                found.extend(_branches(sub))
    items = schema.get("items")
    if isinstance(items, dict):
        found.extend(_branches(items))
    return found


def _is_file_like(schema: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The name of the file-like type (``File``, ``Image``, ``VideoFile``...) the field holds, if any."""
    for branch in _branches(schema):
        name = _ref_name(branch)
        if not name:
            continue
        target = defs.get(name, {})
        if _MEDIA_TYPES.search(name) or "url" in (target.get("properties") or {}):
            return name
    return None


def field_kind(name: str, schema: dict[str, Any], defs: dict[str, Any]) -> str | None:
    """The media kind one output field carries (``None`` for plain data)."""
    type_name = _is_file_like(schema, defs)
    lowered = name.lower()
    if type_name is None and name != "model_urls":
        if _TEXT_NAMES.match(lowered) and any(b.get("type") == "string" for b in _branches(schema)):
            return "text"
        return None
    for kind, pattern in _NAME_KINDS:
        if pattern.search(lowered):
            return kind
    for kind, pattern in _TYPE_KINDS:
        if type_name and pattern.search(type_name):
            return kind
    for kind, pattern in _DESC_KINDS:
        if pattern.search(str(schema.get("description", ""))):
            return kind
    return None  # a File of unknown content (a LoRA, a zip): data


def output_kind(endpoint_id: str, output_schema: dict[str, Any]) -> str:
    """``image`` | ``video`` | ``audio`` | ``3d`` | ``text`` | ``json`` for an output schema."""
    defs = output_schema.get("$defs", {})
    kinds = {field_kind(name, sub, defs) for name, sub in (output_schema.get("properties") or {}).items()}
    for kind in OUTPUT_KINDS[:-1]:
        if kind in kinds:
            return kind
    return "json"


_INPUT_KINDS = (
    ("video", re.compile(r"(^|_)video(_url|_urls|s)?$|^video_|_video_url$")),
    ("audio", re.compile(r"(^|_)audio(_url|_urls|_file)?$|^audio_|_audio_url$|speech_url")),
    ("image", re.compile(r"(^|_)image(_url|_urls|s)?$|^image_url|_image_url$|_image_urls$|^images?_|^input_image")),
    ("3d", re.compile(r"(glb|mesh|model)_url")),
)


def input_kind(input_schema: dict[str, Any]) -> str:
    """The media the endpoint needs: the kind of a *required* media field, else ``text``."""
    required = set(input_schema.get("required") or [])
    for kind, pattern in _INPUT_KINDS:
        if any(pattern.search(name) for name in required):
            return kind
    return "text"


def category(endpoint_id: str, input_schema: dict[str, Any], kind: str) -> str:
    """fal's category: named by the id when it names one, else from input and output kinds."""
    words = endpoint_id.lower().split("/")[1:]
    for word in reversed(words):  # the last word naming one wins: ".../text-to-video/fast"
        if word in _ID_CATEGORIES:
            return word
        if word in _ID_ALIASES:
            return _ID_ALIASES[word]
    joined = "/".join(words)
    source = input_kind(input_schema)
    if kind == "3d":
        return "image-to-3d" if source in ("image", "3d") else "text-to-3d"
    if kind == "video":
        return {"video": "video-to-video", "image": "image-to-video", "audio": "audio-to-video"}.get(source, "text-to-video")
    if kind == "audio":
        if source == "text":
            speech = re.search(r"tts|speech|voice|kokoro|dia|orpheus|chatterbox|elevenlabs|zonos|minimax-speech", joined)
            return "text-to-speech" if speech else "text-to-audio"
        return {"audio": "audio-to-audio", "video": "video-to-audio"}.get(source, "audio-to-audio")
    if kind == "image":
        return "text-to-image" if source == "text" else "image-to-image"
    if kind == "text":
        return {"audio": "speech-to-text", "image": "vision", "video": "vision"}.get(source, "llm")
    if re.search(r"train|trainer|lora-training|finetune", joined):
        return "training"
    return "vision" if source in ("image", "video") else "json"
