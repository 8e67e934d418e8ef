"""Record real fal once, replay it offline (issue 19): cassettes, their matching, the recorder
and the endpoint that replays them.  See docs/record-replay.md.

:func:`use_cassettes` puts a cassette folder in front of an emulator's endpoints (``serve
--record`` / ``--replay``, the pytest marker); :func:`shelf_from_settings` reads the flags.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from mock_server.core.endpoint import Endpoint
from mock_server.core.files import StoredFile
from mock_server.core.paths import own_file_name
from mock_server.features.cassettes.endpoint import EMULATE, RECORD, REFUSE, CassetteEndpoint, Shelf
from mock_server.features.cassettes.recorder import Recorder, Upstream
from mock_server.features.cassettes.store import Cassette, CassetteDir
from mock_server.settings import DEFAULT_KEY, Settings

__all__ = ["EMULATE", "RECORD", "REFUSE", "Cassette", "CassetteDir", "CassetteEndpoint", "Recorder", "Shelf",
           "Upstream", "shelf_from_settings", "use_cassettes"]


def own_file_finder(emulator: Any) -> Callable[[str], StoredFile | None]:
    """``url -> the emulator's stored file`` for URLs of its own file routes (uploads)."""
    def find(url: str) -> StoredFile | None:
        settings = emulator.settings
        name = own_file_name(url, host=settings.host, port=settings.port, caller_host="")
        return None if name is None else emulator.files.get(name)
    return find


def caller_key_finder(emulator: Any) -> Callable[[str], str | None]:
    """``request_id -> the fal key its submit carried`` (``Authorization: Key id:secret``, as the
    journal keeps it), unless it is one of the mock's own keys or the journal dropped the call."""
    def find(request_id: str) -> str | None:
        settings = emulator.settings
        own = {DEFAULT_KEY, *settings.keys}
        for entry in reversed(emulator.journal.entries(request_id=request_id, kind="submit")):
            for name, value in entry.raw_headers:
                if name.lower() == b"authorization":
                    scheme, _, credential = value.decode("latin-1").partition(" ")
                    if scheme.lower() == "key" and ":" in credential and credential not in own:
                        return credential.strip()
        return None
    return find


def shelf_from_settings(settings: Settings, own_file: Callable[[str], StoredFile | None],
                        caller_key: Callable[[str], str | None] = lambda request_id: None) -> Shelf | None:
    """The shelf ``--record DIR`` / ``--replay DIR`` ask for, or None."""
    if settings.record_dir is not None:
        cassettes = CassetteDir(settings.record_dir)
        recorder = Recorder(cassettes, Upstream.of(settings.upstream), os.environ.get("FAL_KEY"))
        return Shelf(cassettes, replay=False, on_miss=RECORD, recorder=recorder, own_file=own_file,
                     caller_key=caller_key)
    if settings.replay_dir is not None:
        return Shelf(CassetteDir(settings.replay_dir), on_miss=REFUSE if settings.replay_strict else EMULATE,
                     ignored=settings.replay_ignore, own_file=own_file)
    return None


def use_cassettes(emulator: Any, shelf: Shelf) -> Callable[[], None]:
    """Put ``shelf`` in front of every endpoint of ``emulator`` (and of the ids it does not
    emulate that the shelf serves); returns the function that takes it away again."""
    originals: list[Endpoint] = [e.inner if isinstance(e, CassetteEndpoint) else e for e in emulator.endpoints]
    for endpoint in originals:
        emulator.add_endpoint(shelf.wrap(endpoint.endpoint_id, endpoint))

    def fallback(endpoint_id: str) -> Endpoint | None:
        return shelf.wrap(endpoint_id, None) if shelf.serves(endpoint_id) else None

    def wrapper(endpoint: Endpoint) -> Endpoint:  # a catalogued endpoint, built on first use
        return shelf.wrap(endpoint.endpoint_id, endpoint)

    emulator.registry.fallbacks.append(fallback)
    emulator.registry.wrappers.append(wrapper)

    def undo() -> None:
        emulator.registry.fallbacks.remove(fallback)
        emulator.registry.wrappers.remove(wrapper)
        # catalogued endpoints are built again, without cassettes, when next asked for
        emulator.registry.forget(lambda e: isinstance(e, CassetteEndpoint))
        for endpoint in originals:
            emulator.add_endpoint(endpoint)

    return undo


def cassettes_in(root: Path | str) -> list[Cassette]:
    return list(CassetteDir(root))
