"""Helpers to start runs and wait for them from a test (polling the real database)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from clusters.engine import pipeline
from clusters.models import RUN_ACTIVE, Cluster, Run, RunKind, Step


def start(cluster: Cluster, specs: Sequence[pipeline.StepSpec]) -> Run:
    return pipeline.create_run(cluster, RunKind.TEST, specs)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def wait_finished(run: Run, timeout: float = 60) -> Run:
    def finished() -> bool:
        run.refresh_from_db()
        return run.status not in RUN_ACTIVE

    try:
        wait_until(finished, timeout, f"run {run.pk} to finish")
    except AssertionError as exc:
        steps = list(Step.objects.filter(run=run).values_list("key", "status", "wait_reason"))
        raise AssertionError(f"{exc}; steps: {steps}") from None
    return run


def step(run: Run, key: str) -> Step:
    return Step.objects.get(run=run, key=key)
