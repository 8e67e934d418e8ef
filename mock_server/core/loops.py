"""Calling into the server's event loop from any thread.

The queue's, the clock's and the journal's listeners run on the caller's thread: the loop's
own, or a test's that moves the clock.  What they start must run on the loop.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable


def call_on(loop: asyncio.AbstractEventLoop, on_loop_thread: bool, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` on ``loop``: at once when the caller is on the loop's thread, else
    scheduled thread-safely; nothing once the loop is closed."""
    if on_loop_thread:
        fn(*args)
        return
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # loop closed
        pass
