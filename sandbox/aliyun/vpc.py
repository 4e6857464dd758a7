"""VPC 2016-04-28: VPCs and vSwitches, seeded or created (CreateVpc/CreateVSwitch/Delete*).

Why: the panel lets a person pick a VPC and vSwitch and checks their zone; RDS, SLB and ECS
take their addresses from these vSwitch CIDRs, so they must be visible through the real
API; when the region has none the panel creates them.

Sources: V2 alibabacloud_vpc20160428 7.2.2 request docstrings (VPC CidrBlock mask 16 to 28
bits, not within 100.64.0.0/10, 224.0.0.0/4, 127.0.0.0/8, 169.254.0.0/16; vSwitch mask 16
to 29 bits, a subset of the VPC's block, not those reserved ranges; names and descriptions 1
to 256/128 characters, not starting with http:// or https://; ClientToken ASCII; DryRun
answers `DryRunOperation`). Error tables of CreateVSwitch and DeleteVpc (Alibaba's API
reference, help.aliyun.com doc_api_Vpc_CreateVSwitch / doc_api_Vpc_DeleteVpc):
`InvalidCidrBlock.Overlapped` "Specified CIDR block overlapped with other subnets.",
`InvalidParameter` "Specified CIDR block is not valid in VPC.", `InvalidCidrBlock.Malformed`,
`InvalidCirdrBlock.MaskLength` (sic), `IncorrectVpcStatus`, `InvalidVpcId.NotFound`,
`InvalidZoneId.NotFound`, `QuotaExceeded.VSwitch` (24 a VPC: "每个VPC内的交换机数量不能超过24个");
DeleteVpc: only an Available VPC, `DependencyViolation.VSwitch`,
`DependencyViolation.SecurityGroup` (also what terraform-provider-alicloud
resource_alicloud_vpc.go retries). DeleteVSwitch: `DependencyViolation` while instances or
cloud product addresses remain and `IncorrectVSwitchStatus` (resource_alicloud_vswitch.go
retries both). A new VPC is `Pending`, then `Available` (terraform waits for Available after
CreateVpc and CreateVSwitch); deletes complete a little after the call (terraform waits for
Deleted after DeleteVpc); times below are realistic seconds x the time scale.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from typing import Any

from sandbox.aliyun.gateway import errors, ids, network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import ClientTokenPolicy, Product, register_product
from sandbox.aliyun.gateway.state import State

VPC = register_product(Product("Vpc", "2016-04-28", "vpc.aliyuncs.com"))
VPC_PENDING_SECONDS = 5.0
VSWITCH_PENDING_SECONDS = 3.0
# Deletes are asynchronous too: terraform-provider-alicloud resource_alicloud_vpc.go waits
# for the VPC to be gone after DeleteVpc (WaitForVpc(id, Deleted, ...)), and a vSwitch still
# being deleted keeps its VPC's DeleteVpc at DependencyViolation.VSwitch. How long: chosen.
VPC_DELETE_SECONDS = 5.0
VSWITCH_DELETE_SECONDS = 3.0
VSWITCHES_PER_VPC = 24
_RESERVED = tuple(ipaddress.IPv4Network(n) for n in
                  ("100.64.0.0/10", "224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16"))
# Chosen (no VPC source names the code for a token reused with other parameters): the one
# ECS documents for the same case.
TOKEN_CONFLICT = errors.ApiError(
    400, "IdempotenceParamNotMatch",
    "Request uses a client token in a previous request but is not identical to that request.")
DRY_RUN = errors.ApiError(400, "DryRunOperation",
                          "Request validation has been passed with DryRun flag set.")
VPC_NOT_FOUND = errors.ApiError(404, "InvalidVpcId.NotFound", "Specified VPC does not exist.")
VSWITCH_NOT_FOUND = errors.ApiError(404, "InvalidVSwitchId.NotFound",
                                    "Specified virtual switch does not exist.")
INCORRECT_VPC = errors.ApiError(400, "IncorrectVpcStatus",
                                "Current VPC status does not support this operation.")


def _status(entry: dict[str, object]) -> str:
    return str(entry.get("status", "Available"))



def _vswitch_view(state: State, vsw: dict[str, Any]) -> dict[str, Any]:
    network_ = ipaddress.ip_network(vsw["cidr"])
    used = sum(1 for a in network.addresses_in_use(state)
               if ipaddress.ip_address(a) in network_)
    return {
        "VSwitchId": vsw["vswitch_id"], "VpcId": vsw["vpc_id"], "Status": _status(vsw),
        "CidrBlock": vsw["cidr"], "ZoneId": vsw["zone_id"],
        "AvailableIpAddressCount": max(0, network_.num_addresses - 4 - used),
        "Description": vsw.get("description", ""), "VSwitchName": vsw["name"],
        "CreationTime": iso_utc(vsw["created_at"]), "IsDefault": vsw["is_default"],
        "ResourceGroupId": "", "NetworkAclId": "", "OwnerId": 0, "ShareType": "",
        "Ipv6CidrBlock": "", "RouteTable": {"RouteTableId": "", "RouteTableType": "System"},
        "Tags": tags.as_response(vsw.get("tags", []), style="Key"),
    }


@VPC.action("DescribeVSwitches", (
    Param("RegionId"), Param("VpcId"), Param("VSwitchId"), Param("ZoneId"), Param("VSwitchName"),
    Param("IsDefault", "boolean"), *page_params(10, 50),
))
def describe_vswitches(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_tags = tags.from_repeat_list(params.raw)
    found = [
        v for v in sorted(state.bucket("vswitches").values(), key=lambda v: v["vswitch_id"])
        if v["region_id"] == ctx.region_id
        and (not params["VpcId"] or v["vpc_id"] == params["VpcId"])
        and (not params["VSwitchId"] or v["vswitch_id"] == params["VSwitchId"])
        and (not params["ZoneId"] or v["zone_id"] == params["ZoneId"])
        and (not params["VSwitchName"] or v["name"] == params["VSwitchName"])
        and (params["IsDefault"] is None or v["is_default"] == params["IsDefault"])
        and tags.matches(v.get("tags", []), wanted_tags)
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    return {
        "TotalCount": len(found), "PageNumber": params["PageNumber"],
        "PageSize": params["PageSize"],
        "VSwitches": {"VSwitch": [_vswitch_view(state, v) for v in chosen]},
    }


@VPC.action("DescribeVpcs", (
    Param("RegionId", required=True), Param("VpcId"), Param("VpcName"),
    Param("IsDefault", "boolean"), *page_params(10, 50),
))
def describe_vpcs(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_tags = tags.from_repeat_list(params.raw)
    wanted = [v for v in (params["VpcId"] or "").split(",") if v]
    found = [
        v for v in sorted(state.bucket("vpcs").values(), key=lambda v: v["vpc_id"])
        if v["region_id"] == ctx.region_id
        and (not wanted or v["vpc_id"] in wanted)
        and (not params["VpcName"] or v["name"] == params["VpcName"])
        and (params["IsDefault"] is None or v["is_default"] == params["IsDefault"])
        and tags.matches(v.get("tags", []), wanted_tags)
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    views = []
    for vpc in chosen:
        switches = sorted(s["vswitch_id"] for s in state.bucket("vswitches").values()
                          if s["vpc_id"] == vpc["vpc_id"])
        views.append({
            "VpcId": vpc["vpc_id"], "RegionId": vpc["region_id"], "Status": _status(vpc),
            "VpcName": vpc["name"], "CidrBlock": vpc["cidr"],
            "Description": vpc.get("description", ""),
            "VRouterId": "vrt-" + vpc["vpc_id"][4:], "IsDefault": vpc["is_default"],
            "CreationTime": iso_utc(vpc["created_at"]), "ResourceGroupId": "",
            "VSwitchIds": {"VSwitchId": switches}, "UserCidrs": {"UserCidr": []},
            "NatGatewayIds": {"NatGatewayIds": []}, "RouterTableIds": {"RouterTableIds": []},
            "Ipv6CidrBlock": "", "CenStatus": "Detached", "OwnerId": 0,
            "Tags": tags.as_response(vpc.get("tags", []), style="Key"),
        })
    return {
        "TotalCount": len(found), "PageNumber": params["PageNumber"],
        "PageSize": params["PageSize"], "Vpcs": {"Vpc": views},
    }


# ---- creating and deleting ------------------------------------------------------------------
def _check_text(value: str | None, name: str, limit: int) -> None:
    if value is not None and (not 1 <= len(value) <= limit
                              or value.startswith(("http://", "https://"))):
        raise errors.ApiError(400, f"Invalid{name}.Malformed",
                              f"Specified {name} is not valid.")


def _cidr(text: str, low: int, high: int) -> ipaddress.IPv4Network:
    try:
        block = ipaddress.IPv4Network(text)
    except ValueError:
        raise errors.ApiError(400, "InvalidCidrBlock.Malformed",
                              "Specified CIDR block is not valid.") from None
    if not low <= block.prefixlen <= high:
        raise errors.ApiError(400, "InvalidCirdrBlock.MaskLength",
                              "Specified CIDR block is not valid .")
    if any(block.subnet_of(r) for r in _RESERVED):
        raise errors.ApiError(400, "InvalidCidrBlock.Malformed",
                              "Specified CIDR block is not valid.")
    return block


@VPC.action("CreateVpc", (
    Param("RegionId", required=True), Param("CidrBlock"), Param("VpcName"),
    Param("Description"), Param("DryRun", "boolean"), Param("ClientToken"),
    Param("ResourceGroupId"), Param("EnableIpv6", "boolean"), Param("UserCidr"),
), client_token=ClientTokenPolicy(TOKEN_CONFLICT))
def create_vpc(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """CidrBlock defaults to 172.16.0.0/12, as the console's first choice (V2 names 10/8,
    172.16/12 and 192.168/16 as the recommended blocks)."""
    ctx.require_region()
    block = _cidr(params["CidrBlock"] or "172.16.0.0/12", 8, 28)
    if params["CidrBlock"] and block.prefixlen < 16:
        raise errors.ApiError(400, "InvalidCirdrBlock.MaskLength",
                              "Specified CIDR block is not valid .")
    _check_text(params["VpcName"], "VpcName", 128)
    _check_text(params["Description"], "Description", 256)
    if params["DryRun"]:
        raise DRY_RUN
    vpc_id = ids.resource_id("vpc-", 21)
    state.bucket("vpcs")[vpc_id] = {
        "vpc_id": vpc_id, "region_id": ctx.region_id, "cidr": str(block),
        "name": params["VpcName"] or "", "description": params["Description"] or "",
        "created_at": ctx.clock.now(), "is_default": False, "status": "Pending",
        "ready_at": ctx.clock.after(VPC_PENDING_SECONDS), "created": True,
        "tags": tags.from_repeat_list(params.raw),
    }
    return {"VpcId": vpc_id, "VRouterId": "vrt-" + vpc_id[4:], "RouteTableId":
            "vtb-" + vpc_id[4:], "ResourceGroupId": params["ResourceGroupId"] or ""}


@VPC.action("CreateVSwitch", (
    Param("RegionId", required=True), Param("VpcId", required=True),
    Param("ZoneId", required=True), Param("CidrBlock"), Param("CidrMask", "integer"),
    Param("VSwitchName"), Param("Description"), Param("ClientToken"),
), client_token=ClientTokenPolicy(TOKEN_CONFLICT))
def create_vswitch(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """CidrBlock, or CidrMask alone: "You must specify at least one of CidrBlock and
    CidrMask" (V2 CreateVSwitchRequest.CidrMask, mask 16 to 29 bits); with the mask alone
    the first free block of that size in the VPC is taken."""
    region = ctx.require_region()
    vpc = network.vpc(state, params["VpcId"])
    if vpc is None or vpc["region_id"] != ctx.region_id:
        raise VPC_NOT_FOUND
    if params["ZoneId"] not in region["zones"]:
        raise errors.ApiError(404, "InvalidZoneId.NotFound", "Specified zone does not exist.")
    if _status(vpc) != "Available" or vpc.get("deleted_at"):
        raise INCORRECT_VPC
    mask = params["CidrMask"]
    if not params["CidrBlock"] and mask is None:
        raise errors.missing_parameter("CidrBlock")
    if mask is not None and not 16 <= mask <= 29:
        raise errors.ApiError(400, "InvalidCirdrBlock.MaskLength",
                              "Specified CIDR block is not valid .")
    siblings = [v for v in state.bucket("vswitches").values() if v["vpc_id"] == vpc["vpc_id"]]
    if params["CidrBlock"]:
        block = _cidr(params["CidrBlock"], 16, 29)
        if mask is not None and block.prefixlen != mask:
            raise errors.ApiError(400, "InvalidParameter",
                                  "CidrMask does not match the mask of CidrBlock.")
    else:
        assert mask is not None
        block = _free_block(ipaddress.IPv4Network(vpc["cidr"]), mask,
                            [ipaddress.IPv4Network(v["cidr"]) for v in siblings])
    if not block.subnet_of(ipaddress.IPv4Network(vpc["cidr"])):
        raise errors.ApiError(400, "InvalidParameter", "Specified CIDR block is not valid in VPC.")
    if any(block.overlaps(ipaddress.IPv4Network(v["cidr"])) for v in siblings):
        raise errors.ApiError(400, "InvalidCidrBlock.Overlapped",
                              "Specified CIDR block overlapped with other subnets.")
    if len(siblings) >= VSWITCHES_PER_VPC:
        raise errors.ApiError(400, "QuotaExceeded.VSwitch", "Virtual switch quota exceeded.")
    if any(_status(v) == "Pending" for v in siblings):
        raise errors.ApiError(400, "IncorrectVSwitchStatus",
                              "VSwitch Creation simultaneously is not supported.")
    _check_text(params["VSwitchName"], "VSwitchName", 128)
    _check_text(params["Description"], "VSwitchDiscription", 256)
    vswitch_id = ids.resource_id("vsw-", 21)
    state.bucket("vswitches")[vswitch_id] = {
        "vswitch_id": vswitch_id, "vpc_id": vpc["vpc_id"], "region_id": ctx.region_id,
        "zone_id": params["ZoneId"], "cidr": str(block), "name": params["VSwitchName"] or "",
        "description": params["Description"] or "", "created_at": ctx.clock.now(),
        "is_default": False, "status": "Pending", "created": True,
        "ready_at": ctx.clock.after(VSWITCH_PENDING_SECONDS),
        "tags": tags.from_repeat_list(params.raw),
    }
    route_vswitch(ctx.cloud, str(block), add=True)
    return {"VSwitchId": vswitch_id}


def _free_block(vpc: ipaddress.IPv4Network, mask: int,
                taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The lowest block of `mask` bits inside the VPC that overlaps no vSwitch of it and no
    reserved range; none left: the overlap error CidrBlock would get."""
    if mask < vpc.prefixlen:
        raise errors.ApiError(400, "InvalidParameter", "Specified CIDR block is not valid in VPC.")
    size = 1 << (32 - mask)
    spans = sorted((int(n.network_address), int(n.broadcast_address))
                   for n in (*taken, *_RESERVED))
    start, end = int(vpc.network_address), int(vpc.broadcast_address)
    while start + size - 1 <= end:
        clash = next((hi for lo, hi in spans if lo <= start + size - 1 and start <= hi), None)
        if clash is None:
            return ipaddress.IPv4Network((start, mask))
        start = (clash // size + 1) * size  # the next aligned block past the clash
    raise errors.ApiError(400, "InvalidCidrBlock.Overlapped",
                          f"Specified CIDR block overlapped with other subnets: no free /{mask} "
                          "left in the VPC.")


# Who else holds addresses or members in a vSwitch or VPC: each answers (state, id) ->
# whether it does. ECS instances and every service address (RDS, SLB, NLB) count.
def _vswitch_in_use(state: State, vswitch_id: str) -> bool:
    if any(i["vswitch_id"] == vswitch_id for i in state.table("ecs", "instances").values()):
        return True
    return any(entry.get("pool") == vswitch_id for entry in state.bucket("addresses").values())


@VPC.action("DeleteVSwitch", (
    Param("RegionId"), Param("VSwitchId", required=True), Param("DryRun", "boolean"),
))
def delete_vswitch(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    vsw = network.vswitch(state, params["VSwitchId"])
    if vsw is None or (ctx.region_id and vsw["region_id"] != ctx.region_id):
        raise VSWITCH_NOT_FOUND
    if _status(vsw) != "Available":
        raise errors.ApiError(400, "IncorrectVSwitchStatus",
                              "The current status of virtual switch does not support this "
                              "operation.")
    if _vswitch_in_use(state, vsw["vswitch_id"]):
        raise errors.ApiError(400, "DependencyViolation",
                              "Specified object has dependent resources.")
    if params["DryRun"]:
        raise DRY_RUN
    # Still listed (with its status: none documented for it) until the deletion completes;
    # asked again meanwhile, nothing changes (chosen).
    vsw.setdefault("deleted_at", ctx.clock.after(VSWITCH_DELETE_SECONDS))
    return {}


def _forget_vswitch(cloud: Cloud, vsw: dict[str, Any]) -> None:
    del cloud.state.bucket("vswitches")[vsw["vswitch_id"]]
    if vsw.get("created") and not _route_still_needed(cloud.state, vsw["cidr"]):
        route_vswitch(cloud, vsw["cidr"], add=False)


def _route_still_needed(state: State, cidr: str) -> bool:
    """Another created vSwitch (another VPC may reuse a block) routes the same block: its
    route stays until the last one goes."""
    return any(v.get("created") and v["cidr"] == cidr
               for v in state.bucket("vswitches").values())


@VPC.action("DeleteVpc", (
    Param("RegionId"), Param("VpcId", required=True), Param("DryRun", "boolean"),
    Param("ForceDelete", "boolean"), Param("ClientToken"),
))
def delete_vpc(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    vpc = network.vpc(state, params["VpcId"])
    if vpc is None or (ctx.region_id and vpc["region_id"] != ctx.region_id):
        raise VPC_NOT_FOUND
    if _status(vpc) != "Available":
        raise INCORRECT_VPC
    if any(v["vpc_id"] == vpc["vpc_id"] for v in state.bucket("vswitches").values()):
        raise errors.ApiError(400, "DependencyViolation.VSwitch",
                              "Specified object has dependent resources")
    if any(g["vpc_id"] == vpc["vpc_id"] for g in state.table("ecs", "security_groups").values()):
        raise errors.ApiError(400, "DependencyViolation.SecurityGroup",
                              "Specified object has dependent resources SecurityGroup.")
    if params["DryRun"]:
        raise DRY_RUN
    vpc.setdefault("deleted_at", ctx.clock.after(VPC_DELETE_SECONDS))  # as a vSwitch's
    return {}


@VPC.ticker
def advance(cloud: Cloud) -> None:
    for bucket in ("vpcs", "vswitches"):
        for entry in cloud.state.bucket(bucket).values():
            if entry.get("status") == "Pending" and cloud.clock.is_due(entry.get("ready_at")):
                entry["status"] = "Available"
    for vsw in list(cloud.state.bucket("vswitches").values()):
        if cloud.clock.is_due(vsw.get("deleted_at")):
            _forget_vswitch(cloud, vsw)
    for vpc in list(cloud.state.bucket("vpcs").values()):
        if cloud.clock.is_due(vpc.get("deleted_at")):
            del cloud.state.bucket("vpcs")[vpc["vpc_id"]]


def route_vswitch(cloud: Cloud, cidr: str, *, add: bool) -> None:
    """In netns mode a created vSwitch's block is routed on the cloud device (inside the
    cloud namespace only), so services there answer hosts numbered from it."""
    netns, device = cloud.plumbing.netns, cloud.plumbing.device
    if not netns or not device or _on_link(netns, device, cidr):
        return
    verb = "replace" if add else "del"
    subprocess.run(["ip", "-n", netns, "route", verb, cidr, "dev", device],
                   capture_output=True, text=True, check=False)


def _on_link(netns: str, device: str, cidr: str) -> bool:
    """True when the block overlaps a network the cloud device already has (the lab's
    subnet): it is reachable already, and its connected route must never be replaced or
    deleted."""
    shown = subprocess.run(["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", device],
                           capture_output=True, text=True, check=False)
    try:
        links = json.loads(shown.stdout or "[]")
    except ValueError:
        return True  # unknown: leave the routes alone
    block = ipaddress.ip_network(cidr)
    for link in links:
        for addr in link.get("addr_info", []):
            if addr.get("prefixlen", 32) < 32 and block.overlaps(ipaddress.ip_network(
                    f"{addr['local']}/{addr['prefixlen']}", strict=False)):
                return True
    return False


@VPC.on_start
def route_created_vswitches(cloud: Cloud) -> None:
    for vsw in cloud.state.bucket("vswitches").values():
        if vsw.get("created"):
            route_vswitch(cloud, vsw["cidr"], add=True)


@VPC.on_reset
def remove_created(cloud: Cloud) -> None:
    """A reset deletes what the API created (the seeded VPCs and vSwitches stay) and the
    routes their blocks had in the cloud namespace."""
    switches, vpcs = cloud.state.bucket("vswitches"), cloud.state.bucket("vpcs")
    for vsw_id, vsw in list(switches.items()):
        if vsw.get("created"):
            del switches[vsw_id]
            if not _route_still_needed(cloud.state, vsw["cidr"]):
                route_vswitch(cloud, vsw["cidr"], add=False)
    for vpc_id, vpc in list(vpcs.items()):
        if vpc.get("created"):
            del vpcs[vpc_id]


@VPC.resources
def list_created(cloud: Cloud) -> list[dict[str, Any]]:
    """VPCs and vSwitches made through the API (the seeded ones are the world's own)."""
    return [
        {"type": "vpc", "id": v["vpc_id"], "state": _status(v), "tags": v.get("tags", [])}
        for v in cloud.state.bucket("vpcs").values() if v.get("created")
    ] + [
        {"type": "vswitch", "id": v["vswitch_id"], "state": _status(v),
         "tags": v.get("tags", []), "vpc_id": v["vpc_id"]}
        for v in cloud.state.bucket("vswitches").values() if v.get("created")
    ]
