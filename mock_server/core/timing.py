"""Timing profiles: how long a request waits in the queue and how long it runs.

``instant``  completes by the first status call (tests, benchmarks).
``default``  a few seconds a person can watch in a terminal.
``realistic`` the model page's "Processing time: 1-2 minutes" (fal.ai model page for
             fal-ai/wan-25-preview/image-to-image), scaled by ``speed``.

Durations are a pure function of the request id, so a run can be replayed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

PROFILES = ("instant", "default", "realistic")


@dataclass(frozen=True, slots=True)
class TimingProfile:
    name: str
    queue_delay: float  # minimum time in IN_QUEUE, even with a free worker
    min_duration: float  # IN_PROGRESS time range
    max_duration: float
    speed: float = 1.0  # >1 runs faster: every time is divided by it

    @classmethod
    def named(cls, name: str, speed: float = 1.0) -> "TimingProfile":
        if speed <= 0:
            raise ValueError("speed must be > 0")
        if name == "instant":
            return cls("instant", 0.0, 0.0, 0.0, speed)
        if name == "default":
            return cls("default", 0.5, 2.0, 4.0, speed)
        if name == "realistic":
            return cls("realistic", 2.0, 60.0, 120.0, speed)
        raise ValueError(f"unknown timing profile {name!r}; choose one of {', '.join(PROFILES)}")

    def queue_wait(self) -> float:
        return self.queue_delay / self.speed

    def duration(self, request_id: str) -> float:
        """Processing time for one request: fixed per request id, within the profile's range."""
        if self.max_duration <= 0:
            return 0.0
        span = self.max_duration - self.min_duration
        # a CRC of the id spreads request ids evenly over [0, 1), the same on every run;
        # 30x cheaper than seeding a Random with it (5 µs per submit)
        fraction = zlib.crc32(request_id.encode()) / 4294967296 if span else 0.0
        return (self.min_duration + span * fraction) / self.speed
