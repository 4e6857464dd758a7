"""Upgrade K3s: back up the datastore, then servers one at a time behind the SLB, then agents.

Every node gets the same config.yaml it was installed with (rendered again from the cluster),
the install script with the new INSTALL_K3S_VERSION and INSTALL_K3S_SKIP_START, and a restart
the step does itself, so it can poll with its own timeout. A failure stops the run with the
cluster still serving and says how to go back.
"""

from __future__ import annotations

import time

from django.conf import settings

from clusters.adapters import api_balancer, cloud, clusterconfig, etcd_members, nodes, ssh
from clusters.adapters.kubeapi import NodeState
from clusters.core.errors import PermanentError, StepError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s import etcd
from clusters.k3s.install import Role
from clusters.models import Cluster, DatastoreKind, Node, NodeStatus
from clusters.steps.k3s import agent_config_text, busy_wait, collects_diagnostics, install_k3s
from clusters.steps.rds import RDS_KIND
from clusters.steps.rolling import ServerRestart, roll_server

BACKUP_STEP = "backup"
BACKUP_TIMEOUT_SECONDS = 6 * 3600
AGENT_READY_TIMEOUT_SECONDS = 300
QUORUM_WAIT_SECONDS = 300


def _node(ctx: StepContext) -> Node:
    return Node.objects.get(pk=ctx.args["node_id"], cluster_id=ctx.cluster.pk)


def way_back(ctx: StepContext) -> str:
    """How to roll back, named concretely (the previous version, the backup's id)."""
    previous = ctx.run.params.get("from_version", "")
    backup = ctx.result_of(BACKUP_STEP)
    text = (f"To roll back, start an upgrade to the previous version {previous} (allowed as the "
            "rollback of this upgrade)")
    if backup.get("backup_id"):
        text += (f", or restore RDS backup {backup['backup_id']} of {backup['instance_id']} "
                 f"(taken before this upgrade) and reinstall {previous}")
    return text + ". Or fix the cause and press Retry to continue the upgrade."


def _api_node(cluster: Cluster, name: str) -> NodeState | None:
    """The node as the API (through the SLB) shows it; None when it cannot tell right now."""
    try:
        states = clusterconfig.api_client(cluster).nodes()
    except StepError:
        return None
    return next((state for state in states if state.name == name), None)


def _reinstall(ctx: StepContext, node: Node, version: str, role: Role, config_text: str) -> None:
    """Same config.yaml, the new version's binary, then a restart that does not block."""
    install_k3s(ctx, node, role, config_text, version=version, systemctl_action="restart")
    ctx.say(f"{node.private_ip}: K3s {version} installed; restarting")


def _record_version(ctx: StepContext, node: Node, version: str) -> None:
    Node.objects.filter(pk=node.pk).update(k3s_version=version)
    Cluster.objects.filter(pk=ctx.cluster.pk).update(k3s_version=version)
    ctx.say(f"{node.private_ip}: node {node.name} reports {version}")


# --- the datastore backup ---------------------------------------------------------------------


def _rds_instance_id(cluster: Cluster) -> str:
    resource = cluster.resources.filter(kind=RDS_KIND).exclude(provider_id="").first()
    if resource is None:
        raise PermanentError("The cluster's RDS instance is not in its ledger; nothing to back "
                             "up.")
    return resource.provider_id


@step_handler("upgrade.backup")
def backup(ctx: StepContext) -> Outcome:
    """CreateBackup, then wait until DescribeBackups lists the new backup as finished."""
    cluster = ctx.cluster
    if cluster.datastore_kind == DatastoreKind.ETCD:
        raise PermanentError("An embedded-etcd cluster is backed up by etcd.snapshot, not "
                             "upgrade.backup; start the upgrade again.")
    if cluster.datastore_kind == DatastoreKind.EXTERNAL:
        ctx.say("WARNING: the datastore is your own MySQL; the panel takes NO backup of it. "
                "Make sure you have a recent dump or snapshot: it is the only way back if the "
                "upgrade breaks the datastore.", "stderr")
        return Skip("No automatic backup of your own MySQL: back it up yourself.")
    api = cloud.cloud_for(cluster)
    instance_id = _rds_instance_id(cluster)
    memo = ctx.memo
    if "job_id" not in memo:
        # Backups that existed before ours; whatever appears after CreateBackup is ours.
        memo.setdefault("known", [b.backup_id for b in api.describe_backups(instance_id)])
        memo["job_id"] = api.create_backup(instance_id)
        memo["deadline"] = time.time() + BACKUP_TIMEOUT_SECONDS
        ctx.say(f"CreateBackup on RDS {instance_id}: job {memo['job_id']} (full backup; "
                f"physical on local SSD, snapshot on cloud disks)")
        return Wait(cloud.poll_seconds(), f"Waiting for the RDS backup of {instance_id}")
    new = [b for b in api.describe_backups(instance_id) if b.backup_id not in memo["known"]]
    finished = [b for b in new if b.status == "Success"]
    if finished:
        found = finished[-1]
        ctx.say(f"RDS backup {found.backup_id} of {instance_id} finished ({found.size} bytes, "
                f"{found.finished}). If the upgrade has to be undone, restore this backup.")
        return Done({"backup_id": found.backup_id, "instance_id": instance_id})
    if any(b.status == "Failed" for b in new):
        return Fail(f"The RDS backup of {instance_id} failed; no server was touched. Look at "
                    "the RDS console's backup list, then press Retry.")
    if time.time() > memo["deadline"]:
        return Fail(f"The RDS backup of {instance_id} did not finish in "
                    f"{BACKUP_TIMEOUT_SECONDS // 3600} h; no server was touched.")
    return Wait(cloud.poll_seconds(), f"Waiting for the RDS backup of {instance_id}")


# --- servers, one at a time -------------------------------------------------------------------


def _server_is_done(ctx: StepContext, node: Node, version: str) -> bool:
    """Already on `version`, Ready, and healthy behind the SLB (a rollback or a re-run)."""
    state = _api_node(ctx.cluster, node.name)
    if state is None or state.version != version or not state.ready:
        return False
    return bool(api_balancer.for_cluster(ctx.cluster).health().get(node.ecs_instance_id))


def etcd_restart_verdict(members: list[etcd_members.MemberState], address: str,
                         waited_out: bool) -> tuple[str, str]:
    """("go" | "wait" | "fail", why) for restarting the server at `address` now.

    Go when every other voting member is healthy and no learner is still being promoted.
    Otherwise wait while one catches up (the server restarted before it, a learner); once
    the wait is over (`waited_out`), go only if the restart still leaves a healthy majority
    (a member that stays down in a 5-server cluster), else fail with what is down."""
    voting = [m for m in members if m.voter]
    others_down = [m for m in voting if m.node != address and not m.healthy]
    learners = [m for m in members if m.learner]
    if not others_down and not learners:
        return "go", ""
    me = next((m for m in voting if m.node == address), None)
    healthy = sum(m.healthy for m in voting)
    left = healthy - (1 if me and me.healthy else 0)
    waiting = ", ".join(f"{m.name} ({m.error or 'down'})" for m in others_down) or \
        ", ".join(f"learner {m.name or m.node}" for m in learners)
    if not waited_out:
        return "wait", (f"Waiting for etcd member(s) {waiting} to be healthy before "
                        f"restarting {address}")
    if etcd.restart_keeps_quorum(len(voting), healthy, bool(me and me.healthy)):
        return "go", (f"After {QUORUM_WAIT_SECONDS} s, etcd member(s) {waiting} are still "
                      f"not healthy; restarting {address} still leaves a majority ({left} of "
                      f"{len(voting)}), so the upgrade goes on.")
    return "fail", (f"{address} was not restarted: etcd member(s) {waiting} stayed unhealthy "
                    f"for {QUORUM_WAIT_SECONDS} s, and while {address} restarts only {left} "
                    f"of {len(voting)} voting members would be healthy, fewer than the "
                    f"{etcd.majority(len(voting))} a majority needs. Bring them back (see "
                    "Health), then press Retry.")


def _etcd_gate(ctx: StepContext, node: Node) -> Outcome | None:
    """etcd_restart_verdict on etcd's live member list, the wait bounded by
    QUORUM_WAIT_SECONDS (kept in the memo across polls). None: go on."""
    deadline = ctx.memo.setdefault("quorum_deadline", time.time() + QUORUM_WAIT_SECONDS)
    verdict, why = etcd_restart_verdict(etcd_members.read_members(ctx.cluster),
                                        node.private_ip, time.time() >= deadline)
    if verdict == "wait":
        return Wait(settings.PANEL_HOST_POLL_SECONDS, why)
    if verdict == "fail":
        return Fail(f"{why} {way_back(ctx)}")
    if why:
        ctx.say(why, "stderr")
    return None


@step_handler("upgrade.server")
def upgrade_server(ctx: StepContext) -> Outcome:
    """Out of the SLB, reinstall with the new version, restart, /readyz, new kubelet version,
    back into the SLB, healthy: then the next server may start."""
    node = _node(ctx)
    version = ctx.args["version"]
    if "phase" not in ctx.memo and _server_is_done(ctx, node, version):
        Node.objects.filter(pk=node.pk).update(k3s_version=version)
        return Skip(f"{node.private_ip} already runs {version}")

    def restart(ctx: StepContext, node: Node) -> None:
        _reinstall(ctx, node, version, "server", clusterconfig.server_config_text(ctx, node))

    def ready(ctx: StepContext, node: Node) -> str | None:
        if not nodes.local_api_ready(ctx, node):
            return "its local API to answer /readyz ok"
        state = _api_node(ctx.cluster, node.name)
        if state is None or state.version != version:
            return f"node {node.name} to report {version} (now {state.version if state else '?'})"
        if not state.ready:
            return f"node {node.name} to be Ready"
        if ctx.cluster.datastore_kind == DatastoreKind.ETCD:
            # The next server restarts only once this one's member is back and healthy:
            # two members down at once is a lost quorum with 3 servers.
            member = etcd_members.member_state(node)
            if not member.healthy:
                return f"its etcd member to be healthy again ({member.error or 'not yet'})"
        return None

    if "phase" not in ctx.memo and ctx.cluster.datastore_kind == DatastoreKind.ETCD:
        gate = _etcd_gate(ctx, node)
        if gate is not None:
            return gate
    return roll_server(ctx, node, ServerRestart(
        what=f"upgrade to {version}", restart=restart, ready=ready,
        on_ready=lambda ctx, node: _record_version(ctx, node, version),
        way_back=way_back(ctx)))


# --- agents -----------------------------------------------------------------------------------


@step_handler("upgrade.agent")
@collects_diagnostics
def upgrade_agent(ctx: StepContext) -> Outcome:
    """Reinstall the agent with the new version, restart it, wait for its new kubelet version."""
    node = _node(ctx)
    version = ctx.args["version"]
    memo = ctx.memo
    if "installed_at" not in memo:
        state = _api_node(ctx.cluster, node.name)
        if state is not None and state.version == version and state.ready:
            Node.objects.filter(pk=node.pk).update(k3s_version=version)
            return Skip(f"{node.private_ip} already runs {version}")
        try:
            _reinstall(ctx, node, version, "agent", agent_config_text(ctx, node))
        except ssh.HostBusy as exc:
            return busy_wait(ctx, node, exc)
        memo.update(installed_at=time.time(),
                    deadline=time.time() + AGENT_READY_TIMEOUT_SECONDS)
        return Wait(settings.PANEL_HOST_POLL_SECONDS,
                    f"Waiting for agent {node.private_ip} to report {version}")
    state = _api_node(ctx.cluster, node.name)
    if state is not None and state.version == version and state.ready:
        Node.objects.filter(pk=node.pk).update(k3s_version=version, status=NodeStatus.READY)
        ctx.say(f"{node.private_ip}: node {node.name} is Ready on {version}")
        return Done({"node": node.name})
    if time.time() > memo["deadline"]:
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.FAILED)
        return Fail(f"Agent {node.private_ip} did not report {version} within "
                    f"{AGENT_READY_TIMEOUT_SECONDS} s; read `journalctl -u k3s-agent` on the host. "
                    f"The servers are upgraded and serving. {way_back(ctx)}")
    return Wait(settings.PANEL_HOST_POLL_SECONDS,
                f"Waiting for agent {node.private_ip} to report {version}")
