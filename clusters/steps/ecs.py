"""ECS steps for the hosts the panel buys: the cluster's own security group (ecs.security_group)
and its removal at destroy (ecs.delete_security_group).

The group is a ledger row bought through `purchase.ensure_bought` (CreateSecurityGroup with
the row's ClientToken, recorded before the call; adopted by the cluster's tag and the group's
name after a lost answer), and its rules are exactly `clusters.k3s.firewall.node_rules` of the
cluster (K3s's networking requirements: see that module). AuthorizeSecurityGroup carries a
ClientToken too, recorded in the row first and derived from the rules it sends, so a re-sent
call with the same rules is the same request, and a changed rule set is a new one.

The NLB's allow-list group (steps/nlb.py) carries the same cluster tag: the two are told
apart by name, and neither step adopts or deletes the other's.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time

from django.conf import settings

from clusters.adapters import cloud, host_addresses, purchase
from clusters.adapters.aliyun import AliyunCloud, IngressRule
from clusters.core.errors import PermanentError, StepError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.firewall import REQUIREMENTS_URL, FirewallError, FirewallSpec, node_rules
from clusters.models import Cluster, LoadBalancerKind, ResourceState, SlbAddressType

ECS_SECURITY_GROUP_KIND = "ecs_security_group"
# The row's attribute holding the ClientToken of the rules last sent (a key, not a secret).
RULES_TOKEN = "rules_token"  # noqa: S105
DELETE_TIMEOUT_SECONDS = 15 * 60


def security_group_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-nodes-{str(cluster.code)[:8]}"[:128]


def is_node_group(cluster: Cluster, name: str) -> bool:
    """Whether a tagged group of this cluster is its nodes' group (not the NLB's)."""
    return name == security_group_name(cluster)


def panel_ssh_sources(vpc_cidr: str) -> tuple[str, ...]:
    """Where the hosts see the panel's SSH come from: PANEL_SSH_SOURCE_CIDRS, or else the
    panel's own IPv4 addresses inside the VPC (a panel running in it), each a /32."""
    configured = tuple(getattr(settings, "PANEL_SSH_SOURCE_CIDRS", []) or ())
    if configured:
        return configured
    network = ipaddress.IPv4Network(vpc_cidr, strict=False)
    return tuple(sorted(f"{a}/32" for a in host_addresses.panel_addresses()
                        if isinstance(a, ipaddress.IPv4Address) and a in network))


def firewall_spec(cluster: Cluster, vpc_cidr: str) -> FirewallSpec:
    return FirewallSpec(
        vpc_cidr=vpc_cidr, panel_cidrs=panel_ssh_sources(vpc_cidr),
        internet_api=cluster.slb_address_type == SlbAddressType.INTERNET,
        api_allowed_cidrs=tuple(cluster.api_allowed_cidrs or ()),
        clb=cluster.load_balancer_kind != LoadBalancerKind.NLB)


def wanted_rules(cluster: Cluster, vpc_cidr: str, group_id: str) -> dict[IngressRule, str]:
    """The group's rules as the adapter writes them, each with its description."""
    try:
        rules = node_rules(firewall_spec(cluster, vpc_cidr))
    except FirewallError as exc:
        raise PermanentError(
            f"{exc}. Set PANEL_SSH_SOURCE_CIDRS to the address the hosts see the panel's SSH "
            "come from (for a panel outside the VPC: its public address, /32), then press "
            f"Retry. The rules follow K3s's networking requirements ({REQUIREMENTS_URL})."
        ) from None
    return {IngressRule(rule.source_cidr if not rule.from_group else "", rule.port_range,
                        "Accept", 1, rule.protocol, group_id if rule.from_group else ""):
            rule.why for rule in rules}


def _vpc_cidr(api: AliyunCloud, cluster: Cluster) -> str:
    vpc = next((v for v in api.describe_vpcs() if v.vpc_id == cluster.vpc_id), None)
    if vpc is None or not vpc.cidr:
        raise PermanentError(f"VPC {cluster.vpc_id} is not in region {cluster.region} any "
                             "more (DescribeVpcs); check the VPC console.")
    return vpc.cidr


def group_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """Found by the cluster's tag and the group's name, or CreateSecurityGroup in its VPC."""
    def find(key: str, value: str) -> list[str]:
        return [g.security_group_id for g in api.security_groups_by_tag(key, value)
                if is_node_group(cluster, g.name)]

    def create(token: str) -> purchase.Bought:
        name = security_group_name(cluster)
        return purchase.Bought(api.create_security_group(
            name=name, vpc_id=cluster.vpc_id, client_token=token, tags=cloud.tags(cluster),
            description=f"Nodes of k3s cluster {cluster.name}: what K3s needs "
                        f"({REQUIREMENTS_URL})"[:256]), {"name": name})

    return purchase.Purchase("security group", "CreateSecurityGroup", find, create)


def _rules_token(client_token: str, rules: list[IngressRule]) -> str:
    digest = hashlib.sha256(repr(sorted(map(repr, rules))).encode()).hexdigest()[:20]
    return f"{client_token[:40]}-r{digest}"


def _describe(rule: IngressRule) -> str:
    """"UDP 8472 from group sg-…", "TCP 2379-2380 from 10.0.0.0/8"."""
    low, _, high = rule.port_range.partition("/")
    ports = low if low == high else f"{low}-{high}"
    source = f"group {rule.source_group_id}" if rule.source_group_id else rule.source_cidr
    return f"{rule.protocol} {ports} from {source}"


@step_handler("ecs.security_group")
def security_group(ctx: StepContext) -> Outcome:
    """The nodes' security group, with exactly K3s's rules (clusters/k3s/firewall.py)."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    vpc_cidr = _vpc_cidr(api, cluster)
    wanted_rules(cluster, vpc_cidr, "sg-check")  # refuse before buying anything
    resource = cloud.intend(ctx, ECS_SECURITY_GROUP_KIND)
    if purchase.ensure_bought(ctx, resource, group_purchase(api, cluster),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created security group {resource.provider_id} "
                f"({security_group_name(cluster)}) in {cluster.vpc_id}")
    group = resource.provider_id
    wanted = wanted_rules(cluster, vpc_cidr, group)
    current = api.ingress_rules(group)
    if current is None:
        raise PermanentError(f"Security group {group} disappeared; check the ECS console "
                             "(Security Groups), then press Retry.")
    missing = [rule for rule in wanted if rule not in current]
    if missing:
        token = _rules_token(resource.client_token, missing)
        cloud.record(resource, **{RULES_TOKEN: token})  # intent first, then the call
        api.authorize_ingress(group, missing, client_token=token, descriptions=wanted)
        for rule in missing:
            ctx.say(f"Allowed into {group}: {_describe(rule)} ({wanted[rule]})")
    extra = [rule for rule in current if rule not in wanted]
    for rule in extra:
        ctx.say(f"Note: {group} also holds a rule the panel did not write: "
                f"{rule.policy} {_describe(rule)}; it is left as it is")
    ctx.say(f"Security group {group}: {len(wanted)} rules, as K3s needs "
            f"({REQUIREMENTS_URL}); every other inbound source is refused")
    return Done({"security_group_id": group, "rules": [_describe(r) for r in wanted]})


@step_handler("ecs.delete_security_group")
def delete_security_group(ctx: StepContext) -> Outcome:
    """Delete the nodes' group the panel bought, once no instance is in it any more (ECS
    answers DependencyViolation while one is: the step waits for the instances to go)."""
    cluster = ctx.cluster
    rows = list(cluster.resources.filter(kind=ECS_SECURITY_GROUP_KIND,
                                         deleted_at__isnull=True))
    if not rows:
        return Skip("the panel bought no security group for this cluster's nodes")
    api = cloud.cloud_for(cluster)
    ids = {row.provider_id for row in rows if row.provider_id}
    ids |= {g.security_group_id for g in api.security_groups_by_tag(cloud.TAG_KEY,
                                                                     str(cluster.code))
            if is_node_group(cluster, g.name)}
    for group_id in sorted(ids):
        try:
            deleted = api.delete_security_group(group_id)
        except StepError as exc:
            if exc.code != "DependencyViolation":
                raise
            ctx.memo.setdefault("deadline", time.time() + DELETE_TIMEOUT_SECONDS)
            if time.time() > ctx.memo["deadline"]:
                return Fail(f"Security group {group_id} is still in use ({exc.code}, "
                            f"RequestId {exc.request_id}) after "
                            f"{DELETE_TIMEOUT_SECONDS // 60} minutes: remove what still uses "
                            "it in the ECS console, then press Retry.")
            return Wait(cloud.poll_seconds(), f"{group_id} still has members")
        ctx.say(f"Deleted security group {group_id}" if deleted
                else f"Security group {group_id} was already gone")
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    return Done({"deleted": sorted(ids)})
