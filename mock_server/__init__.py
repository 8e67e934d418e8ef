"""fal-mock: a local emulator of the fal.ai model API (not affiliated with fal.ai).

Public API: :class:`FalMock` (the emulator's state), :class:`FalMockApp` (its ASGI
app) and :class:`Settings`.  Imported lazily so ``fal-mock serve`` starts fast.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["FalMock", "FalMockApp", "Settings", "__version__"]


def __getattr__(name: str):
    if name == "FalMock":
        from mock_server.emulator import FalMock

        return FalMock
    if name == "FalMockApp":
        from mock_server.app import FalMockApp

        return FalMockApp
    if name == "Settings":
        from mock_server.settings import Settings

        return Settings
    raise AttributeError(name)
