"""A pydantic model built from an endpoint's input JSON Schema: fal's own validation.

A fal app's input *is* a pydantic model (fal SDK ``fal.toolkit``; its OpenAPI document is
that model's ``model_json_schema()``), so building the model back from the schema with
pydantic's ``create_model`` gives pydantic's own errors, which
:mod:`mock_server.endpoints.fal_app.validation` turns into fal's 422 bytes.  Nothing here
validates by hand.

Mapping (JSON Schema as the catalogue keeps it, see ``mock_server.endpoints.catalog``):

- ``string``/``integer``/``number``/``boolean`` -> ``str``/``int``/``float``/``bool``;
  ``array`` -> ``list[items]``; an ``object`` with ``properties`` -> a nested model (named
  after its ``$defs`` key or title: pydantic names union branches after the class, and that
  name shows in error ``loc``s); an ``object`` without -> ``dict``;
- ``enum``/``const`` -> ``Literal``; ``anyOf``/``oneOf`` -> a union, ``{"type": "null"}``
  making it optional; ``allOf`` of one member -> that member;
- ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum`` -> ``ge``/``le``/``gt``/``lt``;
  ``minLength``/``maxLength``/``minItems``/``maxItems`` -> ``min_length``/``max_length``;
- a field not in ``required`` gets the schema's ``default``, else ``None`` (left unvalidated,
  as pydantic does with defaults: an explicit ``null`` for a non-nullable field is still an error);
- unknown fields are ignored (``extra='ignore'``, pydantic's and fal's default).

A ``$ref`` cycle is cut with ``Any`` at the point it closes (fal schemas have none known).
"""
from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = ["build_input_model", "resolve"]

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED = frozenset(dir(BaseModel))
_SCALARS = {"string": str, "integer": int, "number": float, "boolean": bool}


def resolve(schema: Any, defs: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """``(name, schema)`` with ``$ref`` (and a one-member ``allOf``) followed; name is the
    ``$defs`` key when a reference was followed."""
    name = None
    for _ in range(32):
        if not isinstance(schema, dict):
            return name, {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            schema = defs.get(name, {})
            continue
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1:
            schema = all_of[0]
            continue
        return name, schema
    return name, {}


def _model_name(text: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", text)
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
    return name if name[0].isalpha() else "M" + name


class _Builder:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.models: dict[str, Any] = {}
        self.building: set[str] = set()

    def annotation(self, schema: Any, hint: str) -> Any:
        """The type (constraints inside ``Annotated``) for ``schema``."""
        name, schema = resolve(schema, self.defs)
        if name is not None:
            if name in self.models:
                return self.models[name]
            if name in self.building:
                return Any
            self.building.add(name)
            try:
                built = self.models[name] = self._annotation(schema, name)
            finally:
                self.building.discard(name)
            return built
        return self._annotation(schema, hint)

    def _annotation(self, schema: dict[str, Any], hint: str) -> Any:
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            members = [v for v in schema["enum"] if v is not None]
            kind: Any = Literal[tuple(members)] if members else type(None)
            return Optional[kind] if None in schema["enum"] and members else kind
        if "const" in schema:
            return Literal[schema["const"]]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self._union(options, hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            return self._union([{**schema, "type": t} for t in kind], hint)
        if kind in _SCALARS:
            return self._constrained(_SCALARS[kind], schema)
        if kind == "null":
            return type(None)
        if kind == "array":
            items = schema.get("items")
            item = self.annotation(items, hint + "Item") if isinstance(items, dict) and items else Any
            return self._constrained(list[item], schema)
        if kind == "object" or "properties" in schema:
            if isinstance(schema.get("properties"), dict) and schema["properties"]:
                return self.model(schema, schema.get("title") or hint)
            extra = schema.get("additionalProperties")
            value = self.annotation(extra, hint + "Value") if isinstance(extra, dict) and extra else Any
            return dict[str, value]
        return Any

    def _union(self, options: list[Any], hint: str) -> Any:
        nullable = False
        members: list[Any] = []
        for option in options:
            _, plain = resolve(option, self.defs)
            if plain.get("type") == "null":
                nullable = True
                continue
            members.append(self.annotation(option, hint))
        if not members:
            return type(None)
        kind = members[0] if len(members) == 1 else Union[tuple(members)]
        return Optional[kind] if nullable else kind

    @staticmethod
    def _constrained(kind: Any, schema: dict[str, Any]) -> Any:
        bounds: dict[str, Any] = {}
        for key, arg in (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"), ("exclusiveMaximum", "lt")):
            value = schema.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                bounds[arg] = value
        for key, arg in (("minLength", "min_length"), ("maxLength", "max_length"),
                         ("minItems", "min_length"), ("maxItems", "max_length")):
            value = schema.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                bounds[arg] = value
        return Annotated[kind, Field(**bounds)] if bounds else kind

    def model(self, schema: dict[str, Any], title: str) -> type[BaseModel]:
        properties = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        order = schema.get("x-fal-order-properties")
        names = [n for n in order if n in properties] if isinstance(order, list) else []
        names += [n for n in properties if n not in names]
        fields: dict[str, Any] = {}
        for index, prop in enumerate(names):
            spec = properties[prop]
            kind = self.annotation(spec, _model_name(title + "_" + prop))
            _, plain = resolve(spec, self.defs)
            options: dict[str, Any] = {}
            if prop in required:
                options["default"] = ...
            elif isinstance(spec, dict) and "default" in spec:
                options["default"] = spec["default"]
            elif "default" in plain:
                options["default"] = plain["default"]
            else:
                options["default"] = None
            attr = prop
            if not _IDENTIFIER.match(prop) or keyword.iskeyword(prop) or prop in _RESERVED:
                attr, options["alias"] = f"field_{index}", prop
            fields[attr] = (kind, Field(**options))
        config = ConfigDict(extra="ignore", protected_namespaces=(), populate_by_name=False,
                            title=schema.get("title") or title)
        return create_model(_model_name(title), __config__=config, **fields)


def build_input_model(schema: dict[str, Any], name: str = "Input") -> type[BaseModel]:
    """The pydantic model of an endpoint's input JSON Schema (see the module doc)."""
    defs = schema.get("$defs") or schema.get("definitions") or {}
    builder = _Builder(defs if isinstance(defs, dict) else {})
    _, root = resolve(schema, builder.defs)
    return builder.model(root if root.get("properties") else {"properties": {}}, root.get("title") or name)
