"""The opt-in access log (``fal-mock serve --log-requests``): one line per call, written when
the call is journaled.

The journal is the one place every fal call ends, whichever way it was answered (the fast
lane, :mod:`mock_server.protocol.hot`, or the web face's journal middleware), so the line is
written by a journal listener rather than by either path.  The control API's and the
dashboard's own calls are not journaled, and so not logged.
"""
from __future__ import annotations

import sys
from typing import TextIO

from mock_server.core.journal import Journal, JournalEntry


def access_line(entry: JournalEntry) -> str:
    """``POST /queue/fal-ai/flux/dev?x=1 200 <request id or -> 1.234ms``."""
    path = f"{entry.path}?{entry.query}" if entry.query else entry.path
    status = entry.status if entry.status is not None else "-"  # the client left before an answer
    duration = f"{entry.duration_ms:.3f}ms" if entry.duration_ms is not None else "-"
    return f"{entry.method} {path} {status} {entry.request_id or '-'} {duration}"


def log_requests(journal: Journal, out: TextIO | None = None) -> None:
    """Write :func:`access_line` of every call ``journal`` records to ``out`` (stdout)."""
    def write(entry: JournalEntry) -> None:
        stream = out or sys.stdout
        stream.write(access_line(entry) + "\n")
        stream.flush()

    journal.on_record(write)
