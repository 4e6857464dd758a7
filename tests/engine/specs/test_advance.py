"""Rules of advancing a run: when steps start, and when the run closes."""

from __future__ import annotations

from typing import Any

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Run, RunStatus, Step, StepStatus
from tests.support.engine_specs import (
    ADVANCE,
    EXECUTE,
    InProcessEngine,
    Sent,
    executes,
    start_run,
    time_passes,
)
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


def test_a_fan_out_sends_each_step_once(engine: InProcessEngine) -> None:
    """Each step's end sends only the steps that waited on it: eight parallel steps and their
    join are sent once each, not again at every sibling's end (which made a backlog mostly
    copies of messages already queued; issue 18)."""
    middle = [StepSpec(f"m{i}", f"M{i}", "test.work", ["root"]) for i in range(8)]
    run = start_run(engine, StepSpec("root", "Root", "test.work"), *middle,
                    StepSpec("join", "Join", "test.work", [s.key for s in middle]))
    sent = []
    while engine.queue:
        message = engine.queue.pop(0)
        sent.append(message)
        engine.deliver(message)
    assert sorted(executes(sent)) == sorted(s.pk for s in Step.objects.filter(run=run))
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_a_quiet_run_advanced_again_sends_what_is_ready_but_was_lost(
        engine: InProcessEngine) -> None:
    """A worker killed between storing a step's end and sending its dependents: the advance
    the sweeper sends for the quiet run starts them (it sends every ready step)."""
    run = start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work"),
                    StepSpec("c", "C", "test.work", ["a"]))
    engine.deliver(engine.take()[0])
    a_and_b = engine.take()
    engine.deliver(a_and_b[0])
    engine.take()  # c's message was lost with its worker
    engine.deliver(a_and_b[1])
    assert executes(engine.take()) == [], "b's end does not send c: c waits on a, not on b"
    engine.deliver(Sent(ADVANCE, (run.pk,), None))  # the sweeper's, once the run is quiet
    (message,) = engine.take()
    assert executes([message]) == [step(run, "c").pk]
    engine.deliver(message)
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_a_redelivered_message_of_a_done_step_sends_the_dependents_its_worker_lost(
        engine: InProcessEngine) -> None:
    """The worker stored a's end and died before sending c (acks_late: a's message comes
    back): the redelivered message sends c at once, while b still runs, instead of leaving
    c to the sweeper, which advances only a quiet run (b could wait for an hour)."""
    run = start_run(engine, StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work"),
                    StepSpec("c", "C", "test.work", ["a"]))
    engine.deliver(engine.take()[0])
    a_message, b_message = engine.take()
    engine.deliver(a_message)
    engine.take()  # c's message was lost with a's worker
    assert pipeline._claim(b_message.args[0]) is not None  # b runs on another worker
    time_passes(pipeline.sweep_window().total_seconds())  # acks_late: back much later
    engine.deliver(a_message)  # redelivered
    assert executes(engine.take()) == [step(run, "c").pk]


def test_a_copy_of_a_done_steps_message_sends_nothing_again(engine: InProcessEngine) -> None:
    """A copy sent while a step was queued (the sweeper's, under a backlog) arrives just after
    the step ended, whose end sent its dependents: it sends nothing, so copies do not travel
    down the rest of the run, one more per step (issue 18)."""
    run = start_run(engine, StepSpec("a", "A", "test.work"),
                    StepSpec("b", "B", "test.work", ["a"]))
    engine.deliver(engine.take()[0])  # the run's first advance
    (a_message,) = engine.take()
    engine.deliver(a_message)
    assert executes(engine.take()) == [step(run, "b").pk]  # sent by a's end
    engine.deliver(a_message)  # the copy
    assert engine.take() == []
