"""Checking a cluster's health as an operation: for one cluster on request, or for every
live cluster on the beat. The judgment itself is clusters.adapters.health.refresh (the create
run's last step uses the same one).
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from clusters.adapters.health import refresh
from clusters.models import Cluster, ClusterStatus, Health


def refresh_by_id(cluster_id: int) -> str:
    cluster = Cluster.objects.select_related("cloud_account").filter(pk=cluster_id).first()
    if cluster is None or not cluster.kubeconfig:
        return Health.UNKNOWN
    return refresh(cluster).health


LIVE_STATUSES = (ClusterStatus.READY, ClusterStatus.UPDATING)


def queue_refresh_for_live_clusters(task: Any) -> int:
    """Queue one health check per live cluster (each in its own task: one slow cluster must
    not delay the verdict of the others)."""
    ids = list(Cluster.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True))
    for cluster_id in ids:
        task.delay(cluster_id)
    return len(ids)


# --- Celery entry points (registered by ClustersConfig.ready; the names must never change:
# the beat schedule in panel/celery.py and queued messages name them) -------------------------


@shared_task(name="clusters.refresh_health")
def refresh_health(cluster_id: int) -> str:
    return refresh_by_id(cluster_id)


@shared_task(name="clusters.refresh_all_health")
def refresh_all_health() -> int:
    return queue_refresh_for_live_clusters(refresh_health)
