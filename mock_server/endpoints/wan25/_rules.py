"""Wan 2.5 image-to-image input rules as plain data, and the quick accept that uses them.

The pydantic models (``_wan25_models``) decide every input and build fal's exact 422s,
but pydantic costs ~100 ms to import and build and ~5 µs per body.  Most bodies are
plainly valid: JSON strings, ints and bools of the right types within the limits.
:func:`quick_input` accepts exactly those, without pydantic, into a :class:`QuickInput`
with the same fields and methods the rest of the mock uses; anything else (a wrong type,
a limit crossed, a custom ``image_size`` object, ...) returns None and goes to pydantic.
So the verdict and the params are pydantic's for every body; ``tests/test_wan25_validation.py``
checks that with hypothesis, for both profiles.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from mock_server.endpoints.fal_app.sizes import IMAGE_SIZE_PRESETS  # noqa: F401 - Wan's preset table is fal's

ENDPOINT_ID = "fal-ai/wan-25-preview/image-to-image"

Profile = Literal["documented", "published"]
PROFILES: tuple[Profile, ...] = ("documented", "published")


#: Upstream (DashScope) limits the docs quote; the published schema only mentions them in
#: descriptions (WAN25.md §3.1 "Accepted by the schema", §5).
PROMPT_MAX_CHARS = 2000
NEGATIVE_PROMPT_MAX_CHARS = 500
NUM_IMAGES_MIN, NUM_IMAGES_MAX = 1, 4


@dataclass(frozen=True, slots=True)
class Limits:
    prompt_max: int | None
    negative_prompt_max: int | None
    image_urls_min: int | None
    size_bounds: dict[str, int]


LIMITS: dict[Profile, Limits] = {
    "documented": Limits(PROMPT_MAX_CHARS, NEGATIVE_PROMPT_MAX_CHARS, 1, {"ge": 384, "le": 5000}),
    # fal SDK ImageSize: gt=0, le=14142 (WAN25.md §2).
    "published": Limits(None, None, None, {"gt": 0, "le": 14142}),
}

# the input model's fields, in its (x-fal-order-properties) order
FIELDS = ("prompt", "image_urls", "negative_prompt", "image_size", "num_images", "seed", "enable_safety_checker")


class QuickInput:
    """An input accepted without pydantic: the same fields, ``size()``, ``model_dump()``,
    ``model_dump_json()`` and ``model_copy(update=)`` as the pydantic input model."""

    __slots__ = FIELDS

    def __init__(self, prompt: str, image_urls: list[str], negative_prompt: str | None, image_size: str,
                 num_images: int, seed: int | None, enable_safety_checker: bool) -> None:
        self.prompt = prompt
        self.image_urls = image_urls
        self.negative_prompt = negative_prompt
        self.image_size = image_size
        self.num_images = num_images
        self.seed = seed
        self.enable_safety_checker = enable_safety_checker

    def size(self) -> tuple[int, int]:
        return IMAGE_SIZE_PRESETS[self.image_size]

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        """Every field, as pydantic's ``model_dump`` (the values are JSON-native: any mode)."""
        return {name: getattr(self, name) for name in FIELDS} | {"image_urls": list(self.image_urls)}

    def model_dump_json(self) -> str:
        return orjson.dumps(self.model_dump()).decode()

    def model_copy(self, update: dict[str, Any]) -> "QuickInput":
        return QuickInput(**(self.model_dump() | update))

    def __repr__(self) -> str:
        return f"QuickInput({', '.join(f'{name}={getattr(self, name)!r}' for name in FIELDS)})"


def quick_input(data: Any, limits: Limits) -> QuickInput | None:
    """``data`` (a decoded JSON body) as a :class:`QuickInput` when it is plainly valid
    under ``limits``, else None (pydantic decides).  Unknown keys are ignored, as the
    model does."""
    if type(data) is not dict:
        return None
    get = data.get
    prompt = get("prompt")
    if type(prompt) is not str or not prompt or not _unicode(prompt):
        return None
    if limits.prompt_max is not None and len(prompt) > limits.prompt_max:
        return None
    urls = get("image_urls")
    if type(urls) is not list or not urls:
        return None
    for url in urls:
        if type(url) is not str or not _unicode(url):
            return None
    negative = get("negative_prompt")
    if negative is not None:
        if type(negative) is not str or not _unicode(negative):
            return None
        if limits.negative_prompt_max is not None and len(negative) > limits.negative_prompt_max:
            return None
    size = get("image_size", "square")
    if type(size) is not str or size not in IMAGE_SIZE_PRESETS:
        return None
    count = get("num_images", 1)
    if type(count) is not int or not NUM_IMAGES_MIN <= count <= NUM_IMAGES_MAX:
        return None
    seed = get("seed")
    # beyond 64 bits a seed is pydantic's to take (orjson, which QuickInput dumps with, stops there)
    if seed is not None and (type(seed) is not int or not -(2**63) <= seed < 2**63):
        return None
    safety = get("enable_safety_checker", True)
    if type(safety) is not bool:
        return None
    return QuickInput(prompt, list(urls), negative, size, count, seed, safety)


def _unicode(text: str) -> bool:
    """Whether ``text`` is valid Unicode: pydantic refuses a lone surrogate (a ``\\ud800``
    escape that json.loads lets through) with ``string_unicode``."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
