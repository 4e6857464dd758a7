"""The call log: every API call with its outcome, secrets removed.

Why: tests assert on what the panel actually asked the cloud (e.g. that a ClientToken was
sent, that nothing was created twice), and a person debugging the demo reads it.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from typing import Any

# Signature material and anything password-like never reaches the log.
_SECRET_NAME = re.compile(r"(password|secret|signature$|token$)", re.IGNORECASE)
_KEEP = {"ClientToken"}
MAX_ENTRIES = 20000


def redact(params: dict[str, str]) -> dict[str, str]:
    return {
        k: ("***" if _SECRET_NAME.search(k) and k not in _KEEP else v)
        for k, v in params.items()
    }


class CallLog:
    def __init__(self) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=MAX_ENTRIES)
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
