"""A recorded endpoint: the :class:`~mock_server.core.endpoint.Endpoint` contract over cassettes.

It wraps the emulated endpoint of the same id (or none, for an id the mock does not emulate).
``parse`` decides, per submit, what the request will be (see :class:`Shelf`):

- ``Replayed``: a cassette matches; its log lines are the request's processing notes (shown
  while IN_PROGRESS, on the mock's clock and timing profile), and ``produce`` answers the
  recorded result with its media registered as the mock's own files;
- ``Recorded``: no cassette is used (``--record``) or none matches (pytest ``--fal-record``):
  ``produce`` makes the call upstream (:mod:`.recorder`);
- ``Emulated``: no cassette matches: the wrapped endpoint's own parse and produce (fallback);
- a 400 naming the closest recorded inputs (``--replay-strict``, or no emulated endpoint).

Since all of it lives behind the endpoint contract, the queue, faults, webhooks, the journal,
the dashboard and persistence treat a replayed request as any other.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson

from mock_server.core import fal_errors
from mock_server.core.answers import Answer
from mock_server.core.endpoint import Endpoint, EndpointEnv, Parsed
from mock_server.core.files import StoredFile
from mock_server.features.cassettes.matching import CassetteIndex, normalise, parse_input
from mock_server.features.cassettes.recorder import Recorder
from mock_server.features.cassettes.store import MEDIA_NAME_REF, MEDIA_REF, Cassette, CassetteDir, extension_for, sha256

EMULATE, REFUSE, RECORD = "emulate", "refuse", "record"


@dataclass(slots=True)
class Replayed:
    cassette: Cassette


@dataclass(slots=True)
class Recorded:
    value: dict[str, Any]
    normalised: dict[str, Any]


@dataclass(slots=True)
class Emulated:
    params: Any


class Shelf:
    """One cassette folder in use: its index, and what a submit with no matching cassette gets.

    ``replay``: matching cassettes are replayed (False: ``--record``, every call goes upstream).
    ``on_miss``: ``"emulate"`` (the emulator answers), ``"refuse"`` (a 400 naming the closest
    recordings) or ``"record"`` (the call goes upstream, and the new cassette is used from then on).
    ``own_file(url)``: the mock's stored file behind a URL (an upload), else None.
    ``caller_key(request_id)``: the caller's own fal key for a request, else None.
    """

    def __init__(self, cassettes: CassetteDir, *, replay: bool = True, on_miss: str = EMULATE,
                 recorder: Recorder | None = None, ignored: tuple[str, ...] = (),
                 own_file: Callable[[str], StoredFile | None] = lambda url: None,
                 caller_key: Callable[[str], str | None] = lambda request_id: None) -> None:
        if on_miss == RECORD and recorder is None:
            raise ValueError("recording needs a recorder")
        self.cassettes = cassettes
        self.replay = replay
        self.on_miss = on_miss
        self.recorder = recorder
        self.own_file = own_file
        #: ``caller_key(request_id)``: the fal key the request was submitted with, when it is the
        #: caller's own (recording uses it before the recorder's FAL_KEY)
        self.caller_key = caller_key
        self.index = CassetteIndex(cassettes if replay else (), ignored)

    def upload_digest(self, url: str) -> str | None:
        stored = self.own_file(url)
        return None if stored is None else sha256(stored.data)

    def serves(self, endpoint_id: str) -> bool:
        """Whether an id the mock does not emulate gets a recorded endpoint."""
        if self.on_miss == RECORD:
            return len([p for p in endpoint_id.split("/") if p]) >= 2
        return endpoint_id in self.index.endpoints()

    def wrap(self, endpoint_id: str, inner: Endpoint | None) -> "CassetteEndpoint":
        return CassetteEndpoint(endpoint_id, inner, self)


class CassetteEndpoint(Endpoint):
    """See the module doc."""

    def __init__(self, endpoint_id: str, inner: Endpoint | None, shelf: Shelf) -> None:
        self.endpoint_id = endpoint_id
        self.inner = inner
        self.shelf = shelf

    def parse(self, body: bytes) -> Parsed | Answer:
        shelf = self.shelf
        value = parse_input(body)
        normalised = None
        if value is not None:
            normalised = normalise(value, shelf.upload_digest)
            if shelf.replay:
                found = shelf.index.find(self.endpoint_id, normalised)
                if found is not None:
                    return Parsed(Replayed(found))
            if shelf.on_miss == RECORD:
                return Parsed(Recorded(value, normalised))
        if shelf.on_miss == EMULATE and self.inner is not None:
            parsed = self.inner.parse(body)
            return parsed if isinstance(parsed, Answer) else Parsed(Emulated(parsed.params), parsed.notes)
        return self._not_recorded(normalised)

    def _not_recorded(self, normalised: dict[str, Any] | None) -> Answer:
        shelf = self.shelf
        lines = [f"fal-mock replay: no recording of {self.endpoint_id} for this input in {shelf.cassettes.root}"]
        if normalised is None:
            lines.append("(the body is not a JSON object)")
        else:
            closest = shelf.index.closest(self.endpoint_id, normalised)
            if not closest:
                lines.append("(nothing is recorded for this endpoint)")
            for cassette, fields in closest:
                differ = ", ".join(fields) if fields else "only ignored fields"
                lines.append(f"closest: {cassette.path} (differs in: {differ})")
        lines.append("record it with `fal-mock serve --record DIR` or pytest --fal-record")
        return fal_errors.request_error(400, "\n".join(lines), "no_recording")

    def processing_notes(self, params: Any) -> list[str]:
        if isinstance(params, Replayed):
            return [line["message"] for line in params.cassette.logs]
        if isinstance(params, Emulated) and self.inner is not None:
            return self.inner.processing_notes(params.params)
        return []

    async def produce(self, params: Any, request_id: str, env: EndpointEnv) -> Answer:
        if isinstance(params, Replayed):
            return replay_answer(params.cassette, env)
        if isinstance(params, Recorded):
            shelf = self.shelf
            assert shelf.recorder is not None
            answer, cassette = await shelf.recorder.record(self.endpoint_id, params.value, params.normalised,
                                                          _own_file(env), shelf.caller_key(request_id))
            if cassette is not None and shelf.replay:
                shelf.index.add(cassette)
            return answer
        assert self.inner is not None
        return await self.inner.produce(params.params, request_id, env)

    def openapi(self) -> dict[str, Any]:
        return self.inner.openapi() if self.inner is not None else {}


def _own_file(env: EndpointEnv) -> Callable[[str], StoredFile | None]:
    def find(url: str) -> StoredFile | None:
        name = env.own_file_name(url)
        return None if name is None else env.files.get(name)
    return find


def replay_answer(cassette: Cassette, env: EndpointEnv) -> Answer:
    """The recorded result, its media registered as the mock's files (read from the cassette
    folder when asked) and its references rewritten to their URLs."""
    urls: dict[str, str] = {}
    for entry in cassette.media:
        name = f"replay-{entry['sha256'][:16]}{extension_for(entry['content_type'])}"
        if name not in env.files:
            env.files.add_rendered(name, functools.partial(Path.read_bytes, cassette.media_path(entry)),
                                   entry["content_type"])
        urls[MEDIA_REF + entry["file"]] = env.file_url(name)
        urls[MEDIA_NAME_REF + entry["file"]] = name
    result = cassette.result
    if "body" in result:
        body = orjson.dumps(_rewrite(result["body"], urls))
    else:
        body = str(result.get("text", "")).encode("utf-8")
    # content-type is the answer's own (JSON); the recorded one stays in the cassette to read
    headers = tuple(sorted((str(k), str(v)) for k, v in result.get("headers", {}).items() if k != "content-type"))
    return Answer(int(result["status"]), body, headers)


def _rewrite(value: Any, urls: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _rewrite(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, urls) for v in value]
    if isinstance(value, str):
        return urls.get(value, value)
    return value
