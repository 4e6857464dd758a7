"""The SLB in front of the API servers: bought before K3s, listener started after it."""

from __future__ import annotations

import time

from clusters.adapters import api_balancer, cloud, purchase
from clusters.adapters.aliyun import PAY_BY_LCU, AliyunCloud, SlbSpec
from clusters.adapters.instance_order import listed_node_ids
from clusters.core import allowlist
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster, ResourceState, SlbAddressType
from clusters.steps.node import target_node

SLB_KIND = "slb"
ACL_KIND = allowlist.LEDGER_KIND  # the CLB ACL that whitelists the API's sources
ACL_COMMENT = "k3s-panel"
API_PORT = 6443
HEALTHY_TIMEOUT_SECONDS = 300


def slb_id(cluster: Cluster) -> str:
    resource = cluster.resources.filter(kind=SLB_KIND).exclude(provider_id="").first()
    if resource is None:
        raise PermanentError("The SLB has not been created yet.")
    return resource.provider_id


def slb_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """How the API load balancer is bought: by tag (DescribeLoadBalancers) or
    CreateLoadBalancer."""
    def find(key: str, value: str) -> list[str]:
        return [lb.load_balancer_id for lb in api.find_slb_by_tag(key, value)]

    def create(token: str) -> purchase.Bought:
        created = api.create_slb(
            SlbSpec(name=f"k3s-{cluster.name}"[:80], vswitch_id=cluster.vswitch_id,
                    vpc_id=cluster.vpc_id, address_type=cluster.slb_address_type,
                    master_zone_id=cluster.zone),
            client_token=token, tags=cloud.tags(cluster),
        )
        return purchase.Bought(created.load_balancer_id, {"address": created.address})

    return purchase.Purchase("SLB", "CreateLoadBalancer", find, create)


@step_handler("slb.create")
def create(ctx: StepContext) -> Outcome:
    """CreateLoadBalancer first, so its address is in every server's certificate.

    A new CLB is always pay-by-LCU (the only kind sold since 2025-06-01). A cluster whose
    ledger already holds a pay-by-specification CLB (bought before) keeps using it.
    """
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    resource = cloud.intend(ctx, SLB_KIND)
    acquired = purchase.ensure_bought(ctx, resource, slb_purchase(api, cluster),
                                      state=ResourceState.PRESENT)
    balancer = api.describe_slb(resource.provider_id)
    if balancer is None:
        raise PermanentError(f"SLB {resource.provider_id} disappeared; check the SLB console.")
    if acquired is purchase.Acquired.CREATED:
        ctx.say(f"Created SLB {balancer.load_balancer_id} at {balancer.address} "
                f"({cluster.slb_address_type}, pay-as-you-go, pay-by-LCU)")
    if "instance_charge_type" not in resource.attributes:
        # Just bought or adopted (or the describe after it failed last time): recorded as the
        # cloud describes it; the panel buys pay-by-LCU only, so an adopted one is too.
        charge = balancer.instance_charge_type or PAY_BY_LCU
        spec = "" if charge == PAY_BY_LCU else balancer.spec
        cloud.record(resource, address=balancer.address, instance_charge_type=charge,
                     spec=spec)
        Cluster.objects.filter(pk=cluster.pk).update(slb_charge_type=charge, slb_spec=spec)
        cluster.slb_charge_type, cluster.slb_spec = charge, spec
    Cluster.objects.filter(pk=cluster.pk).update(slb_address=balancer.address)
    ctx.cluster.slb_address = balancer.address
    return Done({"load_balancer_id": balancer.load_balancer_id, "address": balancer.address,
                 "instance_charge_type": balancer.instance_charge_type})


def allowed_cidrs(cluster: Cluster) -> list[str]:
    """The cluster's API allow-list, re-checked; an Internet-facing API must have one.

    CLB forwards every source when a listener's whitelist ACL has no entries (CLB access
    control docs), so "nobody until the user decides" cannot be an empty ACL: an Internet
    cluster without entries is refused here, before any listener exists.
    """
    try:
        cidrs = allowlist.parse(cluster.api_allowed_cidrs or [],
                                limit=allowlist.max_entries(cluster.load_balancer_kind))
    except allowlist.AllowListError as exc:
        raise PermanentError(f"The API allow-list has an entry that is not a CIDR block: "
                             f"{exc}. Fix it on the cluster, then press Retry.") from None
    if cluster.slb_address_type == SlbAddressType.INTERNET and not cidrs:
        raise PermanentError("This Internet-facing SLB has no allowed source CIDR: its API "
                             "would be open to the whole Internet, so the listener is not "
                             "created. Give the CIDRs allowed to reach the API, then Retry.")
    return cidrs


def acl_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """How the API's ACL is bought: CreateAccessControlList takes no ClientToken, so one
    bought but never recorded is found by the cluster's tag, or by its name (unique in the
    region, and carrying the cluster's code)."""
    name = acl_name(cluster)

    def find(key: str, value: str) -> list[str]:
        return sorted(set(api.find_acls_by_tag(key, value)) | set(api.find_acls_by_name(name)))

    def create(_token: str) -> purchase.Bought:
        return purchase.Bought(api.create_acl(name, tags=cloud.tags(cluster)), {"name": name})

    return purchase.Purchase("SLB access control list", "CreateAccessControlList", find, create)


def acl_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-api-{str(cluster.code)[:8]}"[:80]


def acl_id(cluster: Cluster) -> str:
    """The ledger's ACL for the API listener, or "" when this cluster has none."""
    row = cluster.resources.filter(kind=ACL_KIND, state=ResourceState.PRESENT) \
        .exclude(provider_id="").first()
    return row.provider_id if row else ""


@step_handler("slb.acl")
def access_control(ctx: StepContext) -> Outcome:
    """The ACL holding exactly the allowed CIDRs, before the listener that it guards exists.

    Entries are added before any is removed, so the list is never empty on the way (an empty
    whitelist forwards everyone); the panel owns this ACL, so entries it no longer wants go.
    """
    cluster = ctx.cluster
    wanted = allowed_cidrs(cluster)
    if not wanted:
        return Skip("no allow-list: an intranet SLB is reached from the VPC only")
    api = cloud.cloud_for(cluster)
    resource = cloud.intend(ctx, ACL_KIND)
    if purchase.ensure_bought(ctx, resource, acl_purchase(api, cluster),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created access control list {resource.provider_id} ({acl_name(cluster)})")
    acl = api.describe_acl(resource.provider_id)
    if acl is None:
        raise PermanentError(f"Access control list {resource.provider_id} disappeared; check "
                             "the SLB console (Access Control), then press Retry.")
    missing = [cidr for cidr in wanted if cidr not in acl.entries]
    if missing:
        api.add_acl_entries(acl.acl_id, missing, ACL_COMMENT)
        ctx.say(f"Allowed {', '.join(missing)} in {acl.acl_id}")
    extra = [entry for entry in acl.entries if entry not in wanted]
    if extra:
        api.remove_acl_entries(acl.acl_id, extra)
        ctx.say(f"Removed {', '.join(extra)} from {acl.acl_id}")
    ctx.say(f"API allow-list {acl.acl_id}: {', '.join(wanted)}")
    return Done({"acl_id": acl.acl_id, "entries": wanted})


def backend_servers(cluster: Cluster, node_ids: list[int] | None = None) -> dict[str, str]:
    """ECS instance id -> IP of the servers the SLB should send the API to: the live ones (a
    server being removed has left the SLB and must not be put back by another run), or only
    `node_ids` of them (an embedded-etcd create: the founding server alone, before the
    others join through the load balancer)."""
    servers = cluster.nodes.live().servers()
    if node_ids is not None:
        servers = servers.filter(pk__in=node_ids)
    return dict(servers.values_list("ecs_instance_id", "private_ip"))


@step_handler("slb.listener")
def listener(ctx: StepContext) -> Outcome:
    """TCP 6443 to every server by ECS instance id, health-checked, started, all normal."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    balancer_id = slb_id(cluster)
    servers = backend_servers(cluster, listed_node_ids(cluster, ctx.args))
    if "" in servers:
        raise PermanentError(f"Server {servers['']} has no ECS instance id (preflight records "
                             "it); retry from preflight.")
    guard = acl_id(cluster)
    memo = ctx.memo  # progress survives throttling: a retry resumes after the last success
    if not memo.get("listener"):
        existing = api.describe_tcp_listener(balancer_id, API_PORT)
        if existing is None:
            # A new listener is never open to more than the allow-list (refused without one
            # for an Internet SLB); one made before the panel had allow-lists stays as it is.
            if allowed_cidrs(cluster) and not guard:
                raise PermanentError("The API allow-list is set but its access control list "
                                     "is not recorded; retry from the allow-list step.")
            api.create_tcp_listener(balancer_id, API_PORT, API_PORT, whitelist_acl_id=guard)
            ctx.say(f"Created TCP listener {API_PORT} with a TCP health check"
                    + (f", whitelisted by {guard}" if guard else ""))
        elif guard and (existing.acl_status, existing.acl_type, existing.acl_id) != (
                "on", "white", guard):
            raise PermanentError(
                f"TCP listener {API_PORT} of {balancer_id} exists without the API's whitelist "
                f"{guard} (access control {existing.acl_status}); the panel does not open an "
                "API to more than the allow-list: delete that listener in the SLB console or "
                "bind the whitelist to it, then press Retry.")
        elif not guard and existing.acl_status != "on" \
                and cluster.slb_address_type == SlbAddressType.INTERNET:
            ctx.say(f"Listener {API_PORT} of {balancer_id} has no access control: this "
                    "Internet-facing API answers every source (it was made before the panel "
                    "had allow-lists)")
        memo["listener"] = True
    if memo.get("backends") != sorted(servers):
        balancer = api.describe_slb(balancer_id)
        present = {server.server_id for server in balancer.backend_servers} if balancer else set()
        missing = [instance for instance in servers if instance not in present]
        if missing:
            api.add_backend_servers(balancer_id, missing)
            ctx.say(f"Added backends: {', '.join(servers[i] for i in missing)}")
        memo["backends"] = sorted(servers)
    if not memo.get("started"):
        state = api.describe_tcp_listener(balancer_id, API_PORT)
        if state is not None and state.status == "stopped":
            api.start_listener(balancer_id, API_PORT)
            ctx.say(f"Started listener {API_PORT}")
        memo["started"] = True
    ctx.memo.setdefault("deadline", time.time() + HEALTHY_TIMEOUT_SECONDS)
    health = {entry.server_id: entry.status for entry in api.describe_health_status(balancer_id)}
    unhealthy = [servers[i] for i in servers if health.get(i) != "normal"]
    if unhealthy:
        if time.time() > ctx.memo["deadline"]:
            return Fail(f"SLB health checks still fail for {', '.join(unhealthy)} after "
                        f"{HEALTHY_TIMEOUT_SECONDS} s; is port {API_PORT} reachable from the "
                        "SLB (security group)?")
        return Wait(cloud.poll_seconds(), f"SLB health: waiting for {', '.join(unhealthy)}")
    ctx.say(f"SLB {balancer_id}: every server is healthy on {API_PORT}")
    return Done({"backends": sorted(servers.values())})


@step_handler("slb.detach")
def detach_from_slb(ctx: StepContext) -> Outcome:
    """Take this server out of the API's load balancer (CLB or NLB: `api_balancer`) and wait
    until it has drained, so no request is routed to it when K3s stops. The name stays
    `slb.detach` for the runs that already carry it."""
    node = target_node(ctx)
    balancer = api_balancer.for_cluster(ctx.cluster)
    if not balancer.ident or not node.ecs_instance_id:
        return Skip(f"the server is not behind an {balancer.what}")
    if "removed" not in ctx.memo:
        attached = balancer.members()
        if node.ecs_instance_id in attached:
            ctx.memo["jobs"] = balancer.remove({node.ecs_instance_id: node.private_ip})
            ctx.say(f"Removed {node.private_ip} ({node.ecs_instance_id}) from {balancer.what} "
                    f"{balancer.ident}")
        else:
            ctx.say(f"{node.private_ip} was not an {balancer.what} backend any more")
        ctx.memo["removed"] = True
    settling = balancer.pending(ctx.memo.get("jobs", []))
    if settling:
        return Wait(cloud.poll_seconds(), f"{node.private_ip}: draining ({settling})")
    left = sorted(balancer.members() - {node.ecs_instance_id})
    ctx.say(f"{balancer.what} {balancer.ident} backends now: {', '.join(left) or 'none'}")
    return Done({"backends": left})
