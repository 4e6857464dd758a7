"""Rules of the operator's actions: Retry resumes what did not finish, Cancel stops between
steps."""

from __future__ import annotations

from pathlib import Path

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, Run, RunStatus, StepStatus
from tests.support.engine_specs import ADVANCE, InProcessEngine, Sent, start_run
from tests.support.runs import step


def failed_run(engine: InProcessEngine, marker: Path) -> Run:
    run = start_run(engine, StepSpec("a", "A", "test.work"),
                    StepSpec("b", "B", "test.fail_first", ["a"],
                             args={"fixed_marker": str(marker)}),
                    StepSpec("c", "C", "test.work", ["b"]))
    engine.deliver_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    return run


def test_retry_resumes_from_the_failed_step_and_keeps_what_finished(
        engine: InProcessEngine, tmp_path: Path) -> None:
    run = failed_run(engine, tmp_path / "fixed")
    a_before = step(run, "a")
    (tmp_path / "fixed").touch()  # the user fixed the whitelist
    assert engine.act(pipeline.retry, run) is True
    assert engine.take() == [Sent(ADVANCE, (run.pk,), None)]
    b = step(run, "b")
    assert (b.status, b.error, b.finished_at) == (StepStatus.PENDING, "", None)
    engine.queue.append(Sent(ADVANCE, (run.pk,), None))
    engine.deliver_all()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    a_after = step(run, "a")
    assert (a_after.attempts, a_after.finished_at) == (1, a_before.finished_at)
    assert step(run, "b").attempts == 2
    assert LogLine.objects.filter(step=step(run, "b"), text="Attempt 2.").exists()


def test_retry_starts_a_failed_steps_memo_afresh(engine: InProcessEngine, tmp_path: Path) -> None:
    """A deadline or "installed at" kept by the failed try must not steer the next one."""
    run = failed_run(engine, tmp_path / "fixed")
    step(run, "b").__class__.objects.filter(pk=step(run, "b").pk).update(
        result={"deadline": 1}, transient_failures=4)
    engine.act(pipeline.retry, run)
    b = step(run, "b")
    assert (b.result, b.transient_failures) == ({}, 0)


def test_retry_of_a_run_that_did_not_fail_changes_nothing(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver_all()
    assert engine.act(pipeline.retry, run) is False
    assert engine.take() == []
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_cancel_stops_waiting_and_pending_steps(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done", args={"waits": 5}),
                    StepSpec("b", "B", "test.work", ["w"]))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    poll = engine.take()[0]
    engine.act(pipeline.cancel, run)
    engine.deliver_all()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.finished_at is not None
    assert {step(run, key).status for key in "wb"} == {StepStatus.CANCELLED}
    engine.deliver(poll)  # the wait's countdown arrives after the cancel
    assert step(run, "w").attempts == 1


def test_a_step_running_when_cancel_is_pressed_finishes_and_the_run_ends_cancelled(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.cancels_its_run"),
                    StepSpec("b", "B", "test.work", ["a"]),
                    StepSpec("w", "W", "test.wait_then_done", args={"waits": 5}))
    engine.deliver(engine.take()[0])
    first = engine.take()
    engine.deliver(first[1])  # w starts waiting
    engine.deliver(first[0])  # a runs; the user cancels meanwhile
    assert step(run, "a").status == StepStatus.SUCCEEDED
    assert step(run, "a").result == {"finished_anyway": True}
    assert {step(run, key).status for key in "bw"} == {StepStatus.CANCELLED}
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_retry_resumes_a_cancelled_run(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done", args={"waits": 1}))
    engine.take()
    engine.act(pipeline.cancel, run)
    engine.deliver_all()
    assert engine.act(pipeline.retry, run) is True
    engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
