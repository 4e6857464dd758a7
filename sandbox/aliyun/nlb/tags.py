"""Tags on NLB resources: TagResources, UntagResources, ListTagResources (ResourceType
loadbalancer, servergroup or listener; security policies are not modelled)."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, tags
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.common import PAGING, create_tags, listed
from sandbox.aliyun.nlb.product import (
    NLB,
    dry_run,
    group_or_error,
    lb_or_error,
    listener_or_error,
    listeners,
    load_balancers,
    missing,
    server_groups,
)

RESOURCE_TYPES = ("loadbalancer", "securitypolicy", "servergroup", "listener")
_TYPE = Param("ResourceType", required=True, enum=RESOURCE_TYPES)


def _table(state: State, kind: str) -> dict[str, Any]:
    if kind == "loadbalancer":
        return load_balancers(state)
    if kind == "servergroup":
        return server_groups(state)
    if kind == "listener":
        return listeners(state)
    return {}


def _lookup(state: State, ctx: RequestContext, kind: str, resource: str) -> dict[str, Any]:
    if kind == "loadbalancer":
        return lb_or_error(state, ctx, resource)
    if kind == "servergroup":
        return group_or_error(state, ctx, resource)
    if kind == "listener":
        return listener_or_error(state, ctx, resource)
    raise errors.ApiError(404, "ResourceNotFound.securitypolicy",
                          "The specified resource of securitypolicy is not found.")


def _targets(state: State, params: Params, ctx: RequestContext) -> list[dict[str, Any]]:
    wanted = params.repeat_list("ResourceId")
    if not wanted:
        raise missing("ResourceId")
    return [_lookup(state, ctx, params["ResourceType"], r) for r in wanted]


@NLB.action("TagResources", (Param("RegionId"), _TYPE, Param("DryRun", "boolean")))
def tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    new = create_tags(params)
    if not new:
        raise missing("Tag")
    targets = _targets(state, params, ctx)
    dry_run(params)
    for resource in targets:
        resource["tags"] = tags.merge(resource["tags"], new)
    return {}


@NLB.action("UntagResources", (
    Param("RegionId"), _TYPE, Param("All", "boolean", default=False), Param("DryRun", "boolean"),
))
def untag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    keys = params.repeat_list("TagKey")
    targets = _targets(state, params, ctx)
    dry_run(params)
    for resource in targets:
        resource["tags"] = ([] if params["All"] else
                            [t for t in resource["tags"] if t["Key"] not in keys])
    return {}


_ID_FIELD = {"loadbalancer": "lb_id", "servergroup": "group_id", "listener": "listener_id"}


@NLB.action("ListTagResources", (Param("RegionId"), _TYPE, *PAGING))
def list_tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    kind = params["ResourceType"]
    wanted_ids = params.repeat_list("ResourceId")
    wanted_tags = tags.from_repeat_list(params.raw)
    rows: list[dict[str, Any]] = []
    for resource in _table(state, kind).values():
        resource_id = resource[_ID_FIELD[kind]]
        if resource["region_id"] != ctx.region_id:
            continue
        if wanted_ids and resource_id not in wanted_ids:
            continue
        if not tags.matches(resource["tags"], wanted_tags):
            continue
        rows.extend({"ResourceType": kind, "ResourceId": resource_id, "TagKey": t["Key"],
                     "TagValue": t["Value"], "RegionNo": ctx.region_id, "Category": "Custom",
                     "Scope": "Private", "AliUid": 1234567890123456}
                    for t in resource["tags"])
    return listed(rows, params, "TagResources", default=50)
