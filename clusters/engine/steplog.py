"""A step's log: redacted, ordered, batched into LogLine rows.

Why: installs print thousands of lines; one INSERT per line would make the database the
bottleneck, while the cluster page still wants lines within a second or so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db.models import Max
from django.utils import timezone

from clusters.core.storable import storable_text
from clusters.models import LogLine

MAX_LINE_LENGTH = 4000


class StepLog:
    """Collects lines for one step and writes them in batches (by count or by age)."""

    def __init__(
        self,
        step_id: int,
        redact: Callable[[str], str],
        batch_size: int = 200,
        max_delay: float = 0.5,
    ) -> None:
        self.step_id = step_id
        self._redact = redact
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._buffer: list[LogLine] = []
        self._oldest: float | None = None
        self._lock = threading.Lock()
        last = LogLine.objects.filter(step_id=step_id).aggregate(last=Max("seq"))["last"]
        self._next_seq = (last or 0) + 1

    def write(self, text: str, stream: str = "info") -> None:
        """Add one or more lines (split on newlines); secrets are masked before buffering, then
        control bytes are escaped (clusters/core/storable.py: PostgreSQL refuses NUL)."""
        for line in self._redact(str(text)).splitlines() or [""]:
            self._append(storable_text(line)[:MAX_LINE_LENGTH], stream)
        if self._due():
            self.flush()

    def _append(self, line: str, stream: str) -> None:
        with self._lock:
            self._buffer.append(
                LogLine(step_id=self.step_id, seq=self._next_seq, time=timezone.now(),
                        stream=stream, text=line)
            )
            self._next_seq += 1
            if self._oldest is None:
                self._oldest = time.monotonic()

    def _due(self) -> bool:
        with self._lock:
            if not self._buffer:
                return False
            aged = self._oldest is not None and time.monotonic() - self._oldest >= self._max_delay
            return len(self._buffer) >= self._batch_size or aged

    def flush(self) -> None:
        with self._lock:
            batch, self._buffer, self._oldest = self._buffer, [], None
        if batch:
            # A reclaimed step may race its old owner for a sequence number; never crash on it.
            LogLine.objects.bulk_create(batch, ignore_conflicts=True)
