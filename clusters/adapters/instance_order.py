"""The instances a cluster's order buys, by slot: what the create plan (operations) and the
buying steps (steps/ecs.py) share, so both name the nodes the same way before they exist.

Why slots: the create plan is made when the run starts, before RunInstances answered with
addresses; each K3s install step names its node by slot ("s1", "a2"), and the step finds
the node through the ledger row of that slot (kind INSTANCE_KIND + slot) once bought.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from clusters.models import Cluster, Node, NodeRole

INSTANCE_KIND = "ecs_instance_"  # + the node's slot: "ecs_instance_s1", "ecs_instance_a2"
ECS_SECURITY_GROUP_KIND = "ecs_security_group"  # the nodes' group the panel bought
KEY_PAIR_KIND = "ecs_key_pair"  # the key pair the panel imported
JOIN_KIND = "ecs_join_n"  # + the node's id: one of the owner's instances the panel joined


def node_group(cluster: Cluster) -> str:
    """The security group the panel bought for this cluster's nodes, when they sit in it
    (it bought their instances, or the owner chose "join my instances to the cluster's
    group"); '' otherwise. A host added later must join it too: its rules admit K3s's
    node-to-node ports (VXLAN 8472/udp, kubelet 10250) only from the group's members."""
    if not (cluster.instance_order or cluster.join_security_group):
        return ""
    row = (cluster.resources.filter(kind=ECS_SECURITY_GROUP_KIND, deleted_at__isnull=True)
           .exclude(provider_id="").first())
    return row.provider_id if row else ""


def bought_instance_ids(cluster: Cluster) -> set[str]:
    """The instances the panel bought for this cluster and has not released (its ledger)."""
    return set(cluster.resources.filter(kind__startswith=INSTANCE_KIND, deleted_at__isnull=True)
               .exclude(provider_id="").values_list("provider_id", flat=True))


def joined_group(cluster: Cluster, node: Node) -> bool:
    """Whether the panel added this node's (the owner's) instance to the nodes' group and it
    has not left it yet (its ledger row, steps/ecs.py join_group)."""
    return cluster.resources.filter(kind=f"{JOIN_KIND}{node.pk}",
                                    deleted_at__isnull=True).exists()


def buying_problem(cluster: Cluster) -> str:
    """Why an add-node run cannot buy instances for this cluster ('' when it can), in
    English for the operations to translate: it reuses the cluster's own order (type,
    image, disk, bandwidth), security group and key pair, so the cluster must have bought
    its first instances itself."""
    if not cluster.instance_order:
        return "hosts"
    live = cluster.resources.filter(deleted_at__isnull=True)
    if not live.filter(kind=ECS_SECURITY_GROUP_KIND).exclude(provider_id="").exists():
        return "group"
    if not (cluster.instance_order.get("key_pair")
            or live.filter(kind=KEY_PAIR_KIND).exclude(provider_id="").exists()):
        return "key"
    return ""


def node_slots(order: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(slot, role) of every instance of the order, servers first: ("s1", "server")…"""
    return ([(f"s{n}", str(NodeRole.SERVER)) for n in range(1, int(order.get("servers", 0)) + 1)]
            + [(f"a{n}", str(NodeRole.AGENT)) for n in range(1, int(order.get("agents", 0)) + 1)])


def next_slots(cluster: Cluster, servers: int, agents: int) -> list[tuple[str, str]]:
    """(slot, role) of instances an add-node run buys: numbers above every slot the cluster
    ever used (a released or kept instance's too), so a new instance's slot tag is never
    one an older instance still carries (steps/ecs.py adopts a lost buy by that tag)."""
    used = {kind.removeprefix(INSTANCE_KIND) for kind in
            cluster.resources.filter(kind__startswith=INSTANCE_KIND)
            .values_list("kind", flat=True)}
    used |= {slot for slot, _ in node_slots(cluster.instance_order or {})}

    def taken(prefix: str) -> int:
        return max((int(s[1:]) for s in used if s[:1] == prefix and s[1:].isdigit()),
                   default=0)

    first_server, first_agent = taken("s") + 1, taken("a") + 1
    return ([(f"s{n}", str(NodeRole.SERVER)) for n in range(first_server,
                                                             first_server + servers)]
            + [(f"a{n}", str(NodeRole.AGENT)) for n in range(first_agent,
                                                            first_agent + agents)])


def run_slots(order: Mapping[str, Any], args: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (slot, role) pairs a buying step buys: its args' `slots` (an add-node run), or
    else the whole order (the create run)."""
    if args.get("slots") is not None:
        return [(str(slot), str(role)) for slot, role in args["slots"]]
    return node_slots(order)


def node_of_slot(cluster: Cluster, slot: str) -> Node:
    """The Node the slot's instance became (raises Node.DoesNotExist before it is bought)."""
    row = cluster.resources.filter(kind=INSTANCE_KIND + slot, deleted_at__isnull=True).first()
    if row is None or not row.provider_id:
        raise Node.DoesNotExist(f"no instance bought for slot {slot} yet")
    return Node.objects.get(cluster=cluster, ecs_instance_id=row.provider_id)


def listed_node_ids(cluster: Cluster, args: Mapping[str, Any]) -> list[int] | None:
    """The node ids a step's args name, `node_ids` or (a run that buys its instances) the
    order's `slots`; None when they name none (the step means every live server)."""
    if args.get("node_ids") is not None:
        return [int(pk) for pk in args["node_ids"]]
    if args.get("slots") is not None:
        return [node_of_slot(cluster, str(slot)).pk for slot in args["slots"]]
    return None
