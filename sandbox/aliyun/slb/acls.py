"""Access control lists (CLB ACLs): create, entries in and out, describe, delete.

Why: an Internet-facing API is only safe behind an allow-list, and the panel proves its
allow-list by connecting through the real TCP proxy (l4proxy.py), which refuses every source the
listener's ACL does not allow, from the moment the entries change.

Facts the emulator keeps, as Alibaba documents them (CLB "Access control" user guide,
doc-detail/85979, and the API references of slb 2014-05-15; the V2 models in
alibabacloud_slb20140515 for every parameter and answer):

- an ACL holds IP entries (CIDR blocks); AddAccessControlListEntry takes at most 50 per call
  and skips an entry that is already there;
- a listener takes an ACL as a whitelist (only its entries are forwarded) or a blacklist
  (its entries are refused); **an ACL without entries does nothing: the listener forwards
  every request, white or black** ("No matter as a whitelist or blacklist, if an ACL contains
  no IP entries, the listener under its control forwards all incoming requests");
- an IPv4 listener takes an IPv4 ACL only;
- "You can delete an ACL only if it is not associated with a listener": `AclInUsed`
  (terraform-provider-alicloud retries DeleteAccessControlList on that code, and treats
  `AclNotExist` as already deleted, resource_alicloud_slb_acl.go);
- an ACL's name is unique within its region (CreateAccessControlList's AclName).

CHOSEN where the documents name no code: `AclNameExist` for a duplicate name,
`QuotaExceeded.AclEntry` past 300 entries in one ACL (the per-ACL limit Terraform's
alicloud_slb_acl enforces with MaxItems), `InvalidParameter.AclEntrys` for an entry that is no
CIDR block or a malformed AclEntrys, and a RemoveAccessControlListEntry of an entry the ACL does
not hold is a no-op (as the add of an existing one is).
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

from sandbox.aliyun.gateway import errors, ids, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.slb.product import SLB, acls, load_balancers
from sandbox.aliyun.slb.runtime import sync_listener

MAX_ENTRIES_PER_CALL = 50
MAX_ENTRIES_PER_ACL = 300
_ACL_NAME = re.compile(r"^[\w.\-/]{1,80}$")

ACL_NOT_FOUND = errors.ApiError(400, "AclNotExist", "The specified acl does not exist.")
ACL_IN_USE = errors.ApiError(400, "AclInUsed", "The specified acl is in use by listeners.")
ACL_NAME_EXISTS = errors.ApiError(400, "AclNameExist", "The specified acl name already exists.")
ACL_ENTRIES_INVALID = errors.ApiError(400, "InvalidParameter.AclEntrys",
                                      "The specified AclEntrys is invalid.")
ACL_ENTRY_QUOTA = errors.ApiError(400, "QuotaExceeded.AclEntry",
                                  "The number of acl entries exceeds the limit.")


def acl_or_error(state: State, ctx: RequestContext, acl_id: str) -> dict[str, Any]:
    acl = acls(state).get(acl_id)
    if acl is None or acl["region_id"] != ctx.region_id:
        raise ACL_NOT_FOUND
    return acl


def bound_listeners(state: State, acl_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(load balancer, listener) pairs whose access control uses this ACL."""
    return [(lb, listener) for lb in load_balancers(state).values()
            for listener in lb["listeners"].values()
            if listener.get("acl_status") == "on" and listener.get("acl_id") == acl_id]


def _parse_entries(raw: str, version: str) -> list[dict[str, str]]:
    """AclEntrys: `[{"entry": "10.0.0.0/24", "comment": "..."}]`, each entry a CIDR block."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise ACL_ENTRIES_INVALID from None
    if not isinstance(value, list) or not value:
        raise ACL_ENTRIES_INVALID
    parsed = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("entry"), str):
            raise ACL_ENTRIES_INVALID
        try:
            network = ipaddress.ip_network(item["entry"].strip(), strict=True)
        except ValueError:
            raise ACL_ENTRIES_INVALID from None
        if (network.version == 4) != (version == "ipv4"):
            raise ACL_ENTRIES_INVALID
        parsed.append({"entry": str(network), "comment": str(item.get("comment") or "")})
    return parsed


def _require(params: Params, *names: str) -> None:
    """V2 flags AclEntrys (and, for the add, AclId) as optional, yet neither action can do
    anything without them: CHOSEN, the gateway's MissingParameter answer."""
    for name in names:
        if not params[name]:
            raise errors.missing_parameter(name)


def _resync(state: State, ctx: RequestContext, acl_id: str) -> None:
    """Entries changed: every running proxy behind this ACL applies them at once."""
    for lb, listener in bound_listeners(state, acl_id):
        sync_listener(ctx.cloud, lb, listener["port"])


@SLB.action("CreateAccessControlList", (
    Param("RegionId", required=True), Param("AclName", required=True),
    Param("AddressIPVersion", enum=("ipv4", "ipv6"), default="ipv4"),
    Param("ResourceGroupId"),
))
def create_acl(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    name = params["AclName"]
    if not _ACL_NAME.match(name):
        raise errors.invalid_parameter("AclName")
    if any(a["name"] == name and a["region_id"] == ctx.region_id
           for a in acls(state).values()):
        raise ACL_NAME_EXISTS
    acl_id = ids.resource_id("acl-", 20)
    acls(state)[acl_id] = {
        "acl_id": acl_id, "name": name, "region_id": ctx.region_id,
        "ip_version": params["AddressIPVersion"],
        "resource_group_id": params["ResourceGroupId"] or "rg-acfmemulator0000",
        "created_at": ctx.clock.now(), "tags": tags.from_repeat_list(params.raw),
        "entries": [],
    }
    return {"AclId": acl_id}


@SLB.action("AddAccessControlListEntry", (
    Param("RegionId", required=True), Param("AclId"), Param("AclEntrys"),
))
def add_entries(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    _require(params, "AclId", "AclEntrys")
    acl = acl_or_error(state, ctx, params["AclId"])
    new = _parse_entries(params["AclEntrys"], acl["ip_version"])
    if len(new) > MAX_ENTRIES_PER_CALL:
        raise ACL_ENTRIES_INVALID
    have = {e["entry"] for e in acl["entries"]}
    added = [e for e in new if e["entry"] not in have]
    if len(acl["entries"]) + len(added) > MAX_ENTRIES_PER_ACL:
        raise ACL_ENTRY_QUOTA
    acl["entries"].extend(added)
    _resync(state, ctx, acl["acl_id"])
    return {}


@SLB.action("RemoveAccessControlListEntry", (
    Param("RegionId", required=True), Param("AclId", required=True), Param("AclEntrys"),
))
def remove_entries(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    _require(params, "AclId", "AclEntrys")
    acl = acl_or_error(state, ctx, params["AclId"])
    gone = {e["entry"] for e in _parse_entries(params["AclEntrys"], acl["ip_version"])}
    if len(gone) > MAX_ENTRIES_PER_CALL:
        raise ACL_ENTRIES_INVALID
    acl["entries"] = [e for e in acl["entries"] if e["entry"] not in gone]
    _resync(state, ctx, acl["acl_id"])
    return {}


def _summary(acl: dict[str, Any]) -> dict[str, Any]:
    return {"AclId": acl["acl_id"], "AclName": acl["name"],
            "AddressIPVersion": acl["ip_version"], "CreateTime": iso_utc(acl["created_at"]),
            "ResourceGroupId": acl["resource_group_id"], "Tags": tags.as_response(acl["tags"])}


@SLB.action("DescribeAccessControlLists", (
    Param("RegionId", required=True), Param("AclName"),
    Param("AddressIPVersion", enum=("ipv4", "ipv6")), Param("ResourceGroupId"),
    Param("PageNumber", "integer", minimum=1, default=1),
    Param("PageSize", "integer", minimum=1, maximum=50, default=10),
))
def describe_acls(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted = tags.from_repeat_list(params.raw)
    found = [a for a in sorted(acls(state).values(), key=lambda a: a["created_at"])
             if a["region_id"] == ctx.region_id
             and (not params["AclName"] or params["AclName"] in a["name"])  # fuzzy match
             and (not params["AddressIPVersion"] or a["ip_version"] == params["AddressIPVersion"])
             and (not params["ResourceGroupId"]
                  or a["resource_group_id"] == params["ResourceGroupId"])
             and tags.matches(a["tags"], wanted)]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    return {"Acls": {"Acl": [_summary(a) for a in chosen]}, "Count": len(chosen),
            "TotalCount": len(found), "PageNumber": params["PageNumber"],
            "PageSize": params["PageSize"]}


@SLB.action("DescribeAccessControlListAttribute", (
    Param("RegionId", required=True), Param("AclId", required=True), Param("AclEntryComment"),
    Param("Page", "integer", minimum=1, default=1),
    Param("PageSize", "integer", minimum=1, maximum=50, default=10),
))
def describe_acl(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    acl = acl_or_error(state, ctx, params["AclId"])
    entries = [e for e in acl["entries"]
               if not params["AclEntryComment"] or e["comment"] == params["AclEntryComment"]]
    chosen = page(entries, params["Page"], params["PageSize"])
    related = [{"LoadBalancerId": lb["lb_id"], "ListenerPort": listener["port"],
                "AclType": listener["acl_type"], "Protocol": listener["protocol"]}
               for lb, listener in bound_listeners(state, acl["acl_id"])]
    return {**_summary(acl),
            "AclEntrys": {"AclEntry": [{"AclEntryIP": e["entry"], "AclEntryComment": e["comment"]}
                                       for e in chosen]},
            "TotalAclEntry": len(entries),
            "RelatedListeners": {"RelatedListener": related}}


@SLB.action("DeleteAccessControlList", (
    Param("RegionId", required=True), Param("AclId", required=True),
))
def delete_acl(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    acl = acl_or_error(state, ctx, params["AclId"])
    if bound_listeners(state, acl["acl_id"]):
        raise ACL_IN_USE
    del acls(state)[acl["acl_id"]]
    return {}
