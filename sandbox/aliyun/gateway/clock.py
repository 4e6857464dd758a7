"""Emulated time: real wall-clock instants, realistic durations multiplied by a time scale.

Why: an RDS instance takes minutes to create in reality; tests want the same sequence of
states in seconds. Resources store the instant a transition is due (`clock.after(300)`) and
are advanced lazily on read or by the ticker, so no thread sleeps through a state change.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time scale must be positive")
        self.time_scale = time_scale

    def now(self) -> float:
        return time.time()

    def scaled(self, realistic_seconds: float) -> float:
        """How long `realistic_seconds` of cloud time lasts here."""
        return realistic_seconds * self.time_scale

    def after(self, realistic_seconds: float) -> float:
        """The instant a step that really takes `realistic_seconds` completes."""
        return self.now() + self.scaled(realistic_seconds)

    def is_due(self, instant: float | None) -> bool:
        return instant is not None and self.now() >= instant


def iso_utc(instant: float, seconds: bool = True) -> str:
    """`2024-01-01T00:00:00Z` (or minutes precision, as ECS prints `2024-01-01T00:00Z`)."""
    fmt = "%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%MZ"
    return datetime.fromtimestamp(instant, UTC).strftime(fmt)


def parse_iso_utc(text: str) -> float:
    """Parse the SDK's `%Y-%m-%dT%H:%M:%SZ`; raises ValueError otherwise."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
