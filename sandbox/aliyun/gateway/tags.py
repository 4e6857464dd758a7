"""Resource tags in the two shapes the APIs use.

Why: the panel tags everything it creates and finds leftovers by tag; ECS/RDS/SLB accept
`Tag.N.Key/Value` on create and filter, SLB's legacy AddTags takes a JSON `Tags` list of
{TagKey, TagValue}, and responses wrap tags as `Tags.Tag[]` {TagKey, TagValue} (or Key/Value).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.params import repeat_list

MAX_TAGS = 20


def from_repeat_list(raw: Mapping[str, str], prefix: str = "Tag") -> list[dict[str, str]]:
    """`Tag.N.Key` / `Tag.N.Value` pairs; a Value without a Key is invalid."""
    tags = []
    for entry in repeat_list(raw, prefix, ("Key", "Value")):
        if not entry.get("Key"):
            raise errors.invalid_parameter(f"{prefix}.N.Key")
        tags.append({"Key": entry["Key"], "Value": entry.get("Value", "")})
    if len(tags) > MAX_TAGS:
        raise errors.invalid_parameter(prefix)
    return tags


def from_json_list(raw: str, name: str = "Tags") -> list[dict[str, str]]:
    """SLB AddTags/RemoveTags/DescribeTags: `[{"TagKey":"k","TagValue":"v"}]`."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise errors.invalid_parameter(name) from None
    if not isinstance(value, list):
        raise errors.invalid_parameter(name)
    tags = []
    for item in value:
        if not isinstance(item, dict) or not item.get("TagKey"):
            raise errors.invalid_parameter(name)
        tags.append({"Key": str(item["TagKey"]), "Value": str(item.get("TagValue", ""))})
    return tags


def merge(existing: list[dict[str, str]], new: list[dict[str, str]]) -> list[dict[str, str]]:
    """Adding a key that exists replaces its value (tags are a map)."""
    merged = {t["Key"]: t["Value"] for t in existing}
    for tag in new:
        merged[tag["Key"]] = tag["Value"]
    if len(merged) > MAX_TAGS:
        raise errors.ApiError(400, "QuotaExceed.TagNum", "The number of tags exceeds the limit.")
    return [{"Key": k, "Value": v} for k, v in merged.items()]


def remove(existing: list[dict[str, str]], gone: list[dict[str, str]]) -> list[dict[str, str]]:
    keys = {t["Key"] for t in gone}
    return [t for t in existing if t["Key"] not in keys]


def matches(resource_tags: list[dict[str, str]], wanted: list[dict[str, str]]) -> bool:
    """Every wanted tag is present; a wanted tag with a blank value matches any value."""
    have = {t["Key"]: t["Value"] for t in resource_tags}
    return all(
        w["Key"] in have and (w.get("Value", "") == "" or have[w["Key"]] == w["Value"])
        for w in wanted
    )


def as_response(resource_tags: list[dict[str, str]], style: str = "TagKey") -> dict[str, Any]:
    """`{"Tag": [{"TagKey": k, "TagValue": v}]}` or, with style "Key", `{"Key": k, "Value": v}`."""
    if style == "TagKey":
        items = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in resource_tags]
    else:
        items = [{"Key": t["Key"], "Value": t["Value"]} for t in resource_tags]
    return {"Tag": items}
