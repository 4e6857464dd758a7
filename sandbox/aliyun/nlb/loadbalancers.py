"""NLB instances: CreateLoadBalancer (ZoneMappings checked against the seeded world, one
address per zone allocated in its vSwitch), GetLoadBalancerAttribute, ListLoadBalancers,
DeleteLoadBalancer. Creating and deleting are jobs (jobs.py)."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.ids import resource_id
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.common import PAGING, create_tags, filter_tags, listed, tag_view
from sandbox.aliyun.nlb.product import (
    CLIENT_TOKEN,
    CREATE_LB_SECONDS,
    DELETE_LB_SECONDS,
    DNS_SUFFIX,
    NLB,
    addresses,
    dry_run,
    incorrect_status,
    lb_or_error,
    listeners,
    load_balancers,
    lock_conflict,
    missing,
    new_job,
)
from sandbox.aliyun.nlb.runtime import sync_lb

MISMATCH_ZONE = "Mismatch.ZoneIdAndVswitchId"


def _zone_mappings(params: Params) -> list[dict[str, str]]:
    return params.repeat_list("ZoneMappings", ("VSwitchId", "ZoneId", "PrivateIPv4Address",
                                               "AllocationId"))


def nlb_zones(region: dict[str, Any]) -> list[str]:
    """The region's zones where NLB is sold: not every ECS zone (NLB's own DescribeZones is
    the list; "nlb_zones" of the seed, all of the region's zones when it names none)."""
    return list(region.get("nlb_zones", region["zones"]))


def _check_zones(state: State, ctx: RequestContext, vpc_id: str,
                 mappings: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Each mapping: a seeded vSwitch of this VPC, in the zone it names, one per zone; at
    least two zones where the region has two or more ("InvalidZones": the NLB API reference
    requires two zones in regions that have them)."""
    region = ctx.require_region()
    if not mappings:
        raise missing("ZoneMappings")
    vpc = network.vpc(state, vpc_id)
    if vpc is None or vpc["region_id"] != ctx.region_id:
        raise errors.ApiError(404, "ResourceNotFound.Vpc",
                              "The specified resource of Vpc is not found.")
    seen: set[str] = set()
    checked = []
    for mapping in mappings:
        vswitch_id, zone_id = mapping.get("VSwitchId", ""), mapping.get("ZoneId", "")
        if not vswitch_id:
            raise missing("ZoneMappings.N.VSwitchId")
        if not zone_id:
            raise missing("ZoneMappings.N.ZoneId")
        vsw = network.vswitch(state, vswitch_id)
        if vsw is None or vsw["region_id"] != ctx.region_id or vsw["vpc_id"] != vpc_id:
            raise errors.ApiError(404, "ResourceNotFound.VSwitch",
                                  "The specified resource of vSwitch is not found.")
        if zone_id not in nlb_zones(region):
            raise errors.ApiError(403, "UnauthorizedZone",
                                  f"The specified zone of {zone_id} is not authorized.")
        if vsw["zone_id"] != zone_id:
            raise errors.ApiError(400, MISMATCH_ZONE, "The ZoneIdAndVswitchId is mismatched "
                                  f"for {zone_id} and {vswitch_id}.")
        if zone_id in seen:
            raise errors.ApiError(400, "OperationFailed.DuplicateZones.",
                                  "The operation failed because of Can not Specify duplicate "
                                  "zones.")
        seen.add(zone_id)
        checked.append({"zone_id": zone_id, "vswitch_id": vswitch_id,
                        "wanted_ip": mapping.get("PrivateIPv4Address", "")})
    if len(nlb_zones(region)) >= 2 and len(checked) < 2:
        raise errors.ApiError(400, "InvalidZones", "The current zone list is illegal.")
    return checked


def _allocate(state: State, ctx: RequestContext, lb_id: str, address_type: str,
              zones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One private address per zone from its vSwitch (or the one asked for), plus a public
    one per zone for an Internet NLB."""
    for zone in zones:
        try:
            if zone["wanted_ip"]:
                zone["private_ip"] = network.claim_private(state, zone["vswitch_id"],
                                                           zone["wanted_ip"], lb_id)
            else:
                zone["private_ip"] = network.allocate_private(state, zone["vswitch_id"], lb_id)
            zone["public_ip"] = (network.allocate_public(state, lb_id)
                                 if address_type == "Internet" else "")
        except network.AddressUnavailable:
            raise errors.ApiError(400, "ResourceInUse.IP",
                                  "The specified resource of IP is in use.") from None
        except network.AddressExhausted:
            raise errors.ApiError(400, "ResourceNotEnough.VSwitchIp",
                                  "The specified resource of VSwitchIp is not enough.") from None
        zone.pop("wanted_ip", None)
        zone["eni_id"] = resource_id("eni-", 20)
        zone["status"] = "Active"
    return zones


@NLB.action("CreateLoadBalancer", (
    Param("RegionId"), Param("AddressType", required=True, enum=("Internet", "Intranet")),
    Param("VpcId", required=True), Param("LoadBalancerName"),
    Param("LoadBalancerType", enum=("Network",), default="Network"),
    Param("AddressIpVersion", enum=("ipv4", "DualStack"), default="ipv4"),
    Param("ResourceGroupId"), Param("BandwidthPackageId"), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def create_load_balancer(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    name = params["LoadBalancerName"]
    if name is not None and not 2 <= len(name) <= 128:
        raise errors.ApiError(400, "IllegalParam.loadBalancerName",
                              "Param loadBalancerName is illegal.")
    pay_type = params.raw.get("LoadBalancerBillingConfig.PayType", "PostPay")
    if pay_type != "PostPay":
        raise errors.ApiError(400, "OperationDenied.OnlyPostPaidSupported",
                              "The operation is not allowed because of OnlyPostPaidSupported.")
    zones = _check_zones(state, ctx, params["VpcId"], _zone_mappings(params))
    lb_tags = create_tags(params)
    deletion = params.raw.get("DeletionProtectionConfig.Enabled", "false").lower() == "true"
    dry_run(params)
    lb_id = resource_id("nlb-", 20)
    zones = _allocate(state, ctx, lb_id, params["AddressType"], zones)
    lb = {
        "lb_id": lb_id, "name": name or "", "region_id": ctx.region_id,
        "vpc_id": params["VpcId"], "address_type": params["AddressType"],
        "address_ip_version": params["AddressIpVersion"],
        "resource_group_id": params["ResourceGroupId"] or "rg-acfmemulator0000",
        "bandwidth_package_id": params["BandwidthPackageId"] or "",
        "dns_name": f"{lb_id}.{ctx.region_id}.{DNS_SUFFIX}", "zones": zones,
        "status": "Provisioning", "created_at": ctx.clock.now(), "tags": lb_tags,
        "deletion_protection": deletion,
        "deletion_protection_reason": params.raw.get("DeletionProtectionConfig.Reason", ""),
        "modification_protection": params.raw.get("ModificationProtectionConfig.Status",
                                                  "NonProtection"),
        "lock": "",
    }
    lb["lock"] = new_job(state, ctx, "create_lb", lb_id, CREATE_LB_SECONDS)
    load_balancers(state)[lb_id] = lb
    for address in addresses(lb):
        ctx.cloud.plumbing.bring_up(address)
    # The V2 model and API metadata answer LoadbalancerId (lower-case b) and OrderId.
    return {"LoadbalancerId": lb_id, "OrderId": int(lb["created_at"] * 1000) % 10**12}


def _zone_view(zone: dict[str, Any], detailed: bool) -> dict[str, Any]:
    address: dict[str, Any] = {
        "EniId": zone["eni_id"], "PrivateIPv4Address": zone["private_ip"],
        "PrivateIPv4HcStatus": "Healthy",
    }
    if zone.get("public_ip"):
        address["PublicIPv4Address"] = zone["public_ip"]
        address["AllocationId"] = "eip-" + zone["eni_id"][4:]
    if detailed:
        address["Ipv4LocalAddresses"] = [zone["private_ip"]]
    return {"ZoneId": zone["zone_id"], "VSwitchId": zone["vswitch_id"],
            "Status": zone["status"], "LoadBalancerAddresses": [address]}


def lb_view(lb: dict[str, Any], detailed: bool) -> dict[str, Any]:
    view = {
        "LoadBalancerId": lb["lb_id"], "LoadBalancerName": lb["name"],
        "LoadBalancerStatus": lb["status"], "LoadBalancerBusinessStatus": "Normal",
        "LoadBalancerType": "Network", "AddressType": lb["address_type"],
        "AddressIpVersion": lb["address_ip_version"], "DNSName": lb["dns_name"],
        "VpcId": lb["vpc_id"], "RegionId": lb["region_id"],
        "ResourceGroupId": lb["resource_group_id"], "CreateTime": iso_utc(lb["created_at"]),
        "CrossZoneEnabled": True, "BandwidthPackageId": lb["bandwidth_package_id"],
        "LoadBalancerBillingConfig": {"PayType": "PostPay"},
        "DeletionProtectionConfig": {"Enabled": lb["deletion_protection"],
                                     "Reason": lb["deletion_protection_reason"]},
        "ModificationProtectionConfig": {"Status": lb["modification_protection"]},
        "OperationLocks": [], "SecurityGroupIds": list(lb.get("security_group_ids", [])),
        "ZoneMappings": [_zone_view(z, detailed) for z in lb["zones"]],
        "Tags": tag_view(lb["tags"], "TagKey" if detailed else "Key"),
    }
    if detailed:
        view["Cps"] = 0
    return view


@NLB.action("GetLoadBalancerAttribute", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("DryRun", "boolean"),
))
def get_load_balancer_attribute(state: State, params: Params,
                                ctx: RequestContext) -> dict[str, Any]:
    lb = lb_or_error(state, ctx, params["LoadBalancerId"])
    dry_run(params)
    return lb_view(lb, detailed=True)


@NLB.action("ListLoadBalancers", (
    Param("RegionId"), Param("AddressType", enum=("Internet", "Intranet")),
    Param("AddressIpVersion", enum=("ipv4", "DualStack")), Param("DNSName"),
    Param("LoadBalancerStatus"), Param("LoadBalancerBusinessStatus"), Param("ZoneId"),
    Param("ResourceGroupId"), Param("LoadBalancerType"), Param("Ipv6AddressType"), *PAGING,
))
def list_load_balancers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("LoadBalancerIds")
    wanted_names = params.repeat_list("LoadBalancerNames")
    wanted_vpcs = params.repeat_list("VpcIds")
    wanted_tags = filter_tags(params)
    found = []
    for lb in sorted(load_balancers(state).values(), key=lambda lb: lb["created_at"]):
        if lb["region_id"] != ctx.region_id:
            continue
        if ((wanted_ids and lb["lb_id"] not in wanted_ids)
                or (wanted_names and lb["name"] not in wanted_names)
                or (wanted_vpcs and lb["vpc_id"] not in wanted_vpcs)):
            continue
        simple = {"AddressType": lb["address_type"], "DNSName": lb["dns_name"],
                  "LoadBalancerStatus": lb["status"],
                  "AddressIpVersion": lb["address_ip_version"],
                  "ResourceGroupId": lb["resource_group_id"]}
        if any(params[k] and params[k] != v for k, v in simple.items()):
            continue
        if params["ZoneId"] and params["ZoneId"] not in [z["zone_id"] for z in lb["zones"]]:
            continue
        if not tags.matches(lb["tags"], wanted_tags):
            continue
        found.append(lb_view(lb, detailed=False))
    return listed(found, params, "LoadBalancers")


@NLB.action("DeleteLoadBalancer", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def delete_load_balancer(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Deleting an NLB deletes its listeners too (the console and API do; server groups
    stay). Refused while it is being created or configured, or protected."""
    lb = lb_or_error(state, ctx, params["LoadBalancerId"])
    if lb["deletion_protection"]:
        raise errors.ApiError(400, "OperationDenied.DeletionProtectionEnabled",
                              "The operation is not allowed because of "
                              "DeletionProtectionEnabled.")
    if lb["status"] == "Provisioning":
        raise errors.ApiError(400, "ResourceInCreating.loadbalancer",
                              "The specified resource of loadbalancer is creating, please try "
                              "again later.")
    if lb["lock"]:
        raise lock_conflict(lb["lb_id"])
    if lb["status"] not in ("Active", "CreateFailed"):
        raise incorrect_status("loadbalancer", lb["lb_id"])
    for listener in listeners(state).values():
        if listener["lb_id"] == lb["lb_id"] and listener["lock"]:
            raise lock_conflict(listener["listener_id"])  # a listener job is still running
    dry_run(params)
    for listener in listeners(state).values():
        if listener["lb_id"] == lb["lb_id"]:
            listener["status"] = "Deleting"
    lb["status"] = "Deleting"
    lb["lock"] = new_job(state, ctx, "delete_lb", lb["lb_id"], DELETE_LB_SECONDS)
    sync_lb(ctx.cloud, lb["lb_id"])
    return {"JobId": lb["lock"]}


# ---- regions and zones -------------------------------------------------------------------
@NLB.action("DescribeRegions", (
    Param("AcceptLanguage", enum=("zh-CN", "en-US", "ja")),
    Param("ServiceCode", enum=("nlb",)),
))
def describe_regions(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    regions = sorted(state.bucket("regions").values(), key=lambda r: r["region_id"])
    return {"Regions": [{"RegionId": r["region_id"], "LocalName": r["local_name"],
                         "RegionEndpoint": f"nlb.{r['region_id']}.aliyuncs.com"}
                        for r in regions]}


@NLB.action("DescribeZones", (
    Param("RegionId"), Param("AcceptLanguage", enum=("zh-CN", "en-US", "ja")),
    Param("ServiceCode", enum=("nlb",)),
))
def describe_zones(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """The region's zones where NLB is sold (seeded "nlb_zones", by default all): where
    ZoneMappings may point; fewer than ECS's DescribeZones in some regions."""
    region = ctx.require_region()
    return {"Zones": [{"ZoneId": zone, "LocalName":
                       f"{region['local_name']} Zone {zone.rsplit('-', 1)[-1].upper()}"}
                      for zone in nlb_zones(region)]}
