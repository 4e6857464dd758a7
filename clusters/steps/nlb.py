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
from clusters.adapters.aliyun import AliyunCloud
from clusters.adapters.aliyun.nlb import ACTIVE, AVAILABLE, JOB_FAILED, JOB_SUCCEEDED, RUNNING
from clusters.adapters.api_balancer import (
    API_PORT,
    NLB_GROUP_KIND,
    NLB_KIND,
    NLB_LISTENER_KIND,
    NlbBalancer,
)
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Fail, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster, ResourceState, SlbAddressType
from clusters.steps.slb import backend_servers

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
    if cluster.slb_address_type == SlbAddressType.INTERNET or cluster.api_allowed_cidrs:
        # The API allow-list is a CLB access control list; an NLB filters sources with ECS
        # security groups joined to it (LoadBalancerJoinSecurityGroup), which the panel does
        # not manage yet (the wizard refuses too).
        raise PermanentError("An NLB does not carry the API allow-list yet (it is a CLB access "
                             "control list), and an Internet-facing NLB would leave the API "
                             "open to the whole Internet: choose an intranet NLB without an "
                             "allow-list, or a CLB.")
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


@step_handler("nlb.listener")
def listener(ctx: StepContext) -> Outcome:
    """Server group (TCP health check on 6443), the live servers by ECS instance id, the TCP
    6443 listener, every server healthy: each an async job waited for, one phase a visit."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    memo = ctx.memo
    balancer_id = nlb_id(cluster)
    servers = backend_servers(cluster)
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
