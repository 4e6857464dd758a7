"""LoadBalancerJoinSecurityGroup / LoadBalancerLeaveSecurityGroup: an NLB's ECS security
groups, whose ingress rules its listeners enforce on every new connection (runtime.py).

Sources: the V2 models (LoadBalancerJoinSecurityGroupRequest: ClientToken, DryRun,
LoadBalancerId, RegionId, SecurityGroupIds; the answer JobId and RequestId) and Alibaba's
API reference and NLB guide: asynchronous (GetJobStatus; while Processing only queries are
allowed), at most four groups per NLB, groups of the NLB's own VPC only, all of one type
(basic or enterprise); GetLoadBalancerAttribute lists them (SecurityGroupIds).
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.ecs import GROUP_USERS, security_groups
from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.product import (
    CLIENT_TOKEN,
    NLB,
    dry_run,
    incorrect_status,
    lb_or_error,
    load_balancers,
    lock_conflict,
    missing,
    new_job,
)

MAX_GROUPS = 4           # "An NLB instance can be associated with up to four security groups."
SECURITY_GROUP_SECONDS = 5


def joined(lb: dict[str, Any]) -> list[str]:
    return lb.setdefault("security_group_ids", [])


def _holds(state: State, group_id: str) -> bool:
    """Whether an NLB has joined the group: ECS keeps it then."""
    return any(group_id in lb.get("security_group_ids", []) for lb in
               load_balancers(state).values())


GROUP_USERS.append(_holds)


def _wanted(params: Params) -> list[str]:
    wanted = [g for g in params.repeat_list("SecurityGroupIds") if g]
    if not wanted:
        raise missing("SecurityGroupIds")
    return list(dict.fromkeys(wanted))


def _ready(lb: dict[str, Any]) -> None:
    """Only an Active NLB that no job holds takes a change (Processing: queries only)."""
    if lb["lock"]:
        raise lock_conflict(lb["lb_id"])
    if lb["status"] != "Active":
        raise incorrect_status("loadbalancer", lb["lb_id"])


def _group(state: State, ctx: RequestContext, lb: dict[str, Any], group_id: str
           ) -> dict[str, Any]:
    # CHOSEN codes: the metadata's ResourceNotFound.securityGroup style of the other NLB
    # lookups; a group of another VPC is refused as a mismatch.
    group = security_groups(state).get(group_id)
    if group is None or group["region_id"] != ctx.region_id:
        raise errors.ApiError(404, "ResourceNotFound.securityGroup",
                              "The specified resource of securityGroup is not found.")
    if group["vpc_id"] != lb["vpc_id"]:
        raise errors.ApiError(400, "OperationDenied.VpcNotEqual",
                              "The operation is not allowed because of VpcNotEqual.")
    return group


@NLB.action("LoadBalancerJoinSecurityGroup", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def join_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = lb_or_error(state, ctx, params["LoadBalancerId"])
    wanted = _wanted(params)
    groups = [_group(state, ctx, lb, g) for g in wanted]
    _ready(lb)
    new = [g["security_group_id"] for g in groups if g["security_group_id"] not in joined(lb)]
    if len(joined(lb)) + len(new) > MAX_GROUPS:
        raise errors.ApiError(400, "QuotaExceeded.SecurityGroupsPerLoadBalancer",
                              "The quota of SecurityGroupsPerLoadBalancer is exceeded, "
                              f"usage {len(joined(lb)) + len(new)}/{MAX_GROUPS}.")
    kinds = {g["type"] for g in groups} | {
        security_groups(state)[g]["type"] for g in joined(lb) if g in security_groups(state)}
    if len(kinds) > 1:
        raise errors.ApiError(400, "OperationDenied.SecurityGroupTypeNotSame",
                              "The operation is not allowed because of "
                              "SecurityGroupTypeNotSame.")
    dry_run(params)
    lb["status"] = "Configuring"
    lb["lock"] = new_job(state, ctx, "join_sg", lb["lb_id"], SECURITY_GROUP_SECONDS,
                         groups=new)
    return {"JobId": lb["lock"]}


@NLB.action("LoadBalancerLeaveSecurityGroup", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("DryRun", "boolean"),
), client_token=CLIENT_TOKEN)
def leave_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = lb_or_error(state, ctx, params["LoadBalancerId"])
    wanted = _wanted(params)
    for group_id in wanted:
        if group_id not in joined(lb):
            # CHOSEN code: the group is not one of this NLB's.
            raise errors.ApiError(404, "ResourceNotFound.securityGroup",
                                  "The specified resource of securityGroup is not found.")
    _ready(lb)
    dry_run(params)
    lb["status"] = "Configuring"
    lb["lock"] = new_job(state, ctx, "leave_sg", lb["lb_id"], SECURITY_GROUP_SECONDS,
                         groups=wanted)
    return {"JobId": lb["lock"]}
