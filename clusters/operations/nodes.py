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
from clusters.adapters.instance_order import (
    bought_instance_ids,
    buying_problem,
    joined_group,
    next_slots,
    node_group,
    node_of_slot,
)
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
from clusters.operations.destroy import keep_instances_problem
from clusters.operations.node_intake import NodeRejected, save_new_nodes
from clusters.operations.runs import OperationRefused, lock_ready, ready_problem

HEALTH_TITLE = gettext_noop("Check the cluster's health")


def add_nodes_plan(cluster: Cluster, new_nodes: list[Node]) -> list[StepSpec]:
    """Preflight the new hosts; when the cluster's nodes sit in the security group the panel
    bought (node_group), each new host's instance (found by its private IP in the VPC by the
    cloud preflight) joins it before K3s is installed, recorded so its removal and destroy
    leave it again: the group admits VXLAN and kubelet traffic only from its members.
    Whitelist new servers in RDS before their K3s starts; install servers one at a time with
    the cluster's config and token; put them behind the SLB; then agents join through the
    SLB."""
    ids = [node.pk for node in new_nodes]
    return _join_plan(
        cluster, [(f"server_{n.pk}", n.private_ip, {"node_id": n.pk}) for n in new_nodes
                  if n.role == NodeRole.SERVER],
        [(f"agent_{n.pk}", n.private_ip, {"node_id": n.pk}) for n in new_nodes
         if n.role == NodeRole.AGENT], {"node_ids": ids}, [], exclude=ids,
        join_group=bool(node_group(cluster)))


def add_instances_plan(cluster: Cluster, slots: list[tuple[str, str]]) -> list[StepSpec]:
    """Buy the new nodes first, then the add-node steps on them: a DryRun of the new
    instances (a sold-out type or a short quota fails before anything is billed), one
    RunInstances per node with the cluster's own key pair and security group (the ledger
    row's ClientToken recorded first: a Retry or a crash never buys twice), Running waited
    for; then the same preflight, whitelist, install and load-balancer steps as typed hosts,
    naming each node by its slot (its Node exists only once RunInstances answered)."""
    pairs = [[slot, role] for slot, role in slots]
    buy = [
        StepSpec("ecs_check", gettext_noop("Check that the zone sells the new instances "
                                           "(DryRun)"), "ecs.check_order",
                 args={"slots": pairs}),
        StepSpec("ecs_buy", gettext_noop("Buy the ECS instances and wait until they run"),
                 "ecs.run_instances", ["ecs_check"], {"slots": pairs}),
    ]
    return _join_plan(
        cluster, [(f"server_{slot}", slot, {"slot": slot}) for slot, role in slots
                  if role == NodeRole.SERVER],
        [(f"agent_{slot}", slot, {"slot": slot}) for slot, role in slots
         if role == NodeRole.AGENT], {"slots": [slot for slot, _ in slots]}, buy)


def _join_plan(cluster: Cluster, servers: list[tuple[str, str, dict[str, Any]]],
               agents: list[tuple[str, str, dict[str, Any]]], scope: dict[str, Any],
               start: list[StepSpec], *, exclude: list[int] | None = None,
               join_group: bool = False) -> list[StepSpec]:
    """The add-node steps on `servers` and `agents` ((step key, address for the title, step
    args)); `scope` names the new hosts for the preflight; `start` comes first; with
    `join_group`, the new hosts join the nodes' security group between the two
    preflights (as at create: ecs.join_group)."""
    specs = [
        *start,
        StepSpec(
            "preflight_cloud", gettext_noop("Check credentials, region, zone, VPC and vSwitch"),
            "preflight.cloud", [start[-1].key] if start else [], dict(scope)),
    ]
    if join_group:
        specs.append(StepSpec(
            "ecs_join", gettext_noop("Add the new hosts' instances to the nodes' security "
                                     "group"), "ecs.join_group", ["preflight_cloud"],
            dict(scope)))
    specs.append(StepSpec(
        "preflight_hosts", gettext_noop("Check the new hosts over SSH"), "preflight.hosts",
        ["ecs_join" if join_group else "preflight_cloud"], dict(scope)))
    previous = ["preflight_hosts"]
    if servers and cluster.datastore_kind == DatastoreKind.RDS:
        specs.append(StepSpec(
            "rds_configure", gettext_noop("Add the new servers to the RDS whitelist"),
            "rds.configure", previous))
        previous = ["rds_configure"]
    existing = cluster.nodes.present().servers().exclude(pk__in=exclude or []).count()
    for index, (key, address, args) in enumerate(servers):
        name = title(gettext_noop("Install K3s server %(n)s (%(ip)s)"), n=existing + index + 1,
                     ip=address)
        specs.append(StepSpec(key, name, "k3s.install_server", previous, args))
        previous = [key]
    if servers:
        specs += [
            balancer_listener_step(cluster, previous),
            StepSpec("verify", gettext_noop("Verify the API through the SLB as kubectl will"),
                     "verify.cluster", ["slb_listener"]),
        ]
        previous = ["verify"]
    agent_keys = []
    for key, address, args in agents:
        agent_keys.append(key)
        name = title(gettext_noop("Install K3s agent (%(ip)s)"), ip=address)
        specs.append(StepSpec(key, name, "k3s.install_agent", previous, args))
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", [*previous, *agent_keys]))
    return specs


def remove_node_plan(cluster: Cluster, node: Node, *, warning: str = "",
                     keep_instance: bool = False) -> list[StepSpec]:
    """Drain; a server leaves the SLB before its K3s stops; uninstall; delete the node object;
    a server leaves the RDS whitelist last. An embedded-etcd server leaves etcd before it is
    uninstalled (clusters/steps/etcd.py). Then its instance: released when the panel bought
    it (unless kept), out of the nodes' group when the panel added it (_instance_steps)."""
    server = node.role == NodeRole.SERVER
    args = {"node_id": node.pk}
    if server and cluster.datastore_kind == DatastoreKind.ETCD:
        return etcd_remove_server_plan(cluster, node, warning=warning,
                                       keep_instance=keep_instance)
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
    instance, previous = _instance_steps(cluster, node, previous, keep_instance)
    specs += instance
    specs.append(StepSpec("health", HEALTH_TITLE, "health.check", previous))
    return specs


def _instance_steps(cluster: Cluster, node: Node, after: list[str], keep_instance: bool
                    ) -> tuple[list[StepSpec], list[str]]:
    """What a removed node's instance needs once K3s is off it and its node deleted: the
    owner's instance the panel added to the nodes' group leaves it (the instance stays);
    an instance the panel bought is released (DeleteInstances through the ledger, waited
    for until gone, as destroy does), or kept when the owner chose so. Returns the steps and
    what the health check waits for."""
    args = {"node_id": node.pk}
    specs: list[StepSpec] = []
    if joined_group(cluster, node):
        specs.append(StepSpec(
            "ecs_group_leave", gettext_noop("Take the instance out of the nodes' security "
                                            "group"), "ecs.leave_group", after, args))
    if is_bought(cluster, node):
        name = (gettext_noop("Keep the node's ECS instance (it stays billed, in the "
                             "cluster's security group)") if keep_instance
                else gettext_noop("Release the node's ECS instance and wait until it is gone"))
        specs.append(StepSpec("ecs_instance_delete", name, "ecs.delete_instances", after,
                              {**args, "keep_instances": keep_instance}))
    return specs, [spec.key for spec in specs] or after


def is_bought(cluster: Cluster, node: Node) -> bool:
    """Whether the panel bought this node's instance (its ledger holds it, not released)."""
    return bool(node.ecs_instance_id) and node.ecs_instance_id in bought_instance_ids(cluster)


def instance_removal_note(node: Node, bought: set[str]) -> str:
    """What the Remove confirmation adds for a node whose instance the panel bought
    (`bought`: bought_instance_ids), '' for another, translated."""
    if not node.ecs_instance_id or node.ecs_instance_id not in bought:
        return ""
    return _("Its ECS instance %(instance)s, which the panel bought, is then released "
             "(deleted), and billed until then; choose “Keep the instance” to keep it "
             "(it stays billed, and it stays in the cluster's security group, which admits "
             "it to the nodes' VXLAN, kubelet and etcd ports, until you move it to a group "
             "of yours).") % {"instance": node.ecs_instance_id}


def keep_instance_problem(cluster: Cluster, node: Node) -> str:
    """Why "keep the instance" is refused for this node ('' when it is not), translated:
    only an instance the panel bought can be kept (another is never released anyway), and,
    as for destroy's "keep the instances", not before the generated key was downloaded
    (destroy.keep_instances_problem: the same rule, one place)."""
    return not_bought_problem(cluster, node) or keep_instances_problem(cluster, one_node=True)


def not_bought_problem(cluster: Cluster, node: Node) -> str:
    """Why "keep the instance" means nothing for this node ('' when its instance is one the
    panel bought and has not released), translated: another host is never released."""
    if is_bought(cluster, node):
        return ""
    return _("%(node)s is not an instance the panel bought: it is never released, so there "
             "is nothing to keep.") % {"node": node.name or node.private_ip}


def removal_details(run: Run) -> dict[str, Any]:
    """What a removal's audit row says of the node's bought instance (released or kept),
    from the run's params; nothing for a host the panel did not buy."""
    if not run.params.get("instance"):
        return {}
    return {"instance": run.params["instance"],
            "keep_instance": bool(run.params.get("keep_instance"))}


def etcd_remove_server_plan(cluster: Cluster, node: Node, *, warning: str = "",
                            keep_instance: bool = False) -> list[StepSpec]:
    """Quorum checked on etcd's live member list, drain, out of the load balancer, K3s
    stopped (the quorum checked again first), its Node deleted so K3s removes its etcd member
    (waited for until the others no longer list it), then uninstalled."""
    args = {"node_id": node.pk}
    detach = (gettext_noop("Take the server out of the NLB and wait until it has drained")
              if cluster.load_balancer_kind == LoadBalancerKind.NLB
              else gettext_noop("Take the server out of the SLB"))
    instance, after = _instance_steps(cluster, node, ["forget"], keep_instance)
    return [
        StepSpec("etcd_quorum", gettext_noop("Check that etcd keeps a majority throughout the "
                                             "removal"), "etcd.check_quorum", args=args),
        StepSpec("drain", gettext_noop("Cordon and drain the node"), "node.drain",
                 ["etcd_quorum"], {**args, "warning": warning}),
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
        *instance,
        StepSpec("health", HEALTH_TITLE, "health.check", after),
    ]


def etcd_quorum_problem(cluster: Cluster, node: Node, members: list[dict[str, Any]]) -> str:
    """Why removing this embedded-etcd server would break quorum at some point of the
    removal ('' when it would not), from `members` (etcd_members.MemberState dicts, etcd's
    own member list: the last health check's, or a fresh reading at step time).

    The rule (clusters.k3s.etcd.removal_check) counts etcd's voting members (learners do
    not vote; a server stuck in REMOVING is still a member while etcd lists it) and must
    hold once K3s is stopped on the leaving server (its member still counted, down) and
    after its member is removed."""
    if node.role != NodeRole.SERVER or cluster.datastore_kind != DatastoreKind.ETCD:
        return ""
    voting = etcd_members.voters(members)
    if not voting:
        return ""
    healthy = sum(bool(m.get("healthy")) for m in voting)
    leaving = next((m for m in voting if m.get("node") == node.private_ip), None)
    check = etcd.removal_check(len(voting), healthy, leaving_is_voter=leaving is not None,
                               leaving_is_healthy=bool(leaving and leaving.get("healthy")))
    if check.ok:
        return ""
    name = node.name or node.private_ip
    if check.stage == "stopped":
        text = _("Removing %(node)s is refused: once its K3s is stopped (its etcd member is "
                 "still counted until it is removed), %(healthy)d of %(members)d etcd voting "
                 "members would be healthy, fewer than the %(needed)d a majority needs. etcd "
                 "would stop accepting writes, the API with it, and could not remove the "
                 "member either.")
    else:
        text = _("Removing %(node)s is refused: after its etcd member is removed, "
                 "%(healthy)d of %(members)d etcd voting members would be healthy, fewer "
                 "than the %(needed)d a majority needs.")
    text = text % {"node": name, "healthy": check.healthy, "members": check.members,
                   "needed": check.needed}
    if len(voting) == 2:
        text += " " + _("A 2-server etcd cluster tolerates no failure: add a third server "
                        "first.")
    else:
        text += " " + _("Bring the server(s) that are down back first, or remove a server "
                        "that is down instead.")
    return text


def etcd_even_warning(cluster: Cluster, adding: int) -> str:
    """The warning for an addition that leaves an embedded-etcd cluster with an even number
    of servers ('' otherwise), in the active language."""
    if cluster.datastore_kind != DatastoreKind.ETCD or adding <= 0:
        return ""
    after = cluster.nodes.live().servers().count() + adding
    if not etcd.adds_to_even(after):
        return ""
    return _("With %(n)d servers, etcd tolerates %(failures)d failed server(s), no more than "
             "with %(fewer)d: a majority of %(n)d is %(needed)d. A 2- or 4-server etcd "
             "cluster tolerates no more failures than one of 1 or 3; add one more server to "
             "gain tolerance.") % {
        "n": after, "failures": etcd.failures_tolerated(after), "fewer": after - 1,
        "needed": etcd.majority(after)}


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


def instances_refusal(cluster: Cluster) -> str:
    """Why "Add instances" is not offered for this cluster ('' when it is), translated."""
    why = buying_problem(cluster)
    if why == "hosts":
        return _("This cluster runs on hosts its owner already had: add a node by its "
                 "address instead.")
    if why:
        return _("The security group and the key pair the panel bought for this cluster "
                 "are gone: add a node by its address instead.")
    return ""


def billed_summary(cluster: Cluster, servers: int, agents: int) -> str:
    """What an "Add instances" run will bill, as the form shows it before the owner
    confirms: the count, the cluster's instance type, image, system disk and public
    bandwidth (the order its first instances were bought with), pay-as-you-go."""
    order = cluster.instance_order or {}
    count = servers + agents
    bandwidth = int(order.get("public_bandwidth_mbps") or 0)
    address = (_("a public address of %(mbps)d Mbit/s, billed by traffic") % {"mbps": bandwidth}
               if bandwidth else _("no public address"))
    return ngettext(
        "%(count)d ECS instance %(type)s (image %(image)s, %(disk)d GiB ESSD system disk, "
        "%(address)s), pay-as-you-go from its creation until it is released.",
        "%(count)d ECS instances %(type)s (image %(image)s, %(disk)d GiB ESSD system disk "
        "each, %(address)s), pay-as-you-go from their creation until they are released.",
        count) % {"count": count, "type": order.get("instance_type", "?"),
                  "image": order.get("image_id", "?"),
                  "disk": int(order.get("system_disk_gb") or 40), "address": address}


def start_add_instances(cluster: Cluster, servers: int, agents: int, user: Any = None) -> Run:
    """Buy `servers` + `agents` new instances like the cluster's first ones (its order, its
    own security group and key pair) and join them: add_instances_plan."""
    with transaction.atomic():
        locked = lock_ready(cluster, _add_refusal())
        refusal = instances_refusal(locked)
        if refusal:
            raise OperationRefused(refusal)
        if servers < 0 or agents < 0 or servers + agents < 1:
            raise OperationRefused(_("Add at least one server or agent."))
        slots = next_slots(locked, servers, agents)
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.ADD_NODE, add_instances_plan(locked, slots),
            params={"node_ids": [], "slots": [slot for slot, _ in slots],
                    "nodes": [f"{role} {slot} ({locked.instance_order.get('instance_type')})"
                              for slot, role in slots]},
            created_by=user)


def add_retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this add-node run ('' when it may): the cluster must be ready
    as for a new addition, and every host of the run must still be a member (one removed
    since must not get K3s installed again)."""
    problem = ready_problem(cluster, _add_refusal())
    if problem:
        return problem
    ids = list(run.params.get("node_ids", []))
    for slot in run.params.get("slots", []):
        try:
            ids.append(node_of_slot(cluster, str(slot)).pk)
        except Node.DoesNotExist:
            continue  # not bought yet: the retried step buys it
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
    # The quorum rule again, on the last health check's member list (etcd's own); the
    # retried steps read the live list before they stop or remove anything.
    return _last_server_problem(cluster, node) or etcd_quorum_problem(
        cluster, node, list(cluster.etcd_members or []))


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


def start_remove_node(cluster: Cluster, node: Node, user: Any = None, *,
                      keep_instance: bool = False) -> Run:
    """Drain the node, take a server out of the SLB, uninstall K3s, delete the node object,
    and take a server out of the RDS whitelist. The last server cannot be removed, nor an
    embedded-etcd server whose leaving would break quorum (its members are asked now, before
    the last health check's member list: no SSH inside the request). The run's first step
    (etcd.check_quorum) reads the members again and fails with the reason before anything
    is touched, and the stop re-checks. An instance the panel bought is released once the
    node is gone, unless `keep_instance`."""
    with transaction.atomic():
        locked = lock_ready(cluster, _remove_refusal())
        current = Node.objects.select_for_update().filter(pk=node.pk, cluster=locked).first()
        if current is None or not current.is_live:
            raise OperationRefused(_gone_refusal(node.private_ip))
        node = current
        warning = removal_warning(locked, node)
        problem = _last_server_problem(locked, node) or etcd_quorum_problem(
            locked, node, list(locked.etcd_members or []))
        if problem:
            raise OperationRefused(problem)
        bought = is_bought(locked, node)
        problem = keep_instance_problem(locked, node) if keep_instance else ""
        if problem:
            raise OperationRefused(problem)
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVING)
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
        return pipeline.create_run(
            locked, RunKind.REMOVE_NODE,
            remove_node_plan(locked, node, warning=warning, keep_instance=keep_instance),
            params={"node_id": node.pk, "node": f"{node.role} {node.private_ip}",
                    **({"instance": node.ecs_instance_id,
                        "keep_instance": keep_instance} if bought else {})},
            created_by=user)
