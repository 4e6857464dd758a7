"""Rules of the sweeper: what a dead worker or a lost message left behind is picked up again,
and nothing healthy is touched."""

from __future__ import annotations

from django.conf import settings

from clusters.engine import pipeline
from clusters.engine.pipeline import RECLAIMED, StepSpec
from clusters.models import LogLine, Run, RunStatus, StepStatus
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


def test_a_step_whose_lease_expired_is_reclaimed_and_run_again_as_a_new_attempt(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    (message,) = engine.take()
    pipeline._claim(message.args[0])  # a worker took it, then died without a word
    time_passes(settings.PANEL_STEP_LEASE_SECONDS + 1)
    assert engine.act(pipeline.sweep) == {"reclaimed": 1, "overdue": 0, "advanced": 0}
    a = step(run, "a")
    assert a.status == StepStatus.WAITING and a.wait_reason.startswith(RECLAIMED)
    assert engine.take() == [Sent(EXECUTE, (a.pk,), None)]
    engine.queue.append(Sent(EXECUTE, (a.pk,), None))
    engine.deliver_all()
    a = step(run, "a")
    assert a.status == StepStatus.SUCCEEDED
    assert (a.attempts, a.polls, a.tries) == (2, 0, 2)  # a reclaim is a new try, not a poll
    assert LogLine.objects.filter(step=a, text="Attempt 2.").exists()


def test_a_step_within_its_lease_is_left_to_its_worker(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    pipeline._claim(engine.take()[0].args[0])
    time_passes(settings.PANEL_STEP_LEASE_SECONDS - 5)
    assert engine.act(pipeline.sweep)["reclaimed"] == 0
    assert step(run, "a").status == StepStatus.RUNNING
    assert engine.take() == []


def test_a_wait_whose_countdown_was_lost_is_sent_again(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 10}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    engine.take()  # the countdown message died with its worker
    time_passes(10)
    assert engine.act(pipeline.sweep)["overdue"] == 0  # due, but within the grace period
    time_passes(2 * settings.PANEL_SWEEP_INTERVAL_SECONDS + 1)
    assert engine.act(pipeline.sweep)["overdue"] == 1
    assert Sent(EXECUTE, (step(run, "w").pk,), None) in engine.take()


def test_a_quiet_active_run_is_advanced_again(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.take()  # the advance message was lost
    assert engine.act(pipeline.sweep)["advanced"] == 0
    assert engine.take() == []
    time_passes(2 * settings.PANEL_SWEEP_INTERVAL_SECONDS + 1)
    assert engine.act(pipeline.sweep)["advanced"] == 1
    assert engine.take() == [Sent(ADVANCE, (run.pk,), None)]
    engine.queue.append(Sent(ADVANCE, (run.pk,), None))
    engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_a_run_whose_steps_are_moving_is_not_advanced_by_the_sweeper(
        engine: InProcessEngine) -> None:
    """Quiet means no step changed for a while, however old the run is: a run polling RDS for
    twenty minutes is not re-advanced at every sweep."""
    start_run(engine, StepSpec("w", "W", "test.wait_then_done", args={"waits": 9, "seconds": 5}))
    time_passes(10 * settings.PANEL_SWEEP_INTERVAL_SECONDS)  # the run was created long ago
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])  # and its step has just waited
    assert engine.act(pipeline.sweep) == {"reclaimed": 0, "overdue": 0, "advanced": 0}


def test_a_run_with_a_running_step_is_not_advanced_by_the_sweeper(
        engine: InProcessEngine) -> None:
    start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    pipeline._claim(engine.take()[0].args[0])
    time_passes(2 * settings.PANEL_SWEEP_INTERVAL_SECONDS + 1)  # still within its lease
    assert engine.act(pipeline.sweep) == {"reclaimed": 0, "overdue": 0, "advanced": 0}


def test_a_waiting_step_already_sent_again_is_not_sent_again_within_the_window(
        engine: InProcessEngine) -> None:
    """While a long queue (a flood of health checks) holds the re-sent message back, every
    sweep must not add one more: a step is re-sent once per window."""
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 10}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    engine.take()  # the countdown message died with its worker
    window = 2 * settings.PANEL_SWEEP_INTERVAL_SECONDS
    time_passes(10 + window + 1)
    assert engine.act(pipeline.sweep)["overdue"] == 1
    w = step(run, "w").pk
    assert executes(engine.take()) == [w]
    time_passes(settings.PANEL_SWEEP_INTERVAL_SECONDS)  # the next beat: still in the queue
    assert engine.act(pipeline.sweep)["overdue"] == 0
    assert executes(engine.take()) == []
    time_passes(window)  # a whole window and still not run: that message was lost too
    assert engine.act(pipeline.sweep)["overdue"] == 1
    assert executes(engine.take()) == [w]
    engine.queue.append(Sent(EXECUTE, (w,), None))
    engine.deliver_all()
    assert step(run, "w").status == StepStatus.SUCCEEDED


def test_a_long_step_whose_workers_die_now_and_then_is_not_given_up(
        engine: InProcessEngine) -> None:
    """PANEL_STEP_MAX_RECLAIMS counts reclaims in a row: a step that completes a call between
    two dead workers (a long wait for the SLB, an OOM kill now and then) has shown it can
    start, and is never failed as one that cannot (the soak found this: 3 of 20 runs)."""
    limit = settings.PANEL_STEP_MAX_RECLAIMS
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": limit + 3, "seconds": 1}))
    engine.deliver(engine.take()[0])
    for _ in range(limit + 2):
        (message,) = engine.take()
        time_passes(message.countdown)  # the poll is due
        assert pipeline._claim(message.args[0])  # a worker took it, then was killed
        time_passes(settings.PANEL_STEP_LEASE_SECONDS + 1)
        assert engine.act(pipeline.sweep)["reclaimed"] == 1
        assert step(run, "w").status == StepStatus.WAITING
        engine.deliver(engine.take()[0])  # the next worker lives: one poll (a Wait)
        assert step(run, "w").reclaim_streak == 0
    engine.deliver_all()
    w = step(run, "w")
    assert w.status == StepStatus.SUCCEEDED
    assert w.reclaims == limit + 2  # every reclaim is still counted, for the record
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED


def test_a_step_reclaimed_more_times_in_a_row_than_allowed_fails_with_the_reason(
        engine: InProcessEngine) -> None:
    limit = settings.PANEL_STEP_MAX_RECLAIMS
    run = start_run(engine, StepSpec("w", "W", "test.work"))
    engine.deliver(engine.take()[0])
    for _ in range(limit + 1):
        (message,) = engine.take()
        pipeline._claim(message.args[0])  # every worker dies before the call returns
        time_passes(settings.PANEL_STEP_LEASE_SECONDS + 1)
        engine.act(pipeline.sweep)
    w = step(run, "w")
    assert w.status == StepStatus.FAILED and w.reclaims == w.reclaim_streak == limit + 1
    assert w.error == pipeline.gave_up_message(limit + 1)
    engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED
