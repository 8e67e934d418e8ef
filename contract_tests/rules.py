"""The validation rules of the ``documented`` profile, one :class:`Case` each.

``expect`` is what the documented profile answers: a list of ``(type, loc)`` pairs that
must all be among the 422's errors, or ``None`` for "accepted" (200 and an output).
``published`` is the same for the mock's ``published`` profile (the published schema,
WAN25.md §1.1/§3.1), shown in the drift report so a live run tells which of the two fal
follows.  ``may_generate``: the published profile accepts the input, so on the real
service this case may generate (and bill) an image; it is ``costly`` on live.

Expected types and locs are pydantic v2 + FastAPI wording (WAN25.md §3.1 table), with the
limits the docs state (prompt <= 2000, negative_prompt <= 500, >= 1 image URL, custom
sizes 384..5000).  Messages are never compared: fal's docs say not to parse ``msg``.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from contract_tests.support import ANY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

Pairs = list[tuple[str, tuple]]


@lru_cache(maxsize=1)
def samples():
    """``fixtures/make_samples.py`` loaded by path (fixtures/ is not a package)."""
    spec = importlib.util.spec_from_file_location("fal_contract_make_samples", FIXTURES / "make_samples.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=None)
def sample_uri(name: str, ext: str = "png") -> str:
    return samples().data_uri(name, ext)


PROMPT = "Turn the scene into a night under a thunderstorm"
SAME = "same"  # published profile answers like the documented one


def valid_body(**changes: Any) -> dict:
    """A small valid input: one 512x512 PNG as a data URI (no remote fetch needed)."""
    body: dict[str, Any] = {"prompt": PROMPT, "image_urls": [sample_uri("square")]}
    body.update(changes)
    return body


def without(key: str) -> dict:
    body = valid_body()
    del body[key]
    return body


@dataclass(frozen=True)
class Case:
    rule: str  # the pytest id and the drift report's row name
    body: Any  # a dict sent through fal_client.run, or raw bytes sent with httpx
    expect: Pairs | None  # documented profile; None = accepted
    published: Any = SAME  # Pairs | None | SAME
    may_generate: bool = False
    note: str = ""

    @property
    def raw(self) -> bool:
        return isinstance(self.body, bytes)

    def published_expect(self) -> Pairs | None:
        return self.expect if self.published == SAME else self.published


_B = "body"
_LITERAL = ("literal_error", (_B, "image_size", ANY))


def _cases() -> list[Case]:
    return [
        Case("prompt_missing", without("prompt"), [("missing", (_B, "prompt"))]),
        Case("prompt_empty", valid_body(prompt=""), [("string_too_short", (_B, "prompt"))]),
        Case("prompt_too_long_2001", valid_body(prompt="x" * 2001), [("string_too_long", (_B, "prompt"))],
             published=None, may_generate=True, note="published schema has no maxLength; upstream truncates"),
        Case("prompt_wrong_type", valid_body(prompt=5), [("string_type", (_B, "prompt"))]),
        Case("negative_prompt_too_long_501", valid_body(negative_prompt="x" * 501),
             [("string_too_long", (_B, "negative_prompt"))], published=None, may_generate=True),
        Case("image_urls_missing", without("image_urls"), [("missing", (_B, "image_urls"))]),
        Case("image_urls_empty", valid_body(image_urls=[]), [("too_short", (_B, "image_urls"))],
             published=[("value_error", (_B, "image_urls"))], may_generate=True,
             note="published schema has no minItems; the mock's published profile fails it at run time"),
        Case("image_urls_not_a_list", valid_body(image_urls=sample_uri("square")), [("list_type", (_B, "image_urls"))]),
        Case("image_urls_item_not_a_string", valid_body(image_urls=[1]), [("string_type", (_B, "image_urls", 0))]),
        Case("image_size_bad_enum", valid_body(image_size="huge"),
             [("model_attributes_type", (_B, "image_size", "ImageSize")), _LITERAL]),
        Case("image_size_width_383", valid_body(image_size={"width": 383, "height": 512}),
             [("greater_than_equal", (_B, "image_size", "ImageSize", "width"))],
             published=None, may_generate=True, note="published ImageSize: gt 0, le 14142"),
        Case("image_size_height_5001", valid_body(image_size={"width": 512, "height": 5001}),
             [("less_than_equal", (_B, "image_size", "ImageSize", "height"))],
             published=None, may_generate=True),
        Case("num_images_0", valid_body(num_images=0), [("greater_than_equal", (_B, "num_images"))]),
        Case("num_images_5", valid_body(num_images=5), [("less_than_equal", (_B, "num_images"))]),
        Case("num_images_2.5", valid_body(num_images=2.5), [("int_from_float", (_B, "num_images"))]),
        Case("num_images_abc", valid_body(num_images="abc"), [("int_parsing", (_B, "num_images"))]),
        Case("seed_abc", valid_body(seed="abc"), [("int_parsing", (_B, "seed"))]),
        Case("enable_safety_checker_maybe", valid_body(enable_safety_checker="maybe"),
             [("bool_parsing", (_B, "enable_safety_checker"))]),
        # fal_client always JSON-encodes a dict: these two go out with httpx to the same URL.
        Case("malformed_json", b'{"prompt": ', [("json_invalid", (_B, ANY))]),
        Case("empty_body", b"", [("missing", (_B,))]),
    ]


def _accepted() -> list[Case]:
    """Inputs the documented profile accepts (each generates one image)."""
    url = sample_uri("square")
    return [
        Case("image_urls_three", valid_body(image_urls=[url, sample_uri("landscape"), url]), None,
             note="docs: more than 2 URLs -> only the first 2 are used"),
        Case("seed_negative", valid_body(seed=-5), None, note="no bounds on seed in either profile"),
        Case("extra_unknown_field", valid_body(enable_prompt_expansion=True, foo="bar"), None,
             note="unknown fields are ignored (pydantic default)"),
        Case("image_size_missing_key", valid_body(image_size={"width": 768}), None,
             note="ImageSize.height defaults to 512 (fal SDK ImageSize, WAN25.md §2)"),
    ]


@dataclass(frozen=True)
class TypedCase:
    """An input image the model refuses with one of fal's typed errors (WAN25.md §3.2)."""

    rule: str
    image: str  # a data URI
    type: str
    ctx_keys: tuple[str, ...] = ()

    @property
    def expect(self) -> Pairs:
        return [(self.type, (_B, "image_urls", 0))]


def _typed() -> list[TypedCase]:
    return [
        TypedCase("image_too_small_256", sample_uri("small", "png"), "image_too_small", ("min_height", "min_width")),
        TypedCase("image_too_large_5200x400", sample_uri("too_wide", "jpg"), "image_too_large", ("max_height", "max_width")),
        TypedCase("image_load_error_not_an_image", "data:image/png;base64,bm90IGFuIGltYWdl", "image_load_error"),
    ]


RULES: list[Case] = _cases()
ACCEPTED: list[Case] = _accepted()
TYPED: list[TypedCase] = _typed()
