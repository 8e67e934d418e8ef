"""fal-mock: a local emulator of the fal.ai model API (not affiliated with fal.ai).

The public API, imported lazily so that ``fal-mock serve`` and a pytest session that does not
use the fixture pay nothing for what they do not use:

- :class:`FalMock`: the emulator (queue, clock, journal, faults, files, endpoints);
- :class:`Settings`: its configuration;
- :func:`create_app`: the ASGI application (FastAPI) serving one emulator;
- :func:`serve`: run it on uvicorn until SIGINT/SIGTERM (what ``fal-mock serve`` does);
- :class:`BackgroundServer`: run it on a thread of this process (tests, the pytest plugin);
- :class:`Endpoint`, :class:`EndpointEnv`, :class:`Parsed`, :class:`Answer`: the contract an
  emulated fal endpoint implements.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = [
    "Answer", "BackgroundServer", "Endpoint", "EndpointEnv", "FalMock", "Parsed", "Settings",
    "create_app", "serve", "__version__",
]

# name -> the module that defines it
_HOMES = {
    "Answer": "mock_server.core.answers",
    "BackgroundServer": "mock_server.server.background",
    "Endpoint": "mock_server.core.endpoint",
    "EndpointEnv": "mock_server.core.endpoint",
    "FalMock": "mock_server.emulator",
    "Parsed": "mock_server.core.endpoint",
    "Settings": "mock_server.settings",
    "create_app": "mock_server.web.app",
    "serve": "mock_server.server.serving",
}


def __getattr__(name: str):
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mock_server' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)


def __dir__() -> list[str]:
    return sorted(__all__)
