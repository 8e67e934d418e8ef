"""A complete HTTP answer (status, JSON body bytes, extra headers): what every part of the
emulator gives back, from an endpoint's result to a fal error body."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer an endpoint gives: status, JSON body bytes, extra headers.

    Used both for success (200 with the model output) and for fal-shaped errors
    (422 validation bodies, typed model errors).
    """

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
