"""The claim's rules hold in both of its forms: the one UPDATE ... RETURNING of PostgreSQL and
SQLite (`claim_path` "returning") and the ORM's queries that MySQL and every "not claimed"
case take ("orm"). Each test runs both ways, on whichever database the session uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.engine import pipeline
from clusters.engine.pipeline import RECLAIMED, StepSpec
from clusters.models import Cluster, Run, RunStatus, Step, StepStatus
from tests.support.engine_specs import (
    EXECUTE,
    InProcessEngine,
    Sent,
    executes,
    start_run,
    time_passes,
)
from tests.support.runs import step


@pytest.fixture(params=["returning", "orm"])
def claim_path(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    # The suite runs on PostgreSQL and SQLite 3.35+, both with RETURNING: never a skip.
    assert pipeline._claim_statement(connection) is not None, (
        f"{connection.vendor} has no UPDATE ... RETURNING: the suite needs PostgreSQL or "
        "SQLite 3.35+")
    settings.PANEL_ENGINE_CLAIM_RETURNING = request.param == "returning"
    yield request.param


def ready_step(engine: InProcessEngine, *specs: StepSpec) -> tuple[Run, int]:
    """A run started (its advance delivered) and the id its first execute message names."""
    run = start_run(engine, *specs)
    engine.deliver(engine.take()[0])
    (message,) = engine.take()
    return run, message.args[0]


def test_the_claimed_step_is_the_row_as_stored_with_its_run_cluster_and_account(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("a", "A", "test.work"))
    with CaptureQueriesContext(connection) as queries:
        claimed = engine.act(pipeline._claim, step_id)
    assert claimed is not None
    claimed_step, polling = claimed
    assert polling is False
    stored = Step.objects.get(pk=step_id)
    own = [field.attname for field in Step._meta.concrete_fields]
    assert {name: getattr(claimed_step, name) for name in own} == \
        {name: getattr(stored, name) for name in own}
    assert (stored.status, stored.attempts, stored.polls) == (StepStatus.RUNNING, 1, 0)
    assert stored.not_before is None and stored.started_at is not None
    # The lease is the database's "now" (the heartbeat's) plus the lease, to the millisecond.
    lease = (stored.lease_until - stored.heartbeat_at).total_seconds()
    assert abs(lease - settings.PANEL_STEP_LEASE_SECONDS) < 0.002
    # The handler's context comes with it, decrypted as the ORM reads it.
    cluster = Cluster.objects.select_related("cloud_account").get(pk=run.cluster_id)
    assert claimed_step.run.status == RunStatus.RUNNING and claimed_step.run.pk == run.pk
    assert claimed_step.run.cluster.k3s_token == cluster.k3s_token != ""
    assert claimed_step.run.cluster.cloud_account.access_key_secret == \
        cluster.cloud_account.access_key_secret
    assert claimed_step.run.cluster.secret_values() == cluster.secret_values()
    if claim_path == "returning" and connection.vendor == "postgresql":
        assert len(queries) == 1, [query["sql"] for query in queries]


def test_a_step_not_yet_due_is_not_claimed_and_is_sent_again_for_when_it_is(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("w", "W", "test.wait_then_done",
                                               args={"waits": 1, "seconds": 60}))
    engine.deliver(Sent(EXECUTE, (step_id,), None))
    (poll,) = engine.take()
    assert 55 < poll.countdown <= 60
    engine.deliver(Sent(EXECUTE, (step_id,), None))  # delivered a minute early
    (again,) = engine.take()
    assert again.task == EXECUTE and again.args == (step_id,) and 55 < again.countdown <= 60
    assert step(run, "w").attempts == 1
    time_passes(59.7)  # within EARLY_TOLERANCE of its time: due
    claimed = engine.act(pipeline._claim, step_id)
    assert claimed is not None and claimed[1] is True  # a poll, not a new try
    w = step(run, "w")
    assert (w.status, w.attempts, w.polls, w.tries) == (StepStatus.RUNNING, 2, 1, 1)


def test_a_pending_step_whose_dependencies_are_not_done_is_not_claimed(
        engine: InProcessEngine, claim_path: str) -> None:
    run, _ = ready_step(engine, StepSpec("a", "A", "test.work"),
                        StepSpec("b", "B", "test.work", ["a"]))
    b = step(run, "b")
    assert engine.act(pipeline._claim, b.pk) is None
    assert (step(run, "b").status, step(run, "b").attempts) == (StepStatus.PENDING, 0)
    assert engine.take() == []
    Step.objects.filter(run=run, key="a").update(status=StepStatus.SKIPPED)  # skipped is done
    assert engine.act(pipeline._claim, b.pk) is not None


def test_a_step_of_a_run_being_cancelled_is_not_claimed(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("a", "A", "test.work"))
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)  # Cancel, not yet advanced
    assert engine.act(pipeline._claim, step_id) is None
    assert step(run, "a").attempts == 0 and engine.take() == []


def test_a_step_another_worker_holds_is_not_claimed_again(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("a", "A", "test.work"))
    assert engine.act(pipeline._claim, step_id) is not None
    assert engine.act(pipeline._claim, step_id) is None
    assert (step(run, "a").status, step(run, "a").attempts) == (StepStatus.RUNNING, 1)


def test_a_reclaimed_step_is_a_new_try_and_its_old_owner_cannot_record(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("a", "A", "test.work"))
    first = engine.act(pipeline._claim, step_id)
    assert first is not None
    time_passes(settings.PANEL_STEP_LEASE_SECONDS + 1)  # its worker died
    engine.act(pipeline.sweep)
    assert step(run, "a").wait_reason.startswith(RECLAIMED)
    second = engine.act(pipeline._claim, step_id)
    assert second is not None and second[1] is False  # a reclaim is a try, not a poll
    assert (second[0].attempts, second[0].polls) == (2, 0)
    # The first worker comes back: its attempt is stale, its outcome is dropped.
    assert pipeline._store_outcome(first[0], {"status": StepStatus.SUCCEEDED},
                                   wait_seconds=None, finished=True) == 0
    assert step(run, "a").status == StepStatus.RUNNING


def test_a_retry_after_a_transient_failure_is_a_new_try(
        engine: InProcessEngine, claim_path: str) -> None:
    run, step_id = ready_step(engine, StepSpec("a", "A", "test.work"))
    Step.objects.filter(pk=step_id).update(status=StepStatus.WAITING, transient_failures=1,
                                           wait_reason="Retrying after a transient failure",
                                           attempts=1)
    claimed = engine.act(pipeline._claim, step_id)
    assert claimed is not None and claimed[1] is False
    assert (step(run, "a").attempts, step(run, "a").polls) == (2, 0)


def test_a_message_for_a_step_already_done_sends_its_dependents_again(
        engine: InProcessEngine, claim_path: str) -> None:
    """Its worker died between recording the end and sending the next step (acks_late
    delivers the message again, later): the next step is sent, not left for the sweeper."""
    run, a_id = ready_step(engine, StepSpec("a", "A", "test.work"),
                           StepSpec("b", "B", "test.work", ["a"]))
    engine.deliver(Sent(EXECUTE, (a_id,), None))
    engine.take()  # b's message was lost
    time_passes(pipeline.sweep_window().total_seconds())
    engine.deliver(Sent(EXECUTE, (a_id,), None))
    assert executes(engine.take()) == [step(run, "b").pk]
    assert step(run, "a").attempts == 1


def test_a_wait_scheduled_on_the_database_clock(engine: InProcessEngine, claim_path: str) -> None:
    """The outcome's due time is the database's "now" plus the seconds asked for."""
    run, step_id = ready_step(engine, StepSpec("w", "W", "test.wait_then_done",
                                               args={"waits": 1, "seconds": 30}))
    engine.deliver(Sent(EXECUTE, (step_id,), None))
    w = step(run, "w")
    assert w.status == StepStatus.WAITING and w.finished_at is None and w.lease_until is None
    assert timedelta(seconds=29.9) < w.not_before - w.updated_at <= timedelta(seconds=30.001)
