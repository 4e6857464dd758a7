"""Regions and load balancers: CreateLoadBalancer (pay-by-LCU only, as sold today), the
legacy pay-by-spec seed, DescribeLoadBalancers/Attribute, delete protection, delete."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun import ecs
from sandbox.aliyun.gateway import errors, ids, network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import (
    ClientTokenPolicy,
    control_route,
)
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.slb.product import (
    _NAME,
    DELETE_PROTECTED,
    SLB,
    SPECS,
    TOKEN_CONFLICT,
    _lb_or_error,
    load_balancers,
)
from sandbox.aliyun.slb.runtime import _sync_all_listeners


# ---- regions -------------------------------------------------------------------------------
@SLB.action("DescribeRegions", (Param("AcceptLanguage"),))
def describe_regions(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    regions = [
        {"RegionId": r["region_id"], "LocalName": r["local_name"],
         "RegionEndpoint": "slb.aliyuncs.com"}
        for r in sorted(state.bucket("regions").values(), key=lambda r: r["region_id"])
    ]
    return {"Regions": {"Region": regions}}


# ---- load balancers ------------------------------------------------------------------------
# Pay-by-specification CLBs cannot be bought since 2025-06-01 00:00 UTC+8 ("Pay-as-you-go CLB
# instances only support the pay-by-LCU instance resource metering method", CreateLoadBalancer
# API reference, slb 2014-05-15, updated 2025-12; help doc-detail/127268). The docs name no
# error code for a PayBySpec request. CHOSEN (no source says this exact case returns it):
# `IllegalParam.InstanceChargeType` with its documented message, because that code is in
# CreateLoadBalancer's own error list (Alibaba's API metadata for slb 2014-05-15) and is about
# this parameter. InstanceChargeType still defaults to PayBySpec as the metadata says, so a
# request that omits it (what the panel sent before) is refused the same way.
PAY_BY_SPEC_CUTOFF = "2025-06-01T00:00:00+08:00"
PAY_BY_SPEC_DISCONTINUED = errors.ApiError(
    400, "IllegalParam.InstanceChargeType", "The parameter InstanceChargeType is illegal.",
)
# Documented in the same list; the API doc's InternetChargeType note: with PayOnDemand and
# PayByCLCU only paybytraffic is accepted.
LCU_TRAFFIC_ONLY = errors.ApiError(
    400, "Instance.InternetChargeTypeNotAllowed",
    "Illegal parameter. The specified InternetChargeType not allowed.",
)
# DescribeLoadBalancerAttribute's LoadBalancerSpec for an LCU instance: "Pay-as-you-go CLB
# instances are not subject to specifications. By default, slb.lcu.elastic is returned."
# (alibabacloud-slb20140515 response model; Terraform's acceptance test expects the same after
# switching an instance to PayByCLCU, resource_alicloud_slb_load_balancer_test.go).
LCU_SPEC = "slb.lcu.elastic"

_CREATE_FIELDS = ("AddressType", "LoadBalancerSpec", "VpcId", "VSwitchId", "PayType",
                  "InstanceChargeType", "InternetChargeType", "Bandwidth", "LoadBalancerName",
                  "Address", "MasterZoneId", "SlaveZoneId", "DeleteProtection",
                  "ModificationProtectionStatus", "AddressIPVersion", "ResourceGroupId")


@SLB.action("CreateLoadBalancer", (
    Param("RegionId", required=True), Param("AddressType", enum=("internet", "intranet")),
    Param("LoadBalancerSpec", enum=SPECS), Param("VpcId"), Param("VSwitchId"),
    Param("PayType", enum=("PayOnDemand", "PrePay"), default="PayOnDemand"),
    Param("InstanceChargeType", enum=("PayBySpec", "PayByCLCU"), default="PayBySpec"),
    Param("InternetChargeType", enum=("paybytraffic", "paybybandwidth"),
          default="paybytraffic"),
    Param("Bandwidth", "integer", minimum=1, maximum=5120), Param("LoadBalancerName"),
    Param("Address"), Param("MasterZoneId"), Param("SlaveZoneId"),
    Param("DeleteProtection", enum=("on", "off"), default="off"),
    Param("ModificationProtectionStatus", enum=("NonProtection", "ConsoleProtection"),
          default="NonProtection"),
    Param("AddressIPVersion", enum=("ipv4", "ipv6"), default="ipv4"),
    Param("ResourceGroupId"), Param("Duration", "integer"), Param("PricingCycle"),
    Param("AutoPay", "boolean"),
), client_token=ClientTokenPolicy(TOKEN_CONFLICT))
def create_load_balancer(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    if params["PayType"] == "PayOnDemand" and params["InstanceChargeType"] == "PayBySpec":
        raise PAY_BY_SPEC_DISCONTINUED
    wanted = {name: params[name] for name in _CREATE_FIELDS}
    return new_load_balancer(state, ctx, wanted, tags.from_repeat_list(params.raw))


def _check_billing(wanted: dict[str, Any], address_type: str) -> None:
    if wanted["InstanceChargeType"] != "PayByCLCU" and not wanted["LoadBalancerSpec"]:
        # Documented code (CreateLoadBalancer error list): a spec instance needs its spec.
        raise errors.ApiError(400, "MissingParam.LoadBalancerSpec",
                              "The param LoadBalancerSpec is required.")
    if (wanted["InstanceChargeType"] == "PayByCLCU" and address_type == "internet"
            and wanted["InternetChargeType"] != "paybytraffic"):
        raise LCU_TRAFFIC_ONLY


def new_load_balancer(state: State, ctx: RequestContext, wanted: dict[str, Any],
                      lb_tags: list[dict[str, str]],
                      created_at: float | None = None) -> dict[str, Any]:
    """Validate the network choices, allocate the address and store the load balancer.

    Shared by CreateLoadBalancer (pay-by-LCU today) and the control route that seeds a
    pay-by-specification instance bought before the cutoff.
    """
    region = ctx.require_region()
    lcu = wanted["InstanceChargeType"] == "PayByCLCU"
    vswitch_id = wanted["VSwitchId"] or ""
    address_type = wanted["AddressType"] or ("intranet" if vswitch_id else "internet")
    name = wanted["LoadBalancerName"]
    if name is not None and not _NAME.match(name):
        raise errors.invalid_parameter("LoadBalancerName")
    _check_billing(wanted, address_type)
    vsw = None
    if vswitch_id:
        vsw = network.vswitch(state, vswitch_id)
        if vsw is None or vsw["region_id"] != ctx.region_id:
            raise errors.ApiError(400, "InvalidVSwitchId.NotExist",
                                  "The specified VSwitchId does not exist.")
        if wanted["VpcId"] and wanted["VpcId"] != vsw["vpc_id"]:
            raise errors.ApiError(400, "InvalidParameter.VpcId",
                                  "The specified VSwitchId does not belong to the VpcId.")
    elif address_type == "intranet":
        raise errors.missing_parameter("VSwitchId")
    zones = region["zones"]
    master = wanted["MasterZoneId"] or (vsw["zone_id"] if vsw else zones[0])
    if master not in zones or (vsw and master != vsw["zone_id"]):
        raise errors.ApiError(400, "InvalidParameter.MasterZoneId",
                              "The specified MasterZoneId is not valid.")
    others = [z for z in zones if z != master]
    slave = wanted["SlaveZoneId"] or (others[0] if others else "")
    if slave and (slave not in zones or slave == master):
        raise errors.ApiError(400, "InvalidParameter.SlaveZoneId",
                              "The specified SlaveZoneId is not valid.")
    lb_id = ids.resource_id("lb-", 22)
    try:
        if address_type == "intranet":
            assert vsw is not None
            address = (network.claim_private(state, vswitch_id, wanted["Address"], lb_id)
                       if wanted["Address"] else network.allocate_private(state, vswitch_id,
                                                                          lb_id))
        else:
            address = network.allocate_public(state, lb_id)
    except network.AddressUnavailable:
        raise errors.ApiError(400, "InvalidParameter.Address",
                              "The specified Address is invalid or in use.") from None
    except network.AddressExhausted:
        raise errors.ApiError(400, "OperationFailed.VSwitchIpExhausted" if vsw else
                              "OperationFailed.NoAvailableAddress",
                              "There are not enough IP addresses available.") from None
    ctx.cloud.plumbing.bring_up(address)
    lb = {
        "lb_id": lb_id, "name": name or "auto_named_slb", "region_id": ctx.region_id,
        "address": address, "address_type": address_type,
        "network_type": "vpc" if vsw else "classic",
        "vpc_id": vsw["vpc_id"] if vsw else "", "vswitch_id": vswitch_id,
        # An LCU instance has no specification: LoadBalancerSpec "does not take effect" on
        # create (API doc) and reads back as slb.lcu.elastic.
        "spec": LCU_SPEC if lcu else wanted["LoadBalancerSpec"], "pay_type": wanted["PayType"],
        "instance_charge_type": wanted["InstanceChargeType"],
        "internet_charge_type": wanted["InternetChargeType"],
        "bandwidth": wanted["Bandwidth"] or 5120, "master_zone": master, "slave_zone": slave,
        "delete_protection": wanted["DeleteProtection"],
        "modification_protection": wanted["ModificationProtectionStatus"],
        "address_ip_version": wanted["AddressIPVersion"],
        "resource_group_id": wanted["ResourceGroupId"] or "rg-acfmemulator0000",
        "created_at": ctx.clock.now() if created_at is None else created_at, "status": "active",
        "tags": lb_tags, "backends": [], "listeners": {},
    }
    load_balancers(state)[lb_id] = lb
    return {
        "LoadBalancerId": lb_id, "Address": address, "LoadBalancerName": lb["name"],
        "NetworkType": lb["network_type"], "VpcId": lb["vpc_id"], "VSwitchId": vswitch_id,
        "AddressIPVersion": lb["address_ip_version"], "ResourceGroupId": lb["resource_group_id"],
    }


# 2025-05-01 00:00 UTC: a purchase date safely before the cutoff, for seeded legacy instances.
LEGACY_PURCHASE_INSTANT = 1746057600.0


@control_route("POST", "slb/legacy-load-balancers")
def seed_legacy_load_balancer(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """A pay-by-specification CLB bought before 2025-06-01 (which the API no longer sells).

    Body: {region_id, vswitch_id?, address_type?, spec? ("slb.s1.small"), name?,
    tags? {key: value}}. It then behaves like any CLB: listeners, backends, delete.
    """
    spec = body.get("spec", "slb.s1.small")
    if spec not in SPECS:
        raise ControlError(400, f"spec must be one of {', '.join(SPECS)}")
    region_id = str(body.get("region_id", ""))
    ctx = RequestContext(cloud, SLB, "CreateLoadBalancer", "seed-legacy", region_id, "")
    wanted: dict[str, Any] = {name: None for name in _CREATE_FIELDS}
    wanted.update({
        "AddressType": body.get("address_type"), "LoadBalancerSpec": spec,
        "VSwitchId": body.get("vswitch_id"), "PayType": "PayOnDemand",
        "InstanceChargeType": "PayBySpec", "InternetChargeType": "paybytraffic",
        "LoadBalancerName": body.get("name"), "DeleteProtection": "off",
        "ModificationProtectionStatus": "NonProtection", "AddressIPVersion": "ipv4",
    })
    lb_tags = [{"Key": str(k), "Value": str(v)} for k, v in (body.get("tags") or {}).items()]
    with cloud.lock:
        try:
            created = new_load_balancer(cloud.state, ctx, wanted, lb_tags,
                                        created_at=LEGACY_PURCHASE_INSTANT)
        except errors.ApiError as exc:
            cloud.state.rollback()
            raise ControlError(400, f"{exc.code}: {exc.message}") from None
        cloud.state.save()
    return 200, {"load_balancer_id": created["LoadBalancerId"], "address": created["Address"],
                 "instance_charge_type": "PayBySpec", "spec": spec}


def _listener_ports(lb: dict[str, Any]) -> list[int]:
    return sorted(int(p) for p in lb["listeners"])


def _lb_summary(lb: dict[str, Any]) -> dict[str, Any]:
    created_ms = int(lb["created_at"] * 1000)
    return {
        "LoadBalancerId": lb["lb_id"], "LoadBalancerName": lb["name"],
        "LoadBalancerStatus": lb["status"], "Address": lb["address"],
        "AddressType": lb["address_type"], "AddressIPVersion": lb["address_ip_version"],
        "NetworkType": lb["network_type"], "VpcId": lb["vpc_id"],
        "VSwitchId": lb["vswitch_id"], "LoadBalancerSpec": lb["spec"],
        "PayType": lb["pay_type"], "InstanceChargeType": lb["instance_charge_type"],
        "InternetChargeType": lb["internet_charge_type"], "Bandwidth": lb["bandwidth"],
        "MasterZoneId": lb["master_zone"], "SlaveZoneId": lb["slave_zone"],
        "DeleteProtection": lb["delete_protection"],
        "ModificationProtectionStatus": lb["modification_protection"],
        "CreateTime": iso_utc(lb["created_at"]), "CreateTimeStamp": created_ms,
        "RegionId": lb["region_id"], "RegionIdAlias": lb["region_id"],
        "ResourceGroupId": lb["resource_group_id"],
        "Tags": tags.as_response(lb["tags"]),
    }


@SLB.action("DescribeLoadBalancerAttribute", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
))
def describe_load_balancer_attribute(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    ports = _listener_ports(lb)
    backends = []
    for server in lb["backends"]:
        instance = ecs.instance_by_id(state, server["server_id"])
        backends.append({
            "ServerId": server["server_id"], "Weight": server["weight"], "Type": server["type"],
            "ServerIp": instance["private_ip"] if instance else "",
            "Description": server["description"],
        })
    return {
        **_lb_summary(lb),
        "ListenerPorts": {"ListenerPort": ports},
        "ListenerPortsAndProtocol": {"ListenerPortAndProtocol": [
            {"ListenerPort": p, "ListenerProtocol": "tcp", "Description": "",
             "ListenerForward": "off", "ForwardPort": 0} for p in ports]},
        "ListenerPortsAndProtocal": {"ListenerPortAndProtocal": [
            {"ListenerPort": p, "ListenerProtocal": "tcp"} for p in ports]},
        "BackendServers": {"BackendServer": backends},
    }


def _json_tags_filter(params: Params) -> list[dict[str, str]]:
    wanted = tags.from_repeat_list(params.raw)
    if params.given("Tags"):
        wanted += tags.from_json_list(params.raw["Tags"])
    return wanted


def _csv(value: str | None) -> list[str]:
    return [v for v in (value or "").split(",") if v]


@SLB.action("DescribeLoadBalancers", (
    Param("RegionId", required=True), Param("LoadBalancerId"), Param("LoadBalancerName"),
    Param("LoadBalancerStatus", enum=("inactive", "active", "locked")),
    Param("AddressType", enum=("internet", "intranet")),
    Param("NetworkType", enum=("vpc", "classic")), Param("VpcId"), Param("VSwitchId"),
    Param("Address"), Param("ServerId"), Param("ServerIntranetAddress"), Param("MasterZoneId"),
    Param("SlaveZoneId"), Param("PayType"), Param("InternetChargeType"),
    Param("AddressIPVersion"), Param("ResourceGroupId"), Param("Tags"),
    Param("PageNumber", "integer", minimum=1), Param("PageSize", "integer", minimum=1,
                                                     maximum=100),
))
def describe_load_balancers(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    ctx.require_region()
    ids_wanted, names_wanted = _csv(params["LoadBalancerId"]), _csv(params["LoadBalancerName"])
    if len(ids_wanted) > 10 or len(names_wanted) > 10:
        raise errors.invalid_parameter("LoadBalancerId" if len(ids_wanted) > 10
                                       else "LoadBalancerName")
    wanted_tags = _json_tags_filter(params)
    simple = {"LoadBalancerStatus": "status", "AddressType": "address_type",
              "NetworkType": "network_type", "VpcId": "vpc_id", "VSwitchId": "vswitch_id",
              "Address": "address", "MasterZoneId": "master_zone", "SlaveZoneId": "slave_zone",
              "PayType": "pay_type", "InternetChargeType": "internet_charge_type",
              "AddressIPVersion": "address_ip_version", "ResourceGroupId": "resource_group_id"}
    found = []
    for lb in sorted(load_balancers(state).values(), key=lambda lb: lb["created_at"]):
        if lb["region_id"] != ctx.region_id:
            continue
        if ids_wanted and lb["lb_id"] not in ids_wanted:
            continue
        if names_wanted and lb["name"] not in names_wanted:
            continue
        if any(params[p] and lb[f] != params[p] for p, f in simple.items()):
            continue
        if params["ServerId"] and params["ServerId"] not in [
                b["server_id"] for b in lb["backends"]]:
            continue
        if params["ServerIntranetAddress"] and params["ServerIntranetAddress"] not in [
                (ecs.instance_by_id(state, b["server_id"]) or {}).get("private_ip")
                for b in lb["backends"]]:
            continue
        if not tags.matches(lb["tags"], wanted_tags):
            continue
        found.append(lb)
    number = params["PageNumber"] or 1
    size = params["PageSize"] or 10
    return {
        "TotalCount": len(found), "PageNumber": number, "PageSize": size,
        "LoadBalancers": {"LoadBalancer": [_lb_summary(lb) for lb in page(found, number, size)]},
    }


@SLB.action("SetLoadBalancerDeleteProtection", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("DeleteProtection", required=True, enum=("on", "off")),
))
def set_delete_protection(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    lb["delete_protection"] = params["DeleteProtection"]
    return {}


@SLB.action("DeleteLoadBalancer", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
))
def delete_load_balancer(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    if lb["delete_protection"] == "on":
        raise DELETE_PROTECTED
    for listener in lb["listeners"].values():
        listener["status"] = "stopped"
    _sync_all_listeners(ctx.cloud, lb)
    del load_balancers(state)[lb["lb_id"]]
    ctx.cloud.plumbing.take_down(lb["address"])
    network.release(state, lb["address"])
    return {}
