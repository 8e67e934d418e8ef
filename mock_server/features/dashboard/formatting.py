"""How the dashboard writes values down: times, cut strings, parameters, JSON, ``data:`` URIs.

Plain text only: the templates escape what these return (Jinja2's autoescaping)."""
from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson

#: Strings in the detail view's JSON longer than this are cut (data URIs can be megabytes).
SHOW_CHARS = 300


def clock_text(at: float | None) -> tuple[str, str]:
    """(``HH:MM:SS.mmm``, ISO 8601 in UTC) of a time on the mock's clock; empty strings for None."""
    if at is None:
        return "", ""
    stamp = datetime.fromtimestamp(at, timezone.utc)
    return stamp.strftime("%H:%M:%S.%f")[:-3], stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def param_text(value: Any) -> str:
    """A parameter's value as shown in a row: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return str(value)


def data_uri(url: str) -> tuple[str, bytes | None]:
    """(media type, bytes or None when malformed) of a ``data:`` URI."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        return "", None
    parts = header.split(";")
    mime = parts[0].strip().lower() or "text/plain"
    try:
        if any(p.strip().lower() == "base64" for p in parts[1:]):
            return mime, base64.b64decode(unquote_to_bytes(payload), validate=False)
        return mime, unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return mime, None


def json_text(value: Any) -> str:
    """``value`` as indented JSON, every string longer than :data:`SHOW_CHARS` cut."""
    def cut(item: Any) -> Any:
        if isinstance(item, str) and len(item) > SHOW_CHARS:
            return f"{item[:SHOW_CHARS]}… ({len(item)} characters)"
        if isinstance(item, dict):
            return {k: cut(v) for k, v in item.items()}
        if isinstance(item, list):
            return [cut(v) for v in item]
        return item

    return orjson.dumps(cut(value), option=orjson.OPT_INDENT_2).decode()
