r"""A step's log: redacted, ordered, batched into LogLine rows, and bounded.

Where a step's output comes from: its handler's `ctx.say` (clusters/engine/stepcontext.py),
and above all the hosts: the SSH adapter (clusters/adapters/ssh.py) splits a command's
output into lines as it streams in and hands each one, redacted, to `ctx.say` through the
callers' `on_line` (clusters/adapters/nodes.py, hostcleanup.py); the engine's heartbeat
(clusters/engine/pipeline.py) writes its own lines and flushes the buffer every half second.
Every path ends in `StepLog.write`, so the rules below are kept in one place.

Why batched: installs print thousands of lines; one INSERT per line would make the database
the bottleneck, while the cluster page still wants lines within a second or so.

Why bounded: a step that prints 1,000,000 lines (a runaway `set -x`, a crash loop in a
journal) must not grow the database without bound or make the page unusable. A step keeps
its first PANEL_STEP_LOG_HEAD_LINES lines (they say what was run) and its newest
PANEL_STEP_LOG_TAIL_LINES lines (they say why it failed). The lines between are deleted as
the tail moves on and replaced by ONE marker row (stream LOG_OMITTED, at the number of the
first omitted line) that counts exactly how many lines and bytes are gone. A line's `seq` is
its line number in the step, so a kept line keeps its number and the marker's number says
where the gap starts. Deleted rows' space is reused: SQLite puts their pages on its freelist,
PostgreSQL once (auto)vacuum has marked them free, so the table stays near the kept rows
plus what is written between two autovacuum runs (benchmarks/step_log.py shows both).
The whole log is not kept anywhere else: a compressed copy would be a
second store with a bound of its own, and a second place secrets could leak from; instead
the page and the download say plainly what was omitted.

The order of the rules in `write`, and why:
1. ANSI escape sequences (colours, cursor moves, terminal titles, OSC 8 links) are stripped:
   the page shows plain text, search finds words that colour codes would split, and a
   secret printed as ``pass\x1b[1mword`` is whole again for step 2.
2. Secrets are masked (clusters/core/redaction.py) in the whole text, before it is split or
   cut: a cut can then only drop masked text, never leave half a secret unmasked.
3. Other control bytes are escaped as ``\xNN`` (clusters/core/storable.py).
4. A line longer than PANEL_STEP_LOG_MAX_LINE_CHARS is cut there; `cut_chars` records how
   many characters were dropped, and the page and the download show "[cut N characters]".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Func, IntegerField, Max, Min, Q
from django.db.models.constants import OnConflict
from django.db.models.sql.compiler import SQLCompiler
from django.utils import timezone

from clusters.core.storable import storable_text
from clusters.engine.compiled import CompiledQuery
from clusters.models import LOG_OMITTED, LogLine

# ECMA-48 sequences: CSI (ESC [ or the 8-bit 0x9b, parameters, intermediates, a final byte),
# OSC (ESC ], up to BEL or ESC \\), a character-set choice (ESC ( B, which tput's sgr0
# prints), and two-character escapes (ESC and one of @-Z, \\, ^, _).
_ANSI = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\|$)"
    r"|\x1b[()*+][0-9A-Za-z]"
    r"|\x1b[@-Z\\^_]")


def strip_ansi(text: str) -> str:
    """`text` without ANSI escape sequences (a lone ESC stays, to be shown as ``\\x1b``)."""
    return _ANSI.sub("", text) if ("\x1b" in text or "\x9b" in text) else text


class OctetLength(Func):
    """The length of a text in bytes (UTF-8), in every database the panel supports."""

    function = "OCTET_LENGTH"
    output_field = IntegerField()

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper,
                  **extra: Any) -> tuple[str, tuple[str | int, ...]]:
        # SQLite's length() counts characters in text and bytes in a blob.
        sql, params = self.as_sql(compiler, connection,
                                  template="LENGTH(CAST(%(expressions)s AS BLOB))", **extra)
        return sql, tuple(params)


@dataclass(frozen=True)
class LogLimits:
    """How much of one step's log is kept (see the module docstring)."""

    head_lines: int
    tail_lines: int
    max_line_chars: int

    @classmethod
    def from_settings(cls) -> LogLimits:
        return cls(settings.PANEL_STEP_LOG_HEAD_LINES, settings.PANEL_STEP_LOG_TAIL_LINES,
                   settings.PANEL_STEP_LOG_MAX_LINE_CHARS)


@dataclass(slots=True)
class _Line:
    """A line waiting in the buffer (a model instance per line cost a tenth of the ingest)."""

    seq: int
    time: datetime
    stream: str
    text: str
    cut: int


_COLUMNS = ("step_id", "seq", "time", "stream", "text", "cut_chars", "omitted_lines",
            "omitted_bytes")


def insert_lines(step_id: int, lines: list[_Line]) -> None:
    """INSERT the lines in one executemany, skipping line numbers already stored.

    Why not bulk_create: it compiles every value of every row through the field API, which
    was half of the time of ingesting a million lines; here the SQL is built once per batch
    with the backend's own ignore-conflicts words (INSERT OR IGNORE, ON CONFLICT DO NOTHING,
    INSERT IGNORE), and only the timestamp needs the backend's adaptation.
    """
    ops = connection.ops
    sql = (f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
           f"{ops.quote_name(LogLine._meta.db_table)} "
           f"({', '.join(ops.quote_name(column) for column in _COLUMNS)}) "
           f"VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
           f"{ops.on_conflict_suffix_sql([], OnConflict.IGNORE, None, None)}")
    adapt = ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(step_id, line.seq, adapt(line.time), line.stream, line.text,
                                  line.cut, 0, 0) for line in lines])


def delete_counting(step_id: int, head: int, cutoff: int) -> tuple[int, int]:
    """Delete the step's stored lines numbered head+1..cutoff (not the marker); how many
    lines and bytes that was.

    Why one statement where the database allows it: a SUM and then a DELETE are two reads,
    and a line another writer of the step (a reclaimed step's old owner) inserts between
    them would be deleted uncounted. PostgreSQL deletes and sums in one statement, SQLite
    and MariaDB return each deleted line's size from the DELETE itself; MySQL, which has
    no DELETE ... RETURNING, sums with a locking read (its next-key locks keep new lines
    out of the range until the transaction ends) and then deletes."""
    # The SQL's names come from quote_name and its values are parameters (hence the noqa).
    ops = connection.ops
    table = ops.quote_name(LogLine._meta.db_table)
    where = (f"{ops.quote_name('step_id')} = %s AND {ops.quote_name('seq')} > %s AND "
             f"{ops.quote_name('seq')} <= %s AND {ops.quote_name('stream')} <> %s")
    params: list[int | str] = [step_id, head, cutoff, LOG_OMITTED]
    text = ops.quote_name("text")
    size = f"LENGTH(CAST({text} AS BLOB))" if connection.vendor == "sqlite" else \
        f"OCTET_LENGTH({text})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH gone AS (DELETE FROM {table} WHERE {where} "  # noqa: S608
                           f"RETURNING {size} AS size) "
                           "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM gone", params)
            lines, total = cursor.fetchone()
            return int(lines), int(total)
        if connection.vendor == "sqlite" or getattr(connection, "mysql_is_mariadb", False):
            cursor.execute(f"DELETE FROM {table} WHERE {where} RETURNING {size}",  # noqa: S608
                           params)
            lines = total = 0
            while rows := cursor.fetchmany(10_000):
                lines += len(rows)
                total += sum(int(row[0] or 0) for row in rows)
            return lines, total
        cursor.execute(f"SELECT COUNT(*), COALESCE(SUM({size}), 0) FROM {table} "  # noqa: S608
                       f"WHERE {where} FOR UPDATE", params)
        lines, total = cursor.fetchone()
        cursor.execute(f"DELETE FROM {table} WHERE {where}", params)  # noqa: S608
        return int(lines), int(total)


def cut_line(line: str, limit: int) -> tuple[str, int]:
    """The line cut to `limit` characters, and how many were cut."""
    return (line, 0) if len(line) <= limit else (line[:limit], len(line) - limit)


logger = logging.getLogger(__name__)

T = TypeVar("T")


class LeaseLost(BaseException):
    """Raised into a step at its next log line once its worker can no longer renew the lease:
    the sweeper is about to give the step to another worker, so this one stops first.

    A BaseException so a handler's broad ``except Exception`` (turning SSH errors into
    TransientError) cannot swallow it; ``finally`` blocks still run and close sessions.
    """


#: A step's last line number and its marker's (`StepLog.__init__`).
_STORED = CompiledQuery(
    "step log: the last line number and the marker's",
    lambda step_id: LogLine.objects.filter(step_id=step_id).order_by().values("step_id")
    .annotate(last=Max("seq"), marker=Min("seq", filter=Q(stream=LOG_OMITTED)))
    .values_list("last", "marker"), 1)


class StepLog:
    """Collects lines for one step and writes them in batches (by count or by age), keeping
    the step's first and newest lines only (see the module docstring).

    Two threads flush: the handler's (when a batch is full) and the heartbeat's (every half
    second). A flush inserts the batch and, in the same transaction, deletes the lines that
    fell out of the tail and adds them to the marker row; `_flushing` serialises flushes so
    two of them never count the same deleted lines twice.
    """

    # A batch is written when it holds `batch_size` lines or its oldest is `max_delay` old
    # (the heartbeat flushes every half second too): a fast writer's lines reach the page as
    # soon as a slow one's, and 1,000 lines a batch cost 40% less CPU than 200 did.
    def __init__(
        self,
        step_id: int,
        redact: Callable[[str], str],
        batch_size: int = 1000,
        max_delay: float = 0.5,
        limits: LogLimits | None = None,
    ) -> None:
        self.step_id = step_id
        self._redact = redact
        self._batch_size = batch_size
        self._max_delay = max_delay
        self._limits = limits or LogLimits.from_settings()
        self._buffer: list[_Line] = []
        self._oldest: float | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._dropped = 0
        # After a flush the database refused, the writer's own flushes wait this long (the
        # heartbeat's half-second flush still retries): otherwise every line written while
        # the database is away would try it twice and sift the whole buffer again.
        self._retry_at = 0.0
        # Set by the engine's heartbeat (clusters/engine/pipeline.py) when the lease is lost,
        # or when the heartbeat itself ended the step (its time limit, a cancel): then
        # stop_reason says which.
        self.lease_lost = threading.Event()
        self.stop_reason = ""
        # One query for both, compiled once per process (a step's start is on the engine's
        # hot path, issue 18); no row when the step has no line yet.
        (last, marker), = _STORED.rows(step_id) or [(None, None)]
        self._next_seq = (last or 0) + 1
        # A step's head is fixed once its log was trimmed (an earlier attempt's marker row
        # says where): a changed setting must not move the gap under lines already kept.
        self._head = marker - 1 if marker is not None else self._limits.head_lines
        # Lines numbered up to here (beyond the head) are gone or counted by the marker.
        self._trimmed_to = self._head
        # Lines dropped from the buffer before they were ever stored, not yet counted.
        self._unsaved_omitted = (0, 0)

    def write(self, text: str, stream: str = "info", cut: int = 0) -> None:
        """Add one or more lines (split on newlines), after the rules of the module docstring
        (ANSI stripped, secrets masked, control bytes escaped, long lines cut). `cut`: how
        many characters the caller already dropped from the end of the (last) line.
        Raises LeaseLost once the heartbeat could not keep the step's lease."""
        if self.lease_lost.is_set():
            raise LeaseLost(self.stop_reason or (
                "this worker could not renew the step's lease (the database was unreachable); "
                "it stops before another worker takes the step"))
        limit = self._limits.max_line_chars
        lines = self._redact(strip_ansi(str(text))).splitlines() or [""]
        for number, line in enumerate(lines, 1):
            kept, cut_here = cut_line(storable_text(line), limit)
            self._append(kept, cut_here + (cut if number == len(lines) else 0), stream)
        if self._due():
            self.flush()

    def _append(self, line: str, cut: int, stream: str) -> None:
        with self._lock:
            self._buffer.append(_Line(self._next_seq, timezone.now(), stream, line, cut))
            self._next_seq += 1
            if self._oldest is None:
                self._oldest = time.monotonic()

    def _cutoff(self) -> int:
        """The newest line number that falls outside the tail (the tail is the newest
        `tail_lines` numbers); lines past the head up to here are to be omitted."""
        return self._next_seq - 1 - self._limits.tail_lines

    def _drop_unsaved_tail(self) -> None:
        """Drop buffered lines that already fell out of the tail, counting them (lock held):
        storing them only to delete them would waste the database's time, and while the
        database is away this bounds the buffer by the tail too."""
        cutoff = self._cutoff()
        keep = [line for line in self._buffer if not self._head < line.seq <= cutoff]
        if len(keep) == len(self._buffer):
            return
        gone = [line for line in self._buffer if self._head < line.seq <= cutoff]
        lines, size = self._unsaved_omitted
        self._unsaved_omitted = (lines + len(gone),
                                 size + sum(len(line.text.encode()) for line in gone))
        self._buffer = keep

    def _due(self) -> bool:
        with self._lock:
            if not self._buffer or time.monotonic() < self._retry_at:
                return False
            aged = self._oldest is not None and time.monotonic() - self._oldest >= self._max_delay
            return len(self._buffer) >= self._batch_size or aged

    def flush(self) -> bool:
        """Write what is buffered, then trim the log to its head and tail; False when the
        database could not be reached.

        Why it does not raise then: a database that is away for a few seconds (a restart, a
        failover) must not fail the step that is writing; the batch goes back to the front
        of the buffer, in order, and the next flush (the heartbeat's, every half second)
        writes it. Other database errors still raise: they are bugs, not weather. Writing a
        batch again is harmless (ignore_conflicts on the line numbers), and the trim is one
        transaction with the insert, so a failure counts nothing twice.
        """
        with self._flushing:
            batch, omitted, cutoff = self._take()
            if not batch and cutoff <= self._trimmed_to and not omitted[0]:
                return True
            for last_try in (False, True):
                try:
                    with transaction.atomic():
                        # A reclaimed step may race its old owner for a line number; never
                        # crash.
                        insert_lines(self.step_id, batch)
                        self._trim(cutoff, omitted)
                    self._trimmed_to = max(self._trimmed_to, cutoff)
                    self._retry_at = 0.0
                    return True
                except (OperationalError, InterfaceError) as exc:
                    # Once more on a new connection: this thread's may be one the database
                    # ended while it was away (the heartbeat thread's flushes kept working
                    # meanwhile), and the step's last flush must not be the one that finds out.
                    connection.close_if_unusable_or_obsolete()
                    if last_try:
                        logger.warning("step %s: %d log lines kept for later, the database is "
                                       "unreachable: %s", self.step_id, len(batch), exc)
                except BaseException:
                    # Any other error is raised to the caller (a bug, not weather), but the
                    # batch is not its to lose: the next flush (the step's own, at its end)
                    # writes it. A heartbeat thread whose connection cannot see the step's
                    # row yet (IntegrityError) dropped a step's lines before.
                    self._put_back(batch, omitted)
                    raise
            self._put_back(batch, omitted)
            self._retry_at = time.monotonic() + self._max_delay
            return False

    def flush_with(self, then: Callable[[], T]) -> T:
        """Write what is buffered and call `then` in the same transaction; its result.

        Why: the engine stores a step's outcome with the step's last lines (one commit where
        there were two, on the hot path of every step; issue 18). Unlike `flush`, a database
        error is raised (the caller decides what to do): the batch is put back first, so a
        later `flush` still writes it, and nothing of `then` was committed either."""
        with self._flushing:
            batch, omitted, cutoff = self._take()
            try:
                with transaction.atomic():
                    if batch:
                        insert_lines(self.step_id, batch)
                    if cutoff > self._trimmed_to or omitted[0]:
                        self._trim(cutoff, omitted)
                    result = then()
            except BaseException:
                self._put_back(batch, omitted)
                raise
            self._trimmed_to = max(self._trimmed_to, cutoff)
            self._retry_at = 0.0
            return result

    def _take(self) -> tuple[list[_Line], tuple[int, int], int]:
        """Empty the buffer for a flush: its lines, the omitted count not stored yet, and the
        line number up to which the log is to be trimmed."""
        with self._lock:
            self._drop_unsaved_tail()
            batch, self._buffer, self._oldest = self._buffer, [], None
            omitted, self._unsaved_omitted = self._unsaved_omitted, (0, 0)
            return batch, omitted, self._cutoff()

    def _trim(self, cutoff: int, omitted: tuple[int, int]) -> None:
        """Delete the stored lines between the head and the tail, and count them (and the
        `omitted` lines that were never stored) in the step's marker row."""
        lines, size = omitted
        if cutoff > self._trimmed_to:
            deleted, deleted_size = delete_counting(self.step_id, self._head, cutoff)
            lines, size = lines + deleted, size + deleted_size
        if not lines:
            return
        marker = LogLine.objects.filter(step_id=self.step_id, stream=LOG_OMITTED)
        counts = {"omitted_lines": F("omitted_lines") + lines,
                  "omitted_bytes": F("omitted_bytes") + size}
        if marker.update(**counts):
            return
        try:
            with transaction.atomic():  # a savepoint: a lost race must not end the flush
                LogLine.objects.create(step_id=self.step_id, seq=self._head + 1,
                                       time=timezone.now(), stream=LOG_OMITTED, text="",
                                       omitted_lines=lines, omitted_bytes=size)
        except IntegrityError:
            # Another writer of this step (a reclaimed step's old owner) created the marker
            # first: add to its counts instead.
            if not marker.update(**counts):
                raise

    def _put_back(self, batch: list[_Line], omitted: tuple[int, int]) -> None:
        with self._lock:
            self._buffer[:0] = batch
            lines, size = self._unsaved_omitted
            self._unsaved_omitted = (lines + omitted[0], size + omitted[1])
            self._drop_unsaved_tail()
            self._drop_excess()
            self._oldest = self._oldest or time.monotonic()

    def _max_buffered(self) -> int:
        """How many lines wait while the database cannot be written (a PostgreSQL restart):
        the head, the tail and one batch. `_drop_unsaved_tail` already keeps no more than
        head + tail, so an outage from a step's first line loses nothing the bound keeps;
        a fixed cap below head + tail dropped head lines uncounted."""
        return self._limits.head_lines + self._limits.tail_lines + self._batch_size

    def _drop_excess(self) -> None:
        """Beyond `_max_buffered`, drop the oldest lines past the head (lock held): they join
        the omitted range, counted in the marker like any other, and a line of its own (at
        the end, with a number of its own) says that the database was away."""
        excess = len(self._buffer) - self._max_buffered()
        if excess <= 0:
            return
        kept: list[_Line] = []
        lines, size = self._unsaved_omitted
        for line in self._buffer:
            if excess > 0 and line.seq > self._head:
                excess, lines, size = excess - 1, lines + 1, size + len(line.text.encode())
                self._dropped += 1
            else:
                kept.append(line)
        self._unsaved_omitted = (lines, size)
        self._buffer = kept
        kept.append(_Line(self._next_seq, timezone.now(), "info",
                          f"({self._dropped} lines were dropped while the database was "
                          "unreachable; they are counted with the omitted lines)", 0))
        self._next_seq += 1
