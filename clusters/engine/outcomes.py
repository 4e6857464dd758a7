"""What a step returns to the engine.

Why: a step never decides what runs next, never sleeps and never retries itself; it says
what happened and the engine acts on it (see clusters/engine/pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Done:
    """The step finished; `result` is what it learned (kept on the step, read by later steps)."""

    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Wait:
    """Not yet: run me again in `seconds`; `reason` is shown to the user while waiting.

    While a step keeps returning the same reason, the engine looks less often after a few
    punctual looks (clusters/engine/polling.py): `seconds` is the interval a fresh wait
    is looked at. `grow=False` where the timing itself matters (a drain period, a countdown
    a user watches): every look then comes after exactly `seconds`."""

    seconds: float
    reason: str
    grow: bool = True


@dataclass(frozen=True)
class Fail:
    """An expected failure a person can act on; `message` says what to do."""

    message: str


@dataclass(frozen=True)
class Skip:
    """Nothing to do here (for example, a datastore the user brought needs no RDS)."""

    reason: str


Outcome = Done | Wait | Fail | Skip
