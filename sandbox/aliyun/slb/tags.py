"""Tags on load balancers: AddTags, RemoveTags, DescribeTags and the TagResources family."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, tags
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.slb.loadbalancers import _csv
from sandbox.aliyun.slb.product import SLB, _lb_or_error, load_balancers


# ---- tags ----------------------------------------------------------------------------------
@SLB.action("AddTags", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("Tags", required=True),
))
def add_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    new = tags.from_json_list(params["Tags"])
    if len(new) > 10:
        raise errors.invalid_parameter("Tags")
    lb["tags"] = tags.merge(lb["tags"], new)
    return {}


@SLB.action("RemoveTags", (
    Param("RegionId"), Param("LoadBalancerId", required=True), Param("Tags", required=True),
))
def remove_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    lb = _lb_or_error(state, ctx, params["LoadBalancerId"])
    lb["tags"] = tags.remove(lb["tags"], tags.from_json_list(params["Tags"]))
    return {}


@SLB.action("DescribeTags", (
    Param("RegionId", required=True), Param("LoadBalancerId"), Param("Tags"),
    Param("DistinctKey", "boolean", default=False),
    Param("PageNumber", "integer", minimum=1, default=1),
    Param("PageSize", "integer", minimum=1, maximum=100, default=50),
))
def describe_tags(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted = tags.from_json_list(params["Tags"]) if params.given("Tags") else []
    lbs = [lb for lb in load_balancers(state).values() if lb["region_id"] == ctx.region_id]
    if params["LoadBalancerId"]:
        lbs = [lb for lb in lbs if lb["lb_id"] in _csv(params["LoadBalancerId"])]
    counts: dict[tuple[str, str], int] = {}
    for lb in lbs:
        for tag in lb["tags"]:
            if wanted and not any(tags.matches([tag], [w]) for w in wanted):
                continue
            key = (tag["Key"], "" if params["DistinctKey"] else tag["Value"])
            counts[key] = counts.get(key, 0) + 1
    sets = [{"TagKey": k, "TagValue": v, "InstanceCount": n}
            for (k, v), n in sorted(counts.items())]
    chosen = page(sets, params["PageNumber"], params["PageSize"])
    return {"TotalCount": len(sets), "PageNumber": params["PageNumber"],
            "PageSize": params["PageSize"], "TagSets": {"TagSet": chosen}}


_RESOURCE_TYPE = Param("ResourceType", required=True, enum=("instance", "certificate", "acl"))


def _tagged_lbs(state: State, params: Params, ctx: RequestContext) -> list[dict[str, Any]]:
    lbs = []
    for lb_id in params.repeat_list("ResourceId"):
        lbs.append(_lb_or_error(state, ctx, lb_id))
    if not lbs:
        raise errors.missing_parameter("ResourceId.1")
    return lbs


@SLB.action("TagResources", (Param("RegionId", required=True), _RESOURCE_TYPE))
def tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    new = tags.from_repeat_list(params.raw)
    if not new:
        raise errors.missing_parameter("Tag.1.Key")
    for lb in _tagged_lbs(state, params, ctx):
        lb["tags"] = tags.merge(lb["tags"], new)
    return {}


@SLB.action("UntagResources", (
    Param("RegionId", required=True), _RESOURCE_TYPE, Param("All", "boolean", default=False),
))
def untag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    keys = params.repeat_list("TagKey")
    for lb in _tagged_lbs(state, params, ctx):
        lb["tags"] = [] if params["All"] else [t for t in lb["tags"] if t["Key"] not in keys]
    return {}


@SLB.action("ListTagResources", (
    Param("RegionId", required=True), _RESOURCE_TYPE, Param("NextToken"),
))
def list_tag_resources(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_ids = params.repeat_list("ResourceId")
    wanted_tags = tags.from_repeat_list(params.raw)
    if not wanted_ids and not wanted_tags:
        raise errors.missing_parameter("ResourceId.1")
    rows: list[dict[str, str]] = []
    for lb in load_balancers(state).values():
        if lb["region_id"] != ctx.region_id or (wanted_ids and lb["lb_id"] not in wanted_ids):
            continue
        if not tags.matches(lb["tags"], wanted_tags):
            continue
        rows.extend({"ResourceType": "instance", "ResourceId": lb["lb_id"],
                     "TagKey": t["Key"], "TagValue": t["Value"]} for t in lb["tags"])
    return {"NextToken": "", "TagResources": {"TagResource": rows}}
