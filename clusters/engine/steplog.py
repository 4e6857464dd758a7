"""A step's log: redacted, ordered, batched into LogLine rows.

Why: installs print thousands of lines; one INSERT per line would make the database the
bottleneck, while the cluster page still wants lines within a second or so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.db import InterfaceError, OperationalError, connection
from django.db.models import Max
from django.utils import timezone

from clusters.core.storable import storable_text
from clusters.models import LogLine

MAX_LINE_LENGTH = 4000
# Lines kept while the database cannot be written (a PostgreSQL restart): beyond this the
# oldest unsaved ones are dropped and a line says how many.
MAX_BUFFERED_LINES = 20_000

logger = logging.getLogger(__name__)


class LeaseLost(BaseException):
    """Raised into a step at its next log line once its worker can no longer renew the lease:
    the sweeper is about to give the step to another worker, so this one stops first.

    A BaseException so a handler's broad ``except Exception`` (turning SSH errors into
    TransientError) cannot swallow it; ``finally`` blocks still run and close sessions.
    """


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
        self._dropped = 0
        # Set by the engine's heartbeat (clusters/engine/pipeline.py) when the lease is lost,
        # or when the heartbeat itself ended the step (its time limit, a cancel): then
        # stop_reason says which.
        self.lease_lost = threading.Event()
        self.stop_reason = ""
        last = LogLine.objects.filter(step_id=step_id).aggregate(last=Max("seq"))["last"]
        self._next_seq = (last or 0) + 1

    def write(self, text: str, stream: str = "info") -> None:
        """Add one or more lines (split on newlines); secrets are masked before buffering, then
        control bytes are escaped (clusters/core/storable.py: PostgreSQL refuses NUL).
        Raises LeaseLost once the heartbeat could not keep the step's lease."""
        if self.lease_lost.is_set():
            raise LeaseLost(self.stop_reason or (
                "this worker could not renew the step's lease (the database was unreachable); "
                "it stops before another worker takes the step"))
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

    def flush(self) -> bool:
        """Write what is buffered; False when the database could not be reached.

        Why it does not raise then: a database that is away for a few seconds (a restart, a
        failover) must not fail the step that is writing; the batch goes back to the front
        of the buffer, in order, and the next flush (the heartbeat's, every half second)
        writes it. Other database errors still raise: they are bugs, not weather.
        """
        with self._lock:
            batch, self._buffer, self._oldest = self._buffer, [], None
        if not batch:
            return True
        for last_try in (False, True):
            try:
                # A reclaimed step may race its old owner for a sequence number; never crash.
                LogLine.objects.bulk_create(batch, ignore_conflicts=True)
                return True
            except (OperationalError, InterfaceError) as exc:
                # Once more on a new connection: this thread's may be one the database ended
                # while it was away (the heartbeat thread's flushes kept working meanwhile),
                # and the step's last flush must not be the one that finds out.
                connection.close_if_unusable_or_obsolete()
                if last_try:
                    logger.warning("step %s: %d log lines kept for later, the database is "
                                   "unreachable: %s", self.step_id, len(batch), exc)
        self._put_back(batch)
        return False

    def _put_back(self, batch: list[LogLine]) -> None:
        with self._lock:
            self._buffer[:0] = batch
            excess = len(self._buffer) - MAX_BUFFERED_LINES
            if excess > 0:
                self._dropped += excess
                del self._buffer[:excess]
                self._buffer[0].text = (f"({self._dropped} earlier lines were lost while the "
                                        "database was unreachable)")
            self._oldest = self._oldest or time.monotonic()
