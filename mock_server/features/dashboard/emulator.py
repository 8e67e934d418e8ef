"""What the dashboard uses of the emulator it shows (:class:`mock_server.emulator.FalMock`:
the emulator sits above the features and is not imported here)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    from mock_server.core.clock import Clock
    from mock_server.core.driver import QueueDriver
    from mock_server.core.endpoint import Endpoint
    from mock_server.core.faults import FaultPlan
    from mock_server.core.files import FileStore
    from mock_server.core.journal import Journal
    from mock_server.core.queue import QueuedRequest, RequestQueue
    from mock_server.settings import Settings


class Emulator(Protocol):
    settings: "Settings"
    clock: "Clock"
    queue: "RequestQueue"
    driver: "QueueDriver"
    journal: "Journal"
    faults: "FaultPlan"
    files: "FileStore"

    @property
    def endpoints(self) -> "list[Endpoint]": ...
    def summary(self, request: "QueuedRequest") -> dict[str, Any]: ...
    def on_reset(self, hook: Callable[[], None]) -> None: ...
