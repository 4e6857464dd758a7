"""Backend servers (add, remove, set) and DescribeHealthStatus, read from the real proxy's
health checks."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun import ecs
from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params, parse_json_value
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.l4proxy import UNAVAILABLE
from sandbox.aliyun.slb.loadbalancers import _listener_ports
from sandbox.aliyun.slb.product import (
    MAX_BACKENDS_PER_CALL,
    NETWORK_TYPE_MISMATCH,
    SLB,
    _lb_or_error,
    _listener_or_error,
    _proxies,
)
from sandbox.aliyun.slb.runtime import _sync_all_listeners


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
