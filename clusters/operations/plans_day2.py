"""The step graphs of destroy, add nodes and remove a node.

Why a module of its own: clusters/operations/plans.py holds create; these reuse create's
step handlers (preflight restricted to the new hosts, rds.configure, k3s.install_*,
slb.listener, verify) in a different order, and that ordering is the whole design of each operation.
"""

from __future__ import annotations

from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, DatastoreKind, Node, NodeRole

HEALTH_TITLE = "Check the cluster's health"


def destroy_plan(cluster: Cluster, *, keep_database: bool = False) -> list[StepSpec]:
    """Hosts, SLB and RDS in parallel (a dead host must not keep the bill running), then close.

    K3s comes off the hosts while the datastore may still exist; nothing depends on order
    between the three, and each is idempotent, so Retry after any failure finishes the job.
    """
    specs = [
        StepSpec("uninstall", "Remove K3s from every host", "destroy.hosts", retry_budget=3),
        StepSpec("slb_delete", "Delete the SLB", "destroy.slb"),
    ]
    finished = ["uninstall", "slb_delete"]
    if cluster.datastore_kind == DatastoreKind.RDS and not keep_database:
        specs.append(StepSpec("rds_delete", "Delete the RDS instance and wait until it is gone",
                              "destroy.rds"))
        finished.append("rds_delete")
    specs.append(StepSpec("finish", "Close the ledger and mark the cluster destroyed",
                          "destroy.finish", finished, {"keep_database": keep_database}))
    return specs


def add_nodes_plan(cluster: Cluster, new_nodes: list[Node]) -> list[StepSpec]:
    """Preflight the new hosts; whitelist new servers in RDS before their K3s starts; install
    servers one at a time with the cluster's config and token; put them behind the SLB; then
    agents join through the SLB."""
    ids = [node.pk for node in new_nodes]
    servers = [node for node in new_nodes if node.role == NodeRole.SERVER]
    agents = [node for node in new_nodes if node.role == NodeRole.AGENT]
    specs = [
        StepSpec("preflight_cloud", "Check credentials, region, zone, VPC and vSwitch",
                 "preflight.cloud", args={"node_ids": ids}),
        StepSpec("preflight_hosts", "Check the new hosts over SSH", "preflight.hosts",
                 ["preflight_cloud"], {"node_ids": ids}),
    ]
    previous = ["preflight_hosts"]
    if servers and cluster.datastore_kind == DatastoreKind.RDS:
        specs.append(StepSpec("rds_configure", "Add the new servers to the RDS whitelist",
                              "rds.configure", previous))
        previous = ["rds_configure"]
    existing = cluster.nodes.filter(role=NodeRole.SERVER).exclude(pk__in=ids) \
        .exclude(status="removed").count()
    for index, server in enumerate(servers):
        key = f"server_{server.pk}"
        specs.append(StepSpec(key, f"Install K3s server {existing + index + 1} "
                              f"({server.private_ip})", "k3s.install_server", previous,
                              {"node_id": server.pk}))
        previous = [key]
    if servers:
        specs += [
            StepSpec("slb_listener", "Add servers to the SLB and start TCP 6443",
                     "slb.listener", previous),
            StepSpec("verify", "Verify the API through the SLB as kubectl will",
                     "verify.cluster", ["slb_listener"]),
        ]
        previous = ["verify"]
    agent_keys = []
    for agent in agents:
        key = f"agent_{agent.pk}"
        agent_keys.append(key)
        specs.append(StepSpec(key, f"Install K3s agent ({agent.private_ip})",
                              "k3s.install_agent", previous, {"node_id": agent.pk}))
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", [*previous, *agent_keys]))
    return specs


def remove_node_plan(cluster: Cluster, node: Node, *, warning: str = "") -> list[StepSpec]:
    """Drain; a server leaves the SLB before its K3s stops; uninstall; delete the node object;
    a server leaves the RDS whitelist last."""
    server = node.role == NodeRole.SERVER
    args = {"node_id": node.pk}
    specs = [StepSpec("drain", "Cordon and drain the node", "node.drain",
                      args={**args, "warning": warning})]
    previous = ["drain"]
    if server:
        specs.append(StepSpec("slb_detach", "Take the server out of the SLB", "slb.detach",
                              previous, args))
        previous = ["slb_detach"]
    specs += [
        StepSpec("uninstall", "Uninstall K3s on the host", "node.uninstall", previous, args,
                 retry_budget=3),
        StepSpec("forget", "Delete the node from the cluster's API", "node.forget",
                 ["uninstall"], args),
    ]
    previous = ["forget"]
    if server and cluster.datastore_kind == DatastoreKind.RDS:
        specs.append(StepSpec("rds_whitelist", "Shrink the RDS whitelist to the remaining "
                              "servers", "rds.whitelist", previous))
        previous = ["rds_whitelist"]
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", previous))
    return specs
