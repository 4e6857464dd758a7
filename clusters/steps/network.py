"""The VPC and vSwitch the panel creates for a cluster (vpc.create, vswitch.create; for an NLB
a second vSwitch in a second zone, vswitch.create_second) and their deletion at destroy
(vpc.delete_vswitch, vpc.delete).

Why: the recipe starts from hosts in a VPC; when the region has no VPC the person wants to
use, the panel makes one, as it buys the instances. Each is a ledger row bought through
`purchase.ensure_bought` (the ClientToken recorded before CreateVpc / CreateVSwitch, the
cluster's tag sent in the create itself, adopted by that tag after a lost answer), then
waited for until Available: a new VPC or vSwitch is Pending first, and nothing can be created
in it before (terraform-provider-alicloud resource_alicloud_vpc.go and
resource_alicloud_vswitch.go wait for Available after their create calls).

Destroy deletes only what these rows (or the cluster's tag) name, never a VPC the owner
chose, and only after the instances, the load balancer, the RDS instance and the security
group are gone: DeleteVSwitch answers DependencyViolation while anything holds an address in
it, DeleteVpc DependencyViolation.VSwitch / .SecurityGroup while something is in it
(Alibaba's error tables of DeleteVSwitch and DeleteVpc; terraform retries both), so the
steps wait on those answers instead of failing, and then, as terraform does, until what they
deleted is no longer listed (a deletion completes a little after the call).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from clusters.adapters import cloud, purchase
from clusters.adapters.aliyun import AliyunCloud, VSwitch
from clusters.core.errors import PermanentError, StepError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import CloudResource, Cluster, ResourceState
from clusters.steps import ecs

VPC_KIND = "vpc"
VSWITCH_KIND = "vswitch"
# The NLB's second vSwitch, in the order's second zone (vswitch.create_second).
VSWITCH2_KIND = "vswitch_nlb"
NETWORK_KINDS = (VPC_KIND, VSWITCH_KIND, VSWITCH2_KIND)
AVAILABLE_TIMEOUT_SECONDS = 10 * 60
DELETE_TIMEOUT_SECONDS = 30 * 60
# What DeleteVSwitch / DeleteVpc answer while something is still in them, or while the
# vSwitch is busy (error tables of DeleteVSwitch and DeleteVpc; terraform retries these).
STILL_IN_USE = ("DependencyViolation", "DependencyViolation.VSwitch",
                "DependencyViolation.SecurityGroup", "IncorrectVSwitchStatus",
                "IncorrectVpcStatus")


def vpc_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-{str(cluster.code)[:8]}"[:128]


def vswitch_name(cluster: Cluster, zone: str = "") -> str:
    """The vSwitch's name in `zone` (the cluster's own zone when not given)."""
    return f"k3s-{cluster.name}-{zone or cluster.zone}-{str(cluster.code)[:8]}"[:128]


def second_zone(cluster: Cluster) -> str:
    """The zone of the NLB's second vSwitch the panel creates ("" when it creates none)."""
    return str((cluster.network_order or {}).get("zone2") or "")


def _vpc_purchase(api: AliyunCloud, cluster: Cluster, cidr: str) -> purchase.Purchase:
    def find(key: str, value: str) -> list[str]:
        return [v.vpc_id for v in api.vpcs_by_tag(key, value) if v.name == vpc_name(cluster)]

    def create(token: str) -> purchase.Bought:
        return purchase.Bought(api.create_vpc(
            cidr=cidr, name=vpc_name(cluster), client_token=token, tags=cloud.tags(cluster),
            description=f"Created by the K3s panel for cluster {cluster.name}"[:256]),
            {"cidr": cidr})

    return purchase.Purchase("VPC", "CreateVpc", find, create)


def _vswitch_purchase(api: AliyunCloud, cluster: Cluster, vpc_id: str,
                      cidr: str, zone: str) -> purchase.Purchase:
    name = vswitch_name(cluster, zone)

    def find(key: str, value: str) -> list[str]:
        return [s.vswitch_id for s in api.vswitches_by_tag(key, value)
                if s.vpc_id == vpc_id and s.name == name]

    def create(token: str) -> purchase.Bought:
        return purchase.Bought(api.create_vswitch(
            vpc_id=vpc_id, zone_id=zone, cidr=cidr, name=name,
            client_token=token, tags=cloud.tags(cluster),
            description=f"Created by the K3s panel for cluster {cluster.name}"[:256]),
            {"cidr": cidr, "zone": zone})

    return purchase.Purchase("vSwitch", "CreateVSwitch", find, create)


def _wait_available(ctx: StepContext, what: str, status: str) -> Outcome:
    ctx.memo.setdefault("deadline", time.time() + AVAILABLE_TIMEOUT_SECONDS)
    if time.time() > ctx.memo["deadline"]:
        return Fail(f"{what} is still {status or 'not listed'} after "
                    f"{AVAILABLE_TIMEOUT_SECONDS // 60} minutes; check the VPC console, then "
                    "press Retry.")
    return Wait(cloud.poll_seconds(), f"waiting for {what} to be Available "
                                      f"({status or 'not listed yet'})")


def _refuse_what_the_zone_does_not_sell(api: AliyunCloud, cluster: Cluster) -> None:
    """Before the first thing the run creates: the order's instance type is on sale in the
    zone now (DescribeAvailableResource), or the step fails with what the zone sells instead.
    The RunInstances DryRun (ecs.check_order) checks the whole order again later; it needs the
    vSwitch and the group, so without this a sold-out type would leave them made for nothing."""
    instance_type = str((cluster.instance_order or {}).get("instance_type") or "")
    if not instance_type:
        return
    offers = api.available_instance_types(cluster.zone)
    if any(o.instance_type == instance_type and o.buyable for o in offers):
        return
    # The same suggestion as ecs.check_order's (kept in steps/ecs.py, not copied here).
    suggestion = ecs._suggestion(api, cluster, instance_type)
    raise PermanentError(
        f"ECS has no stock of {instance_type} in {cluster.zone} now (DescribeAvailableResource); "
        f"nothing was created. {suggestion}. Press Retry once it is on sale again, or "
        "create the cluster with another instance type or zone.")


@step_handler("vpc.create")
def create_vpc(ctx: StepContext) -> Outcome:
    """The cluster's own VPC (CreateVpc with the recorded ClientToken), waited for until
    Available; the cluster then names it."""
    cluster = ctx.cluster
    order = cluster.network_order or {}
    if not order:
        return Skip(f"the cluster uses the owner's VPC {cluster.vpc_id}")
    api = cloud.cloud_for(cluster)
    _refuse_what_the_zone_does_not_sell(api, cluster)
    resource = cloud.intend(ctx, VPC_KIND)
    if purchase.ensure_bought(ctx, resource, _vpc_purchase(api, cluster, order["vpc_cidr"]),
                              state=ResourceState.CREATING) is purchase.Acquired.CREATED:
        ctx.say(f"Created VPC {resource.provider_id} ({order['vpc_cidr']}, "
                f"{vpc_name(cluster)})")
    vpc_id = resource.provider_id
    found = next((v for v in api.vpcs_by_tag(cloud.TAG_KEY, str(cluster.code))
                  if v.vpc_id == vpc_id), None)
    if found is None or found.status != "Available":
        return _wait_available(ctx, f"VPC {vpc_id}", found.status if found else "")
    _name_on_cluster(resource, cluster, "vpc_id")
    ctx.say(f"VPC {vpc_id} ({found.cidr}) is Available")
    return Done({"vpc_id": vpc_id, "cidr": found.cidr})


def _name_on_cluster(resource: CloudResource, cluster: Cluster, field: str) -> None:
    """An Available VPC or vSwitch: its ledger row present, and the cluster naming it (`field`,
    vpc_id or vswitch_id) as if the owner had chosen it."""
    cloud.record(resource, state=ResourceState.PRESENT)
    if getattr(cluster, field) != resource.provider_id:
        setattr(cluster, field, resource.provider_id)
        cluster.save(update_fields=[field])


def _available_vswitch(ctx: StepContext, kind: str, vpc_id: str, cidr: str, zone: str, *,
                       why: str = "") -> tuple[CloudResource, VSwitch] | Outcome:
    """The vSwitch of ledger row `kind` bought (CreateVSwitch with its recorded ClientToken,
    adopted by tag after a lost answer) and listed Available: (its row, as listed); else
    the Wait (or, past the deadline, the failure) to return."""
    api = cloud.cloud_for(ctx.cluster)
    resource = cloud.intend(ctx, kind)
    bought = _vswitch_purchase(api, ctx.cluster, vpc_id, cidr, zone)
    if purchase.ensure_bought(ctx, resource, bought,
                              state=ResourceState.CREATING) is purchase.Acquired.CREATED:
        ctx.say(f"Created vSwitch {resource.provider_id} ({cidr}, zone {zone}) in "
                f"{vpc_id}{why}")
    found = next((s for s in api.describe_vswitches(vpc_id)
                  if s.vswitch_id == resource.provider_id), None)
    if found is None or found.status != "Available":
        return _wait_available(ctx, f"vSwitch {resource.provider_id}",
                               found.status if found else "")
    return resource, found


@step_handler("vswitch.create")
def create_vswitch(ctx: StepContext) -> Outcome:
    """The cluster's own vSwitch in its zone and new VPC (CreateVSwitch with the recorded
    ClientToken), waited for until Available; the cluster then names it."""
    cluster = ctx.cluster
    order = cluster.network_order or {}
    if not order:
        return Skip(f"the cluster uses the owner's vSwitch {cluster.vswitch_id}")
    vpc = cluster.resources.filter(kind=VPC_KIND, deleted_at__isnull=True).first()
    if vpc is None or not vpc.provider_id or vpc.state != ResourceState.PRESENT:
        raise PermanentError("The VPC comes first (step vpc.create); press Retry.")
    made = _available_vswitch(ctx, VSWITCH_KIND, vpc.provider_id, order["vswitch_cidr"],
                              cluster.zone)
    if not isinstance(made, tuple):
        return made
    resource, found = made
    vswitch_id = found.vswitch_id
    _name_on_cluster(resource, cluster, "vswitch_id")
    ctx.say(f"vSwitch {vswitch_id} ({found.cidr}, zone {found.zone_id}) is Available")
    return Done({"vswitch_id": vswitch_id, "cidr": found.cidr})


@step_handler("vswitch.create_second")
def create_second_vswitch(ctx: StepContext) -> Outcome:
    """The NLB's second vSwitch, in the order's second zone of the new VPC (CreateVSwitch
    with the recorded ClientToken, tagged, waited for until Available), so the NLB can be
    created: CreateLoadBalancer needs a vSwitch in each of two zones where the region has
    two (V2 alibabacloud_nlb20220430 CreateLoadBalancerRequest.zone_mappings; the emulator
    answers InvalidZones to one). The cluster's NLB zones then name both vSwitches; the
    instances, the RDS instance and a CLB stay in the first."""
    cluster = ctx.cluster
    order = cluster.network_order or {}
    zone = second_zone(cluster)
    if not order or not zone:
        return Skip("the panel creates no second vSwitch for this cluster (no NLB in a VPC "
                    "it creates)")
    if not cluster.vswitch_id or not cluster.vpc_id:
        raise PermanentError("The VPC and the first vSwitch come first (steps vpc.create and "
                             "vswitch.create); press Retry.")
    made = _available_vswitch(ctx, VSWITCH2_KIND, cluster.vpc_id,
                              str(order.get("vswitch2_cidr") or ""), zone,
                              why=": the NLB's second zone")
    if not isinstance(made, tuple):
        return made
    resource, found = made
    vswitch_id = found.vswitch_id
    cloud.record(resource, state=ResourceState.PRESENT)
    zones = [{"zone": cluster.zone, "vswitch_id": cluster.vswitch_id},
             {"zone": zone, "vswitch_id": vswitch_id}]
    if cluster.nlb_zones != zones:
        cluster.nlb_zones = zones
        cluster.save(update_fields=["nlb_zones"])
    ctx.say(f"vSwitch {vswitch_id} ({found.cidr}, zone {found.zone_id}) is Available; the "
            f"NLB will answer in {cluster.zone} ({cluster.vswitch_id}) and {zone} "
            f"({vswitch_id})")
    return Done({"vswitch_id": vswitch_id, "cidr": found.cidr, "nlb_zones": zones})


def _delete(ctx: StepContext, kind: str, what: str) -> Outcome:
    """Delete the rows of `kind` (and the cluster's tagged one of that name), waiting while
    Alibaba answers that something is still in it, then until it is no longer listed. For
    vSwitches: the NLB's second one too (VSWITCH2_KIND, named for its zone)."""
    cluster = ctx.cluster
    kinds = (VSWITCH_KIND, VSWITCH2_KIND) if kind == VSWITCH_KIND else (kind,)
    rows = list(cluster.resources.filter(kind__in=kinds, deleted_at__isnull=True))
    if not rows:
        return Skip(f"the panel created no {what} for this cluster")
    kept = ("the instances" if ctx.args.get("keep_instances") else
            "the RDS instance" if ctx.args.get("keep_database") else "")
    if kept and kind == VSWITCH_KIND:
        # The kept instances and RDS sit in the first vSwitch; the NLB's second one held
        # only the NLB (gone by now): it is deleted unless something else is in it.
        return _delete_nlb_vswitch(ctx, rows, kept)
    if kept:
        # The kept ones hold an address in the network: deleting it would wait on
        # DependencyViolation until the step's deadline and the destroy would never finish.
        return Skip(f"kept with {kept}, which {'are' if kept.endswith('s') else 'is'} still "
                    f"in the {what}")
    api = cloud.cloud_for(cluster)
    ids = {row.provider_id for row in rows if row.provider_id}
    code = str(cluster.code)
    delete: Callable[[str], bool]
    if kind == VPC_KIND:
        ids |= {v.vpc_id for v in api.vpcs_by_tag(cloud.TAG_KEY, code)
                if v.name == vpc_name(cluster)}
        delete = api.delete_vpc
    else:
        names = {vswitch_name(cluster), *([vswitch_name(cluster, second_zone(cluster))]
                                          if second_zone(cluster) else [])}
        ids |= {s.vswitch_id for s in api.vswitches_by_tag(cloud.TAG_KEY, code)
                if s.name in names}
        delete = api.delete_vswitch
    waiting = _send_deletes(ctx, delete, ids, what)
    if waiting is not None:
        return waiting
    if (lingering := _still_listed(ctx, api, kind, ids, what)) is not None:
        return lingering
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    return Done({"deleted": sorted(ids)})


def _still_listed(ctx: StepContext, api: AliyunCloud, kind: str, ids: set[str],
                  what: str) -> Outcome | None:
    """A Wait while any of `ids` is still listed, else None. A deletion completes a little
    after the call: terraform waits for the VPC to be gone (resource_alicloud_vpc.go,
    WaitForVpc(id, Deleted)); so does the step, so a finished destroy has left nothing
    behind."""
    code = str(ctx.cluster.code)
    listed = ({v.vpc_id for v in api.vpcs_by_tag(cloud.TAG_KEY, code)} if kind == VPC_KIND
              else {s.vswitch_id for s in api.vswitches_by_tag(cloud.TAG_KEY, code)})
    if lingering := sorted(ids & listed):
        return _wait(ctx, f"{', '.join(lingering)} being deleted",
                     f"{what} {', '.join(lingering)} is still listed", "check it")
    return None


def _send_deletes(ctx: StepContext, delete: Callable[[str], bool], ids: set[str],
                  what: str) -> Outcome | None:
    """Each delete sent once (a later attempt only waits for it to complete); a Wait while
    Alibaba answers that something is still in it, else None."""
    for provider_id in sorted(ids):
        if provider_id in ctx.memo.get("asked", []):
            continue
        try:
            deleted = delete(provider_id)
        except StepError as exc:
            if exc.code not in STILL_IN_USE:
                raise
            return _wait(ctx, f"{provider_id} still holds resources ({exc.code})",
                         f"{what} {provider_id} is still in use ({exc.code}, RequestId "
                         f"{exc.request_id})")
        ctx.say(f"Deleted {what} {provider_id}" if deleted
                else f"{what} {provider_id} was already gone")
        ctx.memo["asked"] = sorted({*ctx.memo.get("asked", []), provider_id})
    return None


def _wait(ctx: StepContext, reason: str, failure: str,
          advice: str = "remove what is still in it") -> Outcome:
    """Wait, within the step's deadline; past it, fail saying what is left to do."""
    ctx.memo.setdefault("deadline", time.time() + DELETE_TIMEOUT_SECONDS)
    if time.time() > ctx.memo["deadline"]:
        return Fail(f"{failure} after {DELETE_TIMEOUT_SECONDS // 60} minutes: {advice} in the "
                    "VPC console, then press Retry.")
    return Wait(cloud.poll_seconds(), reason)


KEPT_WAIT_SECONDS = 3 * 60  # the NLB's addresses are freed once it is gone (destroy.nlb)


def _delete_nlb_vswitch(ctx: StepContext, rows: list[CloudResource], kept: str) -> Outcome:
    """With instances or the RDS kept: delete only the NLB's second vSwitch, which nothing
    the owner keeps is in. While Alibaba answers DependencyViolation it is waited for a
    little (the NLB's addresses leaving); still in use after that, it is kept with the rest,
    said why, and the destroy goes on (a vSwitch costs nothing)."""
    cluster = ctx.cluster
    first = [row for row in rows if row.kind == VSWITCH_KIND]
    second = [row for row in rows if row.kind == VSWITCH2_KIND]
    kept_first = (f"vSwitch {', '.join(r.provider_id for r in first)} kept with {kept}, "
                  "which are still in it" if first else "")
    if not second:
        return Skip(kept_first or f"kept with {kept}")
    api = cloud.cloud_for(cluster)
    ids = sorted({row.provider_id for row in second if row.provider_id})
    for provider_id in ids:
        if provider_id in ctx.memo.get("asked", []):
            continue  # sent: a later attempt only waits for it to complete
        try:
            deleted = api.delete_vswitch(provider_id)
        except StepError as exc:
            if exc.code not in STILL_IN_USE:
                raise
            ctx.memo.setdefault("deadline", time.time() + KEPT_WAIT_SECONDS)
            if time.time() <= ctx.memo["deadline"]:
                return Wait(cloud.poll_seconds(), f"{provider_id} still holds resources "
                                                  f"({exc.code})")
            ctx.say(f"The NLB's second vSwitch {provider_id} is still in use ({exc.code}, "
                    f"RequestId {exc.request_id}): kept with {kept}")
            return Done({"deleted": [], "kept": [*(r.provider_id for r in first), provider_id]})
        ctx.say(f"Deleted the NLB's second vSwitch {provider_id}" if deleted
                else f"The NLB's second vSwitch {provider_id} was already gone")
        ctx.memo["asked"] = sorted({*ctx.memo.get("asked", []), provider_id})
    if (lingering := _still_listed(ctx, api, VSWITCH_KIND, set(ids), "vSwitch")) is not None:
        return lingering
    for row in second:
        cloud.record(row, state=ResourceState.DELETED)
    if kept_first:
        ctx.say(kept_first)
    return Done({"deleted": ids, "kept": [r.provider_id for r in first]})


@step_handler("vpc.delete_vswitch")
def delete_vswitch(ctx: StepContext) -> Outcome:
    """The vSwitches the panel created (the NLB's second one too), once nothing holds an
    address in them any more."""
    return _delete(ctx, VSWITCH_KIND, "vSwitch")


@step_handler("vpc.delete")
def delete_vpc(ctx: StepContext) -> Outcome:
    """The VPC the panel created, once its vSwitch and security groups are gone."""
    return _delete(ctx, VPC_KIND, "VPC")
