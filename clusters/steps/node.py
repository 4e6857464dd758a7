"""Removing one node: drain, out of the SLB, K3s off the host, out of the API and whitelist.

Order matters: a server leaves the SLB before K3s stops on it (so no request is routed to a
dying API), K3s is uninstalled before the node object is deleted (a running kubelet would
register it again), and the RDS whitelist shrinks last (K3s needs the datastore until it is
stopped).
"""

from __future__ import annotations

from clusters.adapters import cloud, clusterconfig, hostcleanup
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Outcome, Skip
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster, DatastoreKind, Node, NodeRole, NodeStatus, ResourceState
from clusters.steps.rds import RDS_KIND
from clusters.steps.slb import SLB_KIND

GONE = (NodeStatus.REMOVING, NodeStatus.REMOVED)


def _node(ctx: StepContext) -> Node:
    return Node.objects.get(pk=ctx.args["node_id"], cluster_id=ctx.cluster.pk)


def remaining_servers(cluster: Cluster) -> list[Node]:
    return list(cluster.nodes.filter(role=NodeRole.SERVER).exclude(status__in=GONE)
                .order_by("pk"))


@step_handler("node.drain")
def drain(ctx: StepContext) -> Outcome:
    """Cordon (spec.unschedulable) and make sure no workload would be lost with the node."""
    node = _node(ctx)
    if ctx.args.get("warning"):
        ctx.say(ctx.args["warning"], "stderr")
    if not node.name:
        return Skip(f"{node.private_ip} never registered with the cluster")
    client = clusterconfig.api_client(ctx.cluster)
    if not client.cordon(node.name):
        return Skip(f"node {node.name} is not in the cluster's API (it never registered or "
                    "was deleted already)")
    ctx.say(f"Cordoned node {node.name}: nothing new is scheduled on it")
    pods = client.pods_to_evict(node.name)
    if pods:
        raise PermanentError(
            f"{len(pods)} pod(s) still run on {node.name} ({', '.join(pods[:5])}). Drain it "
            f"with `kubectl drain {node.name} --ignore-daemonsets --delete-emptydir-data`, then "
            "press Retry.")
    ctx.say(f"Drained {node.name}: no workloads were running on it, none were evicted")
    return Done({"node": node.name})


@step_handler("slb.detach")
def detach_from_slb(ctx: StepContext) -> Outcome:
    """RemoveBackendServers for this server, so the SLB stops sending it API traffic."""
    node = _node(ctx)
    row = ctx.cluster.resources.filter(kind=SLB_KIND, state=ResourceState.PRESENT) \
        .exclude(provider_id="").first()
    if row is None or not node.ecs_instance_id:
        return Skip("the server is not behind an SLB")
    api = cloud.cloud_for(ctx.cluster)
    balancer = api.describe_slb(row.provider_id)
    attached = {b.server_id for b in balancer.backend_servers} if balancer else set()
    if node.ecs_instance_id in attached:
        api.remove_backend_servers(row.provider_id, [node.ecs_instance_id])
        ctx.say(f"Removed {node.private_ip} ({node.ecs_instance_id}) from SLB {row.provider_id}")
    else:
        ctx.say(f"{node.private_ip} was not an SLB backend any more")
    left = sorted(attached - {node.ecs_instance_id})
    ctx.say(f"SLB {row.provider_id} backends now: {', '.join(left) or 'none'}")
    return Done({"backends": left})


@step_handler("node.uninstall")
def uninstall(ctx: StepContext) -> Outcome:
    """Uninstall K3s on the host (only if it holds this cluster's K3s)."""
    node = _node(ctx)
    reports = hostcleanup.remove_k3s(ctx, [node])
    return Done({"host": node.private_ip, "verdict": reports[0].verdict if reports else "done"})


@step_handler("node.forget")
def delete_node_object(ctx: StepContext) -> Outcome:
    """DELETE the node object, as `kubectl delete node` does; then mark the node removed."""
    node = _node(ctx)
    if node.name and clusterconfig.api_client(ctx.cluster).delete_node(node.name):
        ctx.say(f"Deleted node {node.name} from the cluster's API")
    else:
        ctx.say(f"Node {node.name or node.private_ip} was not in the cluster's API")
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVED)
    return Done({"node": node.name})


@step_handler("rds.whitelist")
def shrink_whitelist(ctx: StepContext) -> Outcome:
    """Make the RDS whitelist exactly the servers that remain."""
    cluster = ctx.cluster
    row = cluster.resources.filter(kind=RDS_KIND, state=ResourceState.PRESENT) \
        .exclude(provider_id="").first()
    if cluster.datastore_kind != DatastoreKind.RDS or row is None:
        return Skip("the datastore is not an RDS instance the panel bought")
    servers = [server.private_ip for server in remaining_servers(cluster)]
    cloud.cloud_for(cluster).modify_security_ips(row.provider_id, servers)
    ctx.say(f"RDS {row.provider_id} whitelist: {', '.join(servers)}")
    return Done({"whitelist": servers})
