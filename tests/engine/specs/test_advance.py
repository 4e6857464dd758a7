"""Rules of advancing a run: when steps start, and when the run closes."""

from __future__ import annotations

from typing import Any

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Run, RunStatus, StepStatus
from tests.support.engine_specs import ADVANCE, EXECUTE, InProcessEngine, Sent, executes, start_run
from tests.support.runs import step


def test_a_run_is_started_by_one_message_sent_after_its_transaction_commits(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    assert engine.take() == [Sent(ADVANCE, (run.pk,), None)]
    assert Run.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_messages_carry_ids_only(engine: InProcessEngine) -> None:
    """A message sent again later (redelivery, the sweeper) can never carry stale state."""
    start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work", ["a"]))
    seen = []
    while engine.queue:
        message = engine.queue.pop(0)
        seen.append(message)
        engine.deliver(message)
    assert [m.task for m in seen] == [ADVANCE, EXECUTE, EXECUTE]  # the last step closes the run
    assert all(len(m.args) == 1 and isinstance(m.args[0], int) for m in seen)


def test_advancing_starts_every_step_whose_dependencies_are_done(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work"),
                    StepSpec("c", "C", "test.work", ["a", "b"]))
    engine.deliver(engine.take()[0])
    assert sorted(executes(engine.take())) == sorted([step(run, "a").pk, step(run, "b").pk])
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.started_at is not None


def test_a_step_starts_only_when_all_its_dependencies_are_done(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work"),
                    StepSpec("c", "C", "test.work", ["a", "b"]))
    engine.deliver(engine.take()[0])
    a, b, c = (step(run, key).pk for key in "abc")
    engine.deliver(Sent(EXECUTE, (a,), None))
    assert c not in executes(engine.take())
    engine.deliver(Sent(EXECUTE, (b,), None))
    assert executes(engine.take()) == [c]


def test_a_finished_step_starts_its_dependents_in_the_same_hop(engine: InProcessEngine) -> None:
    """No advance message between a step and the next one: the worker advances at once."""
    run = start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work", ["a"]))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    sent = engine.take()
    assert [m.task for m in sent] == [EXECUTE]
    assert executes(sent) == [step(run, "b").pk]


def test_the_run_succeeds_when_every_step_is_done_or_skipped(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.skip", args={"reason": "brought their own"}),
                    StepSpec("b", "B", "test.work", ["a"]))
    engine.deliver_all()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.finished_at is not None
    assert step(run, "a").status == StepStatus.SKIPPED
    assert step(run, "b").status == StepStatus.SUCCEEDED


def test_run_finished_is_sent_once_however_often_the_run_is_advanced(
        engine: InProcessEngine) -> None:
    finished: list[tuple[int, str]] = []

    def receiver(sender: Any, run: Run, **_: Any) -> None:
        finished.append((run.pk, run.status))

    pipeline.run_finished.connect(receiver, weak=False)
    try:
        run = start_run(engine, StepSpec("a", "A", "test.work"))
        engine.deliver_all()
        engine.deliver(Sent(ADVANCE, (run.pk,), None))  # a late duplicate
    finally:
        pipeline.run_finished.disconnect(receiver)
    assert finished == [(run.pk, RunStatus.SUCCEEDED)]
