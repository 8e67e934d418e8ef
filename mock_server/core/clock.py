"""The clock every timed behaviour of the mock reads.

Real by default; a test (or the control API) can freeze it and advance it by hand,
so queue progress, latencies and retries are tested without real sleeping.
Times are Unix epoch seconds (floats), so log timestamps stay meaningful.
"""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Callable


#: The latest time the clock may show (year 9999): datetime, log timestamps and the SQLite
#: store all handle it; a larger time (``advance: 1e308``) is refused, not accepted and broken.
LATEST = 253402300799.0


def _checked(when: float) -> float:
    if not (0.0 <= when <= LATEST):  # also refuses NaN
        raise ValueError(f"the clock's time must be between 0 and {LATEST:.0f} (the year 9999)")
    return when


class Clock:
    """Wall time plus an offset, or a frozen instant that only moves when told."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen_at: float | None = None
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        frozen = self._frozen_at
        if frozen is not None:
            return frozen
        return time.time() + self._offset

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self, at: float | None = None) -> float:
        """Stop the clock (at ``at``, or now).  Returns the frozen time."""
        with self._lock:
            self._frozen_at = self.now() if at is None else _checked(float(at))
            value = self._frozen_at
        self._changed()
        return value

    def unfreeze(self) -> float:
        """Let the clock run again from where it stands (no jump back to wall time)."""
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None
        self._changed()
        return self.now()

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (frozen or not).  Returns the new time."""
        seconds = float(seconds)
        if not seconds >= 0:  # also refuses NaN
            raise ValueError("the clock only moves forward")
        with self._lock:
            _checked(self.now() + seconds)
            if self._frozen_at is not None:
                self._frozen_at += seconds
            else:
                self._offset += seconds
        self._changed()
        return self.now()

    def reset(self) -> None:
        """Back to real wall time, unfrozen."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None
        self._changed()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from any thread) whenever the clock is moved by hand."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            listener()

    def state(self) -> dict[str, float | bool]:
        return {"now": self.now(), "frozen": self.frozen, "offset": self._offset}


class ClockWaiter:
    """Lets coroutines on one event loop sleep until a clock time.

    A sleeper wakes at the clock time it asked for, or earlier when the clock is
    moved by hand (it then re-checks), so a frozen clock advanced from another
    thread wakes the server's waiting streams at once.
    """

    def __init__(self, clock: Clock, loop: asyncio.AbstractEventLoop) -> None:
        self._clock = clock
        self._loop = loop
        self._event = asyncio.Event()
        self._sleepers = 0
        clock.on_change(self._poke)

    def _poke(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # loop closed
            pass

    def _wake(self) -> None:
        if self._sleepers:  # nothing to do (the common case on the hot path) without sleepers
            self._event.set()
            self._event = asyncio.Event()

    def notify(self) -> None:
        """Wake every sleeper (call on the loop's thread), e.g. after a state change."""
        self._wake()

    async def sleep_until(self, when: float, max_wait: float = 15.0) -> None:
        """Sleep until ``clock.now() >= when``, a hand move of the clock, a notify, or ``max_wait``."""
        delay = when - self._clock.now()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        event = self._event
        wait = max_wait if self._clock.frozen else min(delay, max_wait)
        self._sleepers += 1
        try:
            await asyncio.wait_for(event.wait(), timeout=max(wait, 0.0))
        except asyncio.TimeoutError:
            pass
        finally:
            self._sleepers -= 1
