"""What a user can ask of a cluster; views, admin actions and the wizard call these only."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from clusters.adapters.credentials import generate_k3s_token
from clusters.engine import pipeline
from clusters.models import Cluster, ClusterStatus, Node, NodeRole, NodeStatus, Run, RunKind
from clusters.operations import plans, plans_day2, plans_upgrade, upgrade
from clusters.operations.node_intake import NodeRejected, save_new_nodes


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


def start_upgrade(cluster: Cluster, version: str, user: Any = None) -> Run:
    """Upgrade K3s to `version` (or a channel's release): backup, servers one at a time
    behind the SLB, then agents. Refused (plainly) for a downgrade, the same version, a
    skipped minor, or a release the install source does not have."""
    try:
        target = upgrade.check_target(cluster, version)
    except upgrade.UpgradeRefused as exc:
        raise OperationRefused(str(exc)) from None
    with transaction.atomic():
        locked = _lock_ready(cluster, _("Only a ready cluster can be upgraded; this one is "
                                        "%(status)s."))
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        params = {"from_version": target.current, "to_version": target.version,
                  "channel": target.channel, "rollback": target.rollback}
        return pipeline.create_run(locked, RunKind.UPGRADE,
                                   plans_upgrade.upgrade_plan(locked, target.version),
                                   params=params, created_by=user)


def start_kubeconfig_renewal(cluster: Cluster, user: Any = None) -> Run:
    """Re-fetch k3s.yaml; restart K3s on that one server only if its certificate is close
    to expiry (K3s renews it at start), then fetch again."""
    with transaction.atomic():
        locked = _lock_ready(cluster, _("Only a ready cluster's kubeconfig can be renewed; this "
                                        "one is %(status)s."))
        return pipeline.create_run(locked, RunKind.RENEW_KUBECONFIG,
                                   plans_upgrade.kubeconfig_renewal_plan(locked),
                                   created_by=user)


def _lock_ready(cluster: Cluster, refusal: str) -> Cluster:
    """The cluster, locked, if it is ready and idle; else OperationRefused saying why."""
    locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
    if active_run(locked):
        raise OperationRefused(_("This cluster has a run in progress: wait for it to finish "
                                 "or cancel it."))
    if locked.status != ClusterStatus.READY:
        raise OperationRefused(refusal % {"status": locked.get_status_display()})
    return locked


def start_destroy(cluster: Cluster, user: Any = None, *, confirm_name: str,
                  keep_database: bool = False) -> Run:
    """Delete everything the cluster bought and take K3s off its hosts; history stays.

    Works whatever state create left behind (failed or cancelled at any step). A destroyed
    cluster refuses a second destroy: there is nothing left to delete.
    """
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if (confirm_name or "").strip() != locked.name:
            raise OperationRefused(_("Type the cluster's name to confirm that it may be "
                                     "destroyed."))
        if locked.status == ClusterStatus.DESTROYED:
            raise OperationRefused(_("This cluster is already destroyed: nothing is left to "
                                     "delete."))
        if active_run(locked):
            raise OperationRefused(_("This cluster has a run in progress: cancel it first, "
                                     "then destroy."))
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYING)
        return pipeline.create_run(
            locked, RunKind.DESTROY, plans_day2.destroy_plan(locked, keep_database=keep_database),
            params={"keep_database": keep_database}, created_by=user)


def start_add_nodes(cluster: Cluster, nodes: list[dict[str, Any]] | list[Node],
                    user: Any = None) -> Run:
    """Join new servers and agents: preflight them, whitelist servers in RDS before K3s
    starts, install with the cluster's config and token, then put servers behind the SLB."""
    with transaction.atomic():
        locked = _lock_ready(cluster, _("Nodes can only be added to a ready cluster; this "
                                        "one is %(status)s."))
        try:
            added = save_new_nodes(locked, nodes)
        except NodeRejected as exc:
            raise OperationRefused(str(exc)) from None
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.ADD_NODE, plans_day2.add_nodes_plan(locked, added),
            params={"node_ids": [node.pk for node in added],
                    "nodes": [f"{node.role} {node.private_ip}" for node in added]},
            created_by=user)


def servers_left_after(cluster: Cluster, node: Node) -> int:
    """How many servers would remain if `node` went."""
    return cluster.nodes.filter(role=NodeRole.SERVER).exclude(
        status__in=[NodeStatus.REMOVING, NodeStatus.REMOVED]).exclude(pk=node.pk).count()


def removal_warning(cluster: Cluster, node: Node) -> str:
    """What to tell a person before removing `node` ('' when nothing is at risk)."""
    if node.role != NodeRole.SERVER:
        return ""
    left = servers_left_after(cluster, node)
    if left < 2:
        return (f"Only {left} server will remain: the cluster is no longer highly available "
                "until another server is added.")
    return ""


def start_remove_node(cluster: Cluster, node: Node, user: Any = None) -> Run:
    """Drain the node, take a server out of the SLB, uninstall K3s, delete the node object,
    and take a server out of the RDS whitelist. The last server cannot be removed."""
    with transaction.atomic():
        locked = _lock_ready(cluster, _("Nodes can only be removed from a ready cluster; "
                                        "this one is %(status)s."))
        node = Node.objects.select_for_update().filter(pk=node.pk, cluster=locked).first()
        if node is None or node.status in (NodeStatus.REMOVING, NodeStatus.REMOVED):
            raise OperationRefused(_("That node is not part of this cluster any more."))
        warning = removal_warning(locked, node)
        if node.role == NodeRole.SERVER and servers_left_after(locked, node) == 0:
            raise OperationRefused(
                _("%(node)s is the cluster's last server: without it there is no API. Add "
                  "another server first, or destroy the cluster.")
                % {"node": node.name or node.private_ip})
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVING)
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.REMOVE_NODE,
            plans_day2.remove_node_plan(locked, node, warning=warning),
            params={"node_id": node.pk, "node": f"{node.role} {node.private_ip}"},
            created_by=user)


_STATUS_DURING = {
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


_STATUS_AFTER = {
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
