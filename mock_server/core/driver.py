"""The one task that moves the queue along on the mock's clock, for everyone who watches.

Requests change state when the queue is advanced: by a status poll, or by this driver.  Some
watchers need changes to happen with nobody polling: a webhook waiting for its request to
complete, a dashboard open in a browser, a status stream.  Each holds a watch
(:meth:`QueueDriver.watch`); while any watch is held, the driver sleeps until the queue's next
event, advances the queue, and the queue's own change listeners tell each watcher what
changed.  A hand move of the clock wakes it at once; so does :meth:`QueueDriver.kick` (a
submit, a reset).  With nobody watching it does nothing, so the hot path pays nothing.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Callable

from mock_server.core.clock import Clock
from mock_server.core.loops import call_on
from mock_server.core.queue import RequestQueue

log = logging.getLogger("fal_mock")

#: The longest the driver sleeps without looking (a frozen clock, nothing due).
SAFETY_POLL = 1.0


class QueueDriver:
    """Advances one :class:`RequestQueue` on its :class:`Clock` while it is watched."""

    def __init__(self, queue: RequestQueue, clock: Clock) -> None:
        self.queue = queue
        self.clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._kick: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._watches = 0
        self._stopped = False
        clock.on_change(self.kick)

    # -- binding -----------------------------------------------------------------------
    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Run on ``loop`` (default: the running one); called at start-up, and by a watcher
        that finds the driver unbound (served without a lifespan start-up)."""
        loop = loop or asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop = loop
        self._loop_thread = threading.get_ident() if _running_loop() is loop else None
        self._kick = asyncio.Event()
        self._stopped = False
        if self._watches:
            self._start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    # -- watching ----------------------------------------------------------------------
    def watch(self) -> Callable[[], None]:
        """Hold a watch (on the driver's loop); returns the function that releases it."""
        if self._loop is None:
            self.bind()
        self._watches += 1
        self._start()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._watches -= 1

        return release

    @property
    def watched(self) -> bool:
        return self._watches > 0

    def kick(self) -> None:
        """Something changed (the clock moved, a submit, a reset): look again now.  Any thread."""
        loop, kick = self._loop, self._kick
        if loop is None or kick is None or not self._watches:
            return
        call_on(loop, self._loop_thread == threading.get_ident(), kick.set)

    async def stop(self) -> None:
        """Stop the task (server shutdown)."""
        self._stopped = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    # -- the task ----------------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None and self._loop is not None and not self._stopped:
            if self._loop_thread is None:
                self._loop_thread = threading.get_ident() if _running_loop() is self._loop else None
            self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        queue, clock, kick = self.queue, self.clock, self._kick
        assert kick is not None
        try:
            while self._watches and not self._stopped:
                kick.clear()  # before advancing: a kick from now on is not lost
                try:
                    queue.advance()
                except Exception:  # never let the driver die
                    log.exception("advancing the queue failed")
                due = queue.next_event_time()
                timeout = SAFETY_POLL
                if due is not None and not clock.frozen and queue.polls is None:
                    # a hair past the event: loop timers may fire a little early
                    timeout = min(max(due - clock.now(), 0.0) + 0.001, SAFETY_POLL)
                try:
                    await asyncio.wait_for(kick.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            self._task = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
