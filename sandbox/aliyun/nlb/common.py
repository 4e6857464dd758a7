"""What the NLB actions share beyond lookups: NextToken paging, tag input and answers."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, tags
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.nlb.product import illegal

PAGING = (Param("NextToken"), Param("MaxResults", "integer", minimum=1, maximum=100))


def page(items: list[Any], params: Params, default: int = 20) -> tuple[list[Any], str, int]:
    """(this page, NextToken for the next one or "", MaxResults) of `items`."""
    size = params.get("MaxResults") or default
    token = params.get("NextToken") or ""
    start = 0
    if token:
        if not token.isdigit() or int(token) > len(items):
            raise illegal("NextToken")
        start = int(token)
    end = start + size
    return items[start:end], (str(end) if end < len(items) else ""), size


def listed(items: list[Any], params: Params, key: str, default: int = 20) -> dict[str, Any]:
    chosen, token, size = page(items, params, default)
    return {key: chosen, "TotalCount": len(items), "NextToken": token, "MaxResults": size}


def create_tags(params: Params) -> list[dict[str, str]]:
    """Tag.N.Key/Value on a create (at most 20, keys not reserved)."""
    found = tags.from_repeat_list(params.raw)
    for tag in found:
        if tag["Key"].startswith(("aliyun", "acs:")):
            raise errors.invalid_parameter("Tag.N.Key")
    return found


def tag_view(resource_tags: list[dict[str, str]], style: str = "Key") -> list[dict[str, str]]:
    """NLB answers tags as a plain list: {Key, Value} in List*, {TagKey, TagValue} in Get*."""
    if style == "TagKey":
        return [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in resource_tags]
    return [{"Key": t["Key"], "Value": t["Value"]} for t in resource_tags]


def filter_tags(params: Params) -> list[dict[str, str]]:
    """Tag.N filters of List*: a key with an empty value matches any value."""
    return tags.from_repeat_list(params.raw)
