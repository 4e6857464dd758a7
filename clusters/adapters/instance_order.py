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


def node_slots(order: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(slot, role) of every instance of the order, servers first: ("s1", "server")…"""
    return ([(f"s{n}", str(NodeRole.SERVER)) for n in range(1, int(order.get("servers", 0)) + 1)]
            + [(f"a{n}", str(NodeRole.AGENT)) for n in range(1, int(order.get("agents", 0)) + 1)])


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
