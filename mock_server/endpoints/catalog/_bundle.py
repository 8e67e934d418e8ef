"""The bundled catalogue file (``data/catalog.zip``), read lazily.

One zip archive made by ``scripts/build_catalog.py``: ``index.json`` (id -> category, output
kind, title, source), one deflated member per endpoint under ``entries/`` (its input and output
schemas) and fal's own documents, served as is, under ``openapi/``.  A zip is used because its
central directory gives random access to one member: opening the archive reads that directory
only, and asking for an id inflates that id's member and nothing else.
"""
from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path
from typing import Any

BUNDLE = Path(__file__).resolve().parent / "data" / "catalog.zip"
INDEX = "index.json"
FORMAT = 1


def entry_member(endpoint_id: str) -> str:
    return f"entries/{endpoint_id}.json"


def openapi_member(endpoint_id: str) -> str:
    return f"openapi/{endpoint_id}.json"


class Bundle:
    """The archive at ``path``; nothing is read before the first question."""

    def __init__(self, path: Path = BUNDLE) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._zip: zipfile.ZipFile | None = None
        self._index: dict[str, list[str]] | None = None

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip

    def _read(self, member: str) -> Any:
        with self._lock:  # one ZipFile shared by threads: reads are serialised
            archive = self._archive()
            try:
                data = archive.read(member)
            except KeyError:
                return None
        return json.loads(data)

    def index(self) -> dict[str, list[str]]:
        """``{endpoint_id: [category, output_kind, title, source]}``."""
        if self._index is None:
            if not self.path.is_file():
                self._index = {}
            else:
                document = self._read(INDEX)
                if not isinstance(document, dict) or document.get("format") != FORMAT:
                    raise ValueError(f"{self.path}: not a catalogue of format {FORMAT}")
                self._index = document["endpoints"]
        return self._index

    def schemas(self, endpoint_id: str) -> dict[str, Any] | None:
        """``{"input_schema", "output_schema"}`` of one endpoint (inflates that member only)."""
        if endpoint_id not in self.index():
            return None
        return self._read(entry_member(endpoint_id))

    def openapi(self, endpoint_id: str) -> dict[str, Any] | None:
        """fal's own document for the id, when one is bundled."""
        if endpoint_id not in self.index():
            return None
        return self._read(openapi_member(endpoint_id))
