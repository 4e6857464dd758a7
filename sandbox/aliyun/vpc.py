"""VPC 2016-04-28: the seeded VPCs and vSwitches, read-only.

Why: the panel lets a person pick a VPC and vSwitch and checks their zone; RDS and SLB take
their addresses from these vSwitch CIDRs, so they must be visible through the real API.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sandbox.aliyun.gateway import network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import Product, register_product
from sandbox.aliyun.gateway.state import State

VPC = register_product(Product("Vpc", "2016-04-28", "vpc.aliyuncs.com"))



def _vswitch_view(state: State, vsw: dict[str, Any]) -> dict[str, Any]:
    network_ = ipaddress.ip_network(vsw["cidr"])
    used = sum(1 for a in network.addresses_in_use(state)
               if ipaddress.ip_address(a) in network_)
    return {
        "VSwitchId": vsw["vswitch_id"], "VpcId": vsw["vpc_id"], "Status": "Available",
        "CidrBlock": vsw["cidr"], "ZoneId": vsw["zone_id"],
        "AvailableIpAddressCount": max(0, network_.num_addresses - 4 - used),
        "Description": "", "VSwitchName": vsw["name"],
        "CreationTime": iso_utc(vsw["created_at"]), "IsDefault": vsw["is_default"],
        "ResourceGroupId": "", "NetworkAclId": "", "OwnerId": 0, "ShareType": "",
        "Ipv6CidrBlock": "", "RouteTable": {"RouteTableId": "", "RouteTableType": "System"},
        "Tags": tags.as_response([], style="Key"),
    }


@VPC.action("DescribeVSwitches", (
    Param("RegionId"), Param("VpcId"), Param("VSwitchId"), Param("ZoneId"), Param("VSwitchName"),
    Param("IsDefault", "boolean"), *page_params(10, 50),
))
def describe_vswitches(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    found = [
        v for v in sorted(state.bucket("vswitches").values(), key=lambda v: v["vswitch_id"])
        if v["region_id"] == ctx.region_id
        and (not params["VpcId"] or v["vpc_id"] == params["VpcId"])
        and (not params["VSwitchId"] or v["vswitch_id"] == params["VSwitchId"])
        and (not params["ZoneId"] or v["zone_id"] == params["ZoneId"])
        and (not params["VSwitchName"] or v["name"] == params["VSwitchName"])
        and (params["IsDefault"] is None or v["is_default"] == params["IsDefault"])
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
    wanted = [v for v in (params["VpcId"] or "").split(",") if v]
    found = [
        v for v in sorted(state.bucket("vpcs").values(), key=lambda v: v["vpc_id"])
        if v["region_id"] == ctx.region_id
        and (not wanted or v["vpc_id"] in wanted)
        and (not params["VpcName"] or v["name"] == params["VpcName"])
        and (params["IsDefault"] is None or v["is_default"] == params["IsDefault"])
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    views = []
    for vpc in chosen:
        switches = sorted(s["vswitch_id"] for s in state.bucket("vswitches").values()
                          if s["vpc_id"] == vpc["vpc_id"])
        views.append({
            "VpcId": vpc["vpc_id"], "RegionId": vpc["region_id"], "Status": "Available",
            "VpcName": vpc["name"], "CidrBlock": vpc["cidr"], "Description": "",
            "VRouterId": "vrt-" + vpc["vpc_id"][4:], "IsDefault": vpc["is_default"],
            "CreationTime": iso_utc(vpc["created_at"]), "ResourceGroupId": "",
            "VSwitchIds": {"VSwitchId": switches}, "UserCidrs": {"UserCidr": []},
            "NatGatewayIds": {"NatGatewayIds": []}, "RouterTableIds": {"RouterTableIds": []},
            "Ipv6CidrBlock": "", "CenStatus": "Detached", "OwnerId": 0,
            "Tags": tags.as_response([], style="Key"),
        })
    return {
        "TotalCount": len(found), "PageNumber": params["PageNumber"],
        "PageSize": params["PageSize"], "Vpcs": {"Vpc": views},
    }
