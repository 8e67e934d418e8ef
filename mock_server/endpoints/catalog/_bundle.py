"""The bundled catalogue (``data/``), read lazily.

Made by ``scripts/build_catalog.py``:

* ``index.json``: one line per endpoint id: category, output kind, title, source, and where its
  schemas (and fal's own document, when one is bundled) sit in ``schemas.bin``;
* ``schemas.bin``: the members, each a zlib-compressed JSON document, one after another;
* ``LICENSES/``: the licences of the sources.

Why not a zip: Python's ``zipfile`` parses the whole central directory when it opens an
archive, 10-40 ms for 1,200 members on this machine, where this index costs about 1 ms and
one member one ``seek`` + ``read`` + ``zlib.decompress``.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data"
INDEX = "index.json"
BLOB = "schemas.bin"
FORMAT = 2
# An index row: [category, output_kind, title, source, offset, length, doc_offset, doc_length]
# (doc_* are 0, 0 when no fal document is bundled for the id).


#: The bundled data files' bytes, once :func:`preload` has read them: a running server keeps
#: answering every catalogued endpoint when the installed package is replaced under it
#: (``mock_server.server.preload``).
_preloaded: dict[str, bytes] = {}


def preload() -> None:
    """Read the bundled index and schemas into memory (about 1.3 MB)."""
    for name in (INDEX, BLOB):
        path = DATA / name
        if path.is_file():
            _preloaded[name] = path.read_bytes()


class Bundle:
    """The catalogue in ``folder``; nothing is read before the first question."""

    def __init__(self, folder: Path = DATA) -> None:
        self.folder = Path(folder)
        self._index: dict[str, list[Any]] | None = None

    def _kept(self, name: str) -> bytes | None:
        return _preloaded.get(name) if self.folder == DATA else None

    def index(self) -> dict[str, list[Any]]:
        if self._index is None:
            path = self.folder / INDEX
            data = self._kept(INDEX)
            if data is None and path.is_file():
                with open(path, "rb") as source:
                    data = source.read()
            if data is None:
                self._index = {}
            else:
                document = json.loads(data)
                if not isinstance(document, dict) or document.get("format") != FORMAT:
                    raise ValueError(f"{path}: not a catalogue index of format {FORMAT}")
                self._index = document["endpoints"]
        return self._index

    def _member(self, offset: int, length: int) -> Any:
        kept = self._kept(BLOB)
        if kept is not None:
            return json.loads(zlib.decompress(kept[offset:offset + length]))
        with open(self.folder / BLOB, "rb") as blob:
            blob.seek(offset)
            return json.loads(zlib.decompress(blob.read(length)))

    def schemas(self, endpoint_id: str) -> dict[str, Any] | None:
        """``{"input_schema", "output_schema"}`` of one endpoint (that member only)."""
        row = self.index().get(endpoint_id)
        return None if row is None else self._member(row[4], row[5])

    def openapi(self, endpoint_id: str) -> dict[str, Any] | None:
        """fal's own document for the id, when one is bundled."""
        row = self.index().get(endpoint_id)
        return None if row is None or not row[7] else self._member(row[6], row[7])


def pack(entries: dict[str, dict[str, Any]]) -> tuple[bytes, bytes]:
    """(index.json, schemas.bin) for ``entries`` (``{id: {category, output_kind, title, source,
    input_schema, output_schema[, openapi]}}``): same entries, same bytes."""
    blob = bytearray()

    def add(value: Any) -> tuple[int, int]:
        data = zlib.compress(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(), 9)
        blob.extend(data)
        return len(blob) - len(data), len(data)

    rows = {}
    for endpoint_id, entry in sorted(entries.items()):
        where = add({"input_schema": entry["input_schema"], "output_schema": entry["output_schema"]})
        doc = add(entry["openapi"]) if "openapi" in entry else (0, 0)
        rows[endpoint_id] = [entry["category"], entry["output_kind"], entry["title"], entry["source"], *where, *doc]
    # one endpoint a line, so a regenerated catalogue's diff reads per endpoint
    lines = [f"{json.dumps(eid, ensure_ascii=False)}: {json.dumps(row, ensure_ascii=False)}" for eid, row in rows.items()]
    index = '{"format": %d, "endpoints": {\n' % FORMAT + ",\n".join(lines) + "\n}}\n"
    return index.encode(), bytes(blob)
