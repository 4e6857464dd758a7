"""Checking a cluster's health as an operation: for one cluster on request, or for every
live cluster on the beat. The judgment itself is clusters.adapters.health.refresh (the create
run's last step uses the same one).

Why the checks are kept on a short leash: every live cluster is checked every
PANEL_HEALTH_INTERVAL_SECONDS, and a check of an unreachable cluster is slow (it waits out its
timeouts). Those checks used to share the only queue with provisioning steps, with nothing to
stop a cluster being queued again while its last check had not even started, so a few hundred
unreachable clusters kept every worker busy and provisioning starved. Now:

* the checks run on a queue of their own (panel/celery.py `health_queue`), which a worker of
  its own consumes;
* a cluster whose check is still queued or running is skipped (`Cluster.health_check_until`);
* a queued check expires with the interval: by then the next round queues a fresh one.

Why the "check in flight" marker is a column and not a Redis key: the database is where the
verdict goes anyway and its clock is the one the engine trusts (a conditional UPDATE against
`Now()` needs no second store); the broker is not ours to keep state in, and the cache is
per-process (Django's local memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now

from clusters.adapters.health import refresh
from clusters.models import Cluster, ClusterStatus, Health

LIVE_STATUSES = (ClusterStatus.READY, ClusterStatus.UPDATING)

#: A running check is stopped (SoftTimeLimitExceeded) after this long, and killed 30 s later
#: (Celery's hard limit). Its cluster is held for the hard limit, so a check that is still
#: running is never queued again, and one whose worker died is queued again after it.
CHECK_SOFT_LIMIT_SECONDS = 240
CHECK_HARD_LIMIT_SECONDS = CHECK_SOFT_LIMIT_SECONDS + 30


def _not_in_flight() -> Q:
    """No check of the cluster is queued or running (by the database's clock)."""
    return Q(health_check_until__isnull=True) | Q(health_check_until__lt=Now())


@contextmanager
def checking(cluster_id: int) -> Iterator[None]:
    """Hold the cluster while its check runs, so the beat does not queue another meanwhile."""
    Cluster.objects.filter(pk=cluster_id).update(
        health_check_until=Now() + timedelta(seconds=CHECK_HARD_LIMIT_SECONDS))
    try:
        yield
    finally:
        Cluster.objects.filter(pk=cluster_id).update(health_check_until=None)


def refresh_by_id(cluster_id: int) -> str:
    with checking(cluster_id):
        cluster = Cluster.objects.select_related("cloud_account").filter(pk=cluster_id).first()
        if cluster is None or not cluster.kubeconfig:
            return Health.UNKNOWN
        return refresh(cluster).health


def queue_refresh_for_live_clusters(task: Any) -> int:
    """Queue one health check per live cluster that has none in flight (each in its own task:
    one slow cluster must not delay the verdict of the others); returns how many were queued.
    A queued check expires with the interval, and so does its hold on the cluster."""
    interval = settings.PANEL_HEALTH_INTERVAL_SECONDS
    candidates = Cluster.objects.filter(_not_in_flight(), status__in=LIVE_STATUSES)
    return sum(_queue_one(task, cluster_id, interval)
               for cluster_id in candidates.values_list("pk", flat=True))


def _queue_one(task: Any, cluster_id: int, interval: float) -> bool:
    """Hold the cluster and queue its check, unless a check is already queued or running."""
    # Conditional: a check that started since the caller looked keeps its cluster.
    held = Cluster.objects.filter(_not_in_flight(), pk=cluster_id).update(
        health_check_until=Now() + timedelta(seconds=interval))
    if held:
        task.apply_async((cluster_id,), expires=interval)
    return bool(held)


def request_health_check(cluster: Cluster) -> bool:
    """An operator's "check it now" (the admin's action): one check of `cluster`, queued like
    the beat's, so it neither doubles a check in flight nor outlives the interval. True when
    queued, False when a check of it was queued or running already."""
    return _queue_one(refresh_health, cluster.pk, settings.PANEL_HEALTH_INTERVAL_SECONDS)


# --- Celery entry points (registered by ClustersConfig.ready; the names must never change:
# the beat schedule and the router in panel/celery.py and queued messages name them) ----------


@shared_task(name="clusters.refresh_health", soft_time_limit=CHECK_SOFT_LIMIT_SECONDS,
             time_limit=CHECK_HARD_LIMIT_SECONDS)
def refresh_health(cluster_id: int) -> str:
    return refresh_by_id(cluster_id)


@shared_task(name="clusters.refresh_all_health")
def refresh_all_health() -> int:
    return queue_refresh_for_live_clusters(refresh_health)
