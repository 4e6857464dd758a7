"""Rules: no step waits without a bound. A call past its wall-clock limit ends the step with
the reason, even while the handler is stuck in it; a Cancel clears a stuck step; a host that
stops answering mid-upload makes the step retry within the SSH adapter's I/O timeout.

The first two need the heartbeat's own writes (it ends the step from its thread while the
handler is stuck), so they run on a committed database (transactional_db), the handler on a
thread of its own as on a worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Run, RunStatus, Step, StepStatus
from tests.support import stalling_sftp
from tests.support.engine_specs import (
    InProcessEngine,
    executes,
    in_process_engine,
    start_run,
)
from tests.support.stalling_sftp import stalling_sftp_server


@pytest.fixture
def committed_engine(transactional_db: Any) -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven


def _until(check: Callable[[], bool], seconds: float, what: str) -> float:
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def _status(run: Run) -> str:
    return Step.objects.get(run=run).status


def _start_stuck(engine: InProcessEngine, seconds: float) -> tuple[Run, threading.Thread]:
    run = start_run(engine, StepSpec("read", "Read", "test.stuck", (), {"seconds": seconds}))
    engine.deliver(engine.take()[0])  # advance: sends the execute message
    (message,) = [m for m in engine.take() if m.task == "clusters.execute_step"]
    worker = threading.Thread(target=engine.deliver, args=(message,), daemon=True)
    worker.start()
    _until(lambda: _status(run) == StepStatus.RUNNING, 5, "the step to start")
    return run, worker


def test_a_call_past_its_time_limit_fails_the_step_with_the_reason_while_it_is_stuck(
        committed_engine: InProcessEngine, settings: Any) -> None:
    settings.PANEL_STEP_TIME_LIMIT = 1
    run, worker = _start_stuck(committed_engine, seconds=3)
    took = _until(lambda: _status(run) == StepStatus.FAILED, 3, "the limit to end the step")
    assert took < 2.5
    step = Step.objects.get(run=run)
    assert step.error.startswith("Ran longer than 1 s (its time limit)")
    assert step.lease_until is None  # nothing holds it: Retry may run it again
    assert worker.is_alive(), "the handler is still stuck: abandoned, not waited for"
    committed_engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.FAILED
    worker.join(10)
    step.refresh_from_db()
    assert (step.status, step.result) == (StepStatus.FAILED, {}), "its late Done is dropped"
    assert committed_engine.act(pipeline.retry, run)


def test_cancel_clears_a_step_stuck_in_a_call(committed_engine: InProcessEngine,
                                             settings: Any) -> None:
    settings.PANEL_STEP_CANCEL_GRACE_SECONDS = 0
    settings.PANEL_STEP_LEASE_SECONDS = 3  # a beat each second
    run, worker = _start_stuck(committed_engine, seconds=3)
    committed_engine.act(pipeline.cancel, run)
    _until(lambda: _status(run) == StepStatus.CANCELLED, 3, "the cancel to end the step")
    committed_engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED
    assert Step.objects.get(run=run).error.startswith(pipeline.CANCELLED_WHILE_RUNNING)
    worker.join(10)
    assert _status(run) == StepStatus.CANCELLED


def test_a_host_that_stops_answering_mid_upload_makes_the_step_retry_within_its_bound(
        engine: InProcessEngine, tmp_path: Path) -> None:
    root = tmp_path / "host"
    root.mkdir()
    with stalling_sftp_server(root) as server:
        run = start_run(engine, StepSpec("config", "Write config.yaml", "test.upload", (), {
            "host": server.host, "port": server.port, "user": stalling_sftp.USER,
            "password": stalling_sftp.PASSWORD, "io_timeout": 1}))
        engine.deliver(engine.take()[0])  # advance
        (execute,) = [m for m in engine.take() if m.task == "clusters.execute_step"]
        began = time.monotonic()
        engine.deliver(execute)
        took = time.monotonic() - began
    step = Step.objects.get(run=run)
    assert server.writes_started.is_set()
    assert step.status == StepStatus.WAITING and step.transient_failures == 1
    assert "stopped answering while writing /etc/rancher/k3s/config.yaml" in step.wait_reason
    assert took < 5
    assert executes(engine.take()) == [step.pk]  # the retry is scheduled
