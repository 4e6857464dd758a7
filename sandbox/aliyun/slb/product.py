"""The SLB product (2014-05-15) and what its modules share: limits, error answers and
the lookups of a load balancer and a listener."""

from __future__ import annotations

import re
from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.registry import (
    Product,
    register_product,
)
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.l4proxy import ListenerProxy

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


def acls(state: State) -> dict[str, Any]:
    """Access control lists by id (acls.py); the runtime reads them to filter sources."""
    return state.table("slb", "acls")


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
