"""A waiting step that keeps saying the same thing is looked at less often
(clusters/engine/polling.py): the first looks at the interval it asked for, then each one
1.5 times longer, up to 4 times the asked interval (and 60 s); news, a new try or a step
that opts out keeps the asked interval. What a user notices: when the next look is (the
cluster page says it) and how many executions a long wait costs."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, Run, Step, StepStatus
from tests.support.engine_specs import (
    EXECUTE,
    InProcessEngine,
    Sent,
    start_run,
    time_passes,
)
from tests.support.runs import step

GROWN = [10, 10, 10, 10, 15, 22.5, 33.75, 40, 40, 40]  # asked 10 s: punctual 4, x1.5, cap 4x


def gaps(engine: InProcessEngine, run: Run, key: str, looks: int) -> list[float]:
    """Deliver the step's messages as they fall due; for each wait, the seconds between the
    recorded wait and its next look as the row says (not_before - updated_at, both the
    database's Now() of one UPDATE) and as the message is due (its countdown) must agree."""
    found: list[float] = []
    pending = engine.take()
    while pending and len(found) < looks:
        message: Sent = pending.pop(0)
        if message.countdown > 0:
            time_passes(message.countdown)
        engine.deliver(message)
        waiting = step(run, key)
        for sent in engine.take():
            pending.append(sent)
            if sent.task == EXECUTE and sent.args == (waiting.pk,) \
                    and waiting.status == StepStatus.WAITING:
                assert waiting.not_before is not None
                gap = (waiting.not_before - waiting.updated_at).total_seconds()
                assert sent.countdown == pytest.approx(gap, abs=0.5)
                found.append(round(gap, 2))
    engine.queue[:0] = pending  # what is still to deliver goes back to the queue
    return found


def test_a_long_unchanged_wait_is_looked_at_less_often_up_to_its_cap(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("rds", "RDS", "test.wait_same",
                                     args={"waits": 10, "seconds": 10}))
    assert gaps(engine, run, "rds", 10) == GROWN
    engine.deliver_all()
    rds = step(run, "rds")
    assert rds.status == StepStatus.SUCCEEDED and (rds.tries, rds.polls) == (1, 10)
    # Said once in its log, when it started looking less often.
    (said,) = LogLine.objects.filter(step=rds, text__contains="looking less often")
    assert said.text == ("Still the same after 5 looks: looking less often from now on "
                         "(next in 15.0 s instead of 10.0 s; at most 40.0 s apart).")


def test_the_cap_is_60_seconds_for_a_long_asked_interval_and_never_below_the_asked_one(
        engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("cloud", "Cloud", "test.wait_same",
                                     args={"waits": 8, "seconds": 30}))
    assert gaps(engine, run, "cloud", 8) == [30, 30, 30, 30, 45, 60, 60, 60]
    engine.deliver_all()
    run = start_run(engine, StepSpec("slow", "Slow", "test.wait_same",
                                     args={"waits": 7, "seconds": 90}))
    assert gaps(engine, run, "slow", 7) == [90] * 7


def test_a_step_that_opts_out_keeps_its_interval(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("drain", "Drain", "test.wait_same",
                                     args={"waits": 9, "seconds": 10, "grow": False}))
    assert gaps(engine, run, "drain", 9) == [10] * 9
    assert not LogLine.objects.filter(text__contains="looking less often").exists()


def test_news_makes_the_next_looks_punctual_again(engine: InProcessEngine) -> None:
    """One of three instances turned Running at the 8th look: the end is likely near."""
    run = start_run(engine, StepSpec("ecs", "ECS", "test.wait_same",
                                     args={"waits": 14, "seconds": 10, "news": [8]}))
    assert gaps(engine, run, "ecs", 14) == [*GROWN[:7], 10, 10, 10, 10, 15, 22.5, 33.75]


def test_a_transient_failure_is_a_new_try_and_its_retry_keeps_its_own_backoff(
        engine: InProcessEngine, settings: Any) -> None:
    settings.PANEL_RETRY_BASE_SECONDS = 2
    run = start_run(engine, StepSpec("rds", "RDS", "test.wait_same",
                                     args={"waits": 10, "seconds": 10, "throttled_at": [7]}))
    found = gaps(engine, run, "rds", 10)
    assert found[:6] == GROWN[:6]
    assert 1.5 <= found[6] <= 2.0  # the transient retry: backoff (2 s, jitter), not grown
    assert found[7:] == [10, 10, 10]


def test_growth_1_keeps_every_interval_as_asked(engine: InProcessEngine, settings: Any) -> None:
    settings.PANEL_POLL_GROWTH = 1.0
    run = start_run(engine, StepSpec("rds", "RDS", "test.wait_same",
                                     args={"waits": 8, "seconds": 10}))
    assert gaps(engine, run, "rds", 8) == [10] * 8


def test_the_cluster_page_says_when_a_waiting_step_looks_next(engine: InProcessEngine) -> None:
    run = start_run(engine, StepSpec("rds", "RDS", "test.wait_same",
                                     args={"waits": 10, "seconds": 10}))
    assert gaps(engine, run, "rds", 6) == GROWN[:6]
    rds = Step.objects.get(run=run, key="rds")
    assert rds.status == StepStatus.WAITING
    client = Client()
    client.force_login(run.cluster.owner)
    url = reverse("clusters:run-timeline", args=[run.cluster.code, run.pk])
    next_look = f"{timezone.localtime(rds.not_before):%H:%M:%S}"
    english = client.get(url).content.decode()
    assert "0 of 3 instances Running" in english
    assert f"Next check at {next_look}." in english
    chinese = client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert f"下次检查时间：{next_look}。" in chinese  # noqa: RUF001 - Chinese punctuation
