"""The request journal's recorder: every fal call, and every call to the stand-ins for fal's
own hosts (files, storage, CDN), is kept in the emulator's journal with what it sent and how
it was answered.  One pure-ASGI middleware around the whole app, so no route can skip it; a
route adds what only it knows (the call's kind, endpoint, request id) to the entry it finds in
the scope under :data:`ENTRY`."""
from __future__ import annotations

import time
from typing import Any

from mock_server.core.journal import BODY_KEEP
from mock_server.core.paths import CDN_PREFIX, FILES_PREFIX, REST_PREFIX
from mock_server.emulator import FalMock

#: The scope key of the journal entry being filled for a call.
ENTRY = "fal_mock.journal_entry"

# /_mock/ paths that stand for fal hosts (storage, CDN, files) are journaled like fal calls
_JOURNALED_MOCK_PATHS = (FILES_PREFIX, REST_PREFIX, CDN_PREFIX)


def journaled(path: str) -> bool:
    """Whether a call to ``path`` is kept in the journal (the control API's own are not)."""
    return not path.startswith("/_mock/") or path.startswith(_JOURNALED_MOCK_PATHS)


class JournalMiddleware:
    """Records each journaled call once it has been answered (seq order is end order)."""

    def __init__(self, app: Any, emulator: FalMock) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        # a call entered again at another path (the proxy's storage targets) keeps its entry
        if scope["type"] != "http" or ENTRY in scope or not journaled(scope["path"]):
            await self.app(scope, receive, send)
            return
        emulator = self.emulator
        entry = emulator.journal.new_entry(emulator.clock.now(), scope["method"], scope["path"],
                                           scope.get("query_string", b""), scope["headers"])
        scope[ENTRY] = entry
        kept = bytearray()
        size = 0

        async def receive_body() -> dict:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if len(kept) < BODY_KEEP:
                    kept.extend(chunk[:BODY_KEEP - len(kept)])
            return message

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive_body, send_status)
        finally:
            entry.duration_ms = int((time.perf_counter() - started) * 1e6) / 1000  # µs precision
            if size:
                entry.body = bytes(kept)
                entry.body_size = size
            emulator.journal.record(entry)
