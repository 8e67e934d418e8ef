"""Files of a restored state that are not in memory: uploads read back from the state folder,
output images drawn again from their request's params (the renderer is a pure function of
them), and the recording of which images a result registered (for the ``files`` table)."""
from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

from mock_server.core.endpoint import EndpointEnv, Parsed
from mock_server.core.files import StoredFile
from mock_server.core.paths import FILES_PREFIX

if TYPE_CHECKING:
    from mock_server.core.files import FileStore
    from mock_server.core.queue import QueuedRequest, RequestQueue
    from mock_server.features.state_folder import StateFolder
    from mock_server.settings import Settings

log = logging.getLogger("fal_mock")

_LOOPBACK = frozenset(("127.0.0.1", "localhost", "::1", "[::1]"))


class RecordingFiles:
    """A FileStore seen through one result's production: notes the rendered names."""

    def __init__(self, files: Any, names: list[str]) -> None:
        self._files = files
        self._names = names

    def add_rendered(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._names.append(name)
        self._files.add_rendered(name, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._files, attr)

    def __contains__(self, name: str) -> bool:
        return name in self._files


def recording_env(env: EndpointEnv, names: list[str]) -> EndpointEnv:
    """``env`` with a file store that appends to ``names`` each image the result renders."""
    return replace(env, files=RecordingFiles(env.files, names))


class StoredFiles:
    """The FileStore's ``loader`` with a state folder: an upload read from disk, or an output
    image drawn again by producing its request's result once more (answer discarded).
    ``settings`` gives the emulator's settings as they are now."""

    def __init__(self, folder: "StateFolder", queue: "RequestQueue", files: "FileStore",
                 settings: Callable[[], "Settings"]) -> None:
        self._folder = folder
        self._queue = queue
        self._files = files
        self._settings = settings
        self._reproduce_lock = threading.Lock()

    def load_file(self, name: str) -> StoredFile | None:
        """An upload read from disk, or an output image drawn again (None: neither)."""
        found = self._folder.file(name)
        if found is None or isinstance(found, StoredFile):
            return found
        return self._reproduce(found, name)

    def _reproduce(self, request_id: str, name: str) -> StoredFile | None:
        """Produce the request's result again (answer discarded): its files get registered."""
        files = self._files
        request = self._queue.peek(request_id)
        if request is None or not isinstance(request.parsed, Parsed):
            return None
        with self._reproduce_lock:  # one at a time: a burst of GETs renders once
            if name not in files:
                env = self._env_for(request)
                result: list[Any] = []

                def run() -> None:
                    result.append(asyncio.run(request.endpoint.produce(request.parsed.params, request_id, env)))

                thread = threading.Thread(target=run, name="fal-mock-reproduce", daemon=True)
                thread.start()  # its own loop, whatever thread (or loop) asked
                thread.join()
        if name not in files:
            return None
        return files.get(name)

    def _env_for(self, request: "QueuedRequest") -> EndpointEnv:
        """What the HTTP layer's ``env_for`` gives, for the request's origin (same own-file rules)."""
        settings = self._settings()  # now: the port is known once the server listens
        scheme, host = request.origin or (settings.scheme, f"{settings.host}:{settings.port}")
        files_base = f"{scheme}://{host}{FILES_PREFIX}"

        def own_file_name(url: str) -> str | None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.path.startswith(FILES_PREFIX):
                return None
            if (parts.hostname or "") not in _LOOPBACK and parts.hostname != settings.host:
                return None
            if parts.port not in (settings.port, None) and parts.netloc != host:
                return None
            return parts.path[len(FILES_PREFIX):]

        return EndpointEnv(
            files=self._files, file_url=lambda n: files_base + n, own_file_name=own_file_name,
            allow_fetch=settings.allow_fetch, fetch_timeout=settings.fetch_timeout,
            fetch_max_bytes=settings.fetch_max_bytes, log=log.info,
        )
