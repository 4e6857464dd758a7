"""Server groups and their servers: CreateServerGroup (health check, scheduler, connection
drain, client IP preservation), ListServerGroups, DeleteServerGroup, AddServersToServerGroup,
RemoveServersFromServerGroup, ListServerGroupServers. Every write is a job."""

from __future__ import annotations

import ipaddress
from typing import Any

from sandbox.aliyun import ecs
from sandbox.aliyun.gateway import errors, network, tags
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.ids import resource_id
from sandbox.aliyun.gateway.params import Param, Params, repeat_list
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.common import PAGING, create_tags, filter_tags, listed, tag_view
from sandbox.aliyun.nlb.product import (
    CLIENT_TOKEN,
    NLB,
    SERVER_GROUP_SECONDS,
    SERVERS_SECONDS,
    dry_run,
    group_or_error,
    illegal,
    incorrect_status,
    listeners,
    lock_conflict,
    missing,
    new_job,
    server_groups,
)
from sandbox.aliyun.nlb.runtime import sync_group

MAX_SERVERS_PER_CALL = 200  # "You can add at most 200 backend servers in each call."
SCHEDULERS = ("Wrr", "Rr", "Sch", "Tch", "Qch", "Wlc")

# HealthCheckConfig.* (flattened by the SDKs): name -> (kind, default, minimum, maximum).
# Defaults and ranges: CreateServerGroupRequestHealthCheckConfig docstrings (V2 4.1.3).
_HEALTH_FIELDS: dict[str, tuple[str, Any, int | None, int | None]] = {
    "HealthCheckEnabled": ("boolean", True, None, None),
    "HealthCheckType": ("enum", "TCP", None, None),
    "HealthCheckConnectPort": ("integer", 0, 0, 65535),
    "HealthCheckConnectTimeout": ("integer", 5, 1, 300),
    "HealthCheckInterval": ("integer", 5, 1, 50),
    "HealthyThreshold": ("integer", 2, 2, 10),
    "UnhealthyThreshold": ("integer", 2, 2, 10),
    "HealthCheckDomain": ("string", "", None, None),
    "HealthCheckUrl": ("string", "", None, None),
    "HttpCheckMethod": ("string", "", None, None),
    "HealthCheckHttpVersion": ("string", "", None, None),
}


def _health_config(raw: dict[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, (kind, default, low, high) in _HEALTH_FIELDS.items():
        text = raw.get(f"HealthCheckConfig.{name}", "")
        if text == "":
            config[name] = default
            continue
        if kind == "boolean":
            if text.lower() not in ("true", "false"):
                raise illegal(f"HealthCheckConfig.{name}")
            config[name] = text.lower() == "true"
        elif kind == "integer":
            if not text.lstrip("-").isdigit() or not low <= int(text) <= high:  # type: ignore[operator]
                raise illegal(f"HealthCheckConfig.{name}")
            config[name] = int(text)
        elif kind == "enum":
            if text not in ("TCP", "HTTP", "UDP"):
                raise illegal(f"HealthCheckConfig.{name}")
            config[name] = text
        else:
            config[name] = text
    config["HealthCheckHttpCode"] = params_list(raw, "HealthCheckConfig.HealthCheckHttpCode")
    return config


def params_list(raw: dict[str, str], prefix: str) -> list[str]:
    return [str(v) for v in repeat_list(raw, prefix)]


@NLB.action("CreateServerGroup", (
    Param("RegionId"), Param("ServerGroupName", required=True), Param("VpcId", required=True),
    Param("ServerGroupType", enum=("Instance", "Ip"), default="Instance"),
    Param("Protocol", enum=("TCP", "UDP", "TCPSSL"), default="TCP"),
    Param("Scheduler", enum=SCHEDULERS, default="Wrr"),
    Param("AddressIPVersion", enum=("ipv4", "DualStack"), default="ipv4"),
    Param("ConnectionDrainEnabled", "boolean", default=False),
    Param("ConnectionDrainTimeout", "integer", minimum=0, maximum=900),
    Param("PreserveClientIpEnabled", "boolean"), Param("AnyPortEnabled", "boolean",
                                                        default=False),
    Param("ResourceGroupId"), Param("IpVersionAffinityMode"), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def create_server_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    name = params["ServerGroupName"]
    if not 2 <= len(name) <= 128:
        raise illegal("ServerGroupName")
    vpc = network.vpc(state, params["VpcId"])
    if vpc is None or vpc["region_id"] != ctx.region_id:
        raise errors.ApiError(404, "ResourceNotFound.Vpc",
                              "The specified resource of Vpc is not found.")
    drain_timeout = params["ConnectionDrainTimeout"]
    if params["ConnectionDrainEnabled"] and drain_timeout is not None and drain_timeout < 10:
        raise illegal("ConnectionDrainTimeout")  # "Valid values: 10 to 900" when enabled
    health = _health_config(params.raw)
    group_tags = create_tags(params)
    # "set to true by default when AddressIPVersion is set to ipv4" (V2 docstring).
    preserve = params["PreserveClientIpEnabled"]
    if preserve is None:
        preserve = params["AddressIPVersion"] == "ipv4"
    dry_run(params)
    group_id = resource_id("sgp-", 20)
    group = {
        "group_id": group_id, "name": name, "region_id": ctx.region_id,
        "vpc_id": params["VpcId"], "type": params["ServerGroupType"],
        "protocol": params["Protocol"], "scheduler": params["Scheduler"],
        "address_ip_version": params["AddressIPVersion"],
        "drain_enabled": params["ConnectionDrainEnabled"],
        # CHOSEN: 300 s when drain is enabled without a timeout (no source gives a default).
        "drain_timeout": drain_timeout if drain_timeout is not None else
        (300 if params["ConnectionDrainEnabled"] else 0),
        "preserve_client_ip": preserve, "any_port": params["AnyPortEnabled"],
        "resource_group_id": params["ResourceGroupId"] or "rg-acfmemulator0000",
        "health": health, "tags": group_tags, "servers": [], "status": "Creating",
        "created_at": ctx.clock.now(), "lock": "",
    }
    group["lock"] = new_job(state, ctx, "create_group", group_id, SERVER_GROUP_SECONDS)
    server_groups(state)[group_id] = group
    return {"ServerGroupId": group_id, "JobId": group["lock"]}


def related_lbs(state: State, group_id: str) -> list[str]:
    return sorted({listener["lb_id"] for listener in listeners(state).values()
                   if listener["group_id"] == group_id and listener["status"] != "Deleting"})


def group_view(state: State, group: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerGroupId": group["group_id"], "ServerGroupName": group["name"],
        "ServerGroupStatus": group["status"], "ServerGroupType": group["type"],
        "Protocol": group["protocol"], "Scheduler": group["scheduler"],
        "AddressIPVersion": group["address_ip_version"], "VpcId": group["vpc_id"],
        "RegionId": group["region_id"], "ResourceGroupId": group["resource_group_id"],
        "ConnectionDrainEnabled": group["drain_enabled"],
        "ConnectionDrainTimeout": group["drain_timeout"],
        "PreserveClientIpEnabled": group["preserve_client_ip"],
        "AnyPortEnabled": group["any_port"], "AliUid": 1234567890123456,
        "HealthCheck": dict(group["health"]),
        "ServerCount": len(group["servers"]),
        "RelatedLoadBalancerIds": related_lbs(state, group["group_id"]),
        "Tags": tag_view(group["tags"]),
    }


@NLB.action("ListServerGroups", (
    Param("RegionId"), Param("ServerGroupType", enum=("Instance", "Ip")), Param("VpcId"),
    Param("ResourceGroupId"), *PAGING,
))
def list_server_groups(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("ServerGroupIds")
    wanted_names = params.repeat_list("ServerGroupNames")
    wanted_tags = filter_tags(params)
    found = []
    for group in sorted(server_groups(state).values(), key=lambda g: g["created_at"]):
        if group["region_id"] != ctx.region_id:
            continue
        if ((wanted_ids and group["group_id"] not in wanted_ids)
                or (wanted_names and group["name"] not in wanted_names)):
            continue
        simple = {"ServerGroupType": group["type"], "VpcId": group["vpc_id"],
                  "ResourceGroupId": group["resource_group_id"]}
        if any(params[k] and params[k] != v for k, v in simple.items()):
            continue
        if not tags.matches(group["tags"], wanted_tags):
            continue
        found.append(group_view(state, group))
    return listed(found, params, "ServerGroups")


def _writable(group: dict[str, Any]) -> None:
    """A group still being created, or held by another job, refuses writes."""
    if group["status"] == "Creating":
        raise incorrect_status("serverGroup", group["group_id"])
    if group["lock"]:
        raise lock_conflict(group["group_id"])


@NLB.action("DeleteServerGroup", (
    Param("RegionId"), Param("ServerGroupId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def delete_server_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    group = group_or_error(state, ctx, params["ServerGroupId"])
    _writable(group)
    if related_lbs(state, group["group_id"]):
        # CHOSEN code (the metadata lists no code for a group still in use by a listener).
        raise errors.ApiError(400, "ResourceInUse.serverGroup",
                              "The specified resource of serverGroup is in use.")
    dry_run(params)
    group["status"] = "Deleting"
    group["lock"] = new_job(state, ctx, "delete_group", group["group_id"], SERVER_GROUP_SECONDS)
    return {"JobId": group["lock"]}


def _servers(params: Params) -> list[dict[str, str]]:
    servers = params.repeat_list("Servers", ("ServerId", "ServerType", "ServerIp", "Port",
                                             "Weight", "Description"))
    if not servers:
        raise missing("Servers")
    if len(servers) > MAX_SERVERS_PER_CALL:
        raise illegal("Servers")
    return servers


def _port(entry: dict[str, str], group: dict[str, Any]) -> int:
    text = entry.get("Port", "")
    if not text:
        if group["any_port"]:
            return 0
        raise missing("Port")
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise illegal("Port")
    return int(text)


def _resolve_server(state: State, ctx: RequestContext, group: dict[str, Any],
                    entry: dict[str, str]) -> tuple[str, str, str]:
    """(server id, server ip, zone) of one entry, checked against the group's type and VPC."""
    server_id, server_type = entry.get("ServerId", ""), entry.get("ServerType", "")
    if not server_id:
        raise missing("Servers.N.ServerId")
    if not server_type:
        raise missing("Servers.N.ServerType")
    if group["type"] == "Ip":
        if server_type != "Ip":
            raise illegal("ServerType")
        try:
            inside = ipaddress.ip_address(server_id) in ipaddress.ip_network(
                network.vpc(state, group["vpc_id"])["cidr"])  # type: ignore[index]
        except ValueError:
            inside = False
        if not inside:
            raise illegal("ServerId")
        return server_id, server_id, ""
    if server_type != "Ecs":
        # Eni/Eci servers exist in the real API; this world has ECS instances only.
        raise illegal("ServerType")
    instance = ecs.instance_by_id(state, server_id)
    if instance is None or instance["region_id"] != ctx.region_id:
        raise errors.ApiError(404, "ResourceNotFound.ecs",
                              "The specified resource of ecs is not found.")
    if instance["vpc_id"] != group["vpc_id"]:
        raise errors.ApiError(400, "Mismatch.VpcId",
                              f"The VpcId is mismatched for {instance['vpc_id']} and "
                              f"{group['vpc_id']}.")
    if instance["status"] != "Running":
        raise incorrect_status("ecs", server_id)
    if entry.get("ServerIp") and entry["ServerIp"] != instance["private_ip"]:
        raise illegal("ServerIp")
    return server_id, instance["private_ip"], instance.get("zone_id", "")


@NLB.action("AddServersToServerGroup", (
    Param("RegionId"), Param("ServerGroupId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def add_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    group = group_or_error(state, ctx, params["ServerGroupId"])
    entries = _servers(params)
    _writable(group)
    present = {(s["server_id"], s["port"]) for s in group["servers"]}
    added = []
    for entry in entries:
        server_id, server_ip, zone_id = _resolve_server(state, ctx, group, entry)
        port = _port(entry, group)
        weight_text = entry.get("Weight", "100") or "100"
        if not weight_text.isdigit() or not 0 <= int(weight_text) <= 100:
            raise illegal("Weight")
        if (server_id, port) in present:
            # CHOSEN code: the metadata lists none for a server already in the group.
            raise errors.ApiError(400, "ResourceAlreadyExist.BackendServer",
                                  f"The specified resource {server_id}:{port} already exists.")
        present.add((server_id, port))
        added.append({"server_id": server_id, "server_ip": server_ip, "zone_id": zone_id,
                      "type": entry["ServerType"], "port": port, "weight": int(weight_text),
                      "description": entry.get("Description", ""), "status": "Adding"})
    dry_run(params)
    group["servers"].extend(added)
    group["status"] = "Configuring"
    group["lock"] = new_job(state, ctx, "add_servers", group["group_id"], SERVERS_SECONDS)
    return {"ServerGroupId": group["group_id"], "JobId": group["lock"]}


@NLB.action("RemoveServersFromServerGroup", (
    Param("RegionId"), Param("ServerGroupId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def remove_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Removed servers take no new connections at once; live ones are cut now, or after
    ConnectionDrainTimeout when the group drains (runtime.py)."""
    group = group_or_error(state, ctx, params["ServerGroupId"])
    entries = _servers(params)
    _writable(group)
    leaving = []
    for entry in entries:
        if not entry.get("ServerId"):
            raise missing("Servers.N.ServerId")
        if not entry.get("ServerType"):
            raise missing("Servers.N.ServerType")
        port = int(entry["Port"]) if entry.get("Port", "").isdigit() else None
        matched = [s for s in group["servers"] if s["server_id"] == entry["ServerId"]
                   and (port is None or s["port"] == port)]
        if not matched:
            raise errors.ApiError(404, "ResourceNotFound.BackendServer",
                                  "The specified resource of BackendServer is not found.")
        leaving.extend(matched)
    dry_run(params)
    for server in leaving:
        server["status"] = "Removing"
    group["status"] = "Configuring"
    # With connection drain the servers stay Removing (and the group Configuring) while
    # their connections drain: the job ends when the drain timeout has passed.
    seconds = max(SERVERS_SECONDS, group["drain_timeout"] if group["drain_enabled"] else 0)
    group["lock"] = new_job(state, ctx, "remove_servers", group["group_id"], seconds)
    sync_group(ctx.cloud, group["group_id"])
    return {"ServerGroupId": group["group_id"], "JobId": group["lock"]}


@NLB.action("ListServerGroupServers", (
    Param("RegionId"), Param("ServerGroupId"), *PAGING,
))
def list_server_group_servers(state: State, params: Params,
                              ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("ServerIds")
    wanted_ips = params.repeat_list("ServerIps")
    groups = ([group_or_error(state, ctx, params["ServerGroupId"])] if params["ServerGroupId"]
              else [g for g in server_groups(state).values() if g["region_id"] == ctx.region_id])
    rows = []
    for group in groups:
        for server in group["servers"]:
            if wanted_ids and server["server_id"] not in wanted_ids:
                continue
            if wanted_ips and server["server_ip"] not in wanted_ips:
                continue
            rows.append({
                "ServerGroupId": group["group_id"], "ServerId": server["server_id"],
                "ServerIp": server["server_ip"], "ServerType": server["type"],
                "Port": server["port"], "Weight": server["weight"],
                "Description": server["description"], "Status": server["status"],
                "ZoneId": server["zone_id"],
            })
    return listed(rows, params, "Servers")


def _health_updates(raw: dict[str, str], current: dict[str, Any]) -> dict[str, Any]:
    """The group's health check with the HealthCheckConfig.* fields this call gives."""
    given = {k: v for k, v in raw.items() if k.startswith("HealthCheckConfig.")}
    parsed = _health_config(given)
    updated = dict(current)
    for name in _HEALTH_FIELDS:
        if f"HealthCheckConfig.{name}" in given:
            updated[name] = parsed[name]
    if any(k.startswith("HealthCheckConfig.HealthCheckHttpCode.") for k in given):
        updated["HealthCheckHttpCode"] = parsed["HealthCheckHttpCode"]
    return updated


@NLB.action("UpdateServerGroupAttribute", (
    Param("RegionId"), Param("ServerGroupId", required=True), Param("ServerGroupName"),
    Param("Scheduler", enum=SCHEDULERS), Param("ConnectionDrainEnabled", "boolean"),
    Param("ConnectionDrainTimeout", "integer", minimum=0, maximum=900),
    Param("PreserveClientIpEnabled", "boolean"), Param("IpVersionAffinityMode"),
    Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def update_server_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Changes apply to the proxies when the job ends (the group is Configuring till then)."""
    group = group_or_error(state, ctx, params["ServerGroupId"])
    _writable(group)
    name = params["ServerGroupName"]
    if name is not None and not 2 <= len(name) <= 128:
        raise illegal("ServerGroupName")
    health = _health_updates(params.raw, group["health"])
    enabled = (params["ConnectionDrainEnabled"] if params["ConnectionDrainEnabled"] is not None
               else group["drain_enabled"])
    timeout = (params["ConnectionDrainTimeout"] if params["ConnectionDrainTimeout"] is not None
               else group["drain_timeout"])
    if enabled and timeout < 10:
        raise illegal("ConnectionDrainTimeout")
    dry_run(params)
    group.update({
        "name": name or group["name"], "scheduler": params["Scheduler"] or group["scheduler"],
        "drain_enabled": enabled, "drain_timeout": timeout, "health": health,
        "preserve_client_ip": group["preserve_client_ip"]
        if params["PreserveClientIpEnabled"] is None else params["PreserveClientIpEnabled"],
        "status": "Configuring",
    })
    group["lock"] = new_job(state, ctx, "update_group", group["group_id"], SERVER_GROUP_SECONDS)
    return {"ServerGroupId": group["group_id"], "JobId": group["lock"]}


@NLB.action("UpdateServerGroupServersAttribute", (
    Param("RegionId"), Param("ServerGroupId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def update_servers(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Weights and descriptions of servers in the group (weight 0: no new connections)."""
    group = group_or_error(state, ctx, params["ServerGroupId"])
    entries = _servers(params)
    _writable(group)
    changes = []
    for entry in entries:
        port = _port(entry, group)
        matched = [s for s in group["servers"]
                   if s["server_id"] == entry.get("ServerId") and s["port"] == port]
        if not matched:
            raise errors.ApiError(404, "ResourceNotFound.BackendServer",
                                  "The specified resource of BackendServer is not found.")
        weight_text = entry.get("Weight", "") or str(matched[0]["weight"])
        if not weight_text.isdigit() or not 0 <= int(weight_text) <= 100:
            raise illegal("Weight")
        changes.append((matched[0], int(weight_text), entry.get("Description")))
    dry_run(params)
    for server, weight, description in changes:
        server["weight"] = weight
        if description is not None:
            server["description"] = description
        server["status"] = "Configuring"
    group["status"] = "Configuring"
    group["lock"] = new_job(state, ctx, "update_servers", group["group_id"], SERVERS_SECONDS)
    return {"ServerGroupId": group["group_id"], "JobId": group["lock"]}
