"""The step engine: runs a graph of steps on Celery, one claimed step at a time.

Contract for step handlers (read this before writing one):

* A handler is a plain function of a StepContext returning an Outcome (Done, Wait, Fail,
  Skip), or raising TransientError / PermanentError. It never sleeps to wait for a cloud
  resource: it returns Wait(seconds, reason) and the engine runs it again later.
* `ctx.memo` survives waits and transient retries, not a user's Retry of a failed step.
* A handler MUST be idempotent. The engine may run it again after any interruption: a
  worker killed mid-step, a lease that expired, a retry after a transient error, or the
  user's Retry. Record intent before acting (the CloudResource ledger, ClientTokens) and
  look before creating, so a second run continues rather than repeats.
* Claiming is a conditional UPDATE on (status, attempts): two workers never run one step,
  and a worker whose lease was taken over cannot record an outcome.
* While a handler runs, a heartbeat extends its lease; a step left running past its lease
  (its worker died) is reclaimed by `sweep` and run again.
* Leases, due times and "last changed" are the database's clock (`Now()`), never a process's
  own: web, workers and beat may run on hosts whose clocks disagree, and a sweeper 80 s ahead
  would take live steps from their workers. A process reads the database's time with the row
  it is deciding about (`_claim`), or compares in SQL (`sweep`).
* One call of a handler has a wall-clock limit (`@step_handler(..., time_limit=)`, default
  settings.PANEL_STEP_TIME_LIMIT). Past it the heartbeat ends the step itself, failed with
  "ran longer than N s", and stops renewing its lease; a Cancel ends a running step the same
  way (cancelled) once PANEL_STEP_CANCEL_GRACE_SECONDS have passed. The handler is told at
  its next log line (LeaseLost); one stuck in a call is abandoned, and whatever it returns
  later is dropped. So every remote call a handler makes must have its own timeout (the SSH
  adapter's do) and must stop its remote work when it gives up.

Tasks carry ids only and are enqueued after the transaction commits.
"""

from __future__ import annotations

import copy
import logging
import random
import sqlite3  # the module Django's SQLite backend uses: its library's version
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import F, Field, Max, Model, Q
from django.db.models.functions import Now
from django.dispatch import Signal
from django.utils import timezone

from clusters.core import heartbeat
from clusters.core.errors import PermanentError, TransientError
from clusters.core.titles import StepTitle
from clusters.engine import polling
from clusters.engine.compiled import CompiledQuery
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import get_handler
from clusters.engine.registry import time_limit as get_time_limit
from clusters.engine.stepcontext import StepContext
from clusters.engine.steplog import LeaseLost
from clusters.models import (
    NODE_SECRET_FIELDS,
    RUN_ACTIVE,
    STEP_BROKEN,
    STEP_DONE,
    CloudAccount,
    Cluster,
    Node,
    Run,
    RunStatus,
    Step,
    StepStatus,
)

logger = logging.getLogger(__name__)

#: Sent once when a run reaches succeeded, failed or cancelled (kwargs: run), inside the
#: transaction that closes the run: a receiver that must act after commit uses on_commit.
run_finished = Signal()

EARLY_TOLERANCE = timedelta(milliseconds=500)
RECLAIMED = "Its worker stopped answering"
CANCELLED_WHILE_RUNNING = "Cancelled while it ran; it was stopped"


def overran_message(limit: float) -> str:
    return (f"Ran longer than {limit:.0f} s (its time limit), so it was stopped: a host or an "
            "API stopped answering. Check the last lines of its log, then Retry.")


@dataclass(frozen=True)
class StepSpec:
    """A step to be: its key within the run, what to call, and what it waits for."""

    key: str
    title: StepTitle | str  # a str is a message id without arguments
    handler: str
    depends_on: Sequence[str] = ()
    args: dict[str, Any] = field(default_factory=dict)
    retry_budget: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.title, str):
            object.__setattr__(self, "title", StepTitle(self.title))

    @property
    def step_title(self) -> StepTitle:
        assert isinstance(self.title, StepTitle)  # __post_init__ made it one
        return self.title


class GraphError(ValueError):
    """The plan of a run is not a valid graph (unknown dependency, duplicate key, cycle)."""


def _check_graph(specs: Sequence[StepSpec]) -> None:
    keys = [spec.key for spec in specs]
    if len(set(keys)) != len(keys):
        raise GraphError("two steps share a key")
    known = set(keys)
    for spec in specs:
        missing = set(spec.depends_on) - known
        if missing:
            raise GraphError(f"step {spec.key!r} depends on unknown {sorted(missing)}")
    remaining = {spec.key: set(spec.depends_on) for spec in specs}
    while remaining:
        free = [key for key, deps in remaining.items() if not deps]
        if not free:
            raise GraphError(f"the steps {sorted(remaining)} depend on each other in a cycle")
        for key in free:
            del remaining[key]
        for deps in remaining.values():
            deps.difference_update(free)


def create_run(
    cluster: Cluster,
    kind: str,
    specs: Sequence[StepSpec],
    *,
    params: dict[str, Any] | None = None,
    created_by: Any = None,
    start: bool = True,
) -> Run:
    """Store a run and its steps, and (after commit) start advancing it."""
    _check_graph(specs)
    with transaction.atomic():
        run = Run.objects.create(
            cluster=cluster, kind=kind, params=params or {}, created_by=created_by
        )
        Step.objects.bulk_create(
            Step(
                run=run, key=spec.key, title=spec.step_title.english()[:200],
                title_id=spec.step_title.msgid, title_args=spec.step_title.args,
                handler=spec.handler,
                position=index, depends_on=list(spec.depends_on), args=spec.args,
                retry_budget=spec.retry_budget,
            )
            for index, spec in enumerate(specs)
        )
        if start:
            _enqueue_advance(run.pk)
    return run


# --- dispatch -------------------------------------------------------------------------------


def _enqueue_advance(run_id: int) -> None:
    transaction.on_commit(lambda: advance_run.delay(run_id))


def _enqueue_execute(step_id: int, countdown: float = 0) -> None:
    def send() -> None:
        if countdown > 0:
            execute_step.apply_async((step_id,), countdown=countdown)
        else:
            execute_step.delay(step_id)

    transaction.on_commit(send)


# --- advancing a run --------------------------------------------------------------------------


def advance(run_id: int, finished: str | None = None) -> None:
    """Start every step whose dependencies are done, or close the run when nothing is left.

    `finished`: the key of the step whose end this follows (its worker advances the run
    at once, `_apply`). Then only the steps waiting on that one are sent: every other ready
    step was sent when its own last dependency ended. Sending every ready sibling again at
    each step's end made a fan-out of N steps send about N*N/2 messages, most of them for
    steps already queued: under a backlog the copies were most of the queue (issue 18).
    A message lost between a step's record and its dependents' send (a worker killed in
    that instant, a broker outage) is recovered as before: the sweeper advances a quiet run
    without `finished`, which sends every ready step.
    """
    # The run's status comes with its steps (one query, one snapshot, compiled once per
    # process: clusters/engine/compiled.py); unordered, so no join for Step's ordering.
    steps = [_StepRow(*row) for row in _RUN_STEPS.rows(run_id)]
    if steps:
        run_status, cancel_requested = steps[0].run_status, steps[0].cancel_requested
    else:
        found = Run.objects.filter(pk=run_id).values_list("status", "cancel_requested").first()
        if found is None:
            return
        run_status, cancel_requested = found
    if run_status not in RUN_ACTIVE:
        return
    if run_status == RunStatus.PENDING:
        Run.objects.filter(pk=run_id, status=RunStatus.PENDING).update(
            status=RunStatus.RUNNING, started_at=timezone.now()
        )
    running = [step for step in steps if step.status == StepStatus.RUNNING]

    if cancel_requested:
        Step.objects.filter(
            run_id=run_id, status__in=[StepStatus.PENDING, StepStatus.WAITING]
        ).update(status=StepStatus.CANCELLED, not_before=None, wait_reason="")
        if not running:
            _finish_run(run_id, RunStatus.CANCELLED)
        return

    if any(step.status in STEP_BROKEN for step in steps):
        # Stop at the first failure: nothing new starts; what waits goes back to pending so a
        # retry resumes it. The run is failed once no step is still running.
        Step.objects.filter(run_id=run_id, status=StepStatus.WAITING).update(
            status=StepStatus.PENDING, not_before=None, wait_reason=""
        )
        if not running:
            _finish_run(run_id, RunStatus.FAILED)
        return

    if all(step.status in STEP_DONE for step in steps):
        _finish_run(run_id, RunStatus.SUCCEEDED)
        return

    done = {step.key for step in steps if step.status in STEP_DONE}
    for step in steps:
        if step.status == StepStatus.PENDING and set(step.depends_on) <= done \
                and (finished is None or finished in step.depends_on):
            _enqueue_execute(step.pk)


class _StepRow(NamedTuple):
    """What `advance` reads of each step of a run, and of the run itself."""

    pk: int
    key: str
    status: str
    depends_on: list[str]
    run_status: str
    cancel_requested: bool


_RUN_STEPS = CompiledQuery(
    "advance: a run's steps with the run's status",
    lambda run_id: Step.objects.filter(run_id=run_id).order_by()
    .values_list("id", "key", "status", "depends_on", "run__status", "run__cancel_requested"), 1)


def _finish_run(run_id: int, status: str) -> None:
    """Close the run and let its receivers (the cluster's status) change in the same
    transaction, so nobody ever reads a finished run beside a cluster still "updating"."""
    with transaction.atomic():
        changed = Run.objects.filter(pk=run_id, status__in=RUN_ACTIVE).update(
            status=status, finished_at=timezone.now()
        )
        if changed:
            run = Run.objects.select_related("cluster").get(pk=run_id)
            run_finished.send(sender=Run, run=run)


# --- executing one step -----------------------------------------------------------------------



def _claim(step_id: int) -> tuple[Step, bool] | None:
    """Take the step if it is ours to run now (with whether this run is only a re-poll after
    a Wait); None when another worker has it or it is not due.

    The rules: only a pending or waiting step, of a run that is running and not being
    cancelled; only when due (its not_before at most EARLY_TOLERANCE after the database's
    clock); a pending step only once every step it depends on is done. Coming back from a
    plain Wait is a poll (`polls` + 1), not a new try; every claim adds one to `attempts`,
    the fencing token of its lease. A message for a step already done advances its run, and
    one for a step not yet due is sent again for when it is (`_claim_orm`).

    Why one statement (issue 18): the claim was a read of the step with its run, cluster and
    account, a read of its dependencies, the conditional UPDATE and a read of the row again,
    and most of their time was the ORM compiling them. On PostgreSQL and SQLite the rules are
    the WHERE of one UPDATE whose RETURNING is the row as claimed (`_claim_returning`). When
    it takes nothing (a duplicate message, a step already done or not due), the ORM's path
    runs and says why: that is rare, and keeps every "not claimed" rule in one place.
    """
    if settings.PANEL_ENGINE_CLAIM_RETURNING and _claim_statement(connection) is not None:
        claimed = _claim_returning(step_id)
        if claimed is not None:
            return claimed
    return _claim_orm(step_id)


@dataclass(frozen=True)
class _ClaimStatement:
    """The claim's SQL for one database, and how to read the row it returns."""

    sql: str
    returns_context: bool  # RETURNING lists the old status, the run, cluster and account too
    converters: tuple[tuple[int, tuple[Any, ...], Any], ...]


_CLAIM_STATEMENTS: dict[str, _ClaimStatement | None] = {}
_CONTEXT_MODELS: tuple[type[Model], ...] = (Run, Cluster, CloudAccount)


def _field(model: type[Model], name: str) -> Field[Any, Any]:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)  # a column of the model's own, not a reverse relation
    return field


def _column(model: type[Model], name: str) -> str:
    return str(_field(model, name).column)


def _attnames(model: type[Model]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _context_paths() -> list[str]:
    """values_list() paths of the run's, cluster's and account's columns, from a step."""
    paths = []
    for prefix, model in (("run__", Run), ("run__cluster__", Cluster),
                          ("run__cluster__cloud_account__", CloudAccount)):
        paths += [prefix + field.attname for field in model._meta.concrete_fields]
    return paths


#: SQLite's claim reads these first (its RETURNING cannot name other tables).
_CLAIM_CONTEXT = CompiledQuery(
    "claim: the step's status with its run, cluster and account",
    lambda step_id: Step.objects.filter(pk=step_id).order_by()
    .values_list("status", *_context_paths()), 1)


def _claim_statement(conn: BaseDatabaseWrapper) -> _ClaimStatement | None:
    """The claim's UPDATE ... RETURNING for this connection's database, built once per
    process from the models' tables and columns; None where the database has no RETURNING
    on UPDATE (MySQL; SQLite before 3.35)."""
    if conn.alias not in _CLAIM_STATEMENTS:
        statement = None
        if conn.vendor == "postgresql":
            statement = _build_claim_statement(conn, postgresql=True)
        elif conn.vendor == "sqlite" and sqlite3.sqlite_version_info >= (3, 35, 0):
            statement = _build_claim_statement(conn, postgresql=False)
        _CLAIM_STATEMENTS[conn.alias] = statement
    return _CLAIM_STATEMENTS[conn.alias]


def _build_claim_statement(conn: BaseDatabaseWrapper, *, postgresql: bool) -> _ClaimStatement:
    # Names come from quote_name and the models, values are parameters (hence the noqa).
    q = conn.ops.quote_name
    table = q(Step._meta.db_table)

    def col(name: str, alias: str = table) -> str:
        return f"{alias}.{q(_column(Step, name))}"

    def cols(model: type[Model], alias: str) -> list[str]:
        return [f"{alias}.{q(str(field.column))}" for field in model._meta.concrete_fields]

    now, later = _database_clock(conn.vendor)
    lease, tolerance = (later.replace("%s", f"%({name})s") for name in ("lease", "tolerance"))
    if postgresql:
        dependencies = f"SELECT jsonb_array_elements_text({col('depends_on')})"
    else:
        dependencies = f"SELECT value FROM json_each({col('depends_on')})"  # noqa: S608
    # The SET clause reads the row as it was: a poll is the claim of a plain Wait's step.
    assignments = ", ".join([
        f"{q('status')} = %(running)s",
        f"{q('attempts')} = {col('attempts')} + 1",
        f"{q('polls')} = {col('polls')} + CASE WHEN {col('status')} = %(waiting)s "
        f"AND {col('transient_failures')} = 0 "
        f"AND SUBSTR({col('wait_reason')}, 1, %(reclaimed_length)s) <> %(reclaimed)s "
        "THEN 1 ELSE 0 END",
        f"{q('lease_until')} = {lease}",
        f"{q('heartbeat_at')} = {now}",
        f"{q('started_at')} = COALESCE({col('started_at')}, {now})",
        f"{q('not_before')} = NULL",
        f"{q('updated_at')} = {now}",  # the sweeper's "moving" (set by hand, as update() did)
    ])
    due = f"({col('not_before')} IS NULL OR {col('not_before')} <= {tolerance})"
    dependencies_done = (
        f"({col('status')} = %(waiting)s OR NOT EXISTS (SELECT 1 FROM {table} AS d "  # noqa: S608
        f"WHERE {col('run', 'd')} = {col('run')} AND {col('key', 'd')} IN ({dependencies}) "
        f"AND {col('status', 'd')} NOT IN (%(succeeded)s, %(skipped)s)))")
    run_table, cluster_table, account_table = (q(model._meta.db_table)
                                               for model in _CONTEXT_MODELS)
    status_field = Step._meta.get_field("status")
    if postgresql:
        # The old row is locked and read by the statement itself (a sub-SELECT FOR NO KEY
        # UPDATE, the lock the UPDATE takes anyway; FOR UPDATE would also wait for the key
        # share lock each of the running step's log-line inserts holds on it):
        # RETURNING gives the new row only, and the old status says whether this is a poll.
        # Locked, it is the very version the UPDATE changes, even when another transaction
        # changed the row after this statement began.
        sql = (
            f"UPDATE {table} SET {assignments} "  # noqa: S608
            f"FROM (SELECT {q('id')}, {q('status')} FROM {table} "
            f"WHERE {q('id')} = %(step)s FOR NO KEY UPDATE) AS o, "
            f"{run_table} AS r, {cluster_table} AS c, {account_table} AS a "
            # The step's id named outright as well: the plan starts at its primary key
            # whatever the statistics say (a burst of new runs, not yet analysed, made the
            # planner start at the running runs and check every step's dependencies).
            f"WHERE {col('id')} = %(step)s AND {col('id')} = o.{q('id')} "
            f"AND r.{q('id')} = {col('run')} "
            f"AND c.{q('id')} = r.{q('cluster_id')} "
            f"AND a.{q('id')} = c.{q('cloud_account_id')} "
            f"AND {col('status')} IN (%(pending)s, %(waiting)s) AND {due} "
            f"AND r.{q('status')} = %(run_running)s AND NOT r.{q('cancel_requested')} "
            f"AND {dependencies_done} "
            f"RETURNING {', '.join(cols(Step, table))}, o.{q('status')}, "
            f"{', '.join(cols(Run, 'r') + cols(Cluster, 'c') + cols(CloudAccount, 'a'))}")
        expressions = [field.get_col(table) for field in Step._meta.concrete_fields]
        expressions.append(status_field.get_col("o"))
        expressions += [field.get_col(alias)
                        for alias, model in zip("rca", _CONTEXT_MODELS, strict=True)
                        for field in model._meta.concrete_fields]
    else:
        # SQLite's RETURNING names only the updated table: the old status, run, cluster and
        # account are read first, in the same transaction (BEGIN IMMEDIATE, settings.py:
        # nothing else writes between that read and this UPDATE).
        sql = (
            f"UPDATE {table} SET {assignments} "  # noqa: S608
            f"WHERE {col('id')} = %(step)s AND {col('status')} = %(status)s AND {due} "
            f"AND EXISTS (SELECT 1 FROM {run_table} AS r WHERE r.{q('id')} = {col('run')} "
            f"AND r.{q('status')} = %(run_running)s AND NOT r.{q('cancel_requested')}) "
            f"AND {dependencies_done} "
            f"RETURNING {', '.join(q(str(field.column)) for field in Step._meta.concrete_fields)}")
        expressions = [field.get_col(table) for field in Step._meta.concrete_fields]
    compiler = Step.objects.none().query.get_compiler(connection=conn)
    converters = tuple((index, tuple(functions), expression) for index, (functions, expression)
                       in compiler.get_converters(expressions).items())
    return _ClaimStatement(sql, postgresql, converters)


def _claim_parameters(step_id: int) -> dict[str, Any]:
    vendor = connection.vendor
    return {
        "step": step_id, "running": StepStatus.RUNNING.value, "pending": StepStatus.PENDING.value,
        "waiting": StepStatus.WAITING.value, "succeeded": StepStatus.SUCCEEDED.value,
        "skipped": StepStatus.SKIPPED.value, "run_running": RunStatus.RUNNING.value,
        "reclaimed_length": len(RECLAIMED), "reclaimed": RECLAIMED,
        "lease": _seconds_parameter(vendor, settings.PANEL_STEP_LEASE_SECONDS),
        "tolerance": _seconds_parameter(vendor, EARLY_TOLERANCE.total_seconds()),
    }


def _claim_returning(step_id: int) -> tuple[Step, bool] | None:
    """`_claim` as one UPDATE ... RETURNING (PostgreSQL), or a read and an UPDATE ...
    RETURNING in one write transaction (SQLite); None when it took nothing."""
    statement = _claim_statement(connection)
    assert statement is not None  # _claim checked
    params = _claim_parameters(step_id)
    if statement.returns_context:
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        values = _converted(list(row), statement)
        own = len(Step._meta.concrete_fields)
        step_values, old_status, context = values[:own], values[own], values[own + 1:]
    else:
        with transaction.atomic():
            found = _CLAIM_CONTEXT.rows(step_id)
            if not found or found[0][0] not in (StepStatus.PENDING, StepStatus.WAITING):
                return None
            old_status, *context = found[0]
            with connection.cursor() as cursor:
                cursor.execute(statement.sql, {**params, "status": old_status})
                row = cursor.fetchone()
        if row is None:
            return None
        step_values = _converted(list(row), statement)
    step = Step.from_db(connection.alias, _attnames(Step), step_values)
    related: list[Model] = []
    for model in _CONTEXT_MODELS:
        width = len(model._meta.concrete_fields)
        related.append(model.from_db(connection.alias, _attnames(model), context[:width]))
        context = context[width:]
    run, cluster, account = related
    Step._meta.get_field("run").set_cached_value(step, run)
    Run._meta.get_field("cluster").set_cached_value(run, cluster)
    Cluster._meta.get_field("cloud_account").set_cached_value(cluster, account)
    polling = old_status == StepStatus.WAITING and step.transient_failures == 0 \
        and not step.wait_reason.startswith(RECLAIMED)
    return step, polling


def _converted(values: list[Any], statement: _ClaimStatement) -> list[Any]:
    for index, functions, expression in statement.converters:
        value = values[index]
        for function in functions:
            value = function(value, expression, connection)
        values[index] = value
    return values


def _claim_orm(step_id: int) -> tuple[Step, bool] | None:
    """`_claim` in several queries through the ORM: on databases without UPDATE ... RETURNING
    (MySQL), and when the one-statement claim took nothing (it then says why: a step already
    done advances its run, one not yet due is sent again for later)."""
    # The database's time, read with the row: due times and leases are judged on its clock.
    # The run, its cluster and account come with the step: one query where there were three
    # (a trivial step's whole engine cost is a handful of queries; issue 18). Unordered: the
    # default ordering (run, position) only costs the ORM's time for one row.
    found = list(Step.objects.select_related("run__cluster__cloud_account")
                 .annotate(database_now=Now()).filter(pk=step_id).order_by())
    step = found[0] if found else None
    if step is None or step.status not in (StepStatus.PENDING, StepStatus.WAITING):
        if step is not None and step.status in STEP_DONE \
                and step.updated_at <= step.database_now - sweep_window():
            # A message for a step done a while ago: most likely redelivered after its worker
            # died between recording the end and sending the dependents (advance(finished)
            # sends only those). Advance again, so they are not left for the sweeper, which
            # waits for the whole run to be quiet; a copy sent twice is dropped by the claim.
            # One for a step that ended just now is a copy sent while it was queued (the
            # sweeper's, under a backlog): its end sent the dependents, and sending them
            # again made each copy travel down the rest of the run (issue 18).
            advance(step.run_id, step.key)
        return None
    run = step.run
    if run.status != RunStatus.RUNNING or run.cancel_requested:
        return None
    now = step.database_now
    if step.not_before and step.not_before > now + EARLY_TOLERANCE:
        _enqueue_execute(step.pk, countdown=(step.not_before - now).total_seconds())
        return None
    if step.status == StepStatus.PENDING:
        deps = Step.objects.filter(run_id=run.pk, key__in=step.depends_on).order_by()
        if any(status not in STEP_DONE for status in deps.values_list("status", flat=True)):
            return None
    lease_until = now + timedelta(seconds=settings.PANEL_STEP_LEASE_SECONDS)
    # Coming back from a plain Wait is a poll, not a new try.
    polling = step.status == StepStatus.WAITING and step.transient_failures == 0 \
        and not step.wait_reason.startswith(RECLAIMED)
    claimed_values = {
        "status": StepStatus.RUNNING,
        "lease_until": lease_until,
        "heartbeat_at": now,
        "started_at": step.started_at or now,
        "not_before": None,
        "updated_at": now,  # QuerySet.update() skips auto_now; the sweeper reads it as "moving"
    }
    claimed = Step.objects.filter(pk=step.pk, status=step.status, attempts=step.attempts).update(
        attempts=F("attempts") + 1, polls=F("polls") + int(polling), **claimed_values)
    if not claimed:
        return None
    # Read the row again: (status, attempts) can match once more after the row changed
    # between our read and the UPDATE (Cancel, then Retry, keeps attempts), and a Retry
    # clears the memo (result) and counters on purpose; the handler must see those, not
    # what this worker read before. The step's own columns only: the run, cluster and
    # account read with it do not change under a running step.
    own = [f.attname for f in Step._meta.concrete_fields if not f.is_relation]
    for name, value in Step.objects.filter(pk=step.pk).values(*own).get().items():
        setattr(step, name, value)
    return step, polling


class _Heartbeat:
    """While a step runs: beats every few seconds (clusters/core/heartbeat.py), which extends
    its lease (so only dead workers lose steps) and tells the page it is alive; and flushes
    its log every half second (so a quiet step's last lines still reach the page)."""

    LOG_FLUSH_SECONDS = 0.5

    def __init__(self, step: Step, ctx: StepContext) -> None:
        self._step_id = step.pk
        self._run_id = step.run_id
        self._attempt = step.attempts
        self._log = ctx.log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease-{step.pk}")
        self._limit = get_time_limit(step.handler)
        self._began = time.monotonic()
        self._cancel_seen: float | None = None
        self._next_cancel_check = self._began
        self._ended = ""  # why the heartbeat ended the step itself, when it did

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._ended and not isinstance(exc[1], LeaseLost):
            # The step was ended meanwhile: what the handler returned or raised is dropped.
            raise LeaseLost(self._ended)

    def _out_of_bounds(self) -> bool:
        """End the step here, from the heartbeat, when its call ran past its time limit or a
        cancel's grace is over: the handler may be stuck in a call that never returns, and
        neither a Cancel nor a Retry could clear the step while it holds its lease."""
        if time.monotonic() - self._began >= self._limit:
            return self._end(StepStatus.FAILED, overran_message(self._limit))
        if self._cancel_seen is None and time.monotonic() >= self._next_cancel_check:
            self._next_cancel_check = time.monotonic() + heartbeat.interval(
                settings.PANEL_STEP_LEASE_SECONDS)
            if Run.objects.filter(pk=self._run_id, cancel_requested=True).exists():
                self._cancel_seen = time.monotonic()
        if self._cancel_seen is not None and (
                time.monotonic() - self._cancel_seen >= settings.PANEL_STEP_CANCEL_GRACE_SECONDS):
            return self._end(StepStatus.CANCELLED, CANCELLED_WHILE_RUNNING)
        return False

    def _end(self, status: str, reason: str) -> bool:
        """Record `status` if this attempt still owns the step, and tell the handler to stop.
        (A database error here is retried by the next beat, the log line written once.)"""
        if self._log.stop_reason != reason:
            self._log.write(reason, "stderr")
            self._log.stop_reason = reason
        self._log.flush()
        now = timezone.now()
        with transaction.atomic():
            ended = Step.objects.filter(
                pk=self._step_id, status=StepStatus.RUNNING, attempts=self._attempt
            ).update(status=status, error=reason, lease_until=None, not_before=None,
                     finished_at=now, updated_at=now)
            if ended:
                _enqueue_advance(self._run_id)
        logger.warning("step %s: %s", self._step_id, reason)
        self._ended = reason
        self._log.lease_lost.set()
        return True

    def _beat(self) -> None:
        """Survives database errors (a PostgreSQL restart must not end the heartbeat and let
        the lease run out under a live step). When the lease cannot be renewed until one
        beat before it ends, or another worker holds the step now, the step is told to stop
        (LeaseLost at its next log line) before the sweeper hands it to another worker."""
        lease = settings.PANEL_STEP_LEASE_SECONDS
        every = heartbeat.interval(lease)
        renewed = time.monotonic()
        held_until = renewed + lease  # the claim set lease_until a moment ago
        failing = False
        try:
            while not self._stop.wait(self.LOG_FLUSH_SECONDS):
                try:
                    self._log.flush()
                    if time.monotonic() - renewed >= every:
                        started = time.monotonic()
                        owned = Step.objects.filter(
                            pk=self._step_id, status=StepStatus.RUNNING, attempts=self._attempt
                        ).update(lease_until=Now() + timedelta(seconds=lease), heartbeat_at=Now())
                        renewed = started
                        if not owned:
                            self._log.lease_lost.set()
                            return
                        held_until = started + lease
                        if failing:
                            logger.warning("step %s: lease renewed again", self._step_id)
                        failing = False
                    if self._out_of_bounds():
                        return
                except DatabaseError as exc:
                    if not failing:
                        logger.warning("step %s: cannot renew its lease yet: %s",
                                       self._step_id, exc)
                    failing = True
                    connection.close_if_unusable_or_obsolete()
                if time.monotonic() >= held_until - every:
                    logger.error("step %s: lease not renewed for %.0f s; stopping the step",
                                 self._step_id, lease - every)
                    self._log.lease_lost.set()
                    return
        finally:
            connection.close()


def execute(step_id: int) -> None:
    """Run one step if it is ready and unclaimed, and record what it says."""
    claimed = _claim(step_id)
    if claimed is None:
        return
    step, polling = claimed
    run = step.run
    cluster = run.cluster  # read with the claim (`_claim`)
    ctx = StepContext(step=step, run=run, cluster=cluster, _secrets=_secrets_of(cluster))
    if not polling and step.tries > 1:
        ctx.say(f"Attempt {step.tries}.")
    retrying = False
    memo_before = copy.deepcopy(step.result)
    try:
        with _Heartbeat(step, ctx):
            outcome = get_handler(step.handler)(ctx)
    except TransientError as exc:
        # The budget counts failures in a row without progress: a step that recorded
        # progress in its memo before being throttled starts its count again.
        if ctx.step.result != memo_before:
            step.transient_failures = 0
        outcome, retrying = _after_transient(step, ctx, exc), True
    except PermanentError as exc:
        outcome = Fail(str(exc))
    except LeaseLost as exc:
        # Nothing can be recorded (the lease is gone or going); the sweeper runs it again.
        logger.warning("step %s stopped: %s", step.pk, exc)
        ctx.log.flush()  # its lines so far, if the database is back (before the next owner)
        return
    except (OperationalError, InterfaceError) as exc:
        # The database went away under the handler: weather, not a bug.
        outcome, retrying = _after_transient(
            step, ctx, TransientError(f"the panel's database was unreachable: {exc}")), True
    except Exception as exc:
        ctx.say("".join(traceback.format_exception(exc)), stream="stderr")
        ctx.log.flush()
        _record(step, ctx, StepStatus.ERRORED, error=f"Internal error: {type(exc).__name__}: {exc}")
        advance(run.pk)
        return
    _apply(step, ctx, outcome, retrying=retrying)


_NODE_SECRETS = CompiledQuery(
    "context: the cluster's nodes' secrets",
    lambda cluster_id: Node.objects.filter(cluster_id=cluster_id).order_by()
    .values_list(*NODE_SECRET_FIELDS), 1)


def _secrets_of(cluster: Cluster) -> list[str]:
    """What the step's log and errors mask: the cluster's secrets, its nodes' read by a query
    compiled once per process (the related manager's queryset was built for every step)."""
    return cluster.secret_values(_NODE_SECRETS.rows(cluster.pk))


def _backoff_seconds(failures: int) -> float:
    base = settings.PANEL_RETRY_BASE_SECONDS * (2 ** (failures - 1))
    capped = min(base, settings.PANEL_RETRY_MAX_SECONDS)
    return capped * random.uniform(0.8, 1.0)  # noqa: S311 - jitter, not cryptography


def _after_transient(step: Step, ctx: StepContext, exc: TransientError) -> Outcome:
    failures = step.transient_failures + 1
    step.transient_failures = failures
    if failures > step.retry_budget:
        return Fail(f"Gave up after {failures} transient failures; the last: {exc}")
    delay = _backoff_seconds(failures)
    ctx.say(f"Transient failure ({failures}/{step.retry_budget}): {exc}; retrying in {delay:.1f}s",
            stream="stderr")
    return Wait(delay, f"Retrying after a transient failure: {exc}")


def _apply(step: Step, ctx: StepContext, outcome: Outcome, *, retrying: bool = False) -> None:
    """Store the outcome; when the step ended, advance the run right here (one hop fewer)."""
    if isinstance(outcome, Done):
        ctx.step.result.update(outcome.result)
        if _record(step, ctx, StepStatus.SUCCEEDED, transient_failures=0):
            advance(step.run_id, step.key)
    elif isinstance(outcome, Skip):
        ctx.say(f"Skipped: {outcome.reason}")
        if _record(step, ctx, StepStatus.SKIPPED, wait_reason=outcome.reason[:500]):
            advance(step.run_id, step.key)
    elif isinstance(outcome, Wait):
        seconds, repeats = _wait_interval(step, ctx, outcome, retrying=retrying)
        recorded = _record(
            step, ctx, StepStatus.WAITING,
            wait_seconds=seconds, wait_reason=outcome.reason[:500], finished=False,
            # A plain wait is progress, so the transient-failure budget starts over.
            transient_failures=step.transient_failures if retrying else 0,
            wait_repeats=repeats,
        )
        if recorded:
            _enqueue_execute(step.pk, countdown=seconds)
    elif isinstance(outcome, Fail):
        ctx.say(outcome.message, stream="stderr")
        if _record(step, ctx, StepStatus.FAILED, error=outcome.message,
                   transient_failures=step.transient_failures):
            advance(step.run_id)
    # A handler that returned something that is not an outcome has a bug; show it as one.
    elif _record(step, ctx, StepStatus.ERRORED,
                 error=f"Internal error: step returned {type(outcome).__name__}"):
        advance(step.run_id)


def _wait_interval(step: Step, ctx: StepContext, outcome: Wait, *,
                   retrying: bool) -> tuple[float, int]:
    """(seconds until the next look, waits in a row with this reason before this one): the
    asked interval, grown while the step keeps saying the same thing (clusters/engine/
    polling.py). The claim leaves the last wait's reason on the row, so nothing more is read.
    A transient retry's wait keeps its own backoff."""
    asked = max(0.0, float(outcome.seconds))
    repeats = polling.repeats(step.wait_reason, outcome.reason[:500], step.wait_repeats,
                              new_try=retrying)
    seconds = polling.interval(asked, repeats, grow=outcome.grow and not retrying)
    if seconds > asked and repeats == settings.PANEL_POLL_PUNCTUAL:
        ctx.say(f"Still the same after {repeats + 1} looks: looking less often from now on "
                f"(next in {seconds:.1f} s instead of {asked:.1f} s; at most "
                f"{polling.interval(asked, 10**6):.1f} s apart).")
    return seconds, repeats


def _record(
    step: Step,
    ctx: StepContext,
    status: str,
    *,
    error: str = "",
    wait_reason: str = "",
    wait_seconds: float | None = None,
    finished: bool = True,
    **extra: Any,
) -> bool:
    """Store the outcome, if this worker still owns the step (its lease was not taken over),
    in one transaction with the log's last lines: one commit, not two (issue 18). When the
    database goes away at that moment, the lines go on their own (StepLog.flush tries a new
    connection once itself) and then the outcome, as two statements, as before.
    `wait_seconds`: due again that long after now, on the database's clock."""
    values: dict[str, Any] = {
        "status": status,
        "error": ctx.redact(error),
        "wait_reason": ctx.redact(wait_reason),
        "result": ctx.step.result,
        "lease_until": None,
        # A call that returned proves the step can start: PANEL_STEP_MAX_RECLAIMS counts the
        # reclaims in a row, not over a long step's life (workers die now and then).
        "reclaim_streak": 0,
        **extra,
    }

    def store() -> int:
        return _store_outcome(step, values, wait_seconds=wait_seconds, finished=finished)

    try:
        owned = ctx.log.flush_with(store)
    except (OperationalError, InterfaceError):
        connection.close_if_unusable_or_obsolete()
        ctx.log.flush()
        owned = store()
    if not owned:
        logger.warning("step %s lost its lease before recording %s; outcome dropped", step.pk,
                       status)
    return bool(owned)


_OUTCOME_STATEMENTS: dict[tuple[str, tuple[str, ...], bool, bool], str] = {}


def _store_outcome(step: Step, values: dict[str, Any], *, wait_seconds: float | None,
                   finished: bool) -> int:
    """UPDATE the step with `values` (and its due time, end and change time from the
    database's clock) if this attempt still owns it; how many rows (0 or 1) it changed.

    Why not QuerySet.update(): building and compiling it was most of the record's time
    (issue 18). The statement is made once per set of columns and kept; each value is
    prepared by its field (get_db_prep_save: JSON, encryption), as update() does."""
    vendor = connection.vendor
    if vendor not in ("postgresql", "sqlite"):
        due = None if wait_seconds is None else Now() + timedelta(seconds=wait_seconds)
        return Step.objects.filter(
            pk=step.pk, status=StepStatus.RUNNING, attempts=step.attempts
        ).update(**values, not_before=due, finished_at=Now() if finished else None,
                 updated_at=Now())  # QuerySet.update() skips auto_now; the sweeper reads it
    columns = tuple(values)
    key = (connection.alias, columns, wait_seconds is not None, finished)
    sql = _OUTCOME_STATEMENTS.get(key)
    if sql is None:
        q = connection.ops.quote_name
        now, later = _database_clock(vendor)
        assignments = [f"{q(_column(Step, name))} = %s" for name in columns]
        assignments += [f"{q('not_before')} = {later if wait_seconds is not None else 'NULL'}",
                        f"{q('finished_at')} = {now if finished else 'NULL'}",
                        f"{q('updated_at')} = {now}"]  # the sweeper's "moving"
        sql = (f"UPDATE {q(Step._meta.db_table)} SET {', '.join(assignments)} "  # noqa: S608
               f"WHERE {q('id')} = %s AND {q('status')} = %s AND {q('attempts')} = %s")
        _OUTCOME_STATEMENTS[key] = sql
    params = [_field(Step, name).get_db_prep_save(value, connection)
              for name, value in values.items()]
    if wait_seconds is not None:
        params.append(_seconds_parameter(vendor, wait_seconds))
    params += [step.pk, StepStatus.RUNNING.value, step.attempts]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.rowcount)


def _database_clock(vendor: str) -> tuple[str, str]:
    """SQL for the database's "now" (Django's Now()) and for "now plus a parameter"
    (`_seconds_parameter`), on PostgreSQL or SQLite."""
    if vendor == "postgresql":
        return "STATEMENT_TIMESTAMP()", "STATEMENT_TIMESTAMP() + %s"
    return ("STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW')",
            "STRFTIME('%%Y-%%m-%%d %%H:%%M:%%f', 'NOW', %s)")


def _seconds_parameter(vendor: str, seconds: float) -> Any:
    """A duration as `_database_clock`'s "now plus" takes it: an interval on PostgreSQL, a
    date-time modifier on SQLite."""
    if vendor == "postgresql":
        return timedelta(seconds=seconds)
    return f"{seconds:+.6f} seconds"


# --- operator actions -------------------------------------------------------------------------


def cancel(run: Run) -> None:
    """Stop the run between steps. A step already running may finish first; after
    PANEL_STEP_CANCEL_GRACE_SECONDS its heartbeat ends it (cancelled), even if it is stuck."""
    Run.objects.filter(pk=run.pk, status__in=RUN_ACTIVE).update(cancel_requested=True)
    _enqueue_advance(run.pk)


def retry(run: Run) -> bool:
    """Resume a failed or cancelled run from the steps that did not finish."""
    with transaction.atomic():
        reopened = Run.objects.filter(pk=run.pk).stopped().update(
            status=RunStatus.RUNNING, cancel_requested=False, finished_at=None)
        if not reopened:
            return False
        Step.objects.filter(
            run_id=run.pk,
            status__in=[StepStatus.FAILED, StepStatus.ERRORED, StepStatus.CANCELLED],
        # A user's Retry starts those steps afresh: their memo (deadlines, "installed at")
        # is dropped; what was bought is found again through the ledger, not the memo.
        ).update(status=StepStatus.PENDING, transient_failures=0, reclaims=0, reclaim_streak=0,
                 error="", not_before=None, started_at=None, finished_at=None, wait_reason="",
                 result={},
                 updated_at=Now())
        _enqueue_advance(run.pk)
    return True


# --- the sweeper --------------------------------------------------------------------------------


def sweep_window() -> timedelta:
    """How long a step may look still (no change, past its time) before the sweeper acts on
    it; a message for a step that ended within it is a copy, not a redelivery (`_claim_orm`)."""
    return timedelta(seconds=max(5.0, 2 * settings.PANEL_SWEEP_INTERVAL_SECONDS))


def sweep() -> dict[str, int]:
    """Recover what a dead worker or a lost message left behind; safe to run any time.

    * a running step whose lease expired is put back to waiting and run again;
    * a waiting step long past its time (its countdown message died with a worker) is re-sent,
      once per window: a step re-sent counts as due from then on, so while a long queue
      holds its message back, each sweep does not add one more;
    * an active run with no step moving for a while is advanced.

    Every "expired", "past its time" and "for a while" is judged in SQL against the
    database's clock (`Now()`), so the clock of the host running the beat does not matter.
    """
    window = sweep_window()
    reclaimed = _reclaim_expired()
    overdue = []
    for step_id in Step.objects.filter(status=StepStatus.WAITING, not_before__lt=Now() - window) \
            .values_list("pk", flat=True):
        # Due from now on, so it is overdue again only after a whole window; conditional, so
        # two sweepers (the beat's and a starting worker's) send it once.
        if Step.objects.filter(pk=step_id, status=StepStatus.WAITING,
                               not_before__lt=Now() - window).update(not_before=Now()):
            overdue.append(step_id)
            _enqueue_execute(step_id)
    quiet_runs = list(
        Run.objects.active()
        .annotate(last_change=Max("steps__updated_at"))
        .filter(Q(last_change__lt=Now() - window) | Q(last_change__isnull=True))
        .exclude(steps__status=StepStatus.RUNNING)
        .values_list("pk", flat=True)
        .distinct()
    )
    for run_id in quiet_runs:
        _enqueue_advance(run_id)
    return {"reclaimed": len(reclaimed), "overdue": len(overdue), "advanced": len(quiet_runs)}


def _reclaim_expired() -> list[int]:
    """Take back running steps whose lease expired: run them again, or fail the ones taken
    back PANEL_STEP_MAX_RECLAIMS times already (a step that can never start, e.g. a secret no
    key decrypts or a worker the OOM killer takes each time, must not loop forever)."""
    expired = list(
        Step.objects.filter(status=StepStatus.RUNNING, lease_until__lt=Now())
        .values_list("pk", "attempts", "reclaim_streak", "run_id")
    )
    limit = settings.PANEL_STEP_MAX_RECLAIMS
    reclaimed, given_up = [], []
    for step_id, attempts, streak, run_id in expired:
        still_expired = Step.objects.filter(
            pk=step_id, status=StepStatus.RUNNING, attempts=attempts, lease_until__lt=Now())
        if streak >= limit:
            taken = still_expired.update(
                status=StepStatus.FAILED, lease_until=None, finished_at=Now(),
                reclaims=F("reclaims") + 1, reclaim_streak=F("reclaim_streak") + 1,
                error=gave_up_message(streak + 1), updated_at=Now())
            if taken:
                given_up.append(step_id)
                _enqueue_advance(run_id)
            continue
        taken = still_expired.update(
            status=StepStatus.WAITING, not_before=Now(), lease_until=None,
            reclaims=F("reclaims") + 1, reclaim_streak=F("reclaim_streak") + 1,
            wait_reason=f"{RECLAIMED}; running it again.",
            updated_at=Now())
        if taken:
            reclaimed.append(step_id)
            _enqueue_execute(step_id)
    if reclaimed:
        logger.warning("reclaimed steps with expired leases: %s", reclaimed)
    if given_up:
        logger.error("failed steps whose worker stopped answering %s times: %s", limit + 1,
                     given_up)
    return reclaimed + given_up


def gave_up_message(times: int) -> str:
    return (f"{RECLAIMED} {times} times in a row, so it is not run again: it probably "
            "cannot even start (a stored secret that no key in PANEL_ENCRYPTION_KEYS decrypts, "
            "or a worker killed each time, e.g. by the OOM killer). The worker's own log says "
            "which; fix that, then Retry.")


def worker_started() -> None:
    """Called when a worker comes up: recover right away instead of at the next beat."""
    close_old_connections()
    with transaction.atomic():
        sweep()


# --- Celery entry points ----------------------------------------------------------------------
# The engine owns its tasks: each only hands an id to the functions above. The names are
# explicit and must never change: queued messages and the beat schedule (panel/celery.py)
# name them.


@shared_task(name="clusters.advance_run")
def advance_run(run_id: int) -> None:
    advance(run_id)


@shared_task(name="clusters.execute_step")
def execute_step(step_id: int) -> None:
    execute(step_id)


@shared_task(name="clusters.sweep")
def sweep_task() -> dict[str, int]:
    return sweep()


@worker_ready.connect
def _recover_on_start(**_: Any) -> None:
    worker_started()
