"""SLB (Classic Load Balancer) 2014-05-15: load balancers, TCP listeners, backends, tags.

Why: the panel puts an SLB in front of the K3s API (TCP 6443). A started listener here is a
real TCP proxy with real health checks (slb_proxy.py), so "the cluster answers through the
SLB" and "a dead server turns abnormal" are observed, not asserted by the emulator.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.aliyun import ecs, errors, ids, network, tags
from sandbox.aliyun.clock import iso_utc
from sandbox.aliyun.cloud import Cloud, RequestContext
from sandbox.aliyun.control import ControlError
from sandbox.aliyun.paging import page
from sandbox.aliyun.params import Param, Params, parse_json_value
from sandbox.aliyun.registry import ClientTokenPolicy, Product, control_route, register_product
from sandbox.aliyun.slb_proxy import UNAVAILABLE, Backend, HealthCheck, ListenerProxy
from sandbox.aliyun.state import State

SLB = register_product(Product("Slb", "2014-05-15", "slb.aliyuncs.com"))

SPECS = ("slb.s1.small", "slb.s2.small", "slb.s2.medium", "slb.s3.small", "slb.s3.medium",
         "slb.s3.large")
LISTENER_START_SECONDS = 3  # realistic time from starting to running
MAX_BACKENDS_PER_CALL = 20
_NAME = re.compile(r"^[A-Za-z\u4e00-\u9fa5][\w.\-/\u4e00-\u9fa5]{0,79}$")

LB_NOT_FOUND = errors.ApiError(
    400, "InvalidLoadBalancerId.NotFound", "The specified LoadBalancerId does not exist.",
)
LISTENER_NOT_FOUND = errors.ApiError(
    400, "InvalidParameter", "The specified resource does not exist.",
)
LISTENER_EXISTS = errors.ApiError(
    400, "ListenerAlreadyExists", "The specified listener port is already in use.",
)
LISTENER_STATUS = errors.ApiError(
    400, "OperationFailed.ListenerStatusNotSupport",
    "The status of the listener does not support this operation. Please try again later.",
)
TOKEN_CONFLICT = errors.ApiError(400, "LX_REQUEST_TOKEN_CONFLICT", "The ClientToken is conflict.")
DELETE_PROTECTED = errors.ApiError(
    400, "OperationDenied.DeleteProtectionIsOn",
    "The loadbalancer can't be deleted due to DeleteProtection is enabled.",
)
NETWORK_TYPE_MISMATCH = errors.ApiError(
    400, "InvalidParameter",
    "The specified load balancer does not support the network type of the ECS instance.",
)
BACKEND_MISSING_PORT = errors.ApiError(
    400, "MissingParameter", "The BackendServerPort or VServerGroupId is required at lease one.",
)


def load_balancers(state: State) -> dict[str, Any]:
    return state.table("slb", "load_balancers")


def _proxies(cloud: Cloud) -> dict[tuple[str, int], ListenerProxy]:
    return cloud.runtime.setdefault("slb", {})


def _lb_or_error(state: State, ctx: RequestContext, lb_id: str) -> dict[str, Any]:
    lb = load_balancers(state).get(lb_id)
    if lb is None or lb["region_id"] != ctx.region_id:
        raise LB_NOT_FOUND
    return lb


def _listener_or_error(lb: dict[str, Any], port: int) -> dict[str, Any]:
    listener = lb["listeners"].get(str(port))
    if listener is None:
        raise LISTENER_NOT_FOUND
    return listener


# ---- runtime: keep proxies in line with the state ------------------------------------------
def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _health_check(cloud: Cloud, listener: dict[str, Any]) -> HealthCheck:
    """Listener timings scaled by the time scale, within bounds a real socket can honour."""
    interval = listener["health_check_interval"]
    timeout = listener["health_check_connect_timeout"]
    return HealthCheck(
        enabled=listener["health_check"] == "on",
        port=listener.get("health_check_connect_port"),
        interval=_clamp(cloud.clock.scaled(interval), 0.05, interval),
        timeout=_clamp(cloud.clock.scaled(timeout), 0.2, min(timeout, 5)),
        healthy_threshold=listener["healthy_threshold"],
        unhealthy_threshold=listener["unhealthy_threshold"],
    )


def _backends(cloud: Cloud, lb: dict[str, Any], listener: dict[str, Any]) -> list[Backend]:
    found = []
    for server in lb["backends"]:
        instance = ecs.instance_by_id(cloud.state, server["server_id"])
        if instance is None:
            continue
        found.append(Backend(server["server_id"], instance["private_ip"],
                             listener["backend_port"], server["weight"]))
    return found


def sync_listener(cloud: Cloud, lb: dict[str, Any], port: int) -> None:
    """Open, reconfigure or close the proxy of one listener to match its status."""
    proxies = _proxies(cloud)
    key = (lb["lb_id"], port)
    listener = lb["listeners"].get(str(port))
    wanted = listener is not None and listener["status"] in ("starting", "running")
    proxy = proxies.get(key)
    if not wanted:
        if proxy is not None:
            proxies.pop(key).close()
        return
    assert listener is not None
    if proxy is None:
        proxies[key] = ListenerProxy(
            lb["address"], port, cloud.plumbing.netns, backends=_backends(cloud, lb, listener),
            health=_health_check(cloud, listener), scheduler=listener["scheduler"],
        )
    else:
        proxy.set_backends(_backends(cloud, lb, listener))
        proxy.set_health_check(_health_check(cloud, listener))


def _sync_all_listeners(cloud: Cloud, lb: dict[str, Any]) -> None:
    for port in lb["listeners"]:
        sync_listener(cloud, lb, int(port))


def _close_all(cloud: Cloud) -> None:
    proxies = _proxies(cloud)
    while proxies:
        _, proxy = proxies.popitem()
        proxy.close()


@SLB.on_start
def restore_listeners(cloud: Cloud) -> None:
    for lb in load_balancers(cloud.state).values():
        _sync_all_listeners(cloud, lb)


@SLB.on_stop
def stop_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@SLB.on_reset
def reset_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@SLB.ticker
def advance_listeners(cloud: Cloud) -> None:
    for lb in load_balancers(cloud.state).values():
        for listener in lb["listeners"].values():
            if listener["status"] == "starting" and cloud.clock.is_due(listener["running_at"]):
                listener["status"] = "running"


@SLB.resources
def list_resources(cloud: Cloud) -> list[dict[str, Any]]:
    listed = []
    proxies = _proxies(cloud)
    for lb in load_balancers(cloud.state).values():
        listed.append({
            "type": "slb_load_balancer", "id": lb["lb_id"], "state": lb["status"],
            "addresses": [lb["address"]], "tags": lb["tags"],
            "ports": sorted(int(p) for p in lb["listeners"]),
            "backends": [b["server_id"] for b in lb["backends"]], "pids": [],
            "instance_charge_type": lb["instance_charge_type"], "spec": lb["spec"],
        })
        for port, listener in lb["listeners"].items():
            proxy = proxies.get((lb["lb_id"], int(port)))
            listed.append({
                "type": "slb_listener", "id": f"{lb['lb_id']}:{port}", "state": listener["status"],
                "addresses": [lb["address"]], "ports": [int(port)], "tags": [],
                "listening": proxy is not None, "health": proxy.health_status() if proxy else {},
                "pids": [],
            })
    return listed


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
    wanted = {name: None for name in _CREATE_FIELDS}
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


# ---- TCP listeners -------------------------------------------------------------------------
_TCP_LISTENER_PARAMS = (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("ListenerPort", "integer", required=True, minimum=1, maximum=65535),
    Param("Bandwidth", "integer", required=True, minimum=-1, maximum=5120),
    Param("BackendServerPort", "integer", minimum=1, maximum=65535),
    Param("VServerGroupId"), Param("MasterSlaveServerGroupId"),
    Param("Scheduler", enum=("wrr", "rr", "sch", "tch", "qch"), default="wrr"),
    Param("PersistenceTimeout", "integer", minimum=0, maximum=3600, default=0),
    Param("EstablishedTimeout", "integer", minimum=10, maximum=900, default=900),
    Param("HealthCheckSwitch", enum=("on", "off"), default="on"),
    Param("HealthCheckType", enum=("tcp", "http"), default="tcp"),
    Param("HealthCheckConnectPort", "integer", minimum=1, maximum=65535),
    Param("HealthyThreshold", "integer", minimum=2, maximum=10, default=3),
    Param("UnhealthyThreshold", "integer", minimum=2, maximum=10, default=3),
    Param("HealthCheckConnectTimeout", "integer", minimum=1, maximum=300, default=5),
    Param("healthCheckInterval", "integer", minimum=1, maximum=50, default=2),
    Param("HealthCheckDomain"), Param("HealthCheckURI"), Param("HealthCheckHttpCode"),
    Param("Description", max_length=80), Param("AclStatus", enum=("on", "off"), default="off"),
    Param("AclType", enum=("white", "black")), Param("AclId"),
    Param("ConnectionDrain", enum=("on", "off"), default="off"),
    Param("ConnectionDrainTimeout", "integer", minimum=10, maximum=900),
    Param("ProxyProtocolV2Enabled", "boolean", default=False),
)


@SLB.action("CreateLoadBalancerTCPListener", _TCP_LISTENER_PARAMS)
def create_tcp_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    if params["BackendServerPort"] is None and not params["VServerGroupId"]:
        raise BACKEND_MISSING_PORT
    if params["VServerGroupId"]:
        raise errors.ApiError(400, "InvalidParameter.VServerGroupId",
                              "The specified VServerGroupId does not exist.")
    bandwidth = params["Bandwidth"]
    if bandwidth == 0 or (bandwidth == -1 and lb["internet_charge_type"] == "paybybandwidth"):
        raise errors.invalid_parameter("Bandwidth")
    port = params["ListenerPort"]
    if str(port) in lb["listeners"]:
        raise LISTENER_EXISTS
    lb["listeners"][str(port)] = {
        "port": port, "protocol": "tcp", "backend_port": params["BackendServerPort"],
        "bandwidth": bandwidth, "scheduler": params["Scheduler"],
        "persistence_timeout": params["PersistenceTimeout"],
        "established_timeout": params["EstablishedTimeout"],
        "health_check": params["HealthCheckSwitch"],
        "health_check_type": params["HealthCheckType"],
        "health_check_connect_port": params["HealthCheckConnectPort"],
        "healthy_threshold": params["HealthyThreshold"],
        "unhealthy_threshold": params["UnhealthyThreshold"],
        "health_check_connect_timeout": params["HealthCheckConnectTimeout"],
        "health_check_interval": params["healthCheckInterval"],
        "health_check_domain": params["HealthCheckDomain"] or "",
        "health_check_uri": params["HealthCheckURI"] or "",
        "health_check_http_code": params["HealthCheckHttpCode"] or "",
        "description": params["Description"] or "", "acl_status": params["AclStatus"],
        "acl_type": params["AclType"] or "", "acl_id": params["AclId"] or "",
        "connection_drain": params["ConnectionDrain"],
        "connection_drain_timeout": params["ConnectionDrainTimeout"] or 0,
        "proxy_protocol_v2": params["ProxyProtocolV2Enabled"],
        "status": "stopped", "running_at": None,
    }
    return {}


_LISTENER_REF = (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("ListenerPort", "integer", required=True, minimum=1, maximum=65535),
    Param("ListenerProtocol", enum=("tcp", "udp", "http", "https")),
)


@SLB.action("DescribeLoadBalancerTCPListenerAttribute", _LISTENER_REF[:3])
def describe_tcp_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    listener = _listener_or_error(lb, params["ListenerPort"])
    return {
        "LoadBalancerId": lb["lb_id"], "ListenerPort": listener["port"],
        "BackendServerPort": listener["backend_port"], "Bandwidth": listener["bandwidth"],
        "Status": listener["status"], "Scheduler": listener["scheduler"], "SynProxy": "disable",
        "PersistenceTimeout": listener["persistence_timeout"],
        "EstablishedTimeout": listener["established_timeout"],
        "HealthCheck": listener["health_check"],
        "HealthCheckType": listener["health_check_type"],
        "HealthCheckConnectPort": listener["health_check_connect_port"]
        or listener["backend_port"],
        "HealthyThreshold": listener["healthy_threshold"],
        "UnhealthyThreshold": listener["unhealthy_threshold"],
        "HealthCheckConnectTimeout": listener["health_check_connect_timeout"],
        "HealthCheckInterval": listener["health_check_interval"],
        "HealthCheckDomain": listener["health_check_domain"],
        "HealthCheckURI": listener["health_check_uri"],
        "HealthCheckHttpCode": listener["health_check_http_code"],
        "Description": listener["description"], "AclStatus": listener["acl_status"],
        "AclType": listener["acl_type"], "AclId": listener["acl_id"], "VServerGroupId": "",
        "ConnectionDrain": listener["connection_drain"],
        "ConnectionDrainTimeout": listener["connection_drain_timeout"],
        "ProxyProtocolV2Enabled": listener["proxy_protocol_v2"],
    }


def _check_protocol(params: Params) -> None:
    if params["ListenerProtocol"] not in (None, "tcp"):
        raise LISTENER_NOT_FOUND


@SLB.action("StartLoadBalancerListener", _LISTENER_REF)
def start_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    _check_protocol(params)
    listener = _listener_or_error(lb, params["ListenerPort"])
    if lb["status"] == "locked":
        raise errors.ApiError(400, "OperationFailed.LoadBalancerLocked",
                              "The load balancer is locked.")
    if listener["status"] != "stopped":
        raise LISTENER_STATUS
    listener["status"] = "starting"
    listener["running_at"] = ctx.clock.after(LISTENER_START_SECONDS)
    try:
        sync_listener(ctx.cloud, lb, params["ListenerPort"])
    except OSError as exc:
        raise errors.ApiError(500, "InternalError",
                              f"The listener could not be started: {exc.strerror}.") from None
    return {}


@SLB.action("StopLoadBalancerListener", _LISTENER_REF)
def stop_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    _check_protocol(params)
    listener = _listener_or_error(lb, params["ListenerPort"])
    listener["status"] = "stopped"
    listener["running_at"] = None
    sync_listener(ctx.cloud, lb, params["ListenerPort"])
    return {}


@SLB.action("DeleteLoadBalancerListener", _LISTENER_REF)
def delete_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    _check_protocol(params)
    _listener_or_error(lb, params["ListenerPort"])
    del lb["listeners"][str(params["ListenerPort"])]
    sync_listener(ctx.cloud, lb, params["ListenerPort"])
    return {}


# ---- backend servers -----------------------------------------------------------------------
def _parse_backend_servers(raw: str, ids_allowed: bool = False) -> list[dict[str, Any]]:
    """The JSON list (TF sends it with single quotes, which the service accepts too)."""
    value = parse_json_value(Param("BackendServers", "json", python_repr_ok=True), raw)
    if ids_allowed and isinstance(value, list):  # the legacy ["i-xxx"] form of Remove
        value = [{"ServerId": v} if isinstance(v, str) else v for v in value]
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise errors.invalid_parameter("BackendServers")
    if len(value) > MAX_BACKENDS_PER_CALL:
        raise errors.ApiError(400, "InvalidParameter.BackendServers",
                              "The number of backend servers exceeds 20.")
    return value


def _backend_view(server: dict[str, Any], weight_as_text: bool) -> dict[str, Any]:
    return {"ServerId": server["server_id"],
            "Weight": str(server["weight"]) if weight_as_text else server["weight"],
            "Type": server["type"], "Description": server["description"]}


@SLB.action("AddBackendServers", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("BackendServers", required=True),
))
def add_backend_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    entries = _parse_backend_servers(params["BackendServers"])
    attached = {b["server_id"] for b in lb["backends"]}
    seen: set[str] = set()
    added = []
    for entry in entries:
        server_id = str(entry.get("ServerId", ""))
        if not server_id:
            raise errors.missing_parameter("ServerId")
        if server_id in seen:
            continue  # documented: duplicates in one request, the first wins
        seen.add(server_id)
        server_type = str(entry.get("Type", "ecs") or "ecs")
        if server_type != "ecs":
            raise errors.ApiError(400, "InvalidParameter.Type",
                                  "Only ecs backend servers are supported by this instance.")
        weight_text = str(entry.get("Weight", "100"))
        if not weight_text.isdigit() or not 0 <= int(weight_text) <= 100:
            raise errors.ApiError(400, "InvalidParameter.Weight",
                                  "The specified Weight is not valid.")
        instance = ecs.instance_by_id(state, server_id)
        if instance is None or instance["region_id"] != ctx.region_id:
            raise errors.ApiError(400, "InvalidParameter.ServerId",
                                  "The specified ServerId does not exist.")
        if lb["network_type"] == "vpc" and instance["vpc_id"] != lb["vpc_id"]:
            raise NETWORK_TYPE_MISMATCH
        if instance["status"] != "Running":
            raise errors.ApiError(400, "IncorrectInstanceStatus",
                                  "The backend server must be in the Running state.")
        if server_id in attached:
            raise errors.ApiError(400, "InvalidParameter.BackendServerExists",
                                  "The specified backend server is already attached.")
        added.append({"server_id": server_id, "weight": int(weight_text), "type": server_type,
                      "description": str(entry.get("Description", ""))})
    lb["backends"].extend(added)
    _sync_all_listeners(ctx.cloud, lb)
    return {"LoadBalancerId": lb["lb_id"], "BackendServers": {
        "BackendServer": [_backend_view(b, True) for b in lb["backends"]]}}


@SLB.action("RemoveBackendServers", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("BackendServers", required=True),
))
def remove_backend_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    entries = _parse_backend_servers(params["BackendServers"], ids_allowed=True)
    gone = {str(e.get("ServerId", "")) for e in entries}
    lb["backends"] = [b for b in lb["backends"] if b["server_id"] not in gone]
    _sync_all_listeners(ctx.cloud, lb)
    return {"LoadBalancerId": lb["lb_id"], "BackendServers": {
        "BackendServer": [_backend_view(b, True) for b in lb["backends"]]}}


@SLB.action("SetBackendServers", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("BackendServers", required=True),
))
def set_backend_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Change weights/descriptions of attached servers (unknown ids are refused)."""
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    attached = {b["server_id"]: b for b in lb["backends"]}
    for entry in _parse_backend_servers(params["BackendServers"]):
        server = attached.get(str(entry.get("ServerId", "")))
        if server is None:
            raise errors.ApiError(400, "InvalidParameter.ServerId",
                                  "The specified ServerId does not exist.")
        weight_text = str(entry.get("Weight", server["weight"]))
        if not weight_text.isdigit() or not 0 <= int(weight_text) <= 100:
            raise errors.ApiError(400, "InvalidParameter.Weight",
                                  "The specified Weight is not valid.")
        server["weight"] = int(weight_text)
        server["description"] = str(entry.get("Description", server["description"]))
    _sync_all_listeners(ctx.cloud, lb)
    return {"LoadBalancerId": lb["lb_id"], "BackendServers": {
        "BackendServer": [_backend_view(b, True) for b in lb["backends"]]}}


@SLB.action("DescribeHealthStatus", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("ListenerPort", "integer", minimum=1, maximum=65535),
    Param("ListenerProtocol", enum=("tcp", "udp", "http", "https")),
))
def describe_health_status(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    ports = _listener_ports(lb)
    if params["ListenerPort"] is not None:
        _listener_or_error(lb, params["ListenerPort"])
        ports = [params["ListenerPort"]]
    proxies = _proxies(ctx.cloud)
    rows = []
    for port in ports:
        listener = lb["listeners"][str(port)]
        proxy = proxies.get((lb["lb_id"], port))
        statuses = proxy.health_status() if proxy else {}
        for server in lb["backends"]:
            instance = ecs.instance_by_id(state, server["server_id"])
            rows.append({
                "ServerId": server["server_id"],
                "ServerIp": instance["private_ip"] if instance else "",
                "Port": listener["backend_port"], "ListenerPort": port, "Protocol": "tcp",
                "ServerHealthStatus": statuses.get(server["server_id"], UNAVAILABLE),
            })  # no EniHost: gone from today's API reference and the V2 model (3.3.31)
    return {"BackendServers": {"BackendServer": rows}}


# ---- tags ----------------------------------------------------------------------------------
@SLB.action("AddTags", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("Tags", required=True),
))
def add_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    new = tags.from_json_list(params["Tags"])
    if len(new) > 10:
        raise errors.invalid_parameter("Tags")
    lb["tags"] = tags.merge(lb["tags"], new)
    return {}


@SLB.action("RemoveTags", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("Tags", required=True),
))
def remove_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    lb["tags"] = tags.remove(lb["tags"], tags.from_json_list(params["Tags"]))
    return {}


@SLB.action("DescribeTags", (
    Param("RegionId", required=True), Param("LoadBalancerId"), Param("Tags"),
    Param("DistinctKey", "boolean", default=False),
    Param("PageNumber", "integer", minimum=1, default=1),
    Param("PageSize", "integer", minimum=1, maximum=100, default=50),
))
def describe_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted = tags.from_json_list(params["Tags"]) if params.given("Tags") else []
    lbs = [lb for lb in load_balancers(state).values() if lb["region_id"] == ctx.region_id]
    if params["LoadBalancerId"]:
        lbs = [lb for lb in lbs if lb["lb_id"] in _csv(params["LoadBalancerId"])]
    counts: dict[tuple[str, str], int] = {}
    for lb in lbs:
        for tag in lb["tags"]:
            if wanted and not any(tags.matches([tag], [w]) for w in wanted):
                continue
            key = (tag["Key"], "" if params["DistinctKey"] else tag["Value"])
            counts[key] = counts.get(key, 0) + 1
    sets = [{"TagKey": k, "TagValue": v, "InstanceCount": n}
            for (k, v), n in sorted(counts.items())]
    chosen = page(sets, params["PageNumber"], params["PageSize"])
    return {"TotalCount": len(sets), "PageNumber": params["PageNumber"],
            "PageSize": params["PageSize"], "TagSets": {"TagSet": chosen}}


_RESOURCE_TYPE = Param("ResourceType", required=True, enum=("instance", "certificate", "acl"))


def _tagged_lbs(state: State, params: Params, ctx: RequestContext) -> list[dict[str, Any]]:
    lbs = []
    for lb_id in params.repeat_list("ResourceId"):
        lbs.append(_lb_or_error(state, ctx, lb_id))
    if not lbs:
        raise errors.missing_parameter("ResourceId.1")
    return lbs


@SLB.action("TagResources", (Param("RegionId", required=True), _RESOURCE_TYPE))
def tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    new = tags.from_repeat_list(params.raw)
    if not new:
        raise errors.missing_parameter("Tag.1.Key")
    for lb in _tagged_lbs(state, params, ctx):
        lb["tags"] = tags.merge(lb["tags"], new)
    return {}


@SLB.action("UntagResources", (
    Param("RegionId", required=True), _RESOURCE_TYPE, Param("All", "boolean", default=False),
))
def untag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    keys = params.repeat_list("TagKey")
    for lb in _tagged_lbs(state, params, ctx):
        lb["tags"] = [] if params["All"] else [t for t in lb["tags"] if t["Key"] not in keys]
    return {}


@SLB.action("ListTagResources", (
    Param("RegionId", required=True), _RESOURCE_TYPE, Param("NextToken"),
))
def list_tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("ResourceId")
    wanted_tags = tags.from_repeat_list(params.raw)
    if not wanted_ids and not wanted_tags:
        raise errors.missing_parameter("ResourceId.1")
    rows = []
    for lb in load_balancers(state).values():
        if lb["region_id"] != ctx.region_id or (wanted_ids and lb["lb_id"] not in wanted_ids):
            continue
        if not tags.matches(lb["tags"], wanted_tags):
            continue
        rows.extend({"ResourceType": "instance", "ResourceId": lb["lb_id"],
                     "TagKey": t["Key"], "TagValue": t["Value"]} for t in lb["tags"])
    return {"NextToken": "", "TagResources": {"TagResource": rows}}
