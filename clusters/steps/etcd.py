"""Embedded etcd's own steps: a server leaving etcd, and a snapshot before an upgrade.

Leaving, the K3s way: K3s removes a server's etcd member when its Node object is deleted
(pkg/etcd/member_controller.go onRemove → RemovePeer), and its release notes say to stop the
k3s service first, one server at a time, or the deleted server may crash, restart and rejoin
(github.com/k3s-io/k3s/releases/tag/v1.23.1+k3s2, Known Issues). So: stop K3s on the host,
delete the Node, wait until a remaining server's member list (/db/info) no longer has the
server's peer URL; only then is K3s uninstalled. A dead host (a failed server being
replaced) cannot be stopped: it is down already, and its member goes the same way.
"""

from __future__ import annotations

import time

from django.conf import settings

from clusters.adapters import clusterconfig, etcd_members, k3s_release, nodes
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s import etcd
from clusters.k3s.tokens import password_of
from clusters.models import Node
from clusters.steps.node import target_node

MEMBER_REMOVAL_TIMEOUT_SECONDS = 300


def quorum_refusal(ctx: StepContext, node: Node) -> str:
    """Why the leaving server may not go on ('' when it may): the quorum rule on etcd's live
    member list (one server asked for every member: etcd_members.read_members)."""
    members = etcd_members.read_members(ctx.cluster)
    ctx.say(f"etcd members: {etcd_members.summary(members)}")
    check = etcd_members.removal_check(members, node.private_ip)
    if check.ok:
        return ""
    when = ("once K3s is stopped on it (its member is still counted until removed)"
            if check.stage == "stopped" else "after its member is removed")
    return (f"Removing {node.name or node.private_ip} would leave {check.healthy} of "
            f"{check.members} etcd voting members healthy {when}, fewer than the "
            f"{check.needed} a majority needs: etcd would stop accepting writes and the API "
            "with it. Nothing was stopped. Bring the servers that are down back (see Health), "
            "or remove one that is down instead, then press Retry.")


@step_handler("etcd.check_quorum")
def check_quorum(ctx: StepContext) -> Outcome:
    """Before anything is touched: etcd keeps a majority through the whole removal."""
    node = target_node(ctx)
    refusal = quorum_refusal(ctx, node)
    if refusal:
        return Fail(refusal)
    return Done({"checked": node.private_ip})


@step_handler("etcd.stop_server")
def stop_server(ctx: StepContext) -> Outcome:
    """Stop K3s on the leaving server (its member stays until the Node is deleted), after
    checking the quorum rule again (the drain took time; a Retry lands here)."""
    node = target_node(ctx)
    refusal = quorum_refusal(ctx, node)
    if refusal:
        return Fail(refusal)
    try:
        with nodes.session(ctx, node) as connection:
            nodes.run_logged(ctx, connection, ["systemctl", "stop", "k3s"],
                             what="Running systemctl stop k3s", timeout=120)
    except TransientError as exc:
        return Skip(f"{node.private_ip} cannot be reached ({exc}); a server that is down "
                    "is stopped already, and its etcd member is removed all the same")
    return Done({"stopped": node.private_ip})


def _remaining(ctx: StepContext, leaving: Node) -> list[Node]:
    return list(ctx.cluster.nodes.live().servers().exclude(pk=leaving.pk).order_by("pk"))


def _members_seen_by_others(ctx: StepContext, leaving: Node) -> tuple[list[etcd.Member], str]:
    """The member list from the first remaining server that answers, and which one it was."""
    password = password_of(ctx.cluster.k3s_token)
    ctx.register_secret(password)
    problems = []
    for server in _remaining(ctx, leaving):
        try:
            members = etcd_members.member_list(server, password)
        except StepError as exc:
            problems.append(f"{server.private_ip}: {exc}")
            continue
        if etcd.is_fallback_list(members):
            problems.append(f"{server.private_ip}: etcd did not answer K3s's member list "
                            "within 2 s (no quorum?)")
            continue
        return members, server.private_ip
    raise TransientError("No remaining server listed the etcd members: " + "; ".join(problems))


@step_handler("etcd.remove_member")
def remove_member(ctx: StepContext) -> Outcome:
    """Delete the leaving server's Node so K3s removes its etcd member, and wait until the
    remaining servers' member list no longer holds it."""
    node = target_node(ctx)
    peer = etcd.peer_url(node.private_ip)
    members, asked = _members_seen_by_others(ctx, node)
    present = [m for m in members if peer in m.peer_urls]
    if not present:
        ctx.say(f"etcd members as {asked} lists them: "
                f"{', '.join(m.name for m in members) or 'none'}; {node.private_ip} is not one")
        return Done({"removed": node.private_ip, "members": [m.name for m in members],
                     "peer_urls": sorted(u for m in members for u in m.peer_urls)})
    if not ctx.memo.get("node_deleted"):
        refusal = quorum_refusal(ctx, node)
        if refusal:
            return Fail(refusal)
        if node.name and clusterconfig.api_client(ctx.cluster).delete_node(node.name):
            ctx.say(f"Deleted node {node.name}: K3s removes its etcd member "
                    f"({present[0].name}, {peer})")
        else:
            ctx.say(f"Node {node.name or node.private_ip} is not in the API; waiting for "
                    "K3s to remove its etcd member", "stderr")
        ctx.memo.update(node_deleted=True,
                        deadline=time.time() + MEMBER_REMOVAL_TIMEOUT_SECONDS)
    if time.time() > ctx.memo["deadline"]:
        return Fail(f"etcd member {present[0].name} ({peer}) is still listed by {asked} "
                    f"{MEMBER_REMOVAL_TIMEOUT_SECONDS} s after its node was deleted; K3s "
                    "removes it only while a majority of members is healthy. Check health, "
                    "then press Retry.")
    return Wait(settings.PANEL_HOST_POLL_SECONDS,
                f"Waiting for K3s to remove etcd member {present[0].name}")


@step_handler("etcd.snapshot")
def snapshot(ctx: StepContext) -> Outcome:
    """`k3s etcd-snapshot save --name pre-upgrade-<version>-<time>` on the first healthy
    server, then the cluster's snapshots listed again, so the page shows it."""
    if "name" not in ctx.memo:
        target = ctx.args.get("version") or k3s_release.pinned_version(ctx.cluster)
        # K3s appends the node name and the time (`<name>-<node>-<unix time>`).
        ctx.memo["name"] = etcd.snapshot_name("pre-upgrade", target)
        ctx.memo["before"] = list(ctx.cluster.etcd_snapshots.values_list("name", flat=True))
    name = ctx.memo["name"]
    members = etcd_members.read_members(ctx.cluster)
    voting = [m for m in members if m.voter]
    quorum = etcd.Quorum(len(voting), sum(m.healthy for m in voting))
    ctx.say(f"etcd members: {etcd_members.summary(members)}")
    if quorum.lost:
        return Fail(f"etcd has no quorum ({quorum.healthy} of {quorum.members} voting members "
                    f"healthy, {quorum.needed} needed), so no snapshot is taken and no server "
                    "is upgraded. Bring the servers that are down back (see Health), then "
                    "press Retry.")
    healthy_ips = {m.node for m in voting if m.healthy}
    healthy = [s for s in ctx.cluster.nodes.live().servers().order_by("pk")
               if s.private_ip in healthy_ips]
    if not healthy:
        raise PermanentError("No etcd member is healthy, so no snapshot can be taken; the "
                             "upgrade does not start without one. Check health first.")
    server = healthy[0]
    with nodes.session(ctx, server) as connection:
        nodes.run_logged(ctx, connection, etcd.snapshot_save_command(name),
                         what=f"k3s etcd-snapshot save --name {name}", timeout=600)
    etcd_members.record_snapshots(ctx.cluster, server, etcd_members.list_snapshots(server))
    saved = (ctx.cluster.etcd_snapshots.filter(name__startswith=name)
             .exclude(name__in=ctx.memo["before"]).order_by("-taken_at").first())
    if saved is None:
        raise PermanentError(f"k3s etcd-snapshot save ran on {server.private_ip}, but "
                             f"`k3s etcd-snapshot ls` lists no {name}; the upgrade does not "
                             "start without a snapshot.")
    ctx.say(f"Snapshot {saved.name} on {saved.node}: {saved.size} bytes ({saved.location})")
    return Done({"snapshot": saved.name, "node": saved.node, "size": saved.size})
