"""A backlog on real worker processes: it drains in order, no run starves, no step runs twice.

Why these and not a speed: speed is the benchmark's (benchmarks/engine_throughput.py, issue
18); what must hold at any speed is the order a queue of many runs is worked off in (the
broker's queue is first in, first out, and the engine sends a step once, when it becomes
ready) and that stray and duplicate messages never make a step run again.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, Run, RunStatus, Step
from tests.support import runs
from tests.support.factories import make_cluster
from tests.support.services import redis_client

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIDDLE = 3


def fan_out(args: dict[str, object] | None = None, handler: str = "test.work") -> list[StepSpec]:
    """One step, MIDDLE parallel steps, one join (the shape of a create run)."""
    middle = [StepSpec(f"m{i}", f"Middle {i}", handler, ["root"], args or {})
              for i in range(MIDDLE)]
    return [StepSpec("root", "Root", handler, (), args or {}), *middle,
            StepSpec("join", "Join", handler, [s.key for s in middle], args or {})]


def test_a_backlog_of_runs_drains_level_by_level_in_creation_order(start_worker):
    """Twelve runs queued before any worker runs, with one worker slot: every run's first
    step starts before any run's second level, each level in the order the runs were made,
    so the last run created is never starved by the others' later steps."""
    cluster = make_cluster()
    created = [runs.start(cluster, fan_out()) for _ in range(12)]
    start_worker(concurrency=1)
    for run in created:
        assert runs.wait_finished(run, 120).status == RunStatus.SUCCEEDED

    order = [(step.run_id, step.key) for step in
             Step.objects.filter(run__in=created).order_by("started_at", "pk")]
    ids = [run.pk for run in created]
    roots = [(pk, "root") for pk in ids]
    joins = [(pk, "join") for pk in ids]
    assert order[:len(ids)] == roots, "first steps in creation order, before any later step"
    assert order[-len(ids):] == joins, "every run's middle steps before any run's join"
    middles = order[len(ids):-len(ids)]
    assert [pk for pk, _ in middles] == [pk for pk in ids for _ in range(MIDDLE)], \
        "each run's middle steps together, the runs in creation order"


def test_stray_and_duplicate_messages_never_run_a_step_twice(start_worker, tmp_path):
    """Every step is also sent twice more, as redelivery (acks_late), a sweeper and a
    stray message would: early (its dependencies not done), late (it is done) and beside
    its own message on two worker processes. Each step buys once and runs once."""
    start_worker(concurrency=2)
    start_worker(concurrency=2)
    cloud_file = tmp_path / "purchases.jsonl"
    created = [runs.start(make_cluster(), fan_out({"cloud_file": str(cloud_file)},
                                                  "test.buy_once")) for _ in range(4)]
    steps = Step.objects.filter(run__in=created)
    for step_id in steps.values_list("pk", flat=True):
        pipeline.execute_step.delay(step_id)  # early: its run or dependencies not ready
    for run in created:
        assert runs.wait_finished(run, 120).status == RunStatus.SUCCEEDED
    for step_id in steps.values_list("pk", flat=True):
        pipeline.execute_step.delay(step_id)  # late: the step is done
    for run in created:
        pipeline.advance_run.delay(run.pk)  # and the run advanced again
    # A run sent after them finishes once the queue has handed them all out.
    marker = runs.start(make_cluster(), [StepSpec("last", "Last", "test.work")])
    assert runs.wait_finished(marker, 60).status == RunStatus.SUCCEEDED
    runs.wait_until(_queue_empty, 60, "the late messages to be delivered")

    purchases = [json.loads(line)["token"] for line in cloud_file.read_text().splitlines()]
    assert len(purchases) == len(set(purchases)) == steps.count() == 4 * (MIDDLE + 2)
    assert set(steps.values_list("attempts", flat=True)) == {1}
    bought = LogLine.objects.filter(step__run__in=created, text__startswith="bought")
    assert bought.count() == steps.count(), "each handler ran once"
    assert set(Run.objects.filter(pk__in=[r.pk for r in created])
               .values_list("status", flat=True)) == {RunStatus.SUCCEEDED}


def _queue_empty() -> bool:
    client = redis_client(settings.CELERY_BROKER_URL)
    return not client.llen(settings.CELERY_TASK_DEFAULT_QUEUE)
