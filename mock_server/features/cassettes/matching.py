"""Which recording a submit replays: the matching rules, in one place.

A submit matches a cassette when both name the same endpoint and their *normalised* inputs
are equal.  Normalising an input:

1. the request body is parsed as JSON (a body that is not a JSON object matches nothing);
2. a URL of a file uploaded to the mock (``/_mock/files/...``) becomes
   ``fal-mock-upload:sha256:<digest of its bytes>``: the same bytes uploaded again (to the
   mock when replaying, to fal when recording) match, whatever URL each upload got;
3. credential-looking fields are scrubbed (as on disk: :mod:`.scrub`);
4. the fields the user marks as ignorable (``--replay-ignore FIELD``, repeatable; a dotted
   name reaches into objects: ``loras.0.scale``) are left out when comparing.

Everything else counts, ``seed`` included: a recording made with ``seed: 7`` does not answer
``seed: 8`` (a different seed is a different image on fal), nor a request without a seed
(fal picks a random one).  Key order and whitespace do not count.
"""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterable

import orjson

from mock_server.features.cassettes.scrub import Scrubber
from mock_server.features.cassettes.store import UPLOAD_REF, Cassette

#: ``upload_digest(url)``: the SHA-256 of the bytes behind ``url`` when it is an upload to the
#: mock, else None.
UploadDigest = Callable[[str], "str | None"]


def parse_input(body: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def normalise(value: dict[str, Any], upload_digest: UploadDigest, scrubber: Scrubber | None = None) -> dict[str, Any]:
    """The input as cassettes keep and compare it (rules 2 and 3 of the module doc)."""
    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, str) and item.startswith(("http://", "https://")):
            digest = upload_digest(item)
            if digest is not None:
                return UPLOAD_REF + digest
        return item

    return (scrubber or Scrubber()).value(walk(value))


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def input_key(value: dict[str, Any]) -> str:
    """A cassette's name: the first 16 hex digits of the SHA-256 of its canonical input."""
    return hashlib.sha256(canonical(value)).hexdigest()[:16]


def without(value: dict[str, Any], ignored: Iterable[str]) -> dict[str, Any]:
    """``value`` without the ignored fields (dotted names reach into objects and lists)."""
    value = orjson.loads(canonical(value))  # a deep copy
    for name in ignored:
        parts = name.split(".")
        holder: Any = value
        for part in parts[:-1]:
            if isinstance(holder, dict):
                holder = holder.get(part)
            elif isinstance(holder, list) and part.isdigit() and int(part) < len(holder):
                holder = holder[int(part)]
            else:
                holder = None
        if isinstance(holder, dict):
            holder.pop(parts[-1], None)
    return value


def uploads_in(value: Any) -> list[str]:
    """The upload digests a normalised input refers to."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += uploads_in(item)
    elif isinstance(value, list):
        for item in value:
            found += uploads_in(item)
    elif isinstance(value, str) and value.startswith(UPLOAD_REF):
        found.append(value[len(UPLOAD_REF):])
    return found


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The top-level fields whose values differ (for naming the closest recordings)."""
    return sorted(k for k in set(a) | set(b) if a.get(k, ...) != b.get(k, ...))


class CassetteIndex:
    """The recorded requests of one folder, by endpoint, matched with one ignore list."""

    def __init__(self, cassettes: Iterable[Cassette], ignored: Iterable[str] = ()) -> None:
        self.ignored = tuple(ignored)
        self._by_endpoint: dict[str, dict[bytes, Cassette]] = {}
        for cassette in cassettes:
            self.add(cassette)

    def add(self, cassette: Cassette) -> None:
        self._by_endpoint.setdefault(cassette.endpoint_id, {})[self._key(cassette.input)] = cassette

    def _key(self, value: dict[str, Any]) -> bytes:
        return canonical(without(value, self.ignored))

    def endpoints(self) -> list[str]:
        return sorted(self._by_endpoint)

    def find(self, endpoint_id: str, value: dict[str, Any]) -> Cassette | None:
        return self._by_endpoint.get(endpoint_id, {}).get(self._key(value))

    def closest(self, endpoint_id: str, value: dict[str, Any], count: int = 3) -> list[tuple[Cassette, list[str]]]:
        """The recordings of that endpoint nearest to ``value``: (cassette, fields that differ),
        fewest differences first."""
        wanted = without(value, self.ignored)
        found = [(c, differences(without(c.input, self.ignored), wanted))
                 for c in self._by_endpoint.get(endpoint_id, {}).values()]
        found.sort(key=lambda item: (len(item[1]), item[0].name))
        return found[:count]
