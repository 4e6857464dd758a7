"""A step's stored log is bounded: its first K lines, its newest N lines and one marker row
with the exact count of what is gone between; a long line is cut with a count; ANSI escapes
are stripped; redaction happens before any cut (clusters/engine/steplog.py)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.core.redaction import Redactor
from clusters.engine.pipeline import StepSpec, create_run
from clusters.engine.steplog import LogLimits, StepLog
from clusters.models import LOG_OMITTED, LogLine, RunKind, Step
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db


def _step() -> Step:
    run = create_run(make_cluster(), RunKind.TEST, [StepSpec("a", "A", "test.work")], start=False)
    return run.steps.get()


def _rows(step: Step) -> list[LogLine]:
    return list(LogLine.objects.filter(step=step).order_by("seq"))


@contextlib.contextmanager
def _log_table_away() -> Iterator[None]:
    """The database refuses every write of a step's lines with an OperationalError, as it
    does while it restarts: on SQLite the table is renamed away (each INSERT: "no such
    table"); on PostgreSQL another session holds the table's ACCESS EXCLUSIVE lock and every
    session of this database waits at most 200 ms for it (LockNotAvailable), including the new
    connection StepLog opens to try once more."""
    table = LogLine._meta.db_table
    quoted = connection.ops.quote_name(table)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {quoted} RENAME TO away")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE away RENAME TO {quoted}")
        return
    assert connection.vendor == "postgresql", connection.vendor
    import psycopg  # noqa: PLC0415 - PostgreSQL only

    database = connection.ops.quote_name(connection.settings_dict["NAME"])
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER DATABASE {database} SET lock_timeout = '200ms'")
        cursor.execute("SET lock_timeout = '200ms'")
    holder = psycopg.connect(**connection.get_connection_params())
    try:
        holder.execute(f"LOCK TABLE {quoted} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        holder.rollback()
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER DATABASE {database} RESET lock_timeout")
            cursor.execute("RESET lock_timeout")


@pytest.mark.parametrize("batch_size", [7, 200, 5000])
def test_many_lines_keep_the_first_k_the_last_n_and_one_marker_with_the_exact_count(batch_size):
    """Small batches trim stored rows; a batch bigger than the tail drops lines before they
    are ever stored. Either way: the same rows, the same counts."""
    step = _step()
    log = StepLog(step.pk, Redactor([]), batch_size=batch_size, max_delay=60,
                  limits=LogLimits(head_lines=5, tail_lines=10, max_line_chars=4000))
    for index in range(1, 1001):
        log.write(f"line {index}")
    log.flush()
    rows = _rows(step)
    assert [r.text for r in rows[:5]] == [f"line {i}" for i in range(1, 6)]
    marker = rows[5]
    assert (marker.stream, marker.seq, marker.text) == (LOG_OMITTED, 6, "")
    assert marker.omitted_lines == 985  # lines 6..990
    assert marker.omitted_bytes == sum(len(f"line {i}") for i in range(6, 991))
    assert [(r.seq, r.text) for r in rows[6:]] == [(i, f"line {i}") for i in range(991, 1001)]
    assert len(rows) == 16
    assert LogLine.objects.filter(step=step, stream=LOG_OMITTED).count() == 1


def test_the_row_count_of_a_step_stays_bounded_while_it_writes():
    step = _step()
    log = StepLog(step.pk, Redactor([]), batch_size=200, max_delay=60,
                  limits=LogLimits(head_lines=100, tail_lines=1000, max_line_chars=4000))
    most = 0
    for index in range(30_000):
        log.write(f"output {index} " + "x" * 40)
        if index % 1000 == 999:
            most = max(most, LogLine.objects.filter(step=step).count())
    log.flush()
    # head + tail + marker, plus at most the one batch not yet trimmed
    assert most <= 100 + 1000 + 1
    assert LogLine.objects.filter(step=step).count() == 1101
    marker = LogLine.objects.get(step=step, stream=LOG_OMITTED)
    assert marker.omitted_lines == 30_000 - 1100


def test_a_flush_that_trims_costs_a_fixed_number_of_queries():
    step = _step()
    log = StepLog(step.pk, Redactor([]), batch_size=100, max_delay=60,
                  limits=LogLimits(head_lines=10, tail_lines=100, max_line_chars=4000))
    for index in range(1000):
        log.write(f"line {index}")
    with CaptureQueriesContext(connection) as queries:
        for index in range(100):
            log.write(f"more {index}")
    statements = [("DELETE" if "DELETE" in q["sql"] else  # PostgreSQL's is WITH ... DELETE
                   q["sql"].removeprefix("100 times: ").split()[0])
                  for q in queries.captured_queries
                  if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # INSERT the batch, DELETE the lines leaving (counting their bytes), UPDATE the marker
    assert sorted(statements) == ["DELETE", "INSERT", "UPDATE"]


def test_a_later_attempt_keeps_counting_in_the_same_marker_and_the_same_head():
    step = _step()
    first = StepLog(step.pk, Redactor([]), batch_size=50, max_delay=60,
                    limits=LogLimits(head_lines=3, tail_lines=5, max_line_chars=4000))
    for index in range(1, 21):
        first.write(f"a{index}")
    first.flush()
    # The setting changed meanwhile: the step's head stays where its marker says.
    again = StepLog(step.pk, Redactor([]), batch_size=50, max_delay=60,
                    limits=LogLimits(head_lines=8, tail_lines=5, max_line_chars=4000))
    for index in range(1, 11):
        again.write(f"b{index}")
    again.flush()
    rows = _rows(step)
    assert [r.text for r in rows[:3]] == ["a1", "a2", "a3"]
    assert rows[3].stream == LOG_OMITTED and rows[3].seq == 4
    assert rows[3].omitted_lines == 30 - 3 - 5
    assert [r.text for r in rows[4:]] == ["b6", "b7", "b8", "b9", "b10"]
    assert [r.seq for r in rows[4:]] == [26, 27, 28, 29, 30]


def test_a_long_line_is_cut_with_the_number_of_characters_cut():
    step = _step()
    log = StepLog(step.pk, Redactor([]), max_delay=60,
                  limits=LogLimits(head_lines=10, tail_lines=10, max_line_chars=4000))
    log.write("y" * 1_000_000)
    log.write("short")
    log.flush()
    long, short = _rows(step)
    assert long.text == "y" * 4000 and long.cut_chars == 996_000
    assert (short.text, short.cut_chars) == ("short", 0)


@pytest.mark.parametrize("offset", [-30, -20, -10, -5, -1, 0, 1, 5])
def test_a_secret_where_the_line_is_cut_is_masked_whole_never_half_kept(offset):
    """Redaction sees the whole line before the cut: no prefix of the secret survives
    wherever the cut falls inside or around it (a DSN password, url-encoded too)."""
    secret = "Zq8-s3cret-PassW0rd-7x"
    step = _step()
    log = StepLog(step.pk, Redactor([secret]), max_delay=60,
                  limits=LogLimits(head_lines=10, tail_lines=10, max_line_chars=200))
    at = 200 + offset
    log.write("a" * at + secret + "b" * 5000)
    log.write("c" * at + secret.replace("-", "%2D") + "d" * 5000)
    log.flush()
    for row in _rows(step):
        assert len(row.text) == 200 and row.cut_chars > 0
        for length in range(4, len(secret) + 1):
            assert secret[:length] not in row.text
            assert secret[:length].replace("-", "%2D") not in row.text


def test_ansi_colour_codes_are_stripped_and_a_secret_they_split_is_masked():
    step = _step()
    log = StepLog(step.pk, Redactor(["hunter2-secret"]), max_delay=60)
    log.write("\x1b[1;31merror:\x1b[0m k3s failed \x1b]0;title\x07\x1b[2K done")
    log.write("token hunter2-\x1b[1msecret\x1b[0m leaked?")
    log.write("lone escape \x1b here, 8-bit \x9b32mgreen, tput sgr0 \x1b(B\x1b[mplain")
    log.flush()
    texts = [r.text for r in _rows(step)]
    assert texts == ["error: k3s failed  done", "token *** leaked?",
                     "lone escape \\x1b here, 8-bit green, tput sgr0 plain"]


def test_characters_the_ssh_adapter_already_dropped_count_in_the_cut():
    step = _step()
    log = StepLog(step.pk, Redactor([]), max_delay=60,
                  limits=LogLimits(head_lines=10, tail_lines=10, max_line_chars=100))
    log.write("[10.0.1.11] " + "x" * 1000, "stdout", cut=5_000_000)
    log.write("short", cut=7)
    log.flush()
    long, short = _rows(step)
    assert len(long.text) == 100 and long.cut_chars == 12 + 1000 - 100 + 5_000_000
    assert (short.text, short.cut_chars) == ("short", 7)


def test_a_log_stored_before_the_bound_is_trimmed_by_the_command(settings):
    settings.PANEL_STEP_LOG_HEAD_LINES, settings.PANEL_STEP_LOG_TAIL_LINES = 3, 4
    step, short = _step(), _step()
    Step.objects.filter(pk__in=[step.pk, short.pk]).update(status="succeeded")
    now = timezone.now()
    LogLine.objects.bulk_create([LogLine(step=step, seq=i, time=now, text=f"old {i}")
                                 for i in range(1, 101)] +
                                [LogLine(step=short, seq=i, time=now, text="x")
                                 for i in range(1, 8)])
    out = io.StringIO()
    call_command("trim_step_logs", stdout=out)
    assert out.getvalue() == "1 step logs trimmed.\n"
    rows = _rows(step)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 97, 98, 99, 100]
    assert rows[3].stream == LOG_OMITTED and rows[3].omitted_lines == 93  # lines 4-96
    assert rows[3].omitted_bytes == sum(len(f"old {i}") for i in range(4, 97))
    assert LogLine.objects.filter(step=short).count() == 7


@pytest.mark.parametrize("status", ["running", "pending", "waiting"])
def test_the_command_leaves_a_step_that_is_still_active_to_trim_itself(settings, status):
    """The active step's own StepLog trims it at its next flush; a second StepLog trimming it
    at the same time would count lines twice."""
    settings.PANEL_STEP_LOG_HEAD_LINES, settings.PANEL_STEP_LOG_TAIL_LINES = 3, 4
    step = _step()
    Step.objects.filter(pk=step.pk).update(status=status)
    now = timezone.now()
    LogLine.objects.bulk_create([LogLine(step=step, seq=i, time=now, text=f"old {i}")
                                 for i in range(1, 101)])
    out = io.StringIO()
    call_command("trim_step_logs", stdout=out)
    assert out.getvalue() == "0 step logs trimmed.\n"
    assert LogLine.objects.filter(step=step).count() == 100


def test_a_trim_deletes_and_counts_its_lines_in_one_statement():
    """The bytes are summed by the DELETE itself (or under a locking read on MySQL): a line
    slipped in between a separate SUM and DELETE would be deleted uncounted."""
    step = _step()
    log = StepLog(step.pk, Redactor([]), batch_size=10, max_delay=60,
                  limits=LogLimits(head_lines=2, tail_lines=3, max_line_chars=4000))
    for index in range(1, 11):
        log.write(f"line {index}")
    with CaptureQueriesContext(connection) as queries:
        for index in range(11, 21):
            log.write(f"line {index}")
    deletes = [q["sql"] for q in queries.captured_queries if "DELETE" in q["sql"].upper()]
    assert len(deletes) == 1 and "RETURNING" in deletes[0].upper(), deletes
    assert not [q for q in queries.captured_queries if "SUM(" in q["sql"].upper()
                and "DELETE" not in q["sql"].upper()]
    marker = LogLine.objects.get(step=step, stream=LOG_OMITTED)
    assert marker.omitted_lines == 15  # lines 3..17
    assert marker.omitted_bytes == sum(len(f"line {i}") for i in range(3, 18))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("head", "tail"), [(1000, 20_000), (5, 25_000)])
def test_a_database_away_from_the_first_line_loses_nothing_the_bound_keeps(head, tail):
    """The database refuses every write (`_log_table_away`) from the step's first line
    to its 26,000th. Once it is back, the head, the tail and the marker's counts are exact:
    a fixed 20,000-line buffer dropped head lines (or tail lines) uncounted before."""
    step = _step()
    # One batch for all (one failed flush, not one per line: this test is about the counts).
    log = StepLog(step.pk, Redactor([]), batch_size=30_000, max_delay=60,
                  limits=LogLimits(head_lines=head, tail_lines=tail, max_line_chars=4000))
    total = 26_000
    with _log_table_away():
        for index in range(1, total + 1):
            log.write(f"line {index}")
        assert not log.flush()
    assert log.flush()
    rows = _rows(step)
    assert [(r.seq, r.text) for r in rows[:head]] == [(i, f"line {i}") for i in range(1, head + 1)]
    marker = rows[head]
    assert (marker.stream, marker.seq) == (LOG_OMITTED, head + 1)
    assert marker.omitted_lines == total - head - tail
    assert marker.omitted_bytes == sum(len(f"line {i}") for i in range(head + 1, total - tail + 1))
    assert [(r.seq, r.text) for r in rows[head + 1:]] == [
        (i, f"line {i}") for i in range(total - tail + 1, total + 1)]


@pytest.mark.django_db(transaction=True)
def test_while_the_database_is_away_a_writer_does_not_try_it_at_every_line():
    """After a refused flush the writer's own flushes wait `max_delay` (the heartbeat's keep
    retrying): 3,000 lines written meanwhile tried 2 INSERTs each before."""
    step = _step()
    log = StepLog(step.pk, Redactor([]), batch_size=100, max_delay=60,
                  limits=LogLimits(head_lines=5, tail_lines=100, max_line_chars=4000))
    with _log_table_away(), CaptureQueriesContext(connection) as queries:
        for index in range(1, 3001):
            log.write(f"line {index}")
    inserts = [q for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 2  # the first full batch, on this connection and on a new one
    assert log.flush()
    marker = LogLine.objects.get(step=step, stream=LOG_OMITTED)
    assert marker.omitted_lines == 3000 - 5 - 100
    assert LogLine.objects.filter(step=step).count() == 5 + 1 + 100


@pytest.mark.django_db(transaction=True)
def test_a_flush_that_fails_for_another_reason_raises_but_keeps_its_lines():
    """A heartbeat thread's connection that cannot see the step's row yet fails the insert
    (IntegrityError): the error is raised, but the lines stay for the next flush, which writes
    every one of them once the row is there (they were dropped before, and a step's log lost
    the lines that said which identity it used)."""
    first = _step()
    second = create_run(first.run.cluster, RunKind.TEST, [StepSpec("b", "B", "test.work")],
                        start=False).steps.get()
    missing = second.pk + 1000
    log = StepLog(missing, Redactor([]), batch_size=100, max_delay=60,
                  limits=LogLimits(head_lines=5, tail_lines=100, max_line_chars=4000))
    for index in range(1, 4):
        log.write(f"line {index}")
    with pytest.raises(IntegrityError):
        log.flush()
    Step.objects.filter(pk=second.pk).update(id=missing)
    assert log.flush()
    assert list(LogLine.objects.filter(step_id=missing).order_by("seq").values_list(
        "seq", "text")) == [(1, "line 1"), (2, "line 2"), (3, "line 3")]


def test_lines_and_what_is_stored_with_them_commit_together_or_not_at_all() -> None:
    """The engine stores a step's outcome with its last lines in one commit (flush_with).
    When that transaction fails, neither is stored, and the lines are not lost: the next
    flush writes them."""
    step = _step()
    log = StepLog(step.pk, Redactor([]))
    log.write("first")

    def fail() -> None:
        Step.objects.filter(pk=step.pk).update(error="outcome")
        raise IntegrityError("the outcome could not be stored")

    with pytest.raises(IntegrityError):
        log.flush_with(fail)
    assert _rows(step) == [] and Step.objects.get(pk=step.pk).error == ""
    log.write("second")
    assert log.flush_with(lambda: Step.objects.filter(pk=step.pk).update(error="stored")) == 1
    assert [row.text for row in _rows(step)] == ["first", "second"]
    assert Step.objects.get(pk=step.pk).error == "stored"
