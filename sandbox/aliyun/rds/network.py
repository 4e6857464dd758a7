"""RDS network actions: the connection address and the IP whitelist groups.

Why: a K3s server outside the whitelist cannot reach its datastore at all; the panel must
whitelist every server's private IP, and the emulator enforces the result for real through
the instance's gate (see rds_gate).
"""

from __future__ import annotations

import secrets
from typing import Any

from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import rules
from sandbox.aliyun.rds.product import (
    DEFAULT_IP_ARRAY,
    PRODUCT,
    find_instance,
    running_instance,
)
from sandbox.aliyun.rds.runtime import runtime_of

NETWORK_TYPES = ("MIX", "Classic", "VPC")


def _groups_view(record: dict[str, Any]) -> list[dict[str, str]]:
    return [{"SecurityIPGroupName": name, "SecurityIPs": ",".join(group["ips"])}
            for name, group in record["security_groups"].items()]


@PRODUCT.action("DescribeDBInstanceNetInfo", (
    Param("DBInstanceId", required=True), Param("DBInstanceNetRWSplitType"),
    Param("Flag", "integer"),  # V2: int
))
def describe_db_instance_net_info(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    info = {
        "ConnectionString": record["address"], "IPAddress": record["address"],
        "IPType": "Private", "Port": str(record["port"]), "VPCId": record["vpc_id"],
        "VSwitchId": record["vswitch_id"], "ConnectionStringType": "Normal",
        "Upgradeable": "Disabled", "MaxDelayTime": "", "DistributionType": "",
        # Lower-case `securityIPGroup`, no VpcInstanceId: Alibaba's API metadata as the V2
        # model alibabacloud-rds20140815 16.0.2 records it (tests/conformance).
        "SecurityIPGroups": {"securityIPGroup": _groups_view(record)},
        "DBInstanceWeights": {"DBInstanceWeight": []},
    }
    return {"InstanceNetworkType": "VPC", "SecurityIPMode": "normal",
            "DBInstanceNetInfos": {"DBInstanceNetInfo": [info]}}


@PRODUCT.action("DescribeDBInstanceIPArrayList", (
    Param("DBInstanceId", required=True), Param("WhitelistNetworkType", enum=NETWORK_TYPES),
))
def describe_db_instance_ip_array_list(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    wanted = params["WhitelistNetworkType"]
    items = [
        {"DBInstanceIPArrayName": name, "DBInstanceIPArrayAttribute": group["attribute"],
         "SecurityIPType": "IPv4", "SecurityIPList": ",".join(group["ips"]),
         "WhitelistNetworkType": group["network_type"]}
        for name, group in record["security_groups"].items()
        if not wanted or group["network_type"] == wanted
    ]
    return {"Items": {"DBInstanceIPArray": items}}


@PRODUCT.action("ModifySecurityIps", (
    Param("DBInstanceId", required=True), Param("SecurityIps", required=True),
    Param("DBInstanceIPArrayName"), Param("ModifyMode", enum=("Cover", "Append", "Delete"),
                                          default="Cover"),
    Param("WhitelistNetworkType", enum=NETWORK_TYPES, default="MIX"),
    Param("SecurityIPType", enum=("IPv4", "ipv4"), default="IPv4"),
    Param("DBInstanceIPArrayAttribute"), Param("FreshWhiteListReadins"),
))
def modify_security_ips(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    name = params["DBInstanceIPArrayName"] or DEFAULT_IP_ARRAY
    if name.lower() == DEFAULT_IP_ARRAY:
        name = DEFAULT_IP_ARRAY
    rules.check_ip_array_name(name)
    entries = rules.parse_security_ips(params["SecurityIps"], rules.SECURITY_IPS_MODIFY_FORMAT)
    groups = record["security_groups"]
    group = groups.get(name)
    if group is None:
        if len(groups) >= rules.MAX_WHITELIST_GROUPS:
            raise rules.SECURITY_GROUPS_QUOTA
        group = {"ips": [], "network_type": params["WhitelistNetworkType"],
                 "attribute": params["DBInstanceIPArrayAttribute"] or ""}
    mode = params["ModifyMode"]
    if mode == "Cover":
        ips = entries
    elif mode == "Append":
        ips = group["ips"] + [e for e in entries if e not in group["ips"]]
    else:
        ips = [e for e in group["ips"] if e not in entries]
        if not ips:  # a group keeps at least one entry
            raise rules.SECURITY_IPS_MODIFY_FORMAT
    if len(ips) > rules.MAX_WHITELIST_ENTRIES:
        raise rules.SECURITY_IPS_MODIFY_FORMAT
    group["ips"] = ips
    groups[name] = group
    runtime_of(ctx.cloud).refresh_whitelist(record)
    return {"TaskId": str(secrets.randbelow(10**9) + 10**8)}
