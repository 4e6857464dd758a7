"""Rules of transient failures: backoff with jitter, a budget of failures in a row, progress."""

from __future__ import annotations

from django.test import override_settings

from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, RunStatus, StepStatus
from tests.support.engine_specs import InProcessEngine, start_run, time_passes
from tests.support.runs import step


@override_settings(PANEL_RETRY_BASE_SECONDS=10, PANEL_RETRY_MAX_SECONDS=25)
def test_a_transient_failure_is_retried_after_an_exponential_jittered_backoff(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("f", "F", "test.flaky", args={"failures": 3}))
    engine.deliver(engine.take()[0])
    countdowns = []
    for _ in range(3):
        engine.deliver(engine.take()[0])
        f = step(run, "f")
        assert f.status == StepStatus.WAITING
        assert f.wait_reason.startswith("Retrying after a transient failure: Request was denied")
        (retry,) = engine.take()
        countdowns.append(retry.countdown)
        time_passes(retry.countdown)
        engine.queue.append(retry)
    # base 10 s doubling, capped at 25 s, each 80-100 % of its value (jitter).
    for countdown, full in zip(countdowns, (10, 20, 25), strict=True):
        assert 0.8 * full - 0.5 < countdown <= full
    engine.deliver_all()
    f = step(run, "f")
    assert f.status == StepStatus.SUCCEEDED and f.result == {"after_failures": 3}


def test_retries_after_transient_failures_are_attempts_not_polls(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("f", "F", "test.flaky", args={"failures": 2}))
    engine.deliver_all()
    f = step(run, "f")
    assert (f.attempts, f.polls, f.tries, f.transient_failures) == (3, 0, 3, 0)
    assert LogLine.objects.filter(step=f, text="Attempt 3.").exists()
    stderr = list(LogLine.objects.filter(step=f, stream="stderr").values_list("text", flat=True))
    assert stderr[0].startswith("Transient failure (1/8): Request was denied due to request "
                                "throttling. (code Throttling, RequestId REQ-0)")


def test_more_transient_failures_in_a_row_than_the_budget_fail_the_step(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("f", "F", "test.flaky", args={"failures": 9},
                                     retry_budget=2))
    engine.deliver_all()
    f = step(run, "f")
    assert (f.status, f.attempts) == (StepStatus.FAILED, 3)
    assert f.error == ("Gave up after 3 transient failures; the last: Request was denied due to "
                       "request throttling. (code Throttling, RequestId REQ-2)")
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_progress_recorded_in_the_memo_starts_the_budget_again(engine: InProcessEngine) -> None:
    """A long paged listing throttled after every page still finishes: each call got further."""
    run = start_run(engine, StepSpec("p", "P", "test.progress_then_throttled",
                                     args={"pages": 5}, retry_budget=1))
    engine.deliver_all()
    p = step(run, "p")
    assert (p.status, p.attempts) == (StepStatus.SUCCEEDED, 5)
    assert p.result == {"page": 5, "pages": 5}
