"""Listeners: CreateListener (Provisioning, then Running: a real TCP proxy on every zone
address), ListListeners, GetListenerAttribute, StartListener, StopListener, DeleteListener,
and GetListenerHealthStatus read from the proxies' real health checks."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, tags
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.ids import resource_id
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.common import PAGING, create_tags, filter_tags, listed, tag_view
from sandbox.aliyun.nlb.product import (
    CLIENT_TOKEN,
    LISTENER_SECONDS,
    NLB,
    dry_run,
    group_or_error,
    illegal,
    incorrect_status,
    lb_or_error,
    listener_or_error,
    listeners,
    lock_conflict,
    new_job,
    server_groups,
)
from sandbox.aliyun.nlb.runtime import server_health, server_key, sync_listener

PROTOCOLS = ("TCP", "UDP", "TCPSSL")


@NLB.action("CreateListener", (
    Param("RegionId"), Param("LoadBalancerId", required=True),
    Param("ListenerProtocol", required=True, enum=PROTOCOLS),
    Param("ListenerPort", "integer", required=True, minimum=0, maximum=65535),
    Param("ServerGroupId"), Param("ListenerDescription"),
    Param("IdleTimeout", "integer", minimum=1, maximum=900, default=900),
    Param("StartPort", "integer", minimum=0, maximum=65535),
    Param("EndPort", "integer", minimum=0, maximum=65535),
    Param("ProxyProtocolEnabled", "boolean", default=False),
    Param("ProxyProtocolV2Config", "json"), Param("SecSensorEnabled", "boolean", default=False),
    Param("AlpnEnabled", "boolean", default=False),
    Param("AlpnPolicy", enum=("HTTP1Only", "HTTP2Only", "HTTP2Preferred", "HTTP2Optional")),
    Param("CaEnabled", "boolean", default=False), Param("SecurityPolicyId"),
    Param("Cps", "integer", minimum=0, maximum=1000000, default=0),
    Param("Mss", "integer", minimum=0, maximum=1500, default=0), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def create_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = lb_or_error(state, ctx, params["LoadBalancerId"])
    if not params["ServerGroupId"]:
        raise errors.ApiError(400, "MissingParam.ServerGroupId",
                              "The param of ServerGroupId is missing.")
    group = group_or_error(state, ctx, params["ServerGroupId"])
    protocol, port = params["ListenerProtocol"], params["ListenerPort"]
    certificates = params.repeat_list("CertificateIds")
    _check_request(params, certificates)
    _check_pairing(state, lb, group, protocol, port)
    listener_tags = create_tags(params)
    ppv2 = params["ProxyProtocolV2Config"] if params.given("ProxyProtocolV2Config") else {}
    if not isinstance(ppv2, dict):
        raise illegal("ProxyProtocolV2Config")
    dry_run(params)
    listener_id = resource_id("lsn-", 20)
    listener = {
        "listener_id": listener_id, "lb_id": lb["lb_id"], "group_id": group["group_id"],
        "region_id": ctx.region_id, "protocol": protocol, "port": port,
        "start_port": params["StartPort"], "end_port": params["EndPort"],
        "description": params["ListenerDescription"] or f"{protocol.lower()}_{port}",
        "idle_timeout": params["IdleTimeout"], "proxy_protocol": params["ProxyProtocolEnabled"],
        "ppv2": {k: bool(ppv2.get(k, False)) for k in
                 ("Ppv2VpcIdEnabled", "Ppv2PrivateLinkEpIdEnabled",
                  "Ppv2PrivateLinkEpsIdEnabled")},
        "sec_sensor": params["SecSensorEnabled"], "alpn": params["AlpnEnabled"],
        "alpn_policy": params["AlpnPolicy"] or "", "ca_enabled": params["CaEnabled"],
        "security_policy_id": params["SecurityPolicyId"] or "",
        "certificate_ids": certificates,
        "ca_certificate_ids": params.repeat_list("CaCertificateIds"),
        "cps": params["Cps"], "mss": params["Mss"], "tags": listener_tags,
        "status": "Provisioning", "created_at": ctx.clock.now(), "lock": "",
    }
    listener["lock"] = new_job(state, ctx, "create_listener", listener_id, LISTENER_SECONDS)
    listeners(state)[listener_id] = listener
    return {"ListenerId": listener_id, "JobId": listener["lock"]}


def _check_request(params: Params, certificates: list[Any]) -> None:
    description = params["ListenerDescription"]
    if description is not None and not 2 <= len(description) <= 256:
        raise errors.ApiError(400, "IllegalParam.ListenerDescription",
                              "The parameter ListenerDescription of listener is illegal.")
    if params["ListenerPort"] == 0 and (
            params["StartPort"] is None or params["EndPort"] is None
            or params["StartPort"] >= params["EndPort"]):
        raise errors.ApiError(400, "IllegalParam.Port", "The param of Port is illegal.")
    if params["ListenerProtocol"] == "TCPSSL" and not certificates:
        raise errors.ApiError(400, "MissingParam.Certificate",
                              "The param of certificate is missing.")


def _check_pairing(state: State, lb: dict[str, Any], group: dict[str, Any], protocol: str,
                   port: int) -> None:
    """The group fits the listener (VPC, protocol), both are ready, and the port is free."""
    if group["vpc_id"] != lb["vpc_id"]:
        raise errors.ApiError(400, "Mismatch.VpcId", f"The VpcId is mismatched for "
                              f"{group['vpc_id']} and {lb['vpc_id']}.")
    if group["protocol"] != ("TCP" if protocol == "TCPSSL" else protocol):
        raise errors.ApiError(400, "Mismatch.Protocol", "The Protocol is mismatched for "
                              f"{group['protocol']} and {protocol}.")
    if protocol == "TCPSSL" and group["preserve_client_ip"]:
        raise errors.ApiError(400, "IllegalParam.PreserveClientIpSwitch",
                              "The server group associated with the tcpssl listener does not "
                              "support enabling PreserveClientIp.")
    if lb["status"] != "Active":
        raise incorrect_status("loadbalancer", lb["lb_id"])
    if group["status"] == "Creating":
        raise incorrect_status("serverGroup", group["group_id"])  # CHOSEN: not in the list
    if group["lock"]:
        raise lock_conflict(group["group_id"])
    for other in listeners(state).values():
        # TCP and TCPSSL share the port space; UDP has its own.
        same_space = (other["protocol"] == "UDP") == (protocol == "UDP")
        if other["lb_id"] == lb["lb_id"] and other["port"] == port and port and same_space:
            raise errors.ApiError(400, "Conflict.Port", f"The Port [{port}] is conflict.")


def listener_view(listener: dict[str, Any], tag_style: str) -> dict[str, Any]:
    return {
        "ListenerId": listener["listener_id"], "LoadBalancerId": listener["lb_id"],
        "ServerGroupId": listener["group_id"], "RegionId": listener["region_id"],
        "ListenerProtocol": listener["protocol"], "ListenerPort": listener["port"],
        "StartPort": str(listener["start_port"] or 0), "EndPort": str(listener["end_port"] or 0),
        "ListenerDescription": listener["description"], "ListenerStatus": listener["status"],
        "IdleTimeout": listener["idle_timeout"], "ProxyProtocolEnabled": listener["proxy_protocol"],
        "ProxyProtocolV2Config": dict(listener["ppv2"]),
        "SecSensorEnabled": listener["sec_sensor"], "AlpnEnabled": listener["alpn"],
        "AlpnPolicy": listener["alpn_policy"], "CaEnabled": listener["ca_enabled"],
        "SecurityPolicyId": listener["security_policy_id"],
        "CertificateIds": list(listener["certificate_ids"]),
        "CaCertificateIds": list(listener["ca_certificate_ids"]),
        "Cps": listener["cps"], "Mss": listener["mss"],
        "Tags": tag_view(listener["tags"], tag_style),
    }


@NLB.action("GetListenerAttribute", (
    Param("RegionId"), Param("ListenerId", required=True), Param("DryRun", "boolean"),
))
def get_listener_attribute(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    listener = listener_or_error(state, ctx, params["ListenerId"])
    dry_run(params)
    return listener_view(listener, "TagKey")


@NLB.action("ListListeners", (
    Param("RegionId"), Param("ListenerProtocol", enum=PROTOCOLS), Param("SecSensorEnabled"),
    *PAGING,
))
def list_listeners(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("ListenerIds")
    wanted_lbs = params.repeat_list("LoadBalancerIds")
    wanted_tags = filter_tags(params)
    found = []
    for listener in sorted(listeners(state).values(), key=lambda li: li["created_at"]):
        if listener["region_id"] != ctx.region_id:
            continue
        if ((wanted_ids and listener["listener_id"] not in wanted_ids)
                or (wanted_lbs and listener["lb_id"] not in wanted_lbs)):
            continue
        if params["ListenerProtocol"] and listener["protocol"] != params["ListenerProtocol"]:
            continue
        if not tags.matches(listener["tags"], wanted_tags):
            continue
        found.append(listener_view(listener, "Key"))
    return listed(found, params, "Listeners")


def _settled(listener: dict[str, Any]) -> None:
    """A listener being provisioned, configured, started, stopped or deleted refuses writes
    (IncorrectStatus.listener, in UpdateListenerAttribute's documented list)."""
    if listener["lock"] or listener["status"] not in ("Running", "Stopped"):
        raise errors.ApiError(400, "IncorrectStatus.listener",
                              f"The status of listener [{listener['listener_id']}] is "
                              "incorrect.")


_LISTENER_WRITE = (Param("RegionId"), Param("ListenerId", required=True),
                   Param("DryRun", "boolean"))


@NLB.action("DeleteListener", _LISTENER_WRITE, client_token=CLIENT_TOKEN)
def delete_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    listener = listener_or_error(state, ctx, params["ListenerId"])
    _settled(listener)
    dry_run(params)
    listener["status"] = "Deleting"
    listener["lock"] = new_job(state, ctx, "delete_listener", listener["listener_id"],
                               LISTENER_SECONDS)
    sync_listener(ctx.cloud, listener["listener_id"])
    return {"JobId": listener["lock"]}


@NLB.action("StopListener", _LISTENER_WRITE, client_token=CLIENT_TOKEN)
def stop_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    listener = listener_or_error(state, ctx, params["ListenerId"])
    _settled(listener)
    if listener["status"] != "Running":
        raise errors.ApiError(400, "IncorrectStatus.listener",
                              f"The status of listener [{listener['listener_id']}] is "
                              "incorrect.")
    dry_run(params)
    listener["status"] = "Stopping"
    listener["lock"] = new_job(state, ctx, "stop_listener", listener["listener_id"],
                               LISTENER_SECONDS)
    sync_listener(ctx.cloud, listener["listener_id"])
    return {"JobId": listener["lock"]}


@NLB.action("StartListener", _LISTENER_WRITE, client_token=CLIENT_TOKEN)
def start_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    listener = listener_or_error(state, ctx, params["ListenerId"])
    _settled(listener)
    if listener["status"] != "Stopped":
        raise errors.ApiError(400, "IncorrectStatus.listener",
                              f"The status of listener [{listener['listener_id']}] is "
                              "incorrect.")
    dry_run(params)
    listener["status"] = "Starting"
    listener["lock"] = new_job(state, ctx, "start_listener", listener["listener_id"],
                               LISTENER_SECONDS)
    return {"JobId": listener["lock"]}


def _reason(status: str) -> dict[str, str]:
    return {"ReasonCode": "CONNECT_TIMEOUT"} if status == "Unhealthy" else {}


@NLB.action("GetListenerHealthStatus", (Param("RegionId"), Param("ListenerId", required=True)))
def get_listener_health_status(state: State, params: Params,
                               ctx: RequestContext) -> dict[str, Any]:
    """Healthy servers are not listed: NonNormalServers holds the others (Initial before a
    verdict, Unhealthy after failed checks, Unavailable with checks off, Unused when the
    listener forwards nothing)."""
    listener = listener_or_error(state, ctx, params["ListenerId"])
    group = server_groups(state).get(listener["group_id"])
    infos = []
    if group is not None:
        verdicts = server_health(ctx.cloud, listener["listener_id"])
        enabled = bool(group["health"]["HealthCheckEnabled"])
        live = listener["status"] in ("Running", "Configuring")
        others = []
        for server in group["servers"]:
            if not live or server["status"] not in ("Available", "Configuring"):
                status = "Unused"
            elif not enabled:
                status = "Unavailable"
            else:
                status = verdicts.get(server_key(server), "Initial")
            if status == "Healthy":
                continue
            row: dict[str, Any] = {"ServerId": server["server_id"],
                                   "ServerIp": server["server_ip"], "Port": server["port"],
                                   "Status": status}
            if _reason(status):
                row["Reason"] = _reason(status)
            others.append(row)
        infos.append({"ServerGroupId": group["group_id"], "HeathCheckEnabled": enabled,
                      "NonNormalServers": others})
    rows = [{"ListenerId": listener["listener_id"], "ListenerPort": listener["port"],
             "ListenerProtocol": listener["protocol"], "ServerGroupInfos": infos}]
    return listed(rows, params, "ListenerHealthStatus")


@NLB.action("UpdateListenerAttribute", (
    Param("RegionId"), Param("ListenerId", required=True), Param("ServerGroupId"),
    Param("ListenerDescription"), Param("IdleTimeout", "integer", minimum=1, maximum=900),
    Param("ProxyProtocolEnabled", "boolean"), Param("ProxyProtocolV2Config", "json"),
    Param("SecSensorEnabled", "boolean"), Param("AlpnEnabled", "boolean"),
    Param("AlpnPolicy", enum=("HTTP1Only", "HTTP2Only", "HTTP2Preferred", "HTTP2Optional")),
    Param("CaEnabled", "boolean"), Param("SecurityPolicyId"),
    Param("Cps", "integer", minimum=0, maximum=1000000),
    Param("Mss", "integer", minimum=0, maximum=1500), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def update_listener(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Another server group (same VPC and protocol, ready) or other settings; the listener
    is Configuring until the job ends, then back to what it was (Running or Stopped)."""
    listener = listener_or_error(state, ctx, params["ListenerId"])
    _settled(listener)
    description = params["ListenerDescription"]
    if description is not None and not 2 <= len(description) <= 256:
        raise errors.ApiError(400, "IllegalParam.ListenerDescription",
                              "The parameter ListenerDescription of listener is illegal.")
    group_id = params["ServerGroupId"] or listener["group_id"]
    if group_id != listener["group_id"]:
        group = group_or_error(state, ctx, group_id)
        lb = lb_or_error(state, ctx, listener["lb_id"])
        if group["vpc_id"] != lb["vpc_id"]:
            raise errors.ApiError(400, "Mismatch.VpcId", f"The VpcId is mismatched for "
                                  f"{group['vpc_id']} and {lb['vpc_id']}.")
        if group["protocol"] != ("TCP" if listener["protocol"] == "TCPSSL"
                                 else listener["protocol"]):
            raise errors.ApiError(400, "Mismatch.Protocol", "The Protocol is mismatched for "
                                  f"{group['protocol']} and {listener['protocol']}.")
        if group["status"] == "Creating":
            raise incorrect_status("serverGroup", group["group_id"])
        if group["lock"]:
            raise lock_conflict(group["group_id"])
    dry_run(params)
    simple = {"ListenerDescription": "description", "IdleTimeout": "idle_timeout",
              "ProxyProtocolEnabled": "proxy_protocol", "SecSensorEnabled": "sec_sensor",
              "AlpnEnabled": "alpn", "AlpnPolicy": "alpn_policy", "CaEnabled": "ca_enabled",
              "SecurityPolicyId": "security_policy_id", "Cps": "cps", "Mss": "mss"}
    for param, field in simple.items():
        if params[param] is not None:
            listener[field] = params[param]
    if params.repeat_list("CertificateIds"):
        listener["certificate_ids"] = params.repeat_list("CertificateIds")
    listener["group_id"] = group_id
    back_to = listener["status"]
    listener["status"] = "Configuring"
    listener["lock"] = new_job(state, ctx, "update_listener", listener["listener_id"],
                               LISTENER_SECONDS, back_to=back_to)
    return {"JobId": listener["lock"]}
