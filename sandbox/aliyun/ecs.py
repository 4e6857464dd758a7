"""ECS 2014-05-26: regions, zones, the lab hosts as instances, and security groups.

Why: the panel resolves its hosts' private IPs to instance ids (SLB backends are ECS ids),
checks region and zone, and opens 6443/22 in a security group. Two kinds of instances: the
lab's own hosts, registered through the control API (`POST instances`, real machines that
already exist), and instances bought with RunInstances (ecs_instances.py), which start
real lab hosts of their own when the emulator has a lab (`--lab-state-dir`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from sandbox.aliyun.gateway import errors, ids, network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params, parse_json_value
from sandbox.aliyun.gateway.registry import (
    ClientTokenPolicy,
    Product,
    control_route,
    register_product,
)
from sandbox.aliyun.gateway.state import State

ECS = register_product(Product("Ecs", "2014-05-26", "ecs.aliyuncs.com"))

INSTANCE_STATUSES = ("Pending", "Starting", "Running", "Stopping", "Stopped")
IDEMPOTENCE_MISMATCH = errors.ApiError(
    400, "IdempotenceParamNotMatch",
    "Request uses a client token in a previous request but is not identical to that request.",
)
SECURITY_GROUP_NOT_FOUND = errors.ApiError(
    404, "InvalidSecurityGroupId.NotFound", "The specified SecurityGroupId does not exist.",
)


# Called with (cloud, security group id) after a group's rules change: the products whose
# data plane reads them (an NLB's listeners, nlb/runtime.py) apply them at once.
RULE_WATCHERS: list[Callable[[Cloud, str], None]] = []


def instances(state: State) -> dict[str, Any]:
    return state.table("ecs", "instances")


def security_groups(state: State) -> dict[str, Any]:
    return state.table("ecs", "security_groups")


def instance_by_id(state: State, instance_id: str) -> dict[str, Any] | None:
    return instances(state).get(instance_id)


# ---- control API: lab hosts become instances ----------------------------------------------
def default_security_group(state: State, vpc_id: str, region_id: str, now: float) -> str:
    for group in security_groups(state).values():
        if group["vpc_id"] == vpc_id and group.get("default"):
            return group["security_group_id"]
    group_id = ids.resource_id("sg-", 20)
    security_groups(state)[group_id] = {
        "security_group_id": group_id, "name": "default", "description": "default group",
        "vpc_id": vpc_id, "region_id": region_id, "created_at": now, "type": "normal",
        "default": True, "tags": [], "permissions": [],
    }
    return group_id


@control_route("POST", "instances")
def register_instance(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Register (or update) a host as an ECS instance in a seeded vSwitch."""
    required = ("hostname", "private_ip", "region_id", "zone_id", "vpc_id", "vswitch_id")
    missing = [name for name in required if not body.get(name)]
    if missing:
        raise ControlError(400, f"missing fields: {missing}")
    with cloud.lock:
        state = cloud.state
        vsw = network.vswitch(state, body["vswitch_id"])
        if vsw is None or vsw["vpc_id"] != body["vpc_id"] or vsw["zone_id"] != body["zone_id"]:
            raise ControlError(400, "vswitch_id must be a seeded vSwitch of vpc_id in zone_id")
        if vsw["region_id"] != body["region_id"]:
            raise ControlError(400, "region_id does not match the vSwitch")
        if ipaddress.ip_address(body["private_ip"]) not in ipaddress.ip_network(vsw["cidr"]):
            raise ControlError(400, f"{body['private_ip']} is outside {vsw['cidr']}")
        status = body.get("status", "Running")
        if status not in INSTANCE_STATUSES:
            raise ControlError(400, f"status must be one of {INSTANCE_STATUSES}")
        instance_id = body.get("instance_id") or ids.resource_id("i-", 20)
        for other in instances(state).values():
            if other["private_ip"] == body["private_ip"] and other["instance_id"] != instance_id:
                raise ControlError(409, f"{body['private_ip']} belongs to {other['instance_id']}")
        if body["private_ip"] in state.bucket("addresses"):
            raise ControlError(409, f"{body['private_ip']} is a service address")
        now = cloud.clock.now()
        existing = instances(state).get(instance_id, {})
        group = body.get("security_group_id") or default_security_group(
            state, body["vpc_id"], body["region_id"], now)
        serial = len(instances(state)) + 1
        instances(state)[instance_id] = {
            "instance_id": instance_id, "hostname": body["hostname"],
            "instance_name": body.get("instance_name", body["hostname"]),
            "private_ip": body["private_ip"], "region_id": body["region_id"],
            "zone_id": body["zone_id"], "vpc_id": body["vpc_id"],
            "vswitch_id": body["vswitch_id"], "status": status,
            "instance_type": body.get("instance_type", "ecs.g6.large"),
            "cpu": int(body.get("cpu", 2)), "memory": int(body.get("memory", 8192)),
            "created_at": existing.get("created_at", now),
            "security_group_ids": [group],
            "tags": existing.get("tags", [
                {"Key": k, "Value": v} for k, v in body.get("tags", {}).items()]),
            "eni_id": existing.get("eni_id", ids.resource_id("eni-", 20)),
            "mac": existing.get("mac", f"00:16:3e:{serial >> 16 & 255:02x}:"
                                       f"{serial >> 8 & 255:02x}:{serial & 255:02x}"),
        }
        state.save()
        return 200, {"instance_id": instance_id}


# ---- regions and zones ---------------------------------------------------------------------
@ECS.action("DescribeRegions", (
    Param("AcceptLanguage"), Param("InstanceChargeType"), Param("ResourceType"),
))
def describe_regions(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    regions = [
        {"RegionId": r["region_id"], "LocalName": r["local_name"],
         "RegionEndpoint": f"ecs.{r['region_id']}.aliyuncs.com", "Status": "available"}
        for r in sorted(state.bucket("regions").values(), key=lambda r: r["region_id"])
    ]
    return {"Regions": {"Region": regions}}


@ECS.action("DescribeZones", (
    Param("RegionId", required=True), Param("InstanceChargeType"), Param("Verbose", "boolean"),
    Param("AcceptLanguage"), Param("SpotStrategy"),
))
def describe_zones(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    region = ctx.require_region()
    zones = [{
        "ZoneId": zone_id, "LocalName": f"{region['local_name']} {zone_id[-1].upper()}",
        "AvailableResourceCreation": {"ResourceTypes": ["Instance", "Disk", "VSwitch"]},
        "AvailableInstanceTypes": {"InstanceTypes": _types_on_sale(state, zone_id)},
        "AvailableDiskCategories": {"DiskCategories": ["cloud_efficiency", "cloud_essd"]},
        "AvailableVolumeCategories": {"VolumeCategories": ["cloud_efficiency", "cloud_essd"]},
        "AvailableResources": {"ResourcesInfo": []},
        "DedicatedHostGenerations": {"DedicatedHostGeneration": []},
        "AvailableDedicatedHostTypes": {"DedicatedHostType": []},
    } for zone_id in region["zones"]]
    return {"Zones": {"Zone": zones}}


def _types_on_sale(state: State, zone_id: str) -> list[str]:
    """What the zone sells now (ecs_catalogue.py: a type sold out there is left out)."""
    from sandbox.aliyun import ecs_catalogue  # noqa: PLC0415 - the catalogue imports this

    return [t for t in ecs_catalogue.INSTANCE_TYPES
            if ecs_catalogue.has_stock(ecs_catalogue.stock(state, zone_id, t))]


# ---- instances -----------------------------------------------------------------------------
def _json_list(params: Params, name: str) -> list[str] | None:
    if not params.given(name):
        return None
    value = parse_json_value(Param(name, "json"), params.raw[name])
    if not isinstance(value, list) or len(value) > 100 or not all(
            isinstance(v, str) for v in value):
        raise errors.invalid_parameter(name)
    return value


def _image_fields(instance: dict[str, Any]) -> tuple[str, str]:
    """(ImageId, OSName) of a bought instance's image; registered lab hosts run Ubuntu 22.04."""

    found = ecs_catalogue.image(instance.get("image_id", ""))
    if found is None:
        return "ubuntu_22_04_x64_20G_alibase_20240101.vhd", "Ubuntu  22.04 64位"
    return found["ImageId"], found["OSName"]


def instance_view(instance: dict[str, Any]) -> dict[str, Any]:
    ip = instance["private_ip"]
    created = iso_utc(instance["created_at"], seconds=False)
    image_id, os_name = _image_fields(instance)
    public_ip = instance.get("public_ip", "")
    return {
        "InstanceId": instance["instance_id"], "InstanceName": instance["instance_name"],
        "HostName": instance["hostname"], "Status": instance["status"],
        "ZoneId": instance["zone_id"], "RegionId": instance["region_id"],
        "InstanceNetworkType": "vpc", "InstanceType": instance["instance_type"],
        "InstanceTypeFamily": instance["instance_type"].rsplit(".", 1)[0],
        "ImageId": image_id, "OSType": "linux",
        "OSName": os_name, "Cpu": instance["cpu"], "Memory": instance["memory"],
        "CreationTime": created,
        "StartTime": iso_utc(instance.get("started_at", instance["created_at"]), seconds=False),
        "ExpiredTime": "2099-12-31T15:59Z",
        "InstanceChargeType": "PostPaid",
        "InternetChargeType": instance.get("internet_charge_type", "PayByTraffic"),
        "InternetMaxBandwidthIn": 0,
        "InternetMaxBandwidthOut": instance.get("internet_max_bandwidth_out", 0),
        "SerialNumber": instance["instance_id"], "Description": instance.get("description", ""),
        "KeyPairName": instance.get("key_pair_name", ""),
        "DeletionProtection": bool(instance.get("deletion_protection", False)),
        "StoppedMode": "KeepCharging" if instance["status"] == "Stopped" else "Not-applicable",
        "VpcAttributes": {
            "VpcId": instance["vpc_id"], "VSwitchId": instance["vswitch_id"],
            "NatIpAddress": "", "PrivateIpAddress": {"IpAddress": [ip]},
        },
        "NetworkInterfaces": {"NetworkInterface": [{
            "NetworkInterfaceId": instance["eni_id"], "PrimaryIpAddress": ip,
            "MacAddress": instance["mac"], "Type": "Primary",
            "PrivateIpSets": {"PrivateIpSet": [{"PrivateIpAddress": ip, "Primary": True}]},
        }]},
        "SecurityGroupIds": {"SecurityGroupId": list(instance["security_group_ids"])},
        "PublicIpAddress": {"IpAddress": [public_ip] if public_ip else []},
        "InnerIpAddress": {"IpAddress": []},
        "EipAddress": {"IpAddress": "", "AllocationId": "", "Bandwidth": 0},
        "OperationLocks": {"LockReason": []},
        "Tags": tags.as_response(instance.get("tags", [])),
    }


@ECS.action("DescribeInstances", (
    Param("RegionId", required=True), Param("VpcId"), Param("VSwitchId"), Param("ZoneId"),
    Param("InstanceIds"), Param("PrivateIpAddresses"), Param("InnerIpAddresses"),
    Param("PublicIpAddresses"), Param("EipAddresses"),
    Param("InstanceNetworkType", enum=("vpc", "classic")), Param("SecurityGroupId"),
    Param("Status", enum=INSTANCE_STATUSES), Param("InstanceName"),
    *page_params(10, 100), Param("MaxResults", "integer"),
    Param("NextToken"), Param("DryRun", "boolean"),
))
def describe_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    if params["DryRun"]:
        raise errors.ApiError(400, "DryRunOperation",
                              "Request validation has been passed with DryRun flag set.")
    wanted_ids = _json_list(params, "InstanceIds")
    # Documented: PrivateIpAddresses is only honoured together with InstanceNetworkType=vpc.
    wanted_ips = _json_list(params, "PrivateIpAddresses")
    if params["InstanceNetworkType"] != "vpc":
        wanted_ips = None
    # InnerIpAddresses: classic network only (V2), which has no instance here; so with
    # InstanceNetworkType=classic nothing matches (below), else it is not applied.
    wanted_public = _json_list(params, "PublicIpAddresses")
    wanted_tags = tags.from_repeat_list(params.raw)
    found = []
    for instance in sorted(instances(state).values(), key=lambda i: i["created_at"]):
        if instance["region_id"] != ctx.region_id:
            continue
        checks = (
            (wanted_ids is None or instance["instance_id"] in wanted_ids)
            and (wanted_ips is None or instance["private_ip"] in wanted_ips)
            and (wanted_public is None or instance.get("public_ip") in wanted_public)
            and (not params["VpcId"] or instance["vpc_id"] == params["VpcId"])
            and (not params["VSwitchId"] or instance["vswitch_id"] == params["VSwitchId"])
            and (not params["ZoneId"] or instance["zone_id"] == params["ZoneId"])
            and (not params["Status"] or instance["status"] == params["Status"])
            and (not params["SecurityGroupId"]
                 or params["SecurityGroupId"] in instance["security_group_ids"])
            and (not params["InstanceName"]
                 or _name_matches(instance["instance_name"], params["InstanceName"]))
            and tags.matches(instance.get("tags", []), wanted_tags)
        )
        if params["InstanceNetworkType"] == "classic":
            checks = False
        if checks:
            found.append(instance)
    # MaxResults below 10 counts as 10, above 100 as 100 (V2 DescribeInstancesRequest)
    size = (min(max(params["MaxResults"], 10), 100) if params["MaxResults"] is not None
            else params["PageSize"])
    number = params["PageNumber"]
    if params["NextToken"]:
        if not params["NextToken"].isdigit():
            raise errors.invalid_parameter("NextToken")
        number = int(params["NextToken"])
    chosen = page(found, number, size)
    more = number * size < len(found)
    return {
        "TotalCount": len(found), "PageNumber": number, "PageSize": size,
        "NextToken": str(number + 1) if more and params["MaxResults"] is not None else "",
        "Instances": {"Instance": [instance_view(i) for i in chosen]},
    }


def _name_matches(name: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


# ---- security groups -----------------------------------------------------------------------
def _group_or_error(state: State, ctx: RequestContext, group_id: str) -> dict[str, Any]:
    group = security_groups(state).get(group_id)
    if group is None or group["region_id"] != ctx.region_id:
        raise SECURITY_GROUP_NOT_FOUND
    return group


@ECS.action("CreateSecurityGroup", (
    Param("RegionId", required=True), Param("VpcId"), Param("SecurityGroupName", max_length=128),
    Param("Description", max_length=256),
    Param("SecurityGroupType", enum=("normal", "enterprise"), default="normal"),
    Param("ResourceGroupId"),
), client_token=ClientTokenPolicy(IDEMPOTENCE_MISMATCH))
def create_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    vpc_id = params["VpcId"] or ""
    if vpc_id:
        found = network.vpc(state, vpc_id)
        if found is None or found["region_id"] != ctx.region_id:
            raise errors.ApiError(404, "InvalidVpcId.NotFound", "Specified VPC does not exist.")
    group_id = ids.resource_id("sg-", 20)
    security_groups(state)[group_id] = {
        "security_group_id": group_id, "name": params["SecurityGroupName"] or "",
        "description": params["Description"] or "", "vpc_id": vpc_id,
        "region_id": ctx.region_id, "created_at": ctx.clock.now(),
        "type": params["SecurityGroupType"], "default": False,
        "tags": tags.from_repeat_list(params.raw), "permissions": [],
    }
    return {"SecurityGroupId": group_id}


def _group_view(state: State, group: dict[str, Any]) -> dict[str, Any]:
    members = [i for i in instances(state).values()
               if group["security_group_id"] in i["security_group_ids"]]
    return {
        "SecurityGroupId": group["security_group_id"], "SecurityGroupName": group["name"],
        "Description": group["description"], "VpcId": group["vpc_id"],
        "SecurityGroupType": group["type"], "CreationTime": iso_utc(group["created_at"]),
        "EcsCount": len(members), "AvailableInstanceAmount": 2000 - len(members),
        "ServiceManaged": False, "ResourceGroupId": "",
        "Tags": tags.as_response(group.get("tags", [])),
    }


@ECS.action("DescribeSecurityGroups", (
    Param("RegionId", required=True), Param("VpcId"), Param("SecurityGroupId"),
    Param("SecurityGroupIds"), Param("SecurityGroupName"), *page_params(10, 50),
    Param("SecurityGroupType", enum=("normal", "enterprise")),
))
def describe_security_groups(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = _json_list(params, "SecurityGroupIds")
    wanted_tags = tags.from_repeat_list(params.raw)
    found = [
        g for g in sorted(security_groups(state).values(), key=lambda g: g["created_at"])
        if g["region_id"] == ctx.region_id
        and (not params["VpcId"] or g["vpc_id"] == params["VpcId"])
        and (not params["SecurityGroupId"] or g["security_group_id"] == params["SecurityGroupId"])
        and (wanted_ids is None or g["security_group_id"] in wanted_ids)
        and (not params["SecurityGroupName"] or g["name"] == params["SecurityGroupName"])
        and (not params["SecurityGroupType"] or g["type"] == params["SecurityGroupType"])
        and tags.matches(g.get("tags", []), wanted_tags)
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    return {
        "RegionId": ctx.region_id, "TotalCount": len(found),
        "PageNumber": params["PageNumber"], "PageSize": params["PageSize"],
        "SecurityGroups": {"SecurityGroup": [_group_view(state, g) for g in chosen]},
    }


_PROTOCOLS = ("tcp", "udp", "icmp", "gre", "all", "icmpv6")
_RULE_FIELDS = ("IpProtocol", "PortRange", "SourceCidrIp", "SourceGroupId", "Policy",
                "Priority", "Description", "NicType", "SourcePortRange", "DestCidrIp",
                "Ipv6SourceCidrIp", "SourcePrefixListId")


# AuthorizeSecurityGroup's error table (Alibaba's API reference, AlibabaCloudDocs/ecs
# intl.en-US "API Reference/Security groups/AuthorizeSecurityGroup.md" and its later
# revision, doc_api_1031569): the codes below, with their HTTP statuses and messages.
BAD_PORTS = errors.ApiError(
    400, "InvalidParam.PortRange",
    "Please specify the PortRange or SourcePortRange in integer, less than 65535, and "
    "separate the range with '/'.")
RULE_QUOTA = errors.ApiError(403, "AuthorizationLimitExceed",
                             "The limit of authorization records in the security group reaches.")
SOURCE_GROUP_NOT_FOUND = errors.ApiError(
    404, "InvalidSourceGroupId.NotFound",
    "The SourceGroupId provided does not exist in our records.")
SOURCE_GROUP_ELSEWHERE = errors.ApiError(
    400, "InvalidSourceGroupId.Mismatch",
    "Specified security group and source group are not in the same VPC.")


def _ports(protocol: str, text: str, name: str) -> str:
    """A PortRange / SourcePortRange as "low/high": 1-65535 for TCP and UDP, -1/-1 for
    the rest (V2 AuthorizeSecurityGroupRequestPermissions.PortRange, SourcePortRange);
    either one malformed is InvalidParam.PortRange."""
    bad = BAD_PORTS
    try:
        low, high = (int(p) for p in text.split("/"))
    except ValueError:
        raise bad from None
    if protocol in ("tcp", "udp"):
        if not (1 <= low <= high <= 65535):
            raise bad
    elif (low, high) != (-1, -1):
        raise bad
    return f"{low}/{high}"


def _cidr(entry: dict[str, str], name: str, version: int) -> str:
    text = entry.get(name, "")
    if not text:
        return ""
    try:
        block = ipaddress.ip_network(text, strict=False)
    except ValueError:
        block = None
    if block is None or block.version != version:
        raise errors.ApiError(400, f"Invalid{name}.Malformed",
                              f"The specified parameter {name} is not valid.")
    return str(block)


def _rule(entry: dict[str, str]) -> dict[str, Any]:
    """Validate one ingress permission the way ECS does and normalise it. SourceCidrIp
    and DestCidrIp are IPv4 blocks, Ipv6SourceCidrIp an IPv6 one (V2
    AuthorizeSecurityGroupRequestPermissions); ICMPv6 is an IPv6 protocol, so a rule
    naming it with an IPv4 source is refused rather than stored as "everything"."""
    protocol = entry.get("IpProtocol", "").lower()
    if not protocol:
        raise errors.missing_parameter("IpProtocol")
    if protocol not in _PROTOCOLS:
        raise errors.ApiError(400, "InvalidIpProtocol.ValueNotSupported",
                              "The parameter IpProtocol must be specified with case "
                              "insensitive TCP, UDP, ICMP, GRE or All.")
    port_range = entry.get("PortRange", "")
    if not port_range:
        raise errors.missing_parameter("PortRange")
    port_range = _ports(protocol, port_range, "PortRange")
    source_ports = entry.get("SourcePortRange", "")
    if source_ports:
        source_ports = _ports(protocol, source_ports, "SourcePortRange")
    source = _cidr(entry, "SourceCidrIp", 4)
    source6 = _cidr(entry, "Ipv6SourceCidrIp", 6)
    dest = _cidr(entry, "DestCidrIp", 4)
    if source and source6:
        raise errors.ApiError(400, "InvalidParam.SourceIp",
                              "The Parameters SourceCidrIp and Ipv6SourceCidrIp cannot be set "
                              "at the same time.")
    if protocol == "icmpv6" and (source or dest):
        raise errors.ApiError(400, "InvalidParam.Ipv6ProtocolConflictWithIpv4Address",
                              "IPv4 address cannot be specified for IPv6-specific protocol.")
    if protocol == "icmp" and source6:
        raise errors.ApiError(400, "InvalidParam.Ipv4ProtocolConflictWithIpv6Address",
                              "IPv6 address cannot be specified for IPv4-specific protocol.")
    if not (source or source6 or entry.get("SourceGroupId")
            or entry.get("SourcePrefixListId")):
        raise errors.ApiError(400, "MissingParameter.Source",
                              "One of the parameters SourceCidrIp, Ipv6SourceCidrIp, "
                              "SourceGroupId or SourcePrefixListId must be specified.")
    policy = entry.get("Policy", "accept").lower()
    if policy not in ("accept", "drop"):
        raise errors.ApiError(400, "InvalidPolicy.Malformed",
                              "The specified parameter Policy is not valid.")
    priority_text = entry.get("Priority", "1") or "1"
    if not priority_text.isdigit() or not 1 <= int(priority_text) <= 100:
        raise errors.ApiError(400, "InvalidPriority.Malformed",
                              "The specified parameter Priority is not valid.")
    return {
        "IpProtocol": protocol.upper(), "PortRange": port_range, "SourceCidrIp": source,
        "SourceGroupId": entry.get("SourceGroupId", ""), "Policy": policy.capitalize(),
        "Priority": int(priority_text), "Description": entry.get("Description", ""),
        "NicType": entry.get("NicType", "intranet") or "intranet", "Direction": "ingress",
        "SourcePortRange": source_ports, "DestCidrIp": dest, "Ipv6SourceCidrIp": source6,
        "SourcePrefixListId": entry.get("SourcePrefixListId", ""),
    }


_RULE_KEYS = ("IpProtocol", "PortRange", "SourceCidrIp", "SourceGroupId", "Policy", "NicType",
              "Priority", "SourcePortRange", "DestCidrIp", "Ipv6SourceCidrIp",
              "SourcePrefixListId")


def _same_rule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k, "") == b.get(k, "") for k in _RULE_KEYS)


ADVANCED_NO_GROUP_SOURCE = errors.ApiError(
    400, "InvalidSecurityGroupType.NotSupported",
    "An advanced (enterprise) security group can neither authorize a security group nor "
    "be authorized as one.")


def _check_group_sources(state: State, group: dict[str, Any],
                         rules: list[dict[str, Any]]) -> None:
    """Advanced groups: "Rules cannot use a security group as the authorization object. An
    advanced security group also cannot serve as an authorization object in other groups'
    rules" (help doc "Basic and advanced security groups", alibabacloud.com/help/en/ecs/
    user-guide/basic-security-groups-and-advanced-security-groups, doc 96468/120621)."""
    for rule in rules:
        if not rule["SourceGroupId"]:
            continue
        source = security_groups(state).get(rule["SourceGroupId"])
        if source is None or source["region_id"] != group["region_id"]:
            raise SOURCE_GROUP_NOT_FOUND
        if source.get("vpc_id") != group.get("vpc_id"):
            raise SOURCE_GROUP_ELSEWHERE
        if group.get("type") == "enterprise" or source.get("type") == "enterprise":
            raise ADVANCED_NO_GROUP_SOURCE


@ECS.action("AuthorizeSecurityGroup", (
    Param("RegionId", required=True), Param("SecurityGroupId", required=True),
), client_token=ClientTokenPolicy(IDEMPOTENCE_MISMATCH))
def authorize_security_group(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    ctx.require_region()
    group = _group_or_error(state, ctx, params["SecurityGroupId"])
    entries = params.repeat_list("Permissions", _RULE_FIELDS)
    legacy = {k: params.raw[k] for k in _RULE_FIELDS if params.given(k)}
    if legacy:
        entries.append(legacy)
    if not entries:
        raise errors.missing_parameter("Permissions")
    if len(entries) > 100:
        raise errors.invalid_parameter("Permissions")
    rules = [_rule(e) for e in entries]
    _check_group_sources(state, group, rules)
    now = iso_utc(ctx.clock.now())
    for rule in rules:
        if any(_same_rule(rule, existing) for existing in group["permissions"]):
            continue  # documented: an identical rule is accepted and not added twice
        if len(group["permissions"]) >= 200:
            raise RULE_QUOTA
        group["permissions"].append({**rule, "CreateTime": now})
    for watcher in RULE_WATCHERS:
        watcher(ctx.cloud, group["security_group_id"])
    return {}


@ECS.action("RevokeSecurityGroup", (
    Param("RegionId", required=True), Param("SecurityGroupId", required=True),
), client_token=ClientTokenPolicy(IDEMPOTENCE_MISMATCH))
def revoke_security_group(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    """Removes the ingress rules that match each permission given (the same fields as
    AuthorizeSecurityGroup); a permission matching no rule changes nothing."""
    ctx.require_region()
    group = _group_or_error(state, ctx, params["SecurityGroupId"])
    entries = params.repeat_list("Permissions", _RULE_FIELDS)
    legacy = {k: params.raw[k] for k in _RULE_FIELDS if params.given(k)}
    if legacy:
        entries.append(legacy)
    if not entries:
        raise errors.missing_parameter("Permissions")
    rules = [_rule(e) for e in entries]
    group["permissions"] = [p for p in group["permissions"]
                            if not any(_same_rule(rule, p) for rule in rules)]
    for watcher in RULE_WATCHERS:
        watcher(ctx.cloud, group["security_group_id"])
    return {}


# Who else may hold a security group (an NLB joined to it, nlb/securitygroups.py): each
# answers (state, group id) -> whether it does; such a group cannot be deleted.
GROUP_USERS: list[Callable[[State, str], bool]] = []


@ECS.action("DeleteSecurityGroup", (
    Param("RegionId", required=True), Param("SecurityGroupId", required=True),
))
def delete_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Refused while an instance or a cloud product (an NLB) still uses the group."""
    ctx.require_region()
    group = _group_or_error(state, ctx, params["SecurityGroupId"])
    group_id = group["security_group_id"]
    if any(group_id in i["security_group_ids"] for i in instances(state).values()) \
            or any(user(state, group_id) for user in GROUP_USERS):
        raise errors.ApiError(403, "DependencyViolation",
                              "There is still instance(s) in the specified security group.")
    del security_groups(state)[group_id]
    return {}


@ECS.action("DescribeSecurityGroupAttribute", (
    Param("RegionId", required=True), Param("SecurityGroupId", required=True),
    Param("Direction", enum=("ingress", "egress", "all")), Param("NicType"),
))
def describe_security_group_attribute(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    ctx.require_region()
    group = _group_or_error(state, ctx, params["SecurityGroupId"])
    permissions = [
        {"DestCidrIp": "", "SourcePortRange": "", "Ipv6SourceCidrIp": "", **p,
         "Priority": str(p["Priority"]),  # the V2 model types it str
         "DestGroupId": "", "SecurityGroupRuleId": ""}
        for p in group["permissions"]
        if params["Direction"] in (None, "all", p["Direction"])
    ]
    return {
        "RegionId": ctx.region_id, "SecurityGroupId": group["security_group_id"],
        "SecurityGroupName": group["name"], "Description": group["description"],
        "VpcId": group["vpc_id"], "InnerAccessPolicy": inner_access_policy(group),
        "Permissions": {"Permission": permissions},
    }


def inner_access_policy(group: dict[str, Any]) -> str:
    """Accept for a basic (normal) group, Drop for an advanced (enterprise) one, unless
    ModifySecurityGroupPolicy changed it (V2 ModifySecurityGroupPolicyRequest)."""
    default = "Drop" if group.get("type") == "enterprise" else "Accept"
    return str(group.get("inner_access_policy") or default)


@ECS.action("ModifySecurityGroupPolicy", (
    Param("RegionId", required=True), Param("SecurityGroupId", required=True),
    Param("InnerAccessPolicy", required=True), Param("ClientToken", max_length=64),
))
def modify_security_group_policy(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    """InnerAccessPolicy Accept|Drop, case-insensitive (V2 docstring). Basic groups only:
    "The internal access control policy of advanced security groups cannot be modified"
    (API reference, alibabacloud.com/help/en/ecs/api-modifysecuritygrouppolicy; help doc
    "Basic and advanced security groups"). No source names the code: chosen (README)."""
    ctx.require_region()
    group = _group_or_error(state, ctx, params["SecurityGroupId"])
    value = params["InnerAccessPolicy"].lower()
    if value not in ("accept", "drop"):
        raise errors.invalid_parameter("InnerAccessPolicy")
    if group.get("type") == "enterprise":
        raise errors.ApiError(403, "InvalidSecurityGroupType.NotSupported",
                              "The internal access control policy of an advanced "
                              "(enterprise) security group cannot be modified.")
    group["inner_access_policy"] = value.capitalize()
    for watcher in RULE_WATCHERS:
        watcher(ctx.cloud, group["security_group_id"])
    return {}


@ECS.resources
def list_instances(cloud: Cloud) -> list[dict[str, Any]]:
    return [
        {"type": "ecs_instance", "id": i["instance_id"], "state": i["status"],
         "addresses": [i["private_ip"]] + ([i["public_ip"]] if i.get("public_ip") else []),
         "hostname": i["hostname"], "tags": i.get("tags", []), "bought": bool(i.get("bought")),
         "netns": (i.get("machine") or {}).get("netns", ""),
         "pids": [(i.get("machine") or {}).get("init_pid")] if (i.get("machine") or {}).get(
             "init_pid") else []}
        for i in instances(cloud.state).values()
    ] + [
        {"type": "ecs_security_group", "id": g["security_group_id"], "state": "Available",
         "tags": g.get("tags", []), "vpc_id": g["vpc_id"]}
        for g in security_groups(cloud.state).values() if not g.get("default")
    ] + [
        {"type": "ecs_key_pair", "id": k["name"], "state": "Available", "tags": k.get("tags", [])}
        for k in cloud.state.table("ecs", "key_pairs").values()
    ]


# The rest of ECS lives in sibling modules that register on ECS (imported last: they import
# this one): the catalogue, key pairs, buying instances (which enforces the groups), prices.
from sandbox.aliyun import (  # noqa: E402, F401
    ecs_catalogue,
    ecs_instances,
    ecs_keypairs,
    ecs_price,
)
