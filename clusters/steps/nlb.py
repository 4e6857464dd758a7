"""The NLB in front of the API servers: bought before K3s (its DNS name and every zone's
address go into each server's tls-san), its server group, servers and TCP 6443 listener
after it.

Every NLB write is an asynchronous job at Alibaba: the handlers send it, record its JobId in
the memo, and return Wait until GetJobStatus says Succeeded and the resource's own status
says it is done (LoadBalancerStatus Active, ServerGroupStatus Available, a server
Available, ListenerStatus Running). A crash anywhere resumes by looking: the NLB, the server
group and the listener are ledger rows bought through `purchase.ensure_bought` (adopted by
tag after a lost answer, ClientToken generations), the servers are compared with the
group's list before any is added.

Client IP preservation is OFF for the API's server group, on purpose: with it on, a backend
that connects to its own NLB is sent to itself with its own address as the source, and the
answer never goes back through the NLB (Alibaba's NLB FAQ: "a backend server cannot access
its own NLB when client IP preservation is enabled"), so a pod on a server node reaching
the API through the NLB would hang. The API needs no client addresses (it authenticates by
certificate and token); the panel still never verifies "through the NLB" from a server host.
"""

from __future__ import annotations

import time

from clusters.adapters import api_balancer, cloud, purchase
from clusters.adapters.aliyun import AliyunCloud, IngressRule
from clusters.adapters.aliyun.nlb import ACTIVE, AVAILABLE, JOB_FAILED, JOB_SUCCEEDED, RUNNING
from clusters.adapters.api_balancer import (
    API_PORT,
    NLB_GROUP_KIND,
    NLB_KIND,
    NLB_LISTENER_KIND,
    NLB_SECURITY_GROUP_KIND,
    NlbBalancer,
)
from clusters.adapters.instance_order import listed_node_ids
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import CloudResource, Cluster, ResourceState, SlbAddressType
from clusters.steps.ecs import security_group_name as node_group_name
from clusters.steps.slb import allowed_cidrs, backend_servers

CREATE_FAILED = "CreateFailed"  # LoadBalancerStatus of a creation the cloud gave up on
PRESERVE_CLIENT_IP = False  # see the module docstring: hairpin from a backend must work
SETTLE_TIMEOUT_SECONDS = 600
HEALTHY_TIMEOUT_SECONDS = 300


def zone_pairs(cluster: Cluster) -> list[tuple[str, str]]:
    """(zone, vSwitch) of every zone the NLB answers in: at least two (NLB requires two
    zones where the region has two; the wizard explains and refuses fewer)."""
    pairs = [(z.get("zone", ""), z.get("vswitch_id", "")) for z in cluster.nlb_zones or []]
    pairs = [(zone, vswitch) for zone, vswitch in pairs if zone and vswitch]
    if len({zone for zone, _ in pairs}) < 2:
        raise PermanentError("An NLB needs a vSwitch in at least two zones; this cluster has "
                             f"{len(pairs)}. Choose them in the wizard (or use a CLB).")
    return pairs


def address_type(cluster: Cluster) -> str:
    return "Internet" if cluster.slb_address_type == SlbAddressType.INTERNET else "Intranet"


def nlb_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """How the NLB is bought: by tag (ListLoadBalancers) or CreateLoadBalancer."""
    def find(key: str, value: str) -> list[str]:
        return [lb.load_balancer_id for lb in api.find_nlb_by_tag(key, value)]

    def create(token: str) -> purchase.Bought:
        balancer_id = api.create_nlb(
            name=f"k3s-{cluster.name}"[:128], vpc_id=cluster.vpc_id,
            address_type=address_type(cluster), zones=zone_pairs(cluster),
            client_token=token, tags=cloud.tags(cluster))
        return purchase.Bought(balancer_id)

    return purchase.Purchase("NLB", "CreateLoadBalancer", find, create)


def _settle_deadline(ctx: StepContext, key: str) -> float:
    return float(ctx.memo.setdefault(key, time.time() + SETTLE_TIMEOUT_SECONDS))


def _job_busy(api: AliyunCloud, job: str, what: str) -> bool:
    """True while `job` runs; PermanentError once Alibaba says it failed."""
    if not job:
        return False
    status = api.job_status(job)
    if status == JOB_FAILED:
        raise PermanentError(f"The NLB job {job} ({what}) failed at Alibaba Cloud; see the "
                             "NLB console, then press Retry.")
    return status != JOB_SUCCEEDED


@step_handler("nlb.create")
def create(ctx: StepContext) -> Outcome:
    """CreateLoadBalancer in two zones first, then wait until it is Active: its DNS name and
    zone addresses are recorded for every server's tls-san and the kubeconfig."""
    cluster = ctx.cluster
    allowed_cidrs(cluster)  # an Internet-facing NLB without an allow-list is refused here
    api = cloud.cloud_for(cluster)
    resource = cloud.intend(ctx, NLB_KIND)
    if purchase.ensure_bought(ctx, resource, nlb_purchase(api, cluster),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created NLB {resource.provider_id} ({address_type(cluster)}, pay-as-you-go) "
                f"in {', '.join(zone for zone, _ in zone_pairs(cluster))}")
    balancer = api.describe_nlb(resource.provider_id)
    if balancer is None:
        raise PermanentError(f"NLB {resource.provider_id} disappeared; check the NLB console.")
    if balancer.status == CREATE_FAILED:
        raise PermanentError(
            f"Alibaba Cloud could not create NLB {balancer.load_balancer_id} (status "
            "CreateFailed); it can only be deleted: destroy the cluster or delete it in the NLB "
            "console, then create again.")
    if balancer.status != ACTIVE or not balancer.dns_name or not balancer.addresses:
        if time.time() > _settle_deadline(ctx, "active_deadline"):
            return Fail(f"NLB {balancer.load_balancer_id} is still {balancer.status} after "
                        f"{SETTLE_TIMEOUT_SECONDS} s; check the NLB console, then Retry.")
        return Wait(cloud.poll_seconds(),
                    f"NLB {balancer.load_balancer_id} is {balancer.status or 'provisioning'}")
    addresses = balancer.addresses
    cloud.record(resource, dns_name=balancer.dns_name, addresses=addresses)
    Cluster.objects.filter(pk=cluster.pk).update(api_dns_name=balancer.dns_name,
                                                  api_addresses=addresses)
    cluster.api_dns_name, cluster.api_addresses = balancer.dns_name, addresses
    ctx.say(f"NLB {balancer.load_balancer_id} is Active: {balancer.dns_name} "
            f"({', '.join(addresses)})")
    return Done({"load_balancer_id": balancer.load_balancer_id,
                 "dns_name": balancer.dns_name, "addresses": addresses})


def nlb_id(cluster: Cluster) -> str:
    found = api_balancer.ledger_id(cluster, NLB_KIND)
    if not found:
        raise PermanentError("The NLB has not been created yet.")
    return found


def group_purchase(api: AliyunCloud, cluster: Cluster, jobs: dict) -> purchase.Purchase:
    """The API's server group: found by tag (ListServerGroups) or CreateServerGroup."""
    def find(key: str, value: str) -> list[str]:
        return [g.server_group_id for g in api.find_server_groups_by_tag(key, value)]

    def create(token: str) -> purchase.Bought:
        group, job = api.create_server_group(
            name=f"k3s-{cluster.name}-api"[:128], vpc_id=cluster.vpc_id, port=API_PORT,
            client_token=token, preserve_client_ip=PRESERVE_CLIENT_IP,
            tags=cloud.tags(cluster))
        jobs["group_job"] = job
        return purchase.Bought(group, {"job": job, "preserve_client_ip": PRESERVE_CLIENT_IP})

    return purchase.Purchase("NLB server group", "CreateServerGroup", find, create)


def listener_purchase(api: AliyunCloud, cluster: Cluster, balancer_id: str, group: str,
                      jobs: dict) -> purchase.Purchase:
    """The TCP 6443 listener: found among the NLB's listeners (the NLB is this cluster's own
    and a port has one listener) or CreateListener."""
    def find(_key: str, _value: str) -> list[str]:
        return [x.listener_id for x in api.find_listeners(balancer_id)
                if x.port == API_PORT and x.protocol == "TCP"]

    def create(token: str) -> purchase.Bought:
        listener, job = api.create_listener(
            load_balancer_id=balancer_id, server_group_id=group, port=API_PORT,
            client_token=token, tags=cloud.tags(cluster))
        jobs["listener_job"] = job
        return purchase.Bought(listener, {"job": job})

    return purchase.Purchase("NLB listener", "CreateListener", find, create)


def _require_filter(cluster: Cluster, api: AliyunCloud, balancer_id: str,
                    listener_row: CloudResource) -> None:
    """Refuse to create the listener while an NLB that must filter its sources does not:
    a new listener forwards at once, and an NLB in no security group (or in one without the
    Drop rule) admits everyone. The create plan runs nlb.allowlist first, but a run planned
    before that step existed, or a group removed in the console, would reach this point
    without it. Checked until the listener is bought (then it is nlb.allowlist's to keep)."""
    if listener_row.provider_id or (not allowed_cidrs(cluster)
                                    and cluster.slb_address_type != SlbAddressType.INTERNET):
        return
    group = api_balancer.ledger_id(cluster, NLB_SECURITY_GROUP_KIND)
    balancer = api.describe_nlb(balancer_id)
    joined = bool(group) and balancer is not None and group in balancer.security_group_ids
    rules = api.ingress_rules(group) if joined else None
    if not joined or not rules or DENY_ALL not in rules:
        raise PermanentError(
            f"NLB {balancer_id} must filter who reaches the API (an allow-list is set or it is "
            f"Internet-facing), but the panel's security group {group or '(none yet)'} is not "
            "joined to it with its rules, so the listener is not created: it would admit "
            "every source. Press Retry from the allow-list step (or Retry the run: it re-joins "
            "the group).")


@step_handler("nlb.listener")
def listener(ctx: StepContext) -> Outcome:
    """Server group (TCP health check on 6443), the live servers by ECS instance id, the TCP
    6443 listener, every server healthy: each an async job waited for, one phase a visit."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    memo = ctx.memo
    balancer_id = nlb_id(cluster)
    servers = backend_servers(cluster, listed_node_ids(cluster, ctx.args))
    if "" in servers:
        raise PermanentError(f"Server {servers['']} has no ECS instance id (preflight records "
                             "it); retry from preflight.")
    # 1. the server group, Available
    group_row = cloud.intend(ctx, NLB_GROUP_KIND)
    if purchase.ensure_bought(ctx, group_row, group_purchase(api, cluster, memo),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created NLB server group {group_row.provider_id} (TCP, ECS instances, TCP "
                f"health check on {API_PORT}, client IP preservation off)")
    group = api.describe_server_group(group_row.provider_id)
    if group is None:
        raise PermanentError(f"NLB server group {group_row.provider_id} disappeared; check "
                             "the NLB console, then press Retry.")
    if _job_busy(api, memo.get("group_job", ""), "server group") or group.status != AVAILABLE:
        return _wait(ctx, "group_deadline", f"server group {group.server_group_id} is "
                     f"{group.status or 'being created'}")
    # 2. the servers, Available
    balancer = NlbBalancer(cluster, api)
    listed = {s.server_id for s in api.list_servers(group.server_group_id)}
    missing = {i: ip for i, ip in servers.items() if i not in listed}
    if missing:
        memo["server_jobs"] = [*memo.get("server_jobs", []), *balancer.add(missing)]
        ctx.say(f"Adding {', '.join(missing.values())} to {group.server_group_id}")
    settling = balancer.pending(memo.get("server_jobs", []))
    if settling:
        return _wait(ctx, "servers_deadline", settling)
    # 3. the listener, Running
    listener_row = cloud.intend(ctx, NLB_LISTENER_KIND)
    _require_filter(cluster, api, balancer_id, listener_row)
    if purchase.ensure_bought(
            ctx, listener_row,
            listener_purchase(api, cluster, balancer_id, group.server_group_id, memo),
            state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created TCP listener {API_PORT} ({listener_row.provider_id}) on "
                f"{balancer_id} → {group.server_group_id}")
    found = api.describe_listener(listener_row.provider_id)
    if found is None:
        raise PermanentError(f"NLB listener {listener_row.provider_id} disappeared; check the "
                             "NLB console, then press Retry.")
    if found.server_group_id and found.server_group_id != group.server_group_id:
        raise PermanentError(f"Listener {found.listener_id} forwards to {found.server_group_id}"
                             f", not the API's server group {group.server_group_id}; fix it "
                             "in the NLB console, then press Retry.")
    if _job_busy(api, memo.get("listener_job", ""), "listener") or found.status != RUNNING:
        return _wait(ctx, "listener_deadline", f"listener {found.listener_id} is "
                     f"{found.status or 'being created'}")
    # 4. every server healthy
    memo.setdefault("healthy_deadline", time.time() + HEALTHY_TIMEOUT_SECONDS)
    health = balancer.health()
    unhealthy = [ip for i, ip in servers.items() if not health.get(i)]
    if unhealthy:
        if time.time() > memo["healthy_deadline"]:
            return Fail(f"NLB health checks still fail for {', '.join(unhealthy)} after "
                        f"{HEALTHY_TIMEOUT_SECONDS} s; is port {API_PORT} reachable from the "
                        "NLB (security group)?")
        return Wait(cloud.poll_seconds(), f"NLB health: waiting for {', '.join(unhealthy)}")
    ctx.say(f"NLB {balancer_id}: every server is healthy on {API_PORT} "
            f"({cluster.api_dns_name})")
    return Done({"backends": sorted(servers.values()), "server_group": group.server_group_id,
                 "listener": found.listener_id})


def _wait(ctx: StepContext, deadline_key: str, what: str) -> Outcome:
    if time.time() > _settle_deadline(ctx, deadline_key):
        return Fail(f"NLB: {what} after {SETTLE_TIMEOUT_SECONDS} s; check the NLB console, "
                    "then press Retry.")
    return Wait(cloud.poll_seconds(), f"NLB: {what}")


# ---- the API allow-list: a security group joined to the NLB -----------------------------
# Alibaba's NLB guide: an NLB in no security group, or in one without a Drop rule, accepts
# every source on its listeners. So the allow-list is an Accept rule per allowed CIDR above
# one Drop rule for every source, all on TCP 6443: an empty list lets nobody in.
ALLOW_PRIORITY = 1
DENY_PRIORITY = 100
DENY_ALL = IngressRule("0.0.0.0/0", f"{API_PORT}/{API_PORT}", "Drop", DENY_PRIORITY)
RULE_DESCRIPTION = "k3s API allow-list"


def wanted_rules(cidrs: list[str]) -> list[IngressRule]:
    return [IngressRule(cidr, f"{API_PORT}/{API_PORT}", "Accept", ALLOW_PRIORITY)
            for cidr in cidrs] + [DENY_ALL]


def security_group_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-api-{str(cluster.code)[:8]}"[:128]


def security_group_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """The allow-list's security group: found by tag (DescribeSecurityGroups) or
    CreateSecurityGroup in the cluster's VPC (an NLB joins groups of its own VPC only)."""
    def find(key: str, value: str) -> list[str]:
        # Not the nodes' group (steps/ecs.py), which carries the same cluster tag.
        return [g.security_group_id for g in api.security_groups_by_tag(key, value)
                if g.name != node_group_name(cluster)]

    def create(token: str) -> purchase.Bought:
        name = security_group_name(cluster)
        return purchase.Bought(api.create_security_group(
            name=name, vpc_id=cluster.vpc_id, client_token=token, tags=cloud.tags(cluster),
            description=f"API allow-list of the NLB of k3s cluster {cluster.name}"[:256]),
            {"name": name})

    return purchase.Purchase("security group", "CreateSecurityGroup", find, create)


@step_handler("nlb.allowlist")
def allowlist(ctx: StepContext) -> Outcome:
    """The security group holding exactly the allow-list, joined to the NLB before its
    listener exists (CreateListener has no "created stopped": a new listener forwards at
    once, so the filter must already be there). Also the step of an allow-list change.

    The Drop rule for everyone else goes in first and is never revoked; then the Accept rules
    no longer listed are revoked (with the Drop rule there, revoking only narrows), then the
    new ones added. So a change never passes through "open to everyone" nor through "old and
    new list at once", and a group at its 200-rule quota (199 entries + Drop) can swap its
    whole list.
    """
    cluster = ctx.cluster
    wanted = allowed_cidrs(cluster)
    if not wanted and cluster.slb_address_type != SlbAddressType.INTERNET \
            and not api_balancer.ledger_id(cluster, NLB_SECURITY_GROUP_KIND):
        return Skip("no allow-list: an intranet NLB is reached from the VPC only")
    api = cloud.cloud_for(cluster)
    balancer_id = nlb_id(cluster)
    resource = cloud.intend(ctx, NLB_SECURITY_GROUP_KIND)
    if purchase.ensure_bought(ctx, resource, security_group_purchase(api, cluster),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created security group {resource.provider_id} "
                f"({security_group_name(cluster)}) in {cluster.vpc_id}")
    group = resource.provider_id
    rules = api.ingress_rules(group)
    if rules is None:
        raise PermanentError(f"Security group {group} disappeared; check the ECS console "
                             "(Security Groups), then press Retry.")
    rules = [r for r in rules if r.port_range == f"{API_PORT}/{API_PORT}"]
    target = wanted_rules(wanted)
    if DENY_ALL not in rules:
        api.authorize_ingress(group, [DENY_ALL], RULE_DESCRIPTION)
        ctx.say(f"Added to {group} on TCP {API_PORT}: Drop {DENY_ALL.source_cidr} (every "
                "source not listed)")
    extra = [r for r in rules if r not in target]
    if extra:
        api.revoke_ingress(group, extra)
        ctx.say(f"Removed {', '.join(r.source_cidr for r in extra)} from {group}")
    missing = [r for r in target if r not in rules and r != DENY_ALL]
    if missing:
        api.authorize_ingress(group, missing, RULE_DESCRIPTION)
        ctx.say(f"Added to {group} on TCP {API_PORT}: "
                + ", ".join(f"{r.policy} {r.source_cidr}" for r in missing))
    # joined to the NLB, the job waited for
    memo = ctx.memo
    if _job_busy(api, memo.get("join_job", ""), "join the security group"):
        return _wait(ctx, "join_deadline", f"joining {group} to {balancer_id}")
    balancer = api.describe_nlb(balancer_id)
    if balancer is None:
        raise PermanentError(f"NLB {balancer_id} disappeared; check the NLB console.")
    if group not in balancer.security_group_ids:
        if memo.get("join_job"):
            raise PermanentError(f"The job joining {group} to NLB {balancer_id} succeeded but "
                                 "the NLB does not list it; check the NLB console, then Retry.")
        memo["join_job"] = api.join_security_groups(balancer_id, [group])
        ctx.say(f"Joining security group {group} to NLB {balancer_id}")
        return _wait(ctx, "join_deadline", f"joining {group} to {balancer_id}")
    ctx.say(f"API allow-list ({group} on {balancer_id}): {', '.join(wanted) or 'nobody'}")
    return Done({"security_group_id": group, "entries": wanted})
