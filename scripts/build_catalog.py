#!/usr/bin/env python3
"""Regenerate fal-mock's endpoint catalogue: ``mock_server/endpoints/catalog/data/``.

    python scripts/build_catalog.py            # (re)write the catalogue
    python scripts/build_catalog.py --check    # exit 1 when the committed files differ

Inputs, all pinned in the repository (docs/catalog.md):

* ``scripts/catalog/package.json`` + ``package-lock.json``: ``@fal-ai/client`` 1.10.1, whose
  ``src/types/endpoints.d.ts`` maps every endpoint id to its input and output TypeScript types
  (``EndpointTypeMap``), and ``ts-json-schema-generator``, which turns those types into JSON
  Schema.  ``npm ci`` installs them into ``scripts/catalog/node_modules`` (never committed)
  when that folder is missing; Node 18+ and npm are needed.
* ``scripts/catalog/openapi/*.json``: fal's own queue OpenAPI documents, as cached in
  modbender/ComfyUI-Fal-Gateway (Apache-2.0; scripts/catalog/openapi/SOURCES.md).  A document
  wins over the TypeScript types for its id and is served as is.

The output is deterministic: the same inputs give the same bytes.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mock_server.endpoints.catalog import entry_from_document  # noqa: E402
from mock_server.endpoints.catalog._bundle import BLOB, DATA, INDEX, pack  # noqa: E402
from mock_server.endpoints.catalog.kinds import category, output_kind  # noqa: E402
from mock_server.endpoints.catalog._openapi import self_contained  # noqa: E402

TOOLS = REPO / "scripts" / "catalog"
DOCUMENTS = TOOLS / "openapi"
CLIENT = "@fal-ai/client"
TYPES = Path("node_modules") / "@fal-ai" / "client" / "src" / "types" / "endpoints.d.ts"
_DEFINITIONS = "#/definitions/"
# fal's documents were cached by this repository at this commit (SOURCES.md).
DOCUMENTS_ORIGIN = "github.com/modbender/ComfyUI-Fal-Gateway@b7ab294ba1588b92677318c2b228e76dce47d1ea/tests/fixtures"
_DEFAULT = re.compile(r"\s*Default value: `(.*?)`\s*$", re.S)
# TypeScript has one ``number``; fal's models declare these as ``int`` (e.g. the served
# FluxDevInput: num_inference_steps, num_images, seed are "integer", guidance_scale "number").
_INTEGER_NAMES = re.compile(r"^(seed|seeds|steps|width|height|num_.*|n_.*|.*_steps|.*_count|.*_seed|max_tokens|"
                            r"num_frames|frames|batch_size|top_k|fps|.*_width|.*_height|.*_frames)$")


# --------------------------------------------------------------------------- running the tool


def install_tools() -> None:
    if (TOOLS / TYPES).is_file() and (TOOLS / "node_modules" / ".bin" / "ts-json-schema-generator").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("build_catalog: npm (Node 18+) is needed to install scripts/catalog's pinned tools")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=TOOLS, check=True)


def client_version() -> str:
    return json.loads((TOOLS / "node_modules" / "@fal-ai" / "client" / "package.json").read_text())["version"]


def type_schemas() -> dict[str, Any]:
    """``ts-json-schema-generator`` over ``EndpointTypeMap``: every type as JSON Schema."""
    tool = TOOLS / "node_modules" / ".bin" / "ts-json-schema-generator"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "types.json"
        subprocess.run([str(tool), "--path", str(TYPES), "--type", "EndpointTypeMap", "--no-type-check",
                        "--expose", "all", "--jsDoc", "extended", "--out", str(out)], cwd=TOOLS, check=True)
        return json.loads(out.read_text())


# --------------------------------------------------------------------------- shaping the schemas


def _parse_default(text: str) -> Any:
    """The value in ``Default value: `X```: JSON when it is JSON, else the bare word
    (``landscape_4_3`` is written unquoted for values of a union of string constants)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _merge_constants(branches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"const": a, "type": t}, {"const": b, "type": t}`` -> ``{"type": t, "enum": [a, b]}``
    (fal's documents write a union of literals as one ``enum``, e.g. FluxDevInput.image_size)."""
    merged: list[dict[str, Any]] = []
    for branch in branches:
        if set(branch) in ({"const", "type"}, {"enum", "type"}):
            values = [branch["const"]] if "const" in branch else list(branch["enum"])
            last = merged[-1] if merged else None
            if last is not None and set(last) == {"enum", "type"} and last["type"] == branch["type"]:
                last["enum"].extend(values)
                continue
            merged.append({"type": branch["type"], "enum": values})
        else:
            merged.append(branch)
    return merged


def shape(node: Any, name: str | None = None) -> Any:
    """One schema node in the catalogue's form (see CatalogEntry): unknown fields allowed,
    inputs of ``string | Blob | File`` as the URL strings fal's documents declare, literal
    unions as enums, nullables as ``anyOf [T, null]``, ``Default value:`` as ``default``."""
    if isinstance(node, list):
        return [shape(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if node.get("additionalProperties") is False:
        del node["additionalProperties"]  # fal ignores unknown fields (pydantic's default)
    if isinstance(node.get("properties"), dict):
        node["properties"] = {k: shape(v, k) for k, v in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = shape(node[key])
    if isinstance(node.get("type"), list):
        types = node.pop("type")
        rest = {k: node.pop(k) for k in ("enum",) if k in node}
        node["anyOf"] = [{"type": t, **(rest if t != "null" else {})} for t in types]
    if isinstance(node.get("anyOf"), list):
        branches = [shape(b) for b in node["anyOf"]]
        refs = {b.get("$ref") for b in branches}
        if _DEFINITIONS + "Blob" in refs:  # an input URL the JS client may upload for you
            branches = [b for b in branches if b.get("$ref") not in (_DEFINITIONS + "Blob", _DEFINITIONS + "File")]
        branches = _merge_constants(branches)
        del node["anyOf"]
        if len(branches) == 1:
            node = {**branches[0], **node}
        else:
            node["anyOf"] = branches
    if set(node) >= {"const", "type"} and "enum" not in node:
        node["enum"] = [node.pop("const")]
    description = node.get("description")
    if isinstance(description, str):
        found = _DEFAULT.search(description)
        if found:
            node["description"] = description[: found.start()].rstrip()
            value = _parse_default(found.group(1))
            if "default" not in node and value != "[object Object]":
                node["default"] = value
        if not node["description"]:
            del node["description"]
    if name is not None and _INTEGER_NAMES.match(name):
        default = node.get("default")
        whole = default is None or (isinstance(default, int) and not isinstance(default, bool))
        if node.get("type") == "number" and whole:
            node["type"] = "integer"
        elif node.get("type") == "array" and node.get("items") == {"type": "number"}:
            node["items"] = {"type": "integer"}  # seeds: number[]
    return node


def _alias_target(name: str, definitions: dict[str, Any]) -> str:
    """``FluxDevOutput = unoOutput``: follow plain aliases to the type with the properties."""
    seen = {name}
    while set(definitions[name]) == {"$ref"}:
        name = definitions[name]["$ref"][len(_DEFINITIONS):]
        if name in seen:
            break
        seen.add(name)
    return name


def endpoint_schema(type_name: str, definitions: dict[str, Any]) -> dict[str, Any]:
    target = _alias_target(type_name, definitions)
    schema = self_contained(target, definitions, _DEFINITIONS)
    schema["title"] = type_name  # the name fal's client gives this endpoint's type
    return schema


def npm_entries(types: dict[str, Any], version: str) -> dict[str, dict[str, Any]]:
    definitions = {name: shape(body) for name, body in types["definitions"].items()}
    endpoints = types["definitions"]["EndpointTypeMap"]["properties"]
    entries = {}
    for endpoint_id in sorted(endpoints):
        pair = endpoints[endpoint_id]["properties"]
        input_schema = endpoint_schema(pair["input"]["$ref"][len(_DEFINITIONS):], definitions)
        output_schema = endpoint_schema(pair["output"]["$ref"][len(_DEFINITIONS):], definitions)
        kind = output_kind(endpoint_id, output_schema)
        entries[endpoint_id] = {
            "category": category(endpoint_id, input_schema, kind),
            "output_kind": kind,
            "title": "",
            "source": f"npm:{CLIENT}@{version}",
            "input_schema": input_schema,
            "output_schema": output_schema,
        }
    return entries


def document_entries() -> dict[str, dict[str, Any]]:
    entries = {}
    for path in sorted(DOCUMENTS.glob("*.json")):
        cached = json.loads(path.read_text())
        document = cached["openapi"]
        entry = entry_from_document(document, f"openapi:{DOCUMENTS_ORIGIN}/{path.name}",
                                    title=str((cached.get("metadata") or {}).get("display_name") or ""))
        entries[entry.endpoint_id] = {
            "category": entry.category, "output_kind": entry.output_kind, "title": entry.title,
            "source": entry.source, "input_schema": entry.input_schema, "output_schema": entry.output_schema,
            "openapi": document,
        }
    return entries


# --------------------------------------------------------------------------- writing the files


def files(entries: dict[str, dict[str, Any]], licences: dict[str, bytes]) -> dict[str, bytes]:
    """The catalogue folder's files by relative name: same entries, same bytes."""
    index, blob = pack(entries)
    return {INDEX: index, BLOB: blob, **{f"LICENSES/{name}": text for name, text in sorted(licences.items())}}


def build() -> dict[str, bytes]:
    install_tools()
    version = client_version()
    entries = npm_entries(type_schemas(), version)
    entries.update(document_entries())  # a full fal document wins over the types
    licences = {
        "fal-ai-client.txt": (TOOLS / "node_modules" / "@fal-ai" / "client" / "LICENSE").read_bytes(),
        "ComfyUI-Fal-Gateway.txt": (DOCUMENTS / "LICENSE-ComfyUI-Fal-Gateway.txt").read_bytes(),
    }
    return files(entries, licences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing them")
    parser.add_argument("--out", type=Path, default=DATA, help=f"the folder to write (default {DATA.relative_to(REPO)})")
    args = parser.parse_args(argv)
    built = build()
    if args.check:
        stale = [name for name, data in built.items()
                 if not (args.out / name).is_file() or (args.out / name).read_bytes() != data]
        print(f"{args.out}: " + ("up to date" if not stale else "DIFFERS from a fresh build: " + ", ".join(stale)))
        return 1 if stale else 0
    for name, data in built.items():
        (args.out / name).parent.mkdir(parents=True, exist_ok=True)
        (args.out / name).write_bytes(data)
    count = built[INDEX].count(b"\n") - 2
    size = sum(len(d) for d in built.values())
    print(f"wrote {args.out}: {count} endpoints, {size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
