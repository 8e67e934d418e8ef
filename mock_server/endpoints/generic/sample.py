"""A value a JSON Schema accepts, chosen plainly: the schema's default, its first example or
enum member, else the smallest thing its type and bounds allow.

Used for the input a test (or a user reading ``fal-mock catalog show``) can send, and for the
output fields the output builder has no better rule for.  Deterministic: no randomness.
"""
from __future__ import annotations

import math
from typing import Any

from mock_server.endpoints.generic.schema_model import resolve

__all__ = ["sample_input", "sample_value"]

#: What string fields are filled with, by a word in their name (chosen).
_URL_SAMPLE = "https://example.com/input.png"
_STRING_BY_NAME = (
    ("url", _URL_SAMPLE),
    ("prompt", "a lighthouse in a storm"),
    ("text", "Hello from fal-mock."),
)


def _fits(value: Any, schema: dict[str, Any]) -> bool:
    """A cheap check that an example fits its schema's type and bounds (examples are prose-level
    hints in fal's schemas, not always valid)."""
    kind = schema.get("type")
    if "enum" in schema:
        return value in schema["enum"]
    if kind == "string":
        return isinstance(value, str) and schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", math.inf)
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "integer" and not isinstance(value, int)):
            return False
        return (schema.get("minimum", -math.inf) <= value <= schema.get("maximum", math.inf)
                and value > schema.get("exclusiveMinimum", -math.inf) and value < schema.get("exclusiveMaximum", math.inf))
    if kind == "boolean":
        return isinstance(value, bool)
    return False  # arrays and objects are built, not copied from examples


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """1, moved into the schema's bounds."""
    bound = lambda key: schema.get(key) if isinstance(schema.get(key), (int, float)) and not isinstance(schema.get(key), bool) else None  # noqa: E731
    low, high, ex_low, ex_high = bound("minimum"), bound("maximum"), bound("exclusiveMinimum"), bound("exclusiveMaximum")
    value: float = 1
    if low is not None and low > value:
        value = low
    if high is not None and high < value:
        value = high
    if ex_low is not None and value <= ex_low:
        value = math.floor(ex_low) + 1 if integer else ex_low + (abs(ex_low) or 1) / 2
    if ex_high is not None and value >= ex_high:
        value = math.ceil(ex_high) - 1 if integer else ex_high - (abs(ex_high) or 1) / 2
    if integer:
        return int(math.ceil(value) if high is None or math.ceil(value) <= high else math.floor(value))
    return float(value)


def sample_value(schema: Any, defs: dict[str, Any], name: str = "", required_only: bool = True, depth: int = 0) -> Any:
    """A value ``schema`` accepts (see the module doc); ``name`` is the field's name, a hint
    for strings (a ``*_url`` gets a URL, a ``prompt`` a sentence)."""
    _, schema = resolve(schema, defs)
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        members = [v for v in enum if v is not None]
        return members[0] if members else None
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if resolve(o, defs)[1].get("type") != "null"]
            return sample_value(usable[0], defs, name, required_only, depth) if usable else None
    examples = schema.get("examples")
    if isinstance(examples, list) and examples and _fits(examples[0], schema):
        return examples[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "string":
        text = next((s for word, s in _STRING_BY_NAME if word in name.lower()), "fal-mock")
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if len(text) < low:
            text = text + "x" * (low - len(text))
        return text[:high] if isinstance(high, int) else text
    if kind == "integer":
        return _number(schema, True)
    if kind == "number":
        return _number(schema, False)
    if kind == "boolean":
        return False
    if kind == "array":
        items = schema.get("items")
        count = max(1, schema.get("minItems", 0))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        if depth > 8 or not isinstance(items, dict):
            return []
        singular = name[:-1] if name.endswith("s") else name
        return [sample_value(items, defs, singular, required_only, depth + 1) for _ in range(count)]
    if kind == "object" or "properties" in schema:
        return sample_object(schema, defs, required_only, depth + 1)
    return None


def sample_object(schema: dict[str, Any], defs: dict[str, Any], required_only: bool = True, depth: int = 0) -> dict[str, Any]:
    """An object with the schema's required properties (all, when not ``required_only``)."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    if depth > 8:
        return {}
    return {name: sample_value(spec, defs, name, required_only, depth)
            for name, spec in properties.items() if name in required or not required_only}


def sample_input(schema: dict[str, Any]) -> dict[str, Any]:
    """A minimal valid input for an endpoint's input schema: its required fields only."""
    defs = schema.get("$defs") or {}
    _, root = resolve(schema, defs)
    return sample_object(root, defs)
