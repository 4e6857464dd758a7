"""What every operation shares: the refusal, the one-run-at-a-time lock, and a run's end
(retry, cancel, the cluster status a finished run implies)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from clusters.engine import pipeline
from clusters.models import Cluster, ClusterStatus, Run, RunKind


class OperationRefused(Exception):
    """The operation cannot start now (for example, another run is still active)."""


def active_run(cluster: Cluster) -> Run | None:
    return cluster.runs.filter(status__in=["pending", "running"]).first()


def lock_ready(cluster: Cluster, refusal: str) -> Cluster:
    """The cluster, locked, if it is ready and idle; else OperationRefused saying why."""
    locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
    if active_run(locked):
        raise OperationRefused(_("This cluster has a run in progress: wait for it to finish "
                                 "or cancel it."))
    if locked.status != ClusterStatus.READY:
        raise OperationRefused(refusal % {"status": locked.get_status_display()})
    return locked


_STATUS_DURING: dict[str, ClusterStatus] = {
    RunKind.DESTROY: ClusterStatus.DESTROYING,
    RunKind.ADD_NODE: ClusterStatus.UPDATING,
    RunKind.REMOVE_NODE: ClusterStatus.UPDATING,
    RunKind.UPGRADE: ClusterStatus.UPDATING,
}


def retry(run: Run) -> bool:
    """Resume a failed or cancelled run from where it stopped."""
    cluster_status = Cluster.objects.filter(pk=run.cluster_id).values_list("status", flat=True) \
        .first()
    if cluster_status == ClusterStatus.DESTROYED or (
            run.kind != RunKind.DESTROY and run.cluster.runs.filter(kind=RunKind.DESTROY).exists()):
        return False  # once destroy has started, only destroy may continue
    if run.kind in _STATUS_DURING:
        Cluster.objects.filter(pk=run.cluster_id).update(status=_STATUS_DURING[run.kind])
    if run.kind == RunKind.CREATE:
        Cluster.objects.filter(pk=run.cluster_id).update(status=ClusterStatus.PROVISIONING)
    return pipeline.retry(run)


def cancel(run: Run) -> None:
    pipeline.cancel(run)


_STATUS_AFTER: dict[tuple[str, str], ClusterStatus] = {
    (RunKind.CREATE, "succeeded"): ClusterStatus.READY,
    (RunKind.CREATE, "failed"): ClusterStatus.FAILED,
    (RunKind.CREATE, "cancelled"): ClusterStatus.FAILED,
    (RunKind.DESTROY, "succeeded"): ClusterStatus.DESTROYED,
    (RunKind.DESTROY, "failed"): ClusterStatus.FAILED,
    (RunKind.DESTROY, "cancelled"): ClusterStatus.FAILED,
    # A failed node change leaves a serving cluster: it stays ready, the run offers Retry.
    (RunKind.ADD_NODE, "succeeded"): ClusterStatus.READY,
    (RunKind.ADD_NODE, "failed"): ClusterStatus.READY,
    (RunKind.ADD_NODE, "cancelled"): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, "succeeded"): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, "failed"): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, "cancelled"): ClusterStatus.READY,
    # A stopped upgrade leaves a serving cluster (the failed server is out of the SLB); the
    # run's callout says how to continue or roll back.
    (RunKind.UPGRADE, "succeeded"): ClusterStatus.READY,
    (RunKind.UPGRADE, "failed"): ClusterStatus.READY,
    (RunKind.UPGRADE, "cancelled"): ClusterStatus.READY,
}


def on_run_finished(sender: Any, run: Run, **_: Any) -> None:
    """Move the cluster to the status its finished run implies."""
    status = _STATUS_AFTER.get((run.kind, run.status))
    if status:
        Cluster.objects.filter(pk=run.cluster_id).update(status=status)
