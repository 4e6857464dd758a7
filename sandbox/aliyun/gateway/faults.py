"""Injected failures: make chosen calls throttle, fail, stall, drop or lose their answer, by
count or probability.

Why: the panel's retry and backoff logic must be exercised against the failures the real
gateway produces (Throttling, ServiceUnavailable, InternalError, slow or dropped responses),
and a test must be able to ask for them deterministically.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

from sandbox.aliyun.gateway import errors


@dataclass
class Fault:
    """What happens to a matching call. `action` "*" matches every action; `product` too."""

    action: str = "*"
    product: str = "*"
    code: str | None = None
    http_status: int | None = None
    message: str | None = None
    delay: float = 0.0
    drop: bool = False
    # The call is carried out (a create buys), then the connection closes before the answer:
    # what a client sees when its read times out or the network drops after the cloud acted.
    lose_answer: bool = False
    count: int | None = None  # fire this many times, then disappear
    probability: float = 1.0
    fired: int = field(default=0)

    def matches(self, product: str, action: str) -> bool:
        return self.action in ("*", action) and self.product.lower() in ("*", product.lower())

    def error(self) -> errors.ApiError | None:
        if not self.code:
            return None
        known = errors.KNOWN_FAULTS.get(self.code)
        status = self.http_status or (known.http_status if known else 400)
        message = self.message or (known.message if known else f"Injected fault {self.code}.")
        return errors.ApiError(status, self.code, message)

    def describe(self) -> dict[str, Any]:
        return {
            "action": self.action, "product": self.product, "code": self.code,
            "http_status": self.http_status, "message": self.message, "delay": self.delay,
            "drop": self.drop, "lose_answer": self.lose_answer, "count": self.count,
            "probability": self.probability, "fired": self.fired,
        }


def fault_from_json(body: dict[str, Any]) -> Fault:
    allowed = {"action", "product", "code", "http_status", "message", "delay", "drop",
               "lose_answer", "count", "probability"}
    unknown = set(body) - allowed
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    fault = Fault(**body)
    if not (fault.code or fault.delay or fault.drop or fault.lose_answer):
        raise ValueError("a fault needs code, delay, drop or lose_answer")
    if fault.lose_answer and (fault.code or fault.drop):
        raise ValueError("lose_answer carries the call out: it takes no code and no drop")
    if not 0.0 <= fault.probability <= 1.0:
        raise ValueError("probability must be within 0..1")
    return fault


class FaultBook:
    def __init__(self, seed: int | None = None) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)  # noqa: S311 - chaos, not cryptography

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.describe() for f in self._faults]

    def pick(self, product: str, action: str) -> Fault | None:
        """The first matching fault that fires for this call (consuming one of its count)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(product, action):
                    continue
                if fault.probability < 1.0 and self._random.random() >= fault.probability:
                    continue
                fault.fired += 1
                if fault.count is not None and fault.fired >= fault.count:
                    self._faults.remove(fault)
                return fault
        return None
