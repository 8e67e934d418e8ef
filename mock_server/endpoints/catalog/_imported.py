"""Endpoints imported into the state folder (``fal-mock catalog import``): fal's OpenAPI
documents kept as they were given, one file per id under ``<state dir>/catalog/``."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

FOLDER = "catalog"


class ImportedDocuments:
    def __init__(self, state_dir: Path | None) -> None:
        self.folder = None if state_dir is None else Path(state_dir) / FOLDER

    def path(self, endpoint_id: str) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / (quote(endpoint_id, safe="") + ".json")

    def ids(self) -> list[str]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return sorted(unquote(p.name[: -len(".json")]) for p in self.folder.glob("*.json"))

    def has(self, endpoint_id: str) -> bool:
        path = self.path(endpoint_id)
        return path is not None and path.is_file()

    def read(self, endpoint_id: str) -> tuple[Path, Any] | None:
        path = self.path(endpoint_id)
        if path is None or not path.is_file():
            return None
        return path, json.loads(path.read_bytes())

    def store(self, endpoint_id: str, document: dict[str, Any]) -> Path:
        path = self.path(endpoint_id)
        assert path is not None, "no state folder"
        path.parent.mkdir(parents=True, exist_ok=True)
        # written to a temporary file, then renamed: a reader never sees half a document
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".import-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1, ensure_ascii=False)
        os.replace(tmp, path)
        return path
