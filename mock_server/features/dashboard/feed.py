"""The dashboard's live feed: which rows changed, sent to every browser that watches.

``journal.on_record`` and ``queue.on_change`` mark rows dirty; a flush (at most every
:data:`FLUSH_DELAY` s) renders each dirty row once and offers the event to every subscriber's
bounded queue (a subscriber that falls :data:`CLIENT_QUEUE` events behind is dropped; its
browser's ``EventSource`` reconnects and resyncs).  While anyone is subscribed the feed holds
a watch on the emulator's :class:`~mock_server.core.driver.QueueDriver`, so the queue moves
on the clock and rows turn COMPLETED without anybody polling.  No HTTP here: events are
server-sent-event bytes, written by the web face.
"""
from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any, Callable, Iterable

import orjson

from mock_server.core.loops import call_on
from mock_server.features.dashboard.rows import row_key

if TYPE_CHECKING:
    from mock_server.core.journal import JournalEntry
    from mock_server.core.queue import QueuedRequest
    from mock_server.features.dashboard.emulator import Emulator

#: Events a browser may fall behind before it is dropped (it reconnects and resyncs).
CLIENT_QUEUE = 512
#: Seconds a burst of changes is collected before the rows are rendered and sent.
FLUSH_DELAY = 0.03


def event(name: str, data: Any) -> bytes:
    """One server-sent event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class Subscriber:
    """One browser's bounded queue of events; ``gone`` is set when it is dropped."""

    __slots__ = ("queue", "gone")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(CLIENT_QUEUE)
        self.gone = asyncio.Event()

    def offer(self, chunk: bytes) -> None:
        if self.gone.is_set():
            return
        try:
            self.queue.put_nowait(chunk)
        except asyncio.QueueFull:  # too slow: drop it; its EventSource reconnects and resyncs
            self.gone.set()


class LiveFeed:
    """Row, clock and reset events of one emulator, for the browsers subscribed to them.

    ``changed_rows(keys)`` gives the ``row`` events' data for the rows whose keys changed,
    ``clock()`` the clock view (``hello``, ``clock`` and ``reset`` events).
    """

    def __init__(self, emulator: "Emulator", changed_rows: Callable[[set[str]], Iterable[dict[str, Any]]],
                 clock: Callable[[], dict[str, Any]]) -> None:
        self.emulator = emulator
        self._changed_rows = changed_rows
        self._clock = clock
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # browsers dropped for falling behind
        self.closing = False  # the server is stopping: streams end
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._dirty: set[str] = set()
        self._flush_pending = False
        self._release: Callable[[], None] | None = None
        emulator.journal.on_record(self._on_record)
        emulator.queue.on_change(self._on_change)
        emulator.clock.on_change(self._on_clock)
        emulator.on_reset(self._on_reset)

    # -- subscribing (on the server's loop) ----------------------------------------------
    def subscribe(self) -> tuple[Subscriber, bytes]:
        """A new subscriber, and the first bytes of its stream (``retry`` and ``hello``)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._loop_thread = threading.get_ident()
        subscriber = Subscriber()
        self.subscribers.add(subscriber)
        if self._release is None:
            self._release = self.emulator.driver.watch()
        self.emulator.driver.kick()
        return subscriber, b"retry: 1000\n\n" + event("hello", self._clock())

    def unsubscribe(self, subscriber: Subscriber, *, dropped: bool = False) -> None:
        self.subscribers.discard(subscriber)
        if dropped:
            self.dropped += 1
        if not self.subscribers and self._release is not None:
            self._release()
            self._release = None

    def close(self) -> None:
        """The server is stopping: end every stream (any thread; safe from a signal handler)."""
        self.closing = True
        self._soon(self._end_all)

    def _end_all(self) -> None:
        for subscriber in list(self.subscribers):
            subscriber.gone.set()

    # -- thread hops -------------------------------------------------------------------
    def _soon(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop (now, when already on it)."""
        loop = self._loop
        if loop is None or not self.subscribers:
            return
        call_on(loop, threading.get_ident() == self._loop_thread, fn, *args)

    # -- listeners (any thread) ----------------------------------------------------------
    def _on_record(self, entry: "JournalEntry") -> None:
        if self.subscribers and (key := row_key(entry)) is not None:
            self._soon(self._mark, key)

    def _on_change(self, request: "QueuedRequest") -> None:
        if self.subscribers:
            self._soon(self._mark, request.request_id)

    def _on_clock(self) -> None:
        if self.subscribers:
            self._soon(self._broadcast, "clock")

    def _on_reset(self) -> None:
        if self.subscribers:
            self._soon(self._reset)

    # -- on the loop ---------------------------------------------------------------------
    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self.emulator.driver.kick()  # a new submit may need the queue moved on
        if not self._flush_pending and self._loop is not None:
            self._flush_pending = True
            self._loop.call_later(FLUSH_DELAY, self._flush)

    def _offer(self, chunk: bytes) -> None:
        for subscriber in list(self.subscribers):
            subscriber.offer(chunk)

    def _flush(self) -> None:
        self._flush_pending = False
        keys, self._dirty = self._dirty, set()
        if not self.subscribers or not keys:
            return
        for data in self._changed_rows(keys):
            self._offer(event("row", data))

    def _broadcast(self, name: str) -> None:
        self._offer(event(name, self._clock()))

    def _reset(self) -> None:
        self._dirty.clear()
        self._broadcast("reset")
