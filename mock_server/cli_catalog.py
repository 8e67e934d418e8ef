"""``fal-mock catalog``: list, search and show the catalogued endpoints; import fal's
OpenAPI document for one (docs/catalog.md).

    fal-mock catalog list [--category C] [--kind K]
    fal-mock catalog search WORDS...
    fal-mock catalog show ENDPOINT [--json | --openapi]
    fal-mock catalog import FILE|ENDPOINT_ID [--allow-fetch] [--as ENDPOINT_ID]

``import`` keeps the document in the state folder (``--state-dir``, else the default one),
where it wins over the bundled entry of that id.  Usage errors and bad documents exit 2 with
one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mock_server.settings import default_state_dir

# fal's public per-endpoint document (what fal_client's _validation.py and fal-js's schema.ts fetch)
FAL_OPENAPI_URL = "https://fal.ai/api/openapi/queue/openapi.json"
_MAX_DOCUMENT = 16 * 1024 * 1024


def add_parser(commands: Any) -> None:
    """Register ``catalog`` on the ``fal-mock`` sub-command parsers."""
    catalog = commands.add_parser("catalog", help="the catalogued fal endpoints: list, search, show, import")
    actions = catalog.add_subparsers(dest="catalog_command", required=True)

    def sub(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--state-dir", type=Path, default=None,
                            help="the state folder whose imported endpoints count (default: $FAL_MOCK_STATE_DIR or ~/.local/state/fal-mock)")
        parser.set_defaults(func=run)
        return parser

    listing = sub("list", "every endpoint id with its category, output kind and source")
    listing.add_argument("--category", default=None, help="only this category (e.g. text-to-image)")
    listing.add_argument("--kind", default=None, help="only this output kind (image, video, audio, 3d, text, json)")
    search = sub("search", "ids whose id, title or category contain every word")
    search.add_argument("words", nargs="+")
    show = sub("show", "an endpoint's inputs (types, defaults, enums, required), outputs, category, kind and source")
    show.add_argument("endpoint")
    form = show.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the catalogue entry as JSON")
    form.add_argument("--openapi", action="store_true", help="fal's queue OpenAPI document for the endpoint")
    imports = sub("import", "add or refresh an endpoint from a fal OpenAPI document (a file, or fal's URL with --allow-fetch)")
    imports.add_argument("source", metavar="FILE|ENDPOINT_ID")
    imports.add_argument("--allow-fetch", action="store_true",
                         help=f"fetch ENDPOINT_ID's document from {FAL_OPENAPI_URL}?endpoint_id=ENDPOINT_ID")
    imports.add_argument("--as", dest="as_id", default=None, metavar="ENDPOINT_ID",
                         help="the id to keep it under (default: the one the document names)")
    imports.add_argument("--openapi-url", default=FAL_OPENAPI_URL, help=argparse.SUPPRESS)


class _Refused(Exception):
    """A one-line reason to exit 2."""


def run(args: argparse.Namespace) -> int:
    from mock_server.endpoints.catalog import Catalog

    catalog = Catalog(args.state_dir or default_state_dir())
    try:
        return _COMMANDS[args.catalog_command](catalog, args)
    except _Refused as exc:
        print(f"fal-mock catalog {args.catalog_command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `fal-mock catalog list | head`: the reader has seen enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _short_source(source: str) -> str:
    return source.split(":", 1)[0]


def _list(catalog, args) -> int:
    for endpoint_id in catalog.ids():
        summary = catalog.summary(endpoint_id)
        if summary is None:
            continue
        category, kind, _title, source = summary
        if (args.category and category != args.category) or (args.kind and kind != args.kind):
            continue
        print(f"{endpoint_id}\t{category}\t{kind}\t{_short_source(source)}")
    return 0


def _search(catalog, args) -> int:
    found = catalog.search(" ".join(args.words))
    for endpoint_id in found:
        print(endpoint_id)
    return 0 if found else 1


def _type(schema: dict[str, Any]) -> str:
    """A field's type in one short phrase: ``integer``, ``list[Image]``, ``ImageSize | string``."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        return " | ".join(_type(b) for b in branches)
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list[{_type(schema.get('items') or {})}]"
    return str(kind)


def _enum(schema: dict[str, Any]) -> list[Any]:
    values = list(schema.get("enum") or [])
    for branch in schema.get("anyOf") or []:
        values.extend(branch.get("enum") or [])
    return values


def _limits(schema: dict[str, Any]) -> str:
    names = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "minItems", "maxItems")
    pairs = [f"{n}={schema[n]}" for n in names if n in schema]
    for branch in schema.get("anyOf") or []:
        pairs.extend(f"{n}={branch[n]}" for n in names if n in branch)
    return " ".join(pairs)


def _fields(schema: dict[str, Any], write) -> None:
    required = set(schema.get("required") or [])
    for name, sub in (schema.get("properties") or {}).items():
        parts = [f"  {name}: {_type(sub)}", "(required)" if name in required else ""]
        if "default" in sub:
            parts.append(f"default={json.dumps(sub['default'])}")
        values = _enum(sub)
        if values:
            parts.append("one of " + ", ".join(json.dumps(v) for v in values))
        limits = _limits(sub)
        if limits:
            parts.append(limits)
        write(" ".join(p for p in parts if p))
        description = " ".join(str(sub.get("description", "")).split())
        if description:
            write(f"      {description[:160]}{'...' if len(description) > 160 else ''}")


def _show(catalog, args) -> int:
    entry = catalog.get(args.endpoint)
    if entry is None:
        raise _Refused(f"no endpoint {args.endpoint!r} in the catalogue (try: fal-mock catalog search WORDS)")
    if args.openapi:
        print(json.dumps(catalog.openapi(args.endpoint), indent=2, ensure_ascii=False))
        return 0
    if args.json:
        print(json.dumps({"endpoint_id": entry.endpoint_id, "title": entry.title, "category": entry.category,
                          "output_kind": entry.output_kind, "source": entry.source,
                          "input_schema": entry.input_schema, "output_schema": entry.output_schema},
                         indent=2, ensure_ascii=False))
        return 0
    print(entry.endpoint_id + (f"  ({entry.title})" if entry.title else ""))
    print(f"category: {entry.category}")
    print(f"output kind: {entry.output_kind}")
    print(f"source: {entry.source}")
    print("inputs:")
    _fields(entry.input_schema, print)
    print("outputs:")
    _fields(entry.output_schema, print)
    return 0


def _fetch(url: str, endpoint_id: str) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, params={"endpoint_id": endpoint_id}, timeout=30.0, follow_redirects=True) as response:
            if response.status_code != 200:
                raise _Refused(f"{response.url} answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > _MAX_DOCUMENT:
                    raise _Refused(f"{response.url}: the document is larger than {_MAX_DOCUMENT} bytes")
            return bytes(data)
    except httpx.HTTPError as exc:
        raise _Refused(f"cannot fetch {url}?endpoint_id={endpoint_id}: {type(exc).__name__}: {exc}") from None


def _import(catalog, args) -> int:
    from mock_server.endpoints.catalog import NotAnOpenAPIDocument, parse_document_bytes

    path = Path(args.source)
    if path.is_file():
        data, origin = path.read_bytes(), str(path)
    elif path.exists():
        raise _Refused(f"{args.source} is not a file")
    elif args.allow_fetch:
        data, origin = _fetch(args.openapi_url, args.source), f"{args.openapi_url}?endpoint_id={args.source}"
    else:
        raise _Refused(f"no file {args.source!r}; to fetch fal's document for that endpoint id, add --allow-fetch")
    try:
        document = parse_document_bytes(data)
        entry = catalog.import_document(document, args.as_id)
    except NotAnOpenAPIDocument as exc:
        raise _Refused(f"{origin}: {exc}") from None
    print(f"imported {entry.endpoint_id} ({entry.category}, {entry.output_kind}) from {origin} -> {entry.source.removeprefix('state:')}")
    return 0


_COMMANDS = {"list": _list, "search": _search, "show": _show, "import": _import}
