"""With real worker processes, as docker-compose.yml runs them: a step worker consumes only
the steps' queue, so a backlog of health checks (hundreds of clusters, nobody taking them)
never stands between a run and its steps; a health-only worker then drains the backlog."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from clusters.engine.pipeline import StepSpec
from clusters.models import ClusterStatus, RunStatus
from clusters.operations import health
from panel.celery import health_queue
from tests.support import runs
from tests.support.factories import make_cluster

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BACKLOG = 500


def test_a_health_backlog_never_delays_steps(start_worker: Any, broker_url: str,
                                             task_queue: str) -> None:
    broker = redis.Redis.from_url(broker_url)
    checks = health_queue(task_queue)
    broker.delete(checks)
    try:
        start_worker(concurrency=1, queues=[task_queue])  # steps only
        cluster = make_cluster(status=ClusterStatus.READY)
        for _ in range(BACKLOG):  # what a round for 500 clusters with no health worker leaves
            health.refresh_health.apply_async((cluster.pk,), expires=120)
        assert broker.llen(checks) == BACKLOG
        run = runs.start(cluster, [StepSpec(f"s{i}", f"Step {i}", "test.work",
                                            [f"s{i - 1}"] if i else [])
                                   for i in range(10)])
        assert runs.wait_finished(run, 60).status == RunStatus.SUCCEEDED
        assert broker.llen(checks) == BACKLOG, "the step worker took health checks"
        # A health-only worker drains them (each check finds its cluster without a
        # kubeconfig: "unknown", at once).
        start_worker(concurrency=1, queues=[checks])
        runs.wait_until(lambda: broker.llen(checks) == 0, 120, "the health worker to drain")
    finally:
        broker.delete(checks)
