"""What every operation shares: the refusal, the one-run-at-a-time lock, and a run's end
(cancel, the cluster status a finished run implies). Retry, which asks each kind's own rules
again, is in `retries`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.engine import pipeline
from clusters.models import Cluster, ClusterStatus, Run, RunKind, RunStatus, Step


class OperationRefused(Exception):
    """The operation cannot start now (for example, another run is still active)."""


def active_run(cluster: Cluster) -> Run | None:
    return cluster.runs.active().first()


def busy_refusal() -> str:
    """Why nothing may start while another run of the cluster is pending or running."""
    return _("This cluster has a run in progress: wait for it to finish or cancel it.")


def ready_problem(cluster: Cluster, refusal: str) -> str:
    """'' when the cluster is ready and idle; else why not (`refusal` names the status as
    %(status)s). The start of an operation and the Retry of one ask this same question."""
    if not cluster.is_idle:
        return busy_refusal()
    if cluster.status != ClusterStatus.READY:
        return refusal % {"status": cluster.get_status_display()}
    return ""


def lock_ready(cluster: Cluster, refusal: str) -> Cluster:
    """The cluster, locked, if it is ready and idle; else OperationRefused saying why."""
    locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
    problem = ready_problem(locked, refusal)
    if problem:
        raise OperationRefused(problem)
    return locked


def diagnosing(run: Run) -> bool:
    """Diagnostics are being written into this run's failed step's log right now
    (clusters/operations/diagnostics.py)."""
    return Step.objects.filter(run_id=run.pk, diagnosing_until__gt=timezone.now()).exists()


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
