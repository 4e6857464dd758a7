"""TCP listeners: create, describe, start (a real proxy), stop, delete."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.slb.product import (
    BACKEND_MISSING_PORT,
    LISTENER_EXISTS,
    LISTENER_NOT_FOUND,
    LISTENER_START_SECONDS,
    LISTENER_STATUS,
    SLB,
    _lb_or_error,
    _listener_or_error,
    acls,
)
from sandbox.aliyun.slb.runtime import sync_listener

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
    _check_acl(state, ctx, lb, params)
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


def _check_acl(state: State, ctx: RequestContext, lb: dict[str, Any], params: Params) -> None:
    """AclStatus=on needs AclType and AclId ("If AclStatus is set to on, this parameter is
    required", V2 model of CreateLoadBalancerTCPListener), an ACL of this region and of the
    load balancer's IP version (CLB access control limits: IPv4 instances take IPv4 ACLs)."""
    if params["AclStatus"] != "on":
        return
    if not params["AclType"]:
        raise errors.missing_parameter("AclType")
    if not params["AclId"]:
        raise errors.missing_parameter("AclId")
    acl = acls(state).get(params["AclId"])
    if acl is None or acl["region_id"] != ctx.region_id:
        raise errors.ApiError(400, "AclNotExist", "The specified acl does not exist.")
    if acl["ip_version"] != lb["address_ip_version"]:
        # CHOSEN code: the documents state the rule, not its error.
        raise errors.ApiError(400, "InvalidParameter.AclId",
                              "The IP version of the acl does not match the load balancer.")


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
