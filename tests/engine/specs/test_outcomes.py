"""Rules of what a handler says: Done, Wait, Fail, Skip, an exception, or something else."""

from __future__ import annotations

from pathlib import Path

from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, Run, RunStatus, StepStatus
from tests.support.engine_specs import EXECUTE, InProcessEngine, executes, start_run, time_passes
from tests.support.runs import step


def test_done_keeps_what_the_step_learned_for_later_steps(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    engine.deliver_all()
    a = step(run, "a")
    assert a.status == StepStatus.SUCCEEDED and a.finished_at is not None
    assert set(a.result) == {"started", "finished", "pid", "netns"}


def test_wait_sends_the_next_poll_after_the_seconds_it_asked_for(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 30}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    w = step(run, "w")
    assert w.status == StepStatus.WAITING and w.wait_reason == "not ready yet (1)"
    (poll,) = engine.take()
    assert poll.task == EXECUTE and poll.args == (w.pk,)
    assert 29 < poll.countdown <= 30


def test_polls_after_a_wait_are_not_attempts(engine: InProcessEngine) -> None:
    """Waiting for RDS to be Running five times is one try, not five (the page shows tries)."""
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done", args={"waits": 4}))
    engine.deliver_all()
    w = step(run, "w")
    assert w.status == StepStatus.SUCCEEDED
    assert (w.attempts, w.polls, w.tries) == (5, 4, 1)
    assert w.result == {"polls": 5}  # the memo survived every wait
    assert not LogLine.objects.filter(step=w, text__startswith="Attempt").exists()


def test_a_poll_delivered_early_is_put_back_until_it_is_due(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("w", "W", "test.wait_then_done",
                                     args={"waits": 1, "seconds": 30}))
    engine.deliver(engine.take()[0])
    engine.deliver(engine.take()[0])
    early = engine.take()[0]
    engine.deliver(early)  # 30 s too soon, as a re-sent message may be
    w = step(run, "w")
    assert (w.status, w.attempts) == (StepStatus.WAITING, 1)
    (again,) = engine.take()
    assert again.args == (w.pk,) and 28 < again.countdown <= 30
    time_passes(30)
    engine.deliver(again)
    assert step(run, "w").status == StepStatus.SUCCEEDED


def test_skip_counts_as_done_and_says_why(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("s", "S", "test.skip", args={"reason": "no RDS to buy"}),
                    StepSpec("b", "B", "test.work", ["s"]))
    engine.deliver_all()
    s = step(run, "s")
    assert (s.status, s.wait_reason) == (StepStatus.SKIPPED, "no RDS to buy")
    assert LogLine.objects.filter(step=s, text="Skipped: no RDS to buy").exists()
    assert step(run, "b").status == StepStatus.SUCCEEDED


def test_fail_stops_the_run_and_nothing_new_starts(engine: InProcessEngine,
                                                   tmp_path: Path) -> None:
    run = start_run(engine,
                    StepSpec("a", "A", "test.fail_first",
                             args={"fixed_marker": str(tmp_path / "fixed")}),
                    StepSpec("w", "W", "test.wait_then_done", args={"waits": 3}),
                    StepSpec("b", "B", "test.work"))
    engine.deliver(engine.take()[0])
    a, w, b = (step(run, key).pk for key in "awb")
    first = {message.args[0]: message for message in engine.take()}
    engine.deliver(first[w])
    engine.take()  # w's next poll
    engine.deliver(first[a])
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert step(run, "a").error == "The host is not in the RDS whitelist; add it and press Retry."
    # What waited goes back to pending, so Retry resumes it; b's message now starts nothing.
    assert step(run, "w").status == StepStatus.PENDING
    engine.deliver(first[b])
    assert step(run, "b").status == StepStatus.PENDING and step(run, "b").attempts == 0
    assert executes(engine.take()) == []


def test_a_permanent_error_fails_at_once_naming_code_and_request_id(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("q", "Q", "test.quota"))
    engine.deliver_all()
    q = step(run, "q")
    assert (q.status, q.attempts) == (StepStatus.FAILED, 1)
    assert q.error == ("The quota of RDS instances is exceeded. "
                       "(code QuotaExceeded, RequestId REQ-QUOTA)")
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_an_unexpected_exception_is_an_internal_error_with_its_traceback_in_the_log(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("c", "C", "test.crash"))
    engine.deliver_all()
    c = step(run, "c")
    assert c.status == StepStatus.ERRORED
    assert c.error == "Internal error: RuntimeError: unexpected None"
    stderr = "\n".join(LogLine.objects.filter(step=c, stream="stderr").order_by("seq")
                       .values_list("text", flat=True))
    assert stderr.startswith("Traceback") and "unexpected None" in stderr
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED


def test_a_handler_that_returns_no_outcome_is_an_internal_error(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("j", "J", "test.returns_junk"))
    engine.deliver_all()
    assert step(run, "j").error == "Internal error: step returned str"
    assert step(run, "j").status == StepStatus.ERRORED
