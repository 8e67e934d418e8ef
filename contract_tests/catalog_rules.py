"""The free 422 checks of any catalogued endpoint, derived from its catalogue input schema
(issue 16, point 7; docs/catalog.md): for each field the schema constrains,

* ``<field>_missing``: a required field left out -> ``missing``;
* ``<field>_wrong_type``: a value of another JSON type -> pydantic's ``string_type``,
  ``int_parsing``/``float_parsing``, ``bool_parsing``, ``list_type``, ``model_attributes_type``;
* ``<field>_bad_enum``: a value outside ``enum`` -> ``literal_error`` (or ``enum``);
* ``<field>_below_minimum`` / ``_above_maximum`` / ``_too_short`` / ``_too_long`` (and the
  ``minItems``/``maxItems`` ones) where the schema states the limit -> ``greater_than_equal``,
  ``less_than_equal``, ``string_too_short``, ``too_long``...

Error types are pydantic v2's, as FastAPI returns them (the wording of
mock_server/endpoints/fal_app/validation.py); a field whose JSON type is ``number`` in fal's
TypeScript types may be an ``int`` or a ``float`` model field, so both parsing errors agree.

Why these cost nothing on fal: every body built for a rule about field F also leaves out a
*different* required field (the "anchor"), so fal answers 422 whatever it thinks of F, and the
rule checks that F's expected error is among the 422's errors (pydantic reports them all).
A rule with no possible anchor (the endpoint has no other required field) is ``may_generate``:
the suite treats it as costly on live.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WRONG_TYPE: dict[str, tuple[Any, frozenset[str]]] = {
    "string": (12345, frozenset({"string_type"})),
    "integer": ("not-a-number", frozenset({"int_parsing", "float_parsing"})),
    "number": ("not-a-number", frozenset({"int_parsing", "float_parsing"})),
    "boolean": ("maybe", frozenset({"bool_parsing"})),
    "array": ("not-a-list", frozenset({"list_type"})),
    "object": ("not-an-object", frozenset({"model_attributes_type", "dict_type"})),
}
ENUM_ERRORS = frozenset({"literal_error", "enum"})


@dataclass(frozen=True)
class SchemaRule:
    endpoint_id: str
    rule: str  # "prompt_missing"
    body: dict
    types: frozenset[str]  # any of these error types at ...
    loc: tuple  # ... this loc agrees
    may_generate: bool  # no anchor: a service that accepts the value would run the model

    @property
    def expected(self) -> str:
        return f"422 {'|'.join(sorted(self.types))} @ {list(self.loc)}"

    def agrees(self, status: int, body: Any) -> bool:
        if status != 422 or not isinstance(body, dict) or not isinstance(body.get("detail"), list):
            return False
        return any(isinstance(d, dict) and d.get("type") in self.types and tuple(d.get("loc") or ()) == self.loc
                   for d in body["detail"])


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return root.get("$defs", {}).get(ref[len("#/$defs/"):], {})
    return schema


def _plain(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any] | None:
    """The one schema a field's value must match: itself, its ``$ref`` target, or T of a
    nullable ``anyOf [T, null]``; ``None`` for real unions (their errors carry branch names)."""
    branches = schema.get("anyOf")
    if branches is None:
        return _resolve(schema, root)
    others = [b for b in branches if b.get("type") != "null"]
    if len(others) == 1:
        return _resolve(others[0], root)
    return None


def _type(schema: dict[str, Any]) -> str | None:
    if "properties" in schema and "type" not in schema:
        return "object"
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def valid_value(name: str, schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
    """A value the schema accepts (its default, its first enum value, or a small typed value)."""
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    plain = _plain(schema, root)
    if plain is None:
        plain = _resolve(schema["anyOf"][0], root)
    if plain.get("enum"):
        return plain["enum"][0]
    kind = _type(plain)
    if kind == "string":
        text = "https://example.com/input.png" if name.endswith(("url", "urls")) else "a red fox in the snow"
        return text[: plain["maxLength"]] if "maxLength" in plain else text.ljust(plain.get("minLength", 0), "x")
    if kind in ("integer", "number"):
        low = plain.get("minimum", plain.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in plain else 1)
        return int(low) if kind == "integer" else float(low)
    if kind == "boolean":
        return False
    if kind == "array":
        item = valid_value(name, plain.get("items") or {"type": "string"}, root, depth + 1)
        return [item] * max(1, plain.get("minItems", 1))
    if kind == "object" and depth < 4:
        return {k: valid_value(k, v, root, depth + 1) for k, v in (plain.get("properties") or {}).items()
                if k in (plain.get("required") or [])}
    return {}


def _mutations(name: str, schema: dict[str, Any], root: dict[str, Any]) -> list[tuple[str, Any, frozenset[str]]]:
    """(rule suffix, bad value, expected error types) for one field."""
    plain = _plain(schema, root)
    if plain is None:
        return []
    kind = _type(plain)
    found: list[tuple[str, Any, frozenset[str]]] = []
    if kind in WRONG_TYPE:
        value, types = WRONG_TYPE[kind]
        found.append(("wrong_type", value, types))
    if plain.get("enum") and kind in ("string", "integer", "number"):
        values = plain["enum"]
        bad = "not-one-of-the-options" if kind == "string" else max(v for v in values if isinstance(v, (int, float))) + 1001
        found.append(("bad_enum", bad, ENUM_ERRORS))
    if kind in ("integer", "number"):
        step = 1 if kind == "integer" else 0.5
        cast = int if kind == "integer" else float
        if "minimum" in plain:
            found.append(("below_minimum", cast(plain["minimum"] - step), frozenset({"greater_than_equal"})))
        if "exclusiveMinimum" in plain:
            found.append(("at_exclusive_minimum", cast(plain["exclusiveMinimum"]), frozenset({"greater_than"})))
        if "maximum" in plain:
            found.append(("above_maximum", cast(plain["maximum"] + step), frozenset({"less_than_equal"})))
        if "exclusiveMaximum" in plain:
            found.append(("at_exclusive_maximum", cast(plain["exclusiveMaximum"]), frozenset({"less_than"})))
    if kind == "string":
        if plain.get("minLength", 0) >= 1:
            found.append(("too_short", "x" * (plain["minLength"] - 1), frozenset({"string_too_short"})))
        if "maxLength" in plain:
            found.append(("too_long", "x" * (plain["maxLength"] + 1), frozenset({"string_too_long"})))
    if kind == "array":
        item = valid_value(name, plain.get("items") or {"type": "string"}, root)
        if plain.get("minItems", 0) >= 1:
            found.append(("too_few_items", [item] * (plain["minItems"] - 1), frozenset({"too_short"})))
        if "maxItems" in plain:
            found.append(("too_many_items", [item] * (plain["maxItems"] + 1), frozenset({"too_long"})))
    return found


def derive_rules(endpoint_id: str, input_schema: dict[str, Any]) -> list[SchemaRule]:
    """Every free 422 rule the schema implies, in field order."""
    properties: dict[str, Any] = input_schema.get("properties") or {}
    required = [name for name in input_schema.get("required") or [] if name in properties]
    base = {name: valid_value(name, properties[name], input_schema) for name in required}

    def anchored(field: str, value: Any) -> tuple[dict, bool]:
        anchor = next((name for name in required if name != field), None)
        body = {k: v for k, v in base.items() if k != anchor}
        body[field] = value
        return body, anchor is None

    rules: list[SchemaRule] = []
    for name in required:
        body = {k: v for k, v in base.items() if k != name}
        rules.append(SchemaRule(endpoint_id, f"{name}_missing", body, frozenset({"missing"}), ("body", name), False))
    for name, schema in properties.items():
        for suffix, value, types in _mutations(name, schema, input_schema):
            body, may_generate = anchored(name, value)
            rules.append(SchemaRule(endpoint_id, f"{name}_{suffix}", body, types, ("body", name), may_generate))
    return rules
