"""Destroy: K3s off every host, the SLB (and its allow-list ACL) or the NLB (listener, server
group, load balancer) and the RDS instance deleted,
the ledger closed.

Every step may run on a cluster whose create stopped anywhere: a ledger row may have no
provider id yet (its create call was in flight), an instance may still be Creating, a host
may never have had K3s. Deleting what is already gone counts as done, so the steps can run
again after a crash or a Retry. Resources are also looked up by the cluster's tag, so one
bought but never recorded (a worker killed between the call and the ledger write) is found.
"""

from __future__ import annotations

import time

from clusters.adapters import cloud, hostcleanup
from clusters.adapters.aliyun import AliyunCloud, Nlb
from clusters.adapters.aliyun.nlb import JOB_SUCCEEDED
from clusters.adapters.api_balancer import (
    NLB_GROUP_KIND,
    NLB_KIND,
    NLB_LISTENER_KIND,
    NLB_SECURITY_GROUP_KIND,
)
from clusters.core.errors import StepError
from clusters.engine.outcomes import Done, Fail, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import (
    Cluster,
    DatastoreKind,
    EtcdSnapshot,
    Health,
    Node,
    NodeStatus,
    ResourceState,
)
from clusters.steps.ecs import is_node_group
from clusters.steps.rds import RDS_KIND
from clusters.steps.slb import ACL_KIND, SLB_KIND, acl_name

RDS_SETTLE_TIMEOUT_SECONDS = 3600  # an instance still Creating after an hour needs a person
NLB_DELETE_TIMEOUT_SECONDS = 1800


def _open_rows(cluster: Cluster, kind: str) -> list:
    return list(cluster.resources.filter(kind=kind).exclude(state=ResourceState.DELETED))


def _close_rows(ctx: StepContext, rows: list) -> None:
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
        ctx.say(f"Ledger: {row.kind} {row.provider_id or '(never bought)'} marked deleted")


@step_handler("destroy.hosts")
def remove_from_hosts(ctx: StepContext) -> Outcome:
    """Uninstall K3s on every host of the cluster that holds this cluster's K3s."""
    members = list(ctx.cluster.nodes.present().order_by("pk"))
    if not members:
        return Done({"hosts": []})
    reports = hostcleanup.remove_k3s(ctx, members)
    if forget_etcd(ctx.cluster, [r.node for r in reports if r.verdict in ("removed", "clean")]):
        ctx.say("Forgot the etcd snapshots of the uninstalled servers: K3s's uninstall "
                "deleted them with its data directory")
    return Done({"hosts": {r.node.private_ip: r.verdict for r in reports},
                 hostcleanup.CLEANED: ctx.memo.get(hostcleanup.CLEANED, [])})


def forget_etcd(cluster: Cluster, uninstalled: list[Node]) -> int:
    """K3s's uninstall removes its data dir, snapshots included (k3s-uninstall.sh: rm -rf
    /var/lib/rancher/k3s), so the snapshot rows of the servers it ran on go, and so does the
    member list: nothing of it exists any more. Returns the rows deleted."""
    if cluster.datastore_kind != DatastoreKind.ETCD:
        return 0
    names = {n.name or n.private_ip for n in uninstalled}
    deleted, _kinds = EtcdSnapshot.objects.filter(cluster=cluster, node__in=names).delete()
    Cluster.objects.filter(pk=cluster.pk).update(etcd_members=[],
                                                 etcd_snapshots_listed_at=None)
    return deleted


def _tagged_slbs(api: AliyunCloud, cluster: Cluster) -> set[str]:
    return {lb.load_balancer_id for lb in api.find_slb_by_tag(cloud.TAG_KEY, str(cluster.code))}


@step_handler("destroy.slb")
def delete_slb(ctx: StepContext) -> Outcome:
    """DeleteLoadBalancer for the ledger's SLB (and any carrying the cluster's tag)."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    rows = _open_rows(cluster, SLB_KIND)
    ids = {row.provider_id for row in rows if row.provider_id} | _tagged_slbs(api, cluster)
    for balancer_id in sorted(ids):
        if api.delete_slb(balancer_id):
            ctx.say(f"Deleted SLB {balancer_id} (its listener and backends went with it)")
        else:
            ctx.say(f"SLB {balancer_id} was already gone")
    if not ids:
        ctx.say("No SLB was bought for this cluster")
    _close_rows(ctx, rows)
    acls = _delete_acls(ctx, api, cluster)
    return Done({"deleted": sorted(ids), "acls_deleted": acls})


def _delete_acls(ctx: StepContext, api: AliyunCloud, cluster: Cluster) -> list[str]:
    """The API's allow-list ACL, once its listener went with the SLB. A CLB refuses to delete
    an ACL still bound to a listener (AclInUsed, transient: the engine retries the step)."""
    rows = _open_rows(cluster, ACL_KIND)
    ids = ({row.provider_id for row in rows if row.provider_id}
           | set(api.find_acls_by_tag(cloud.TAG_KEY, str(cluster.code)))
           | set(api.find_acls_by_name(acl_name(cluster))))
    for acl_id in sorted(ids):
        if api.delete_acl(acl_id):
            ctx.say(f"Deleted access control list {acl_id} (the API's allow-list)")
        else:
            ctx.say(f"Access control list {acl_id} was already gone")
    _close_rows(ctx, rows)
    return sorted(ids)


@step_handler("destroy.nlb")
def delete_nlb(ctx: StepContext) -> Outcome:  # noqa: PLR0911 - one wait per phase
    """The NLB's listener, then its server group, then the NLB: each delete is a job, waited
    for before the next (a server group still used by a listener cannot go); the ledger's
    rows and whatever carries the cluster's tag, so nothing bought stays behind."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    tag = str(cluster.code)
    memo = ctx.memo
    jobs = [job for job in memo.get("jobs", []) if api.job_status(job) != JOB_SUCCEEDED]
    if jobs:
        return _nlb_wait(ctx, f"NLB delete job(s) {', '.join(jobs)} still running")
    balancers = ({r.provider_id for r in _open_rows(cluster, NLB_KIND) if r.provider_id}
                 | {lb.load_balancer_id for lb in api.find_nlb_by_tag(cloud.TAG_KEY, tag)})
    found = {b: api.describe_nlb(b) for b in sorted(balancers)}
    balancers = {b for b, lb in found.items() if lb is not None and lb.status != "Deleted"}
    listeners = ({r.provider_id for r in _open_rows(cluster, NLB_LISTENER_KIND)
                  if r.provider_id}
                 | {x.listener_id for b in sorted(balancers) for x in api.find_listeners(b)})
    states = {x: api.describe_listener(x) for x in sorted(listeners)}
    listeners = {x for x, state in states.items() if state is not None}
    deleting = {x for x, state in states.items() if state and state.status == "Deleting"}
    for listener_id in sorted(listeners - deleting):
        job = api.delete_listener(listener_id)
        ctx.say(f"Deleting NLB listener {listener_id}")
        memo["jobs"] = [*memo.get("jobs", []), *([job] if job else [])]
    if listeners:
        return _nlb_wait(ctx, "NLB listener(s) being deleted")
    groups = ({r.provider_id for r in _open_rows(cluster, NLB_GROUP_KIND) if r.provider_id}
              | {g.server_group_id for g in api.find_server_groups_by_tag(cloud.TAG_KEY, tag)})
    groups = {g for g in groups if api.describe_server_group(g) is not None}
    for group_id in sorted(groups):
        job = api.delete_server_group(group_id)
        ctx.say(f"Deleting NLB server group {group_id}")
        memo["jobs"] = [*memo.get("jobs", []), *([job] if job else [])]
    if groups:
        return _nlb_wait(ctx, "NLB server group(s) being deleted")
    # The allow-list's security group leaves the NLB (a job) before the NLB goes, and is
    # deleted once nothing holds it (ECS refuses a group still joined: DependencyViolation).
    security_groups = ({r.provider_id for r in _open_rows(cluster, NLB_SECURITY_GROUP_KIND)
                        if r.provider_id}
                       | {g.security_group_id for g in api.security_groups_by_tag(
                           cloud.TAG_KEY, tag) if not is_node_group(cluster, g.name)})
    leaving = _leave_security_groups(ctx, api, found, security_groups)
    if leaving:
        return _nlb_wait(ctx, "the NLB leaving its security group")
    going = {b for b, lb in found.items() if lb and lb.status == "Deleting"}
    for balancer_id in sorted(balancers - going):
        job = api.delete_nlb(balancer_id)
        ctx.say(f"Deleting NLB {balancer_id}")
        memo["jobs"] = [*memo.get("jobs", []), *([job] if job else [])]
    if balancers:
        return _nlb_wait(ctx, "NLB being deleted")
    if not _delete_security_groups(ctx, api, security_groups):
        return _nlb_wait(ctx, "ECS still seeing the NLB in its security group")
    rows = [*_open_rows(cluster, NLB_LISTENER_KIND), *_open_rows(cluster, NLB_GROUP_KIND),
            *_open_rows(cluster, NLB_KIND), *_open_rows(cluster, NLB_SECURITY_GROUP_KIND)]
    if not rows:
        ctx.say("No NLB was bought for this cluster")
    _close_rows(ctx, rows)
    return Done({"deleted": True})


def _leave_security_groups(ctx: StepContext, api: AliyunCloud, found: dict[str, Nlb | None],
                           security_groups: set[str]) -> bool:
    """Each NLB leaves the panel's security groups it is in; True while that is under way."""
    leaving = False
    for balancer_id, lb in sorted(found.items()):
        if lb is None or lb.status != "Active":
            continue
        ours = sorted(set(lb.security_group_ids) & security_groups)
        if ours:
            ctx.memo["jobs"] = [*ctx.memo.get("jobs", []),
                                api.leave_security_groups(balancer_id, ours)]
            ctx.say(f"NLB {balancer_id} leaving security group(s) {', '.join(ours)}")
            leaving = True
    return leaving


def _delete_security_groups(ctx: StepContext, api: AliyunCloud, ids: set[str]) -> bool:
    """Delete the panel's security groups; False while ECS still counts a just-left NLB as
    a member (DependencyViolation right after the leave job ends): the step waits, then
    tries again, within the same deadline."""
    for group_id in sorted(ids):
        try:
            deleted = api.delete_security_group(group_id)
        except StepError as exc:
            if exc.code != "DependencyViolation":
                raise
            ctx.say(f"Security group {group_id} is still in use ({exc.code}); trying again")
            return False
        if deleted:
            ctx.say(f"Deleted security group {group_id} (the API's allow-list)")
        else:
            ctx.say(f"Security group {group_id} was already gone")
    return True


def _nlb_wait(ctx: StepContext, what: str) -> Outcome:
    ctx.memo.setdefault("deadline", time.time() + NLB_DELETE_TIMEOUT_SECONDS)
    if time.time() > ctx.memo["deadline"]:
        return Fail(f"{what} for over {NLB_DELETE_TIMEOUT_SECONDS // 60} minutes; check the "
                    "NLB console, then press Retry.")
    return Wait(cloud.poll_seconds(), what)


def _rds_ids(api: AliyunCloud, cluster: Cluster, rows: list) -> set[str]:
    tagged = {i.instance_id for i in api.find_rds_by_tag(cloud.TAG_KEY, str(cluster.code))}
    return {row.provider_id for row in rows if row.provider_id} | tagged


@step_handler("destroy.rds")
def delete_rds(ctx: StepContext) -> Outcome:
    """DeleteDBInstance, then wait until DescribeDBInstanceAttribute no longer finds it."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    rows = _open_rows(cluster, RDS_KIND)
    waiting = []
    for instance_id in sorted(_rds_ids(api, cluster, rows)):
        instance = api.describe_rds(instance_id)
        if instance is None:
            ctx.say(f"RDS {instance_id} is gone")
            continue
        if instance.status == "Deleting":
            waiting.append(f"RDS {instance_id} is being deleted")
        elif instance.running:
            api.delete_rds(instance_id)
            ctx.say(f"Deleting RDS {instance_id} (its data goes with it)")
            for row in rows:
                if row.provider_id == instance_id:
                    cloud.record(row, state=ResourceState.DELETING)
            waiting.append(f"RDS {instance_id} is being deleted")
        else:
            # RDS refuses to delete an instance that is still Creating (or restarting).
            waiting.append(f"RDS {instance_id} is {instance.status}; it can be deleted once "
                           "it is Running")
    if waiting:
        ctx.memo.setdefault("deadline", time.time() + RDS_SETTLE_TIMEOUT_SECONDS)
        if time.time() > ctx.memo["deadline"]:
            return Fail(f"{'; '.join(waiting)} for over an hour; check the RDS console, then "
                        "press Retry.")
        return Wait(cloud.poll_seconds(), "; ".join(waiting))
    _close_rows(ctx, rows)
    return Done({})


@step_handler("destroy.finish")
def finish(ctx: StepContext) -> Outcome:
    """Nodes removed, the admin kubeconfig dropped (its API is gone); history stays."""
    cluster = ctx.cluster
    removed = Node.objects.filter(cluster=cluster).present().update(status=NodeStatus.REMOVED)
    Cluster.objects.filter(pk=cluster.pk).update(kubeconfig="", kubeconfig_expires_at=None,
                                                  health=Health.UNKNOWN, health_reasons=[])
    ctx.say(f"{removed} node(s) marked removed; the kubeconfig was dropped")
    if ctx.args.get("keep_database"):
        kept = [row.provider_id for row in _open_rows(cluster, RDS_KIND) if row.provider_id]
        if kept:
            ctx.say(f"RDS {', '.join(kept)} was kept, as asked: it is still billed. Its data "
                    "is encrypted with this cluster's K3s token, which the panel keeps.")
    return Done({"nodes_removed": removed})
