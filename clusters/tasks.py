"""Celery entry points. Each one only hands an id to the engine (clusters/pipeline.py)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from clusters import health, pipeline


@shared_task(name="clusters.advance_run")
def advance_run(run_id: int) -> None:
    pipeline.advance(run_id)


@shared_task(name="clusters.execute_step")
def execute_step(step_id: int) -> None:
    pipeline.execute(step_id)


@shared_task(name="clusters.sweep")
def sweep() -> dict[str, int]:
    return pipeline.sweep()


@worker_ready.connect
def _recover_on_start(**_: Any) -> None:
    pipeline.worker_started()


@shared_task(name="clusters.refresh_health")
def refresh_health(cluster_id: int) -> str:
    return health.refresh_by_id(cluster_id)


@shared_task(name="clusters.refresh_all_health")
def refresh_all_health() -> int:
    return health.queue_refresh_for_live_clusters(refresh_health)
