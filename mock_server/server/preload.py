"""Load now what the package would otherwise load on first use.

Start-up stays short because several modules (the pydantic models, rendering, storage, the
dashboard and its assets...) load on first need.  A server started from one install must
keep working when that install is replaced under it (``pip install -e`` after ``pip install
.``, an upgrade): a module or data file looked for after that can be gone, and the call that
needed it would fail.  So ``fal-mock serve`` loads every module of the package, and every
data file a module reads late, on a thread of its own right after start-up.  A module that
reads package files late offers a ``preload()`` function that reads them into memory.
"""
from __future__ import annotations

import importlib
import pkgutil
import threading
import time
from typing import Callable

import mock_server

# modules that are entry points, not parts of the server: running them has effects
_NOT_LOADED = {"mock_server.__main__", "mock_server.pytest_plugin"}

_done = threading.Event()


def preload() -> None:
    """Import every module of the package and call the ``preload()`` each one offers."""
    for info in pkgutil.walk_packages(mock_server.__path__, "mock_server."):
        if info.name in _NOT_LOADED or info.name == __name__:
            continue
        hook = importlib.import_module(info.name).__dict__.get("preload")
        if callable(hook):
            hook()
    _done.set()


def preload_once(ready: Callable[[], bool], poll: float = 0.005,
                 first: Callable[[], object] | None = None) -> None:
    """Start :func:`preload` on a daemon thread as soon as ``ready()`` (the server listens),
    so that it does not hold up start-up; the server answers meanwhile.  ``first`` runs on
    that thread before the preload (the server's web face is built there)."""
    def run() -> None:
        while not ready():
            time.sleep(poll)
        if first is not None:
            first()
        preload()

    threading.Thread(target=run, name="fal-mock-preload", daemon=True).start()


def preloaded() -> bool:
    """Whether :func:`preload` has finished (reported by ``/_mock/health``)."""
    return _done.is_set()
