"""Small catalogue entries for the generic endpoint's tests (fal-shaped schemas, trimmed), and a
catalogue holding just them (the same interface as ``mock_server.endpoints.catalog.Catalog``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_FILE = {"type": "object", "title": "File", "properties": {
    "url": {"type": "string"}, "content_type": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "file_name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "file_size": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "file_data": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["url"]}
_IMAGE = {"type": "object", "title": "Image", "properties": {
    "url": {"type": "string"}, "width": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "height": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    "content_type": {"type": "string", "default": "image/jpeg"},
    "file_name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    "file_size": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}, "required": ["url"]}

# fal-ai/flux/dev, trimmed from its OpenAPI document (FluxDevInput / FluxDevOutput)
FLUX_DEV_INPUT = {
    "type": "object", "title": "BaseInput",
    "properties": {
        "prompt": {"type": "string", "title": "Prompt", "examples": ["a cat"]},
        "image_size": {"anyOf": [{"$ref": "#/$defs/ImageSize"}, {"type": "string", "enum": [
            "square_hd", "square", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]}],
            "default": "landscape_4_3"},
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 50, "default": 28},
        "seed": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "guidance_scale": {"type": "number", "minimum": 1, "maximum": 20, "default": 3.5},
        "sync_mode": {"type": "boolean", "default": False},
        "num_images": {"type": "integer", "minimum": 1, "maximum": 4, "default": 1},
        "enable_safety_checker": {"type": "boolean", "default": True},
        "output_format": {"type": "string", "enum": ["jpeg", "png"], "default": "jpeg"},
    },
    "required": ["prompt"],
    "$defs": {"ImageSize": {"type": "object", "title": "ImageSize", "properties": {
        "width": {"type": "integer", "default": 512, "exclusiveMinimum": 0, "maximum": 14142},
        "height": {"type": "integer", "default": 512, "exclusiveMinimum": 0, "maximum": 14142}}}},
}
FLUX_DEV_OUTPUT = {
    "type": "object", "title": "Output",
    "properties": {
        "images": {"type": "array", "items": {"$ref": "#/$defs/Image"}},
        "timings": {"type": "object", "additionalProperties": {"type": "number"}},
        "seed": {"type": "integer"},
        "has_nsfw_concepts": {"type": "array", "items": {"type": "boolean"}},
        "prompt": {"type": "string"},
    },
    "required": ["images", "timings", "seed", "has_nsfw_concepts", "prompt"],
    "$defs": {"Image": _IMAGE},
}
# a video endpoint whose video is a plain File (most of fal's are, issue 16)
KLING_INPUT = {
    "type": "object", "title": "TextToVideoRequest",
    "properties": {
        "prompt": {"type": "string", "maxLength": 2500},
        "duration": {"type": "string", "enum": ["5", "10"], "default": "5"},
        "aspect_ratio": {"type": "string", "enum": ["16:9", "9:16", "1:1"], "default": "16:9"},
        "negative_prompt": {"type": "string", "default": "blur, distort, and low quality"},
        "cfg_scale": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
    },
    "required": ["prompt"],
}
KLING_OUTPUT = {"type": "object", "title": "TextToVideoOutput", "properties": {"video": {"$ref": "#/$defs/File"}},
                "required": ["video"], "$defs": {"File": _FILE}}
TTS_INPUT = {"type": "object", "title": "TTSInput", "properties": {
    "text": {"type": "string", "minLength": 1}, "voice": {"type": "string", "enum": ["Aria", "Roger"], "default": "Aria"}},
    "required": ["text"]}
TTS_OUTPUT = {"type": "object", "title": "TTSOutput", "properties": {"audio": {"$ref": "#/$defs/File"}},
              "required": ["audio"], "$defs": {"File": _FILE}}
TRELLIS_INPUT = {"type": "object", "title": "InputModel", "properties": {
    "image_url": {"type": "string"}, "seed": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}, "required": ["image_url"]}
TRELLIS_OUTPUT = {"type": "object", "title": "ObjectOutput", "properties": {
    "model_mesh": {"$ref": "#/$defs/File"}, "timings": {"type": "object"}}, "required": ["model_mesh", "timings"],
    "$defs": {"File": _FILE}}
LLM_INPUT = {"type": "object", "title": "ChatInput", "properties": {
    "prompt": {"type": "string"}, "model": {"type": "string", "enum": ["google/gemini-flash-1.5", "anthropic/claude-3.5-sonnet"],
                                            "default": "google/gemini-flash-1.5"},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2}}, "required": ["prompt"]}
LLM_OUTPUT = {"type": "object", "title": "ChatOutput", "properties": {
    "output": {"type": "string"}, "partial": {"type": "boolean", "default": False},
    "error": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "required": ["output"]}


@dataclass(frozen=True, slots=True)
class Entry:
    """The catalogue's ``CatalogEntry`` fields (mock_server.endpoints.catalog)."""

    endpoint_id: str
    category: str
    output_kind: str
    input_schema: dict
    output_schema: dict
    source: str = "test"
    title: str = ""


ENTRIES = {
    "fal-ai/flux/dev": Entry("fal-ai/flux/dev", "text-to-image", "image", FLUX_DEV_INPUT, FLUX_DEV_OUTPUT),
    "fal-ai/kling-video/v2/master/text-to-video": Entry(
        "fal-ai/kling-video/v2/master/text-to-video", "text-to-video", "video", KLING_INPUT, KLING_OUTPUT),
    "fal-ai/elevenlabs/tts/turbo-v2.5": Entry("fal-ai/elevenlabs/tts/turbo-v2.5", "text-to-speech", "audio",
                                              TTS_INPUT, TTS_OUTPUT),
    "fal-ai/trellis": Entry("fal-ai/trellis", "image-to-3d", "3d", TRELLIS_INPUT, TRELLIS_OUTPUT),
    "fal-ai/any-llm": Entry("fal-ai/any-llm", "llm", "text", LLM_INPUT, LLM_OUTPUT),
}


class SmallCatalog:
    """A catalogue of :data:`ENTRIES` (or the given ones); counts its look-ups."""

    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries = dict(ENTRIES if entries is None else entries)
        self.lookups = 0

    def ids(self) -> list[str]:
        return sorted(self.entries)

    def get(self, endpoint_id: str) -> Entry | None:
        self.lookups += 1
        return self.entries.get(endpoint_id)

    def search(self, words: str) -> list[str]:
        return [i for i in self.ids() if words in i]

    def openapi(self, endpoint_id: str) -> dict[str, Any] | None:
        entry = self.entries.get(endpoint_id)
        return None if entry is None else {"openapi": "3.0.4", "info": {"title": endpoint_id},
                                           "components": {"schemas": {"Input": entry.input_schema}}}
