"""The catalogue of fal endpoints: each id with its input and output JSON Schema, fal's
category and what it makes.

Bundled data (``data/``, made by ``python scripts/build_catalog.py`` from the pinned
``@fal-ai/client`` types and the fal OpenAPI documents in ``scripts/catalog/openapi/``), plus
the documents imported into the state folder (``fal-mock catalog import``), which win over the
bundled entry of the same id.  Nothing is read when a ``Catalog`` is made; asking for an id
reads the index and that id's member only (docs/catalog.md).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mock_server.endpoints.catalog._bundle import DATA, Bundle
from mock_server.endpoints.catalog._imported import ImportedDocuments
from mock_server.endpoints.catalog.kinds import category as _category
from mock_server.endpoints.catalog.kinds import output_kind as _output_kind
from mock_server.endpoints.catalog._openapi import (
    NotAnOpenAPIDocument,
    build_document,
    parse_document_bytes,
    read_document,
)

__all__ = ["Catalog", "CatalogEntry", "NotAnOpenAPIDocument", "parse_document_bytes"]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    endpoint_id: str          # "fal-ai/flux/dev"
    category: str             # fal's category: "text-to-image", "image-to-video", "text-to-speech", ...
    output_kind: str          # "image" | "video" | "audio" | "3d" | "text" | "json"
    input_schema: dict        # self-contained JSON Schema; nested types under "$defs", refs "#/$defs/Name";
    output_schema: dict       #   nullable = anyOf [T, {"type": "null"}]; default/enum/minimum/maximum/
                              #   minLength/maxLength/minItems/maxItems/description/examples kept; "required" lists
    source: str               # "openapi:<file or url>" | "npm:@fal-ai/client@<ver>" | "state:<path>"
    title: str = ""


def entry_from_document(document: Any, source: str, title: str = "") -> CatalogEntry:
    """A catalogue entry from a fal queue OpenAPI document (raises NotAnOpenAPIDocument)."""
    read = read_document(document)
    kind = _output_kind(read["endpoint_id"], read["output_schema"])
    return CatalogEntry(
        endpoint_id=read["endpoint_id"],
        category=read["category"] or _category(read["endpoint_id"], read["input_schema"], kind),
        output_kind=kind,
        input_schema=read["input_schema"],
        output_schema=read["output_schema"],
        source=source,
        title=title,
    )


class Catalog:
    """Bundled entries plus those imported into ``state_dir`` (preferred)."""

    def __init__(self, state_dir: Path | None = None, bundle: Path = DATA) -> None:
        self._bundle = Bundle(bundle)
        self._imported = ImportedDocuments(state_dir)
        self._cache: dict[str, CatalogEntry] = {}
        self._lock = threading.Lock()

    def ids(self) -> list[str]:
        return sorted(set(self._bundle.index()) | set(self._imported.ids()))

    def get(self, endpoint_id: str) -> CatalogEntry | None:
        with self._lock:
            cached = self._cache.get(endpoint_id)
        if cached is not None:
            return cached
        entry = self._load(endpoint_id)
        if entry is not None:
            with self._lock:
                self._cache[endpoint_id] = entry
        return entry

    def _load(self, endpoint_id: str) -> CatalogEntry | None:
        imported = self._imported.read(endpoint_id)
        if imported is not None:
            path, document = imported
            entry = entry_from_document(document, f"state:{path}")
            # the file name is the id it was imported as: that is the id it answers to
            return CatalogEntry(endpoint_id, entry.category, entry.output_kind, entry.input_schema,
                                entry.output_schema, entry.source, entry.title)
        row = self._bundle.index().get(endpoint_id)
        schemas = self._bundle.schemas(endpoint_id) if row is not None else None
        if row is None or schemas is None:
            return None
        category, kind, title, source = row[:4]
        return CatalogEntry(endpoint_id, category, kind, schemas["input_schema"], schemas["output_schema"], source, title)

    def summary(self, endpoint_id: str) -> tuple[str, str, str, str] | None:
        """``(category, output_kind, title, source)`` from the index alone (no schema is
        inflated), or from the imported document when the id was imported."""
        if self._imported.has(endpoint_id):
            entry = self.get(endpoint_id)
            return None if entry is None else (entry.category, entry.output_kind, entry.title, entry.source)
        row = self._bundle.index().get(endpoint_id)
        return None if row is None else (row[0], row[1], row[2], row[3])

    def search(self, words: str) -> list[str]:
        """Ids whose id, title, category or output kind contain every word (case-insensitive)."""
        wanted = [w for w in words.lower().split() if w]
        found = []
        for endpoint_id in self.ids():
            row = self.summary(endpoint_id)
            haystack = " ".join([endpoint_id, *(row[:3] if row else ())]).lower()
            if all(w in haystack for w in wanted):
                found.append(endpoint_id)
        return found

    def openapi(self, endpoint_id: str) -> dict | None:
        """fal's queue OpenAPI document for the id: an imported or bundled real one as is,
        else one built in fal's shape from the entry's schemas."""
        imported = self._imported.read(endpoint_id)
        if imported is not None:
            return imported[1]
        real = self._bundle.openapi(endpoint_id)
        if real is not None:
            return real
        entry = self.get(endpoint_id)
        if entry is None:
            return None
        return build_document(entry.endpoint_id, entry.category, entry.input_schema, entry.output_schema)

    def import_document(self, document: Any, endpoint_id: str | None = None) -> CatalogEntry:
        """Keep a fal OpenAPI document in the state folder (raises NotAnOpenAPIDocument);
        the entry it makes, as ``get`` will answer it from now on."""
        entry = entry_from_document(document, "state:")
        endpoint_id = endpoint_id or entry.endpoint_id
        path = self._imported.store(endpoint_id, document)
        with self._lock:
            self._cache.pop(endpoint_id, None)
        return CatalogEntry(endpoint_id, entry.category, entry.output_kind, entry.input_schema,
                            entry.output_schema, f"state:{path}", entry.title)
