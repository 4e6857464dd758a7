"""Removing one node: drain, out of the SLB, K3s off the host, out of the API and whitelist
(the SLB and whitelist steps are `slb.detach` and `rds.whitelist`, in slb.py and rds.py).

Order matters: a server leaves the SLB before K3s stops on it (so no request is routed to a
dying API), K3s is uninstalled before the node object is deleted (a running kubelet would
register it again), and the RDS whitelist shrinks last (K3s needs the datastore until it is
stopped).
"""

from __future__ import annotations

from clusters.adapters import cloud, clusterconfig, hostcleanup
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Outcome, Skip
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster, Node, NodeStatus


def target_node(ctx: StepContext) -> Node:
    """The node a removal run is about (its id is in every step's args)."""
    return Node.objects.get(pk=ctx.args["node_id"], cluster_id=ctx.cluster.pk)


def remaining_servers(cluster: Cluster) -> list[Node]:
    return list(cluster.nodes.live().servers().order_by("pk"))


@step_handler("node.drain")
def drain(ctx: StepContext) -> Outcome:
    """Cordon (spec.unschedulable) and make sure no workload would be lost with the node."""
    node = target_node(ctx)
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


DEAD_HOST_TRIES = 3


@step_handler("node.uninstall")
def uninstall(ctx: StepContext) -> Outcome:
    """Uninstall K3s on the host (only if it holds this cluster's K3s).

    With `host_may_be_dead` (an embedded-etcd server whose member is already removed: the
    way a failed server is replaced), a host that stays unreachable for DEAD_HOST_TRIES
    attempts is skipped with a warning instead of failing the removal: the cluster no longer
    counts on it, and what is left on it must not be started again.

    A node on an ECS instance (its ecs_instance_id) that DescribeInstances no longer lists
    was released (the owner deleted it by hand): there is no host left to uninstall, so the
    step is skipped and the removal goes on to the instance's ledger and group steps,
    instead of failing after its retries on a host that cannot answer."""
    node = target_node(ctx)
    if node.ecs_instance_id and not cloud.cloud_for(ctx.cluster).describe_instances_by_ids(
            [node.ecs_instance_id]):
        ctx.say(f"{node.private_ip}: instance {node.ecs_instance_id} is not listed any more "
                "(DescribeInstances): it was released, nothing is left to uninstall")
        return Skip(f"instance released: {node.ecs_instance_id} is not listed by "
                    "DescribeInstances any more")
    try:
        reports = hostcleanup.remove_k3s(ctx, [node])
    except TransientError as exc:
        if not ctx.args.get("host_may_be_dead"):
            raise
        tries = int(ctx.memo.get("unreachable", 0)) + 1
        ctx.memo["unreachable"] = tries
        if tries < DEAD_HOST_TRIES:
            raise
        ctx.say(f"WARNING: {node.private_ip} could not be reached ({exc}); K3s may still be "
                "installed there. Its etcd member is removed: do not start K3s on it again "
                "(it would try to rejoin); run k3s-uninstall.sh on it or rebuild it.", "stderr")
        return Skip(f"{node.private_ip} is unreachable; its etcd member was removed, K3s was "
                    "not uninstalled there")
    return Done({"host": node.private_ip, "verdict": reports[0].verdict if reports else "done"})


@step_handler("node.forget")
def delete_node_object(ctx: StepContext) -> Outcome:
    """DELETE the node object, as `kubectl delete node` does; then mark the node removed."""
    node = target_node(ctx)
    if node.name and clusterconfig.api_client(ctx.cluster).delete_node(node.name):
        ctx.say(f"Deleted node {node.name} from the cluster's API")
    else:
        ctx.say(f"Node {node.name or node.private_ip} was not in the cluster's API")
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVED)
    return Done({"node": node.name})
