"""Helpers of the contract suite that do not depend on pytest's state (unit-tested in
tests/test_contract_tooling.py): the image budget, the output/error contract checks,
the response scrubber and JSON shapes.

Everything here asserts the *contract* (types, relations, documented fields), never a
value only the mock produces.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

APP = "fal-ai/wan-25-preview/image-to-image"
PRICE_PER_IMAGE_USD = 0.05  # fal model page / llms.txt: "$0.05 per image"

# --------------------------------------------------------------------------- budget


class BudgetExceeded(Exception):
    """Spending ``n`` more images would exceed ``--max-images``."""


@dataclass
class ImageBudget:
    """Session-wide counter of images a run may make the service generate.

    ``limit=None`` (the mock target) counts but never refuses.  A test ``reserve``s the
    images it could cause *before* sending anything; a canary that cancelled in time
    ``refund``s them afterwards.
    """

    limit: int | None
    spent: int = 0
    log: list[tuple[str, int]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def remaining(self) -> int | None:
        return None if self.limit is None else self.limit - self.spent

    def reserve(self, n: int, what: str) -> None:
        if n < 0:
            raise ValueError("n must be >= 0")
        if self.limit is not None and self.spent + n > self.limit:
            message = (
                f"image budget: {what} may generate {n} image(s) but only {self.limit - self.spent} of "
                f"--max-images {self.limit} remain ({self.spent} spent); raise --max-images to run it"
            )
            self.refused.append(what)
            raise BudgetExceeded(message)
        self.spent += n
        self.log.append((what, n))

    def refund(self, n: int, what: str) -> None:
        n = min(n, self.spent)
        self.spent -= n
        self.log.append((what, -n))


# --------------------------------------------------------------------------- contract checks

_MIME_OF_FORMAT = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp", "GIF": "image/gif"}
_INT = int


def _is_int(value: Any) -> bool:
    return isinstance(value, _INT) and not isinstance(value, bool)


def check_output(body: Any, *, num_images: int | None = None, prompt: str | None = None) -> list[str]:
    """Problems with a 200 body against the output contract (WAN25.md §1.2); [] when fine.

    Checked: ``images`` a list of ImageFile objects (``url`` str required; ``content_type``,
    ``file_name`` str|null; ``file_size``, ``width``, ``height`` int|null and positive),
    ``seeds`` a list of int, one per image ("the seeds used for each generated image"),
    ``actual_prompt`` str|null, equal to the prompt when given ("the original prompt").
    ``num_images``: the number of images asked for.
    """
    problems: list[str] = []
    if not isinstance(body, dict):
        return [f"body is {type(body).__name__}, expected an object"]
    images = body.get("images")
    if not isinstance(images, list):
        problems.append(f"images is {type(images).__name__}, expected a list")
        images = []
    for i, image in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(image, dict):
            problems.append(f"{where} is not an object")
            continue
        if not isinstance(image.get("url"), str) or not image["url"]:
            problems.append(f"{where}.url missing or not a non-empty string")
        for key in ("content_type", "file_name"):
            if image.get(key) is not None and not isinstance(image[key], str):
                problems.append(f"{where}.{key} is {type(image[key]).__name__}, expected str|null")
        for key in ("file_size", "width", "height"):
            value = image.get(key)
            if value is not None and (not _is_int(value) or value <= 0):
                problems.append(f"{where}.{key} = {value!r}, expected a positive int|null")
        if "file_data" in image and image["file_data"] is not None:
            problems.append(f"{where}.file_data is serialised (fal excludes it)")
    if num_images is not None and len(images) != num_images:
        problems.append(f"{len(images)} images for num_images={num_images}")
    seeds = body.get("seeds")
    if not isinstance(seeds, list) or not all(_is_int(s) for s in seeds):
        problems.append(f"seeds = {seeds!r}, expected a list of int")
    elif len(seeds) != len(images):
        problems.append(f"{len(seeds)} seeds for {len(images)} images (one seed per generated image)")
    if "actual_prompt" in body and body["actual_prompt"] is not None:
        if not isinstance(body["actual_prompt"], str):
            problems.append("actual_prompt is not a string")
        elif prompt is not None and body["actual_prompt"] != prompt:
            problems.append("actual_prompt differs from the prompt (documented: the original prompt)")
    return problems


def check_image_file(meta: dict, data: bytes, header_type: str | None = None) -> list[str]:
    """Problems between an ImageFile's metadata and the downloaded bytes; [] when they agree.

    Decodes with Pillow; ``width``/``height``/``file_size``/``content_type`` must match
    when the metadata carries them (they are nullable in the schema).
    """
    from PIL import Image, UnidentifiedImageError

    problems: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt, (width, height) = image.format, image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return [f"not a decodable image ({exc})"]
    mime = _MIME_OF_FORMAT.get(fmt or "", f"image/{(fmt or '?').lower()}")
    if meta.get("width") is not None and meta["width"] != width:
        problems.append(f"width {meta['width']} but the file is {width} wide")
    if meta.get("height") is not None and meta["height"] != height:
        problems.append(f"height {meta['height']} but the file is {height} high")
    if meta.get("file_size") is not None and meta["file_size"] != len(data):
        problems.append(f"file_size {meta['file_size']} but {len(data)} bytes were served")
    if meta.get("content_type") is not None and meta["content_type"] != mime:
        problems.append(f"content_type {meta['content_type']} but the file is {fmt}")
    if header_type is not None and meta.get("content_type") is not None:
        served = header_type.split(";")[0].strip().lower()
        if served not in (meta["content_type"], "application/octet-stream", "binary/octet-stream"):
            problems.append(f"served as {served}, metadata says {meta['content_type']}")
    return problems


def check_error_detail(body: Any) -> list[str]:
    """Problems with a schema/model 422 body: ``{"detail": [{loc: [str|int...], msg: str, type: str}, ...]}``."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list) or not body["detail"]:
        return [f"422 body is not {{'detail': [non-empty list]}}: {str(body)[:200]}"]
    problems = []
    for i, item in enumerate(body["detail"]):
        if not isinstance(item, dict):
            problems.append(f"detail[{i}] is not an object")
            continue
        loc = item.get("loc")
        if not isinstance(loc, list) or not all(isinstance(p, str) or _is_int(p) for p in loc):
            problems.append(f"detail[{i}].loc = {loc!r}, expected a list of str|int")
        for key in ("msg", "type"):
            if not isinstance(item.get(key), str):
                problems.append(f"detail[{i}].{key} missing or not a string")
    return problems


class _Any:
    """Matches any single ``loc`` element (e.g. pydantic's ``literal[...]`` branch name)."""

    def __repr__(self) -> str:
        return "*"


ANY = _Any()


def loc_matches(expected: Sequence[Any], actual: Sequence[Any]) -> bool:
    return len(expected) == len(actual) and all(e is ANY or e == a for e, a in zip(expected, actual))


def error_pairs(body: Any) -> list[tuple[str, tuple]]:
    """``[(type, loc), ...]`` of a 422 body (empty when it has no such list)."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list):
        return []
    return [(str(d.get("type")), tuple(d.get("loc") or ())) for d in body["detail"] if isinstance(d, dict)]


def errors_agree(expected: Iterable[tuple[str, Sequence[Any]]], body: Any) -> bool:
    """Every expected ``(type, loc)`` is among the body's errors."""
    pairs = error_pairs(body)
    return all(any(t == et and loc_matches(eloc, loc) for t, loc in pairs) for et, eloc in expected)


def format_pairs(pairs: Iterable[tuple[str, Sequence[Any]]]) -> str:
    """``type @ [loc, ...]; ...``; long loc parts (pydantic's ``literal[...]``) are shortened."""

    def part(p: Any) -> str:
        if p is ANY:
            return "*"
        if isinstance(p, str) and len(p) > 24:
            return repr(p[:12] + "...")
        return repr(p)

    return "; ".join(f"{t} @ [{', '.join(part(p) for p in loc)}]" for t, loc in pairs) or "-"


# --------------------------------------------------------------------------- scrubbing

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_URL = re.compile(r"^(https?|wss?|data):", re.I)
_SECRET_KEYS = re.compile(r"(key|token|secret|authorization|password|signature|cookie)", re.I)
_LONG = 200


def scrub(value: Any, secrets: Sequence[str] = ()) -> Any:
    """A copy of a JSON value safe to commit, with the same shape.

    URLs (http, https, ws, data) become ``"<url>"``, request ids ``"<uuid>"``, values under
    key/token/secret-like names ``"<redacted>"``, any string containing one of ``secrets``
    ``"<redacted>"``, strings over 200 characters are cut (``"xxx...<n chars>"``).  Types,
    keys and list lengths are kept.
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if isinstance(key, str) and _SECRET_KEYS.search(key) and isinstance(item, str):
                out[key] = "<redacted>"
            else:
                out[key] = scrub(item, secrets)
        return out
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, str):
        if any(s and s in value for s in secrets):
            return "<redacted>"
        if _URL.match(value.strip()):
            return "<url>"
        value = _UUID.sub("<uuid>", value)
        if len(value) > _LONG:
            return value[:40] + f"...<{len(value)} chars>"
        return value
    return value


# --------------------------------------------------------------------------- shapes


def shape(value: Any) -> Any:
    """The JSON shape of a value: objects keep keys, lists merge their items' shapes,
    scalars become their type name (``str``, ``int``, ``float``, ``bool``, ``null``)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: Any = None
        for item in value:
            merged = _merge(merged, shape(item))
        return [merged] if value else []
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    return "str"


def _merge(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return {k: _merge(a.get(k), b.get(k)) if k in a and k in b else (a.get(k) if k in a else b[k]) for k in keys}
    if isinstance(a, list) and isinstance(b, list):
        if not a or not b:
            return a or b
        return [_merge(a[0], b[0])]
    if a == b:
        return a
    names = set(_names(a)) | set(_names(b))
    return "|".join(sorted(names))


def _names(s: Any) -> list[str]:
    if isinstance(s, str):
        return s.split("|")
    return ["object" if isinstance(s, dict) else "list"]


def shape_diff(recorded: Any, mock: Any, path: str = "$") -> list[str]:
    """Differences between two shapes, one line each (``path: recorded X, mock Y``)."""
    if isinstance(recorded, dict) and isinstance(mock, dict):
        lines = []
        for key in recorded:
            if key not in mock:
                lines.append(f"{path}.{key}: only in recorded ({_show(recorded[key])})")
            else:
                lines += shape_diff(recorded[key], mock[key], f"{path}.{key}")
        lines += [f"{path}.{key}: only in mock ({_show(mock[key])})" for key in mock if key not in recorded]
        return lines
    if isinstance(recorded, list) and isinstance(mock, list):
        if recorded and mock:
            return shape_diff(recorded[0], mock[0], f"{path}[]")
        return []  # an empty list carries no item shape
    if recorded != mock:
        return [f"{path}: recorded {_show(recorded)}, mock {_show(mock)}"]
    return []


def _show(s: Any) -> str:
    if isinstance(s, dict):
        return "object{" + ",".join(s) + "}"
    if isinstance(s, list):
        return "list"
    return str(s)


def verify_images(download: Any, body: dict) -> list[str]:
    """Download every ``images[].url`` with ``download`` (an httpx.Client) and check each
    file against its metadata (:func:`check_image_file`); problems as strings."""
    problems: list[str] = []
    for i, image in enumerate(body.get("images") or []):
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str):
            continue
        if url.startswith("data:"):
            import base64

            header, _, payload = url.partition(",")
            data = base64.b64decode(payload) if header.endswith(";base64") else payload.encode()
            served = header[5:].split(";")[0] or None
        else:
            response = download.get(url)
            if response.status_code != 200:
                problems.append(f"images[{i}]: GET answered {response.status_code}")
                continue
            data, served = response.content, response.headers.get("content-type")
        problems += [f"images[{i}]: {p}" for p in check_image_file(image, data, served)]
    return problems
