"""``fal-ai/wan-25-preview/image-to-image``: Wan 2.5 image editing, emulated.

``parse`` validates like a fal (FastAPI + pydantic v2) app with the chosen profile's
model; ``produce`` reads up to two input images, renders one placeholder PNG per
requested image and answers fal's output body.  Facts cite WAN25.md sections.

Rules the sources leave open, chosen here (WAN25.md §7):

- seeds: with ``seed`` given, image *i* gets ``seed + i``; without, a random base in
  ``[0, 2**31 - 1]`` (the upstream seed range, WAN25.md §4) is drawn at parse time so log
  lines and output agree, then the same ``+ i`` rule.  Unverified.
- output size: the preset table or the custom object as given (WAN25.md §2); no upstream
  rescaling into 768²..1280².
- published profile: a prompt over 2000 / negative prompt over 500 characters is cut to
  that length (upstream DashScope truncates, WAN25.md §3.1), with a log note; an empty
  ``image_urls`` fails at produce time with a ``FieldException``-style 422 (WAN25.md §6 rule 4).
"""
from __future__ import annotations

import asyncio
import functools
import json
import random
from typing import Any

import orjson

from mock_server.endpoints.wan25._rules import (
    ENDPOINT_ID,
    LIMITS,
    NEGATIVE_PROMPT_MAX_CHARS,
    PROFILES,
    PROMPT_MAX_CHARS,
    Profile,
    quick_input,
)
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.endpoints.fal_app.cdn import cdn_file_name
from mock_server.endpoints.fal_app.inputs import MAX_INPUTS_READ, InputLimits, read_inputs
from mock_server.endpoints.fal_app.validation import decode_json_body, field_error_answer, validate_data

__all__ = ["Wan25ImageToImage", "output_file_name"]

#: Bodies up to this size keep their validation result, up to this many bodies (then the
#: memo starts afresh): a repeated body is validated once.
VALIDATED_BODY_MAX = 8 * 1024
VALIDATED_KEPT = 256
#: Upstream seed range (ComfyUI ``nodes_wan.py``, WAN25.md §4).
SEED_MAX = 2**31 - 1
_EMPTY_IMAGE_URLS_MSG = "At least one image URL is required."


def output_file_name(request_id: str, index: int) -> str:
    """The name of output image ``index`` in fal's CDN shape, stable for (request_id, index),
    so a re-render serves the same name and bytes."""
    return cdn_file_name(f"{request_id}/{index}", "png")


#: Of the image_urls a request does not use, this many characters' worth are kept (the
#: dashboard shows them as "ignored"); the rest, a data URI of megabytes say, are not held
#: for as long as the request is remembered.
UNUSED_URLS_KEPT = 4096


def _kept_urls(urls: list[str]) -> list[str]:
    """The used image_urls, then the unused ones while they fit in :data:`UNUSED_URLS_KEPT`."""
    kept, room = list(urls[:MAX_INPUTS_READ]), UNUSED_URLS_KEPT
    for url in urls[MAX_INPUTS_READ:]:
        if len(url) > room:
            break
        kept.append(url)
        room -= len(url)
    return kept


def _dumps(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:  # orjson refuses integers beyond 64 bits (an unbounded seed)
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


class Wan25ImageToImage(Endpoint):
    """The Wan 2.5 image-to-image endpoint.

    ``profile`` picks the validation model: ``"documented"`` (default; the limits the docs
    state are schema errors) or ``"published"`` (the published schema; over-long prompts
    are truncated instead).  The OpenAPI document is the published one either way.
    """

    endpoint_id = ENDPOINT_ID

    def __init__(self, profile: str = "documented") -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
        self.profile: Profile = profile  # type: ignore[assignment]
        self._rules = LIMITS[self.profile]
        self._limits = InputLimits()
        # body bytes -> validated input (or its 422): clients send the same body again and
        # again (test suites, retries, load tests), and validation is a pure function of it
        self._validated: dict[bytes, Any] = {}

    @functools.cached_property
    def input_model(self) -> type:
        """The profile's pydantic input model (pydantic loads on first use: start-up stays lean)."""
        from mock_server.endpoints.wan25._models import build_models

        return build_models(self.profile)[0]

    @functools.cached_property
    def _adapter(self):
        from pydantic import TypeAdapter

        return TypeAdapter(self.input_model)

    # -- parse ------------------------------------------------------------------------

    def parse(self, body: bytes) -> Parsed | Answer:
        """Validate ``body``; the accepted params are the input *as used* (see module doc).

        A plainly valid body is accepted without pydantic (``_wan25_rules.quick_input``);
        every other body is pydantic's to accept or to answer with fal's 422.  A body seen
        before is not validated again (its result is kept, :data:`VALIDATED_KEPT`)."""
        params = self._validated.get(body)
        if params is None:
            params = self._validate(body)
            if len(body) <= VALIDATED_BODY_MAX:
                if len(self._validated) >= VALIDATED_KEPT:
                    self._validated.clear()
                self._validated[body] = params
        if isinstance(params, Answer):
            return params
        try:
            return self._accept(params)  # per request: a missing seed is drawn afresh
        except Exception:  # never raise from parse (base.Endpoint contract)
            return Answer(500, b'{"detail":"Internal Server Error"}')

    def _validate(self, body: bytes) -> Any:
        """The validated input of ``body``, or the Answer refusing it (never mutated after)."""
        data = decode_json_body(body)
        if isinstance(data, Answer):
            return data
        params = quick_input(data, self._rules)
        return validate_data(data, self._adapter) if params is None else params

    def _accept(self, params: Any) -> Parsed:
        notes: list[str] = []
        update: dict[str, Any] = {}
        if self.profile == "published":
            if len(params.prompt) > PROMPT_MAX_CHARS:
                update["prompt"] = params.prompt[:PROMPT_MAX_CHARS]
                notes.append(f"prompt has {len(params.prompt)} characters; truncated to the first {PROMPT_MAX_CHARS}")
            negative = params.negative_prompt
            if negative is not None and len(negative) > NEGATIVE_PROMPT_MAX_CHARS:
                update["negative_prompt"] = negative[:NEGATIVE_PROMPT_MAX_CHARS]
                notes.append(f"negative_prompt has {len(negative)} characters; truncated to the first {NEGATIVE_PROMPT_MAX_CHARS}")
        if params.seed is None:
            update["seed"] = random.randint(0, SEED_MAX)
        count = len(params.image_urls)
        if count > MAX_INPUTS_READ:
            notes.append(f"Using the first {MAX_INPUTS_READ} of {count} image_urls; the rest are ignored")
            update["image_urls"] = _kept_urls(params.image_urls)
        if update:
            params = params.model_copy(update=update)
        return Parsed(params, notes)

    def processing_notes(self, params: Any) -> list[str]:
        """Log lines for IN_PROGRESS: input preparation, then one line per image."""
        width, height = params.size()
        inputs = min(len(params.image_urls), MAX_INPUTS_READ)
        lines = [f"Preparing {inputs} input image{'s' if inputs != 1 else ''}"]
        for i in range(params.num_images):
            lines.append(f"Generating image {i + 1}/{params.num_images} ({width}x{height}, seed {params.seed + i})")
        lines.append("Uploading results")
        return lines

    # -- produce ----------------------------------------------------------------------

    async def produce(self, params: Any, request_id: str, env: EndpointEnv) -> Answer:
        """Read inputs, render ``num_images`` placeholders, register them, answer the output."""
        if not params.image_urls:  # only reachable in the published profile
            return field_error_answer("image_urls", _EMPTY_IMAGE_URLS_MSG)
        from mock_server.endpoints.fal_app.rendering import render_placeholder  # Pillow loads on first use

        previews = await read_inputs(params.image_urls, env, self._limits)
        if isinstance(previews, Answer):
            return previews
        width, height = params.size()
        count = params.num_images
        seeds = [params.seed + i for i in range(count)]
        images = []
        for index, seed in enumerate(seeds):
            name = output_file_name(request_id, index)
            recipe = functools.partial(
                render_placeholder,
                seed=seed, index=index, count=count, width=width, height=height,
                prompt=params.prompt, inputs=tuple(previews),
            )
            data = await asyncio.to_thread(recipe)  # one image at a time: bounded memory
            env.files.add_rendered(name, recipe, "image/png", data)
            images.append({
                "url": env.file_url(name),
                "content_type": "image/png",
                "file_name": name,
                "file_size": len(data),
                "width": width,
                "height": height,
            })
        # fal meters an app's successful answers in x-fal-billable-units (recorded on fal.run
        # 200s: "1"); for an image endpoint, one unit per image is the honest default
        return Answer(200, _dumps({"images": images, "seeds": seeds, "actual_prompt": params.prompt}),
                      (("x-fal-billable-units", str(count)),))

    # -- schema -------------------------------------------------------------------------

    def openapi(self) -> dict[str, Any]:
        """fal's queue OpenAPI document for this endpoint (published schema)."""
        from mock_server.endpoints.wan25._openapi import build_openapi

        return build_openapi()

