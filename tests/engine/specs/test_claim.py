"""Rules of claiming: one worker per step, and only when the step is due and its run runs."""

from __future__ import annotations

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Run, RunStatus, StepStatus
from tests.support.engine_specs import EXECUTE, InProcessEngine, Sent, start_run
from tests.support.runs import step


def test_a_duplicate_message_runs_the_step_once(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    (message,) = engine.take()
    engine.deliver(message)
    engine.deliver(message)  # redelivered (acks_late) after the step finished
    a = step(run, "a")
    assert (a.status, a.attempts) == (StepStatus.SUCCEEDED, 1)


def test_a_step_another_worker_holds_is_not_run_again(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    (message,) = engine.take()
    assert pipeline._claim(message.args[0]) is not None  # the other worker's claim
    engine.deliver(message)
    a = step(run, "a")
    assert (a.status, a.attempts) == (StepStatus.RUNNING, 1)
    assert a.lease_until is not None


def test_a_step_of_a_run_that_is_not_running_is_not_claimed(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.take()  # the advance message is lost: the run is still pending
    engine.deliver(Sent(EXECUTE, (step(run, "a").pk,), None))
    assert step(run, "a").attempts == 0
    assert Run.objects.get(pk=run.pk).status == RunStatus.PENDING


def test_a_step_whose_dependencies_are_not_done_is_not_claimed(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.wait_then_done"),
                    StepSpec("b", "B", "test.work", ["a"]))
    engine.deliver(engine.take()[0])
    engine.deliver(Sent(EXECUTE, (step(run, "b").pk,), None))  # a stray message for b
    assert step(run, "b").attempts == 0
