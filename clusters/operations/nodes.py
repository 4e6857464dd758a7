"""Add nodes and remove a node: the rules to start each, and their step graphs.

The graphs reuse create's step handlers (preflight restricted to the new hosts,
rds.configure, k3s.install_*, slb.listener, verify) in a different order, and that ordering
is the whole design of each operation.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop, ngettext

from clusters.adapters import etcd_members
from clusters.core.titles import title
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.k3s import etcd
from clusters.models import (
    Cluster,
    ClusterStatus,
    DatastoreKind,
    LoadBalancerKind,
    Node,
    NodeRole,
    NodeStatus,
    Run,
    RunKind,
)
from clusters.operations.create import balancer_listener_step
from clusters.operations.node_intake import NodeRejected, save_new_nodes
from clusters.operations.runs import OperationRefused, lock_ready, ready_problem

HEALTH_TITLE = gettext_noop("Check the cluster's health")


def add_nodes_plan(cluster: Cluster, new_nodes: list[Node]) -> list[StepSpec]:
    """Preflight the new hosts; whitelist new servers in RDS before their K3s starts; install
    servers one at a time with the cluster's config and token; put them behind the SLB; then
    agents join through the SLB."""
    ids = [node.pk for node in new_nodes]
    servers = [node for node in new_nodes if node.role == NodeRole.SERVER]
    agents = [node for node in new_nodes if node.role == NodeRole.AGENT]
    specs = [
        StepSpec(
            "preflight_cloud", gettext_noop("Check credentials, region, zone, VPC and vSwitch"),
            "preflight.cloud", args={"node_ids": ids}),
        StepSpec("preflight_hosts", gettext_noop("Check the new hosts over SSH"), "preflight.hosts",
                 ["preflight_cloud"], {"node_ids": ids}),
    ]
    previous = ["preflight_hosts"]
    if servers and cluster.datastore_kind == DatastoreKind.RDS:
        specs.append(StepSpec(
            "rds_configure", gettext_noop("Add the new servers to the RDS whitelist"),
            "rds.configure", previous))
        previous = ["rds_configure"]
    existing = cluster.nodes.present().servers().exclude(pk__in=ids).count()
    for index, server in enumerate(servers):
        key = f"server_{server.pk}"
        name = title(gettext_noop("Install K3s server %(n)s (%(ip)s)"), n=existing + index + 1,
                     ip=server.private_ip)
        specs.append(StepSpec(key, name, "k3s.install_server", previous,
                              {"node_id": server.pk}))
        previous = [key]
    if servers:
        specs += [
            balancer_listener_step(cluster, previous),
            StepSpec("verify", gettext_noop("Verify the API through the SLB as kubectl will"),
                     "verify.cluster", ["slb_listener"]),
        ]
        previous = ["verify"]
    agent_keys = []
    for agent in agents:
        key = f"agent_{agent.pk}"
        agent_keys.append(key)
        name = title(gettext_noop("Install K3s agent (%(ip)s)"), ip=agent.private_ip)
        specs.append(StepSpec(key, name, "k3s.install_agent", previous, {"node_id": agent.pk}))
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", [*previous, *agent_keys]))
    return specs


def remove_node_plan(cluster: Cluster, node: Node, *, warning: str = "") -> list[StepSpec]:
    """Drain; a server leaves the SLB before its K3s stops; uninstall; delete the node object;
    a server leaves the RDS whitelist last. An embedded-etcd server leaves etcd before it is
    uninstalled (clusters/steps/etcd.py)."""
    server = node.role == NodeRole.SERVER
    args = {"node_id": node.pk}
    if server and cluster.datastore_kind == DatastoreKind.ETCD:
        return etcd_remove_server_plan(cluster, node, warning=warning)
    specs = [StepSpec("drain", gettext_noop("Cordon and drain the node"), "node.drain",
                      args={**args, "warning": warning})]
    previous = ["drain"]
    if server:
        detach = (gettext_noop("Take the server out of the NLB and wait until it has drained")
                  if cluster.load_balancer_kind == LoadBalancerKind.NLB
                  else gettext_noop("Take the server out of the SLB"))
        specs.append(StepSpec("slb_detach", detach, "slb.detach", previous, args))
        previous = ["slb_detach"]
    specs += [
        StepSpec(
            "uninstall", gettext_noop("Uninstall K3s on the host"), "node.uninstall",
            previous, args, retry_budget=3),
        StepSpec("forget", gettext_noop("Delete the node from the cluster's API"), "node.forget",
                 ["uninstall"], args),
    ]
    previous = ["forget"]
    if server and cluster.datastore_kind == DatastoreKind.RDS:
        specs.append(StepSpec(
            "rds_whitelist", gettext_noop("Shrink the RDS whitelist to the remaining servers"),
            "rds.whitelist", previous))
        previous = ["rds_whitelist"]
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", previous))
    return specs


def etcd_remove_server_plan(cluster: Cluster, node: Node, *, warning: str = ""
                            ) -> list[StepSpec]:
    """Drain, out of the load balancer, K3s stopped, its Node deleted so K3s removes its
    etcd member (waited for until the others no longer list it), then uninstalled."""
    args = {"node_id": node.pk}
    detach = (gettext_noop("Take the server out of the NLB and wait until it has drained")
              if cluster.load_balancer_kind == LoadBalancerKind.NLB
              else gettext_noop("Take the server out of the SLB"))
    return [
        StepSpec("drain", gettext_noop("Cordon and drain the node"), "node.drain",
                 args={**args, "warning": warning}),
        StepSpec("slb_detach", detach, "slb.detach", ["drain"], args),
        StepSpec("etcd_stop", gettext_noop("Stop K3s on the server"), "etcd.stop_server",
                 ["slb_detach"], args),
        StepSpec("etcd_member", gettext_noop("Remove the server's etcd member (delete its "
                                             "node; the other servers confirm)"),
                 "etcd.remove_member", ["etcd_stop"], args),
        StepSpec("uninstall", gettext_noop("Uninstall K3s on the host"), "node.uninstall",
                 ["etcd_member"], {**args, "host_may_be_dead": True}, retry_budget=3),
        StepSpec("forget", gettext_noop("Delete the node from the cluster's API"), "node.forget",
                 ["uninstall"], args),
        StepSpec("health", HEALTH_TITLE, "health.check", ["forget"]),
    ]


def etcd_quorum_problem(cluster: Cluster, node: Node, members: list[dict[str, Any]]) -> str:
    """Why removing this embedded-etcd server would break quorum ('' when it would not), from
    `members` (etcd_members.MemberState dicts: a fresh reading, or the last health check's).

    3 servers with one down: removing a healthy one leaves 2 members with 1 healthy, below
    the 2 a majority of 2 needs, so etcd (and the API) would stop. Removing the down one is
    what replaces a failed server."""
    if node.role != NodeRole.SERVER or cluster.datastore_kind != DatastoreKind.ETCD:
        return ""
    if not members:
        return ""
    healthy = sum(bool(m.get("healthy")) for m in members)
    leaving = next((m for m in members if m.get("node") == node.private_ip), None)
    leaving_healthy = bool(leaving and leaving.get("healthy"))
    if etcd.removal_keeps_quorum(len(members), healthy, leaving_healthy):
        return ""
    left = len(members) - 1
    return _("Removing %(node)s would leave %(healthy)d healthy etcd member(s) of %(left)d, "
             "fewer than the %(needed)d a majority needs: etcd would stop accepting writes "
             "and the API with it. Bring the server(s) that are down back first, or remove a "
             "server that is down instead.") % {
        "node": node.name or node.private_ip, "left": left,
        "healthy": healthy - (1 if leaving_healthy else 0),
        "needed": etcd.majority(left)}


def _add_refusal() -> str:
    return _("Nodes can only be added to a ready cluster; this one is %(status)s.")


def _remove_refusal() -> str:
    return _("Nodes can only be removed from a ready cluster; this one is %(status)s.")


def _gone_refusal(address: str) -> str:
    return _("%(node)s is not part of this cluster any more.") % {"node": address}


def _last_server_problem(cluster: Cluster, node: Node) -> str:
    """Why `node` may not leave ('' when it may): without a server there is no API."""
    if node.role == NodeRole.SERVER and servers_left_after(cluster, node) == 0:
        return (_("%(node)s is the cluster's last server: without it there is no API. Add "
                  "another server first, or destroy the cluster.")
                % {"node": node.name or node.private_ip})
    return ""


def add_retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this add-node run ('' when it may): the cluster must be ready
    as for a new addition, and every host of the run must still be a member (one removed
    since must not get K3s installed again)."""
    problem = ready_problem(cluster, _add_refusal())
    if problem:
        return problem
    ids = list(run.params.get("node_ids", []))
    live = set(cluster.nodes.live().filter(pk__in=ids).values_list("pk", flat=True))
    gone = [pk for pk in ids if pk not in live]
    if gone:
        names = {pk: ip for pk, ip in Node.objects.filter(pk__in=gone)
                 .values_list("pk", "private_ip")}
        return _gone_refusal(", ".join(names.get(pk, f"#{pk}") for pk in gone)) + " " + _(
            "Add it again as a new node instead of retrying this run.")
    return ""


def remove_retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this removal ('' when it may): the cluster must be ready as
    for a new removal, the node must still be the one leaving (not added back since), and
    it must not be the last server."""
    problem = ready_problem(cluster, _remove_refusal())
    if problem:
        return problem
    node = cluster.nodes.filter(pk=run.params.get("node_id")).first()
    if node is None or node.is_live:
        return _gone_refusal(run.params.get("node", "")) if node is None else _(
            "%(node)s was added to the cluster again after this removal stopped; remove it "
            "anew if it must go.") % {"node": node.private_ip}
    return _last_server_problem(cluster, node)


def start_add_nodes(cluster: Cluster, nodes: list[dict[str, Any]] | list[Node],
                    user: Any = None) -> Run:
    """Join new servers and agents: preflight them, whitelist servers in RDS before K3s
    starts, install with the cluster's config and token, then put servers behind the SLB."""
    with transaction.atomic():
        locked = lock_ready(cluster, _add_refusal())
        try:
            added = save_new_nodes(locked, nodes)
        except NodeRejected as exc:
            raise OperationRefused(str(exc)) from None
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.ADD_NODE, add_nodes_plan(locked, added),
            params={"node_ids": [node.pk for node in added],
                    "nodes": [f"{node.role} {node.private_ip}" for node in added]},
            created_by=user)


def servers_left_after(cluster: Cluster, node: Node) -> int:
    """How many servers would remain if `node` went."""
    return cluster.nodes.live().servers().exclude(pk=node.pk).count()


def ha_warning(servers_left: int) -> str:
    """The warning for a removal that leaves fewer than two servers ('' otherwise), in the
    active language: the Remove button's confirm text and the drain step's log both say it."""
    if servers_left >= 2:
        return ""
    return ngettext(
        "Only %(n)d server will remain: the cluster is no longer highly available.",
        "Only %(n)d servers will remain: the cluster is no longer highly available.",
        servers_left) % {"n": servers_left}


def removal_warning(cluster: Cluster, node: Node) -> str:
    """What the removal run logs before it starts ('' when nothing is at risk); in English,
    like every step log."""
    if node.role != NodeRole.SERVER:
        return ""
    with translation.override("en"):
        return ha_warning(servers_left_after(cluster, node))


def start_remove_node(cluster: Cluster, node: Node, user: Any = None) -> Run:
    """Drain the node, take a server out of the SLB, uninstall K3s, delete the node object,
    and take a server out of the RDS whitelist. The last server cannot be removed, nor an
    embedded-etcd server whose leaving would break quorum (its members are asked now, before
    the cluster's row is locked: a host that does not answer counts as down)."""
    members: list[dict[str, Any]] = []
    if node.role == NodeRole.SERVER and cluster.datastore_kind == DatastoreKind.ETCD:
        members = [m.as_dict() for m in etcd_members.read_members(cluster)]
    with transaction.atomic():
        locked = lock_ready(cluster, _remove_refusal())
        current = Node.objects.select_for_update().filter(pk=node.pk, cluster=locked).first()
        if current is None or not current.is_live:
            raise OperationRefused(_gone_refusal(node.private_ip))
        node = current
        warning = removal_warning(locked, node)
        problem = _last_server_problem(locked, node) or etcd_quorum_problem(
            locked, node, members)
        if problem:
            raise OperationRefused(problem)
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVING)
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.REMOVE_NODE,
            remove_node_plan(locked, node, warning=warning),
            params={"node_id": node.pk, "node": f"{node.role} {node.private_ip}"},
            created_by=user)
