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


def steps_per_namespace(run_ids: Sequence[int]) -> dict[int, int]:
    """How many `test.work` steps of these runs ran in each network namespace (its inode,
    which the step records: tests/engine/steps_for_tests.py)."""
    shares: dict[int, int] = {}
    for result in Step.objects.filter(run_id__in=run_ids).values_list("result", flat=True):
        inode = int(str(result["netns"]).removeprefix("net:[").removesuffix("]"))
        shares[inode] = shares.get(inode, 0) + 1
    return shares


def no_step_ran_twice(run_ids: Sequence[int]) -> list[str]:
    """What contradicts "each step of these runs ran once": a step not succeeded, run more
    than once (attempts), or whose handler's first line ("working for") is in its log other
    than once. Empty when all is well."""
    from django.db.models import Count, Q  # noqa: PLC0415

    problems = []
    started = Q(log_lines__text__startswith="working for")
    steps = (Step.objects.filter(run_id__in=run_ids)
             .annotate(starts=Count("log_lines", filter=started))
             .values_list("run_id", "key", "status", "attempts", "starts"))
    for run_id, key, status, attempts, starts in steps:
        if status != "succeeded" or attempts != 1 or starts != 1:
            problems.append(f"run {run_id} step {key}: {status}, {attempts} attempts, "
                            f"{starts} start lines")
    return problems
