"""What every operation shares: the refusal, the one-run-at-a-time lock, and a run's end
(retry, cancel, the cluster status a finished run implies)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.engine import pipeline
from clusters.models import Cluster, ClusterStatus, Run, RunKind, RunStatus, Step


class OperationRefused(Exception):
    """The operation cannot start now (for example, another run is still active)."""


def active_run(cluster: Cluster) -> Run | None:
    return cluster.runs.active().first()


def lock_ready(cluster: Cluster, refusal: str) -> Cluster:
    """The cluster, locked, if it is ready and idle; else OperationRefused saying why."""
    locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
    if not locked.is_idle:
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


def diagnosing(run: Run) -> bool:
    """Diagnostics are being written into this run's failed step's log right now
    (clusters/operations/diagnostics.py)."""
    return Step.objects.filter(run_id=run.pk, diagnosing_until__gt=timezone.now()).exists()


def retry(run: Run) -> bool:
    """Resume a failed or cancelled run from where it stopped; not while diagnostics are
    being written into its log (the retried step would append to the same log). Decided
    under the run's row lock, which starting a collection takes too."""
    with transaction.atomic():
        Run.objects.select_for_update().filter(pk=run.pk).first()
        if diagnosing(run):
            return False
        cluster_status = Cluster.objects.filter(pk=run.cluster_id) \
            .values_list("status", flat=True).first()
        if cluster_status == ClusterStatus.DESTROYED or (
                run.kind != RunKind.DESTROY
                and run.cluster.runs.filter(kind=RunKind.DESTROY).exists()):
            return False  # once destroy has started, only destroy may continue
        if run.kind in _STATUS_DURING:
            Cluster.objects.filter(pk=run.cluster_id).update(status=_STATUS_DURING[run.kind])
        if run.kind == RunKind.CREATE:
            Cluster.objects.filter(pk=run.cluster_id).update(status=ClusterStatus.PROVISIONING)
        return pipeline.retry(run)


def cancel(run: Run) -> None:
    pipeline.cancel(run)


_STATUS_AFTER: dict[tuple[str, str], ClusterStatus] = {
    (RunKind.CREATE, RunStatus.SUCCEEDED): ClusterStatus.READY,
    (RunKind.CREATE, RunStatus.FAILED): ClusterStatus.FAILED,
    (RunKind.CREATE, RunStatus.CANCELLED): ClusterStatus.FAILED,
    (RunKind.DESTROY, RunStatus.SUCCEEDED): ClusterStatus.DESTROYED,
    (RunKind.DESTROY, RunStatus.FAILED): ClusterStatus.FAILED,
    (RunKind.DESTROY, RunStatus.CANCELLED): ClusterStatus.FAILED,
    # A failed node change leaves a serving cluster: it stays ready, the run offers Retry.
    (RunKind.ADD_NODE, RunStatus.SUCCEEDED): ClusterStatus.READY,
    (RunKind.ADD_NODE, RunStatus.FAILED): ClusterStatus.READY,
    (RunKind.ADD_NODE, RunStatus.CANCELLED): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, RunStatus.SUCCEEDED): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, RunStatus.FAILED): ClusterStatus.READY,
    (RunKind.REMOVE_NODE, RunStatus.CANCELLED): ClusterStatus.READY,
    # A stopped upgrade leaves a serving cluster (the failed server is out of the SLB); the
    # run's callout says how to continue or roll back.
    (RunKind.UPGRADE, RunStatus.SUCCEEDED): ClusterStatus.READY,
    (RunKind.UPGRADE, RunStatus.FAILED): ClusterStatus.READY,
    (RunKind.UPGRADE, RunStatus.CANCELLED): ClusterStatus.READY,
}


def on_run_finished(sender: Any, run: Run, **_: Any) -> None:
    """Move the cluster to the status its finished run implies."""
    status = _STATUS_AFTER.get((run.kind, run.status))
    if status:
        Cluster.objects.filter(pk=run.cluster_id).update(status=status)
