"""Rules of time: leases and due times are the database's clock, never a process's own.

Each process (web, workers, beat with the sweeper) used to stamp leases and due times with
its own clock, so a sweeper host 80 s ahead took live steps from their workers, and a worker
host behind gave out leases shorter than PANEL_STEP_LEASE_SECONDS. Here one process's clock
is wrong (`process_clock_off_by`); the database's NOW() is the only clock that decides.
"""

from __future__ import annotations

from django.conf import settings

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import StepStatus
from tests.support.engine_specs import (
    EXECUTE,
    InProcessEngine,
    executes,
    process_clock_off_by,
    start_run,
    time_passes,
)
from tests.support.runs import step

SKEW = 80.0  # the brief's host: NTP broken, 80 s off


def test_a_sweeper_whose_clock_runs_ahead_does_not_reclaim_a_live_step(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    pipeline._claim(engine.take()[0].args[0])  # a worker holds it, well within its lease
    with process_clock_off_by(settings.PANEL_STEP_LEASE_SECONDS + SKEW):
        assert engine.act(pipeline.sweep) == {"reclaimed": 0, "overdue": 0, "advanced": 0}
    assert step(run, "a").status == StepStatus.RUNNING
    assert engine.take() == []


def test_a_worker_whose_clock_runs_behind_still_holds_a_full_lease(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver(engine.take()[0])
    with process_clock_off_by(-SKEW):
        pipeline._claim(engine.take()[0].args[0])
    time_passes(settings.PANEL_STEP_LEASE_SECONDS - 5)  # the lease has 5 s left, truly
    assert engine.act(pipeline.sweep)["reclaimed"] == 0
    assert step(run, "a").status == StepStatus.RUNNING


def test_a_wait_recorded_by_a_worker_whose_clock_runs_ahead_is_due_on_time(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 10}))
    engine.deliver(engine.take()[0])
    with process_clock_off_by(SKEW):
        engine.deliver(engine.take()[0])  # the handler asks for 10 s
    (countdown,) = engine.take()
    assert step(run, "w").status == StepStatus.WAITING
    time_passes(10)
    engine.deliver(countdown)  # due now: it runs, it is not put off by another 80 s
    assert step(run, "w").status == StepStatus.SUCCEEDED


def test_a_worker_whose_clock_runs_behind_runs_a_due_step_instead_of_putting_it_off(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 10}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    (countdown,) = engine.take()
    time_passes(10)
    with process_clock_off_by(-SKEW):
        engine.deliver(countdown)
    assert step(run, "w").status == StepStatus.SUCCEEDED
    assert executes(engine.take()) == []


def test_a_sweeper_whose_clock_runs_ahead_leaves_a_wait_that_is_not_due_yet(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 10}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    engine.take()
    with process_clock_off_by(SKEW):
        assert engine.act(pipeline.sweep) == {"reclaimed": 0, "overdue": 0, "advanced": 0}
    assert step(run, "w").status == StepStatus.WAITING
    assert [sent.task for sent in engine.take()] != [EXECUTE]
