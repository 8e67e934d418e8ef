"""The contract between the queue and one emulated fal endpoint.

The queue, the HTTP layer and the CLI know nothing of any model: they hand the raw
request body to an :class:`Endpoint`, keep what it answers, and later ask it to
produce the result.  One module per fal endpoint implements this class.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from mock_server.core.answers import Answer

if TYPE_CHECKING:
    from mock_server.core.files import FileStore


@dataclass(slots=True)
class Parsed:
    """A request body the endpoint's schema accepted.

    ``params`` is endpoint-specific (for Wan: the validated pydantic input).
    ``notes`` are log lines the endpoint wants shown while the request runs
    (e.g. "only the first 2 of 3 image_urls are used").
    """

    params: Any
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EndpointEnv:
    """What an endpoint may use from the server while producing a result.

    ``file_url(name)`` turns a stored file's name into an absolute URL that leads
    back to this mock as the caller reached it.  ``own_file_name(url)`` returns the
    stored file's name when ``url`` points at one of this mock's files, else None.
    """

    files: "FileStore"
    file_url: Callable[[str], str]
    own_file_name: Callable[[str], str | None]
    allow_fetch: bool = False
    fetch_timeout: float = 10.0
    fetch_max_bytes: int = 10 * 1024 * 1024
    log: Callable[[str], None] = lambda message: None


class Endpoint(ABC):
    """One fal endpoint: its schema, its validation and how it produces output."""

    #: Full endpoint id as used on submit/run, e.g. ``fal-ai/wan-25-preview/image-to-image``.
    endpoint_id: str

    @abstractmethod
    def parse(self, body: bytes) -> Parsed | Answer:
        """Validate a raw JSON request body (may be empty or malformed).

        Returns :class:`Parsed` when the schema accepts it, or the exact fal 422
        :class:`Answer` when it does not.  Pure, synchronous and cheap: it runs on
        the submit hot path.  Never raises for any input.
        """

    @abstractmethod
    async def produce(self, params: Any, request_id: str, env: EndpointEnv) -> Answer:
        """Produce the final answer for accepted params: read inputs, render, build output.

        Called at most once per request (the first result GET, a webhook, or a
        synchronous run); the answer is cached by the caller.  Typed model errors
        (``image_load_error``, ``file_download_error`` ...) come back as an Answer,
        never as an exception.
        """

    def processing_notes(self, params: Any) -> list[str]:
        """Log lines shown while the request is IN_PROGRESS (besides parse notes)."""
        return []

    def openapi(self) -> dict[str, Any]:
        """fal's per-endpoint OpenAPI document (queue schemas included)."""
        return {}
