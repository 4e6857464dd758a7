"""What a user can ask of a cluster; views, admin actions and the wizard call these only."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from clusters import pipeline, plans
from clusters.credentials import generate_k3s_token
from clusters.models import Cluster, ClusterStatus, Run, RunKind


class OperationRefused(Exception):
    """The operation cannot start now (for example, another run is still active)."""


def active_run(cluster: Cluster) -> Run | None:
    return cluster.runs.filter(status__in=["pending", "running"]).first()


def start_create(cluster: Cluster, user: Any = None) -> Run:
    """Start provisioning a cluster whose choices and nodes are saved."""
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if active_run(locked):
            raise OperationRefused("this cluster already has a run in progress")
        if locked.status not in (ClusterStatus.DRAFT, ClusterStatus.FAILED):
            raise OperationRefused(f"a {locked.get_status_display()} cluster cannot be created")
        if not locked.k3s_token:
            # One token for every server, generated before any of them exists.
            locked.k3s_token = generate_k3s_token()
            locked.save(update_fields=["k3s_token"])
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.PROVISIONING)
        return pipeline.create_run(locked, RunKind.CREATE, plans.create_plan(locked),
                                   created_by=user)


def retry(run: Run) -> bool:
    """Resume a failed or cancelled run from where it stopped."""
    if run.kind == RunKind.CREATE:
        Cluster.objects.filter(pk=run.cluster_id).update(status=ClusterStatus.PROVISIONING)
    return pipeline.retry(run)


def cancel(run: Run) -> None:
    pipeline.cancel(run)


_STATUS_AFTER = {
    (RunKind.CREATE, "succeeded"): ClusterStatus.READY,
    (RunKind.CREATE, "failed"): ClusterStatus.FAILED,
    (RunKind.CREATE, "cancelled"): ClusterStatus.FAILED,
}


def on_run_finished(sender: Any, run: Run, **_: Any) -> None:
    """Move the cluster to the status its finished run implies."""
    status = _STATUS_AFTER.get((run.kind, run.status))
    if status:
        Cluster.objects.filter(pk=run.cluster_id).update(status=status)
