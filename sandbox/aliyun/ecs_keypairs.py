"""ECS 2014-05-26 SSH key pairs: ImportKeyPair, CreateKeyPair, DescribeKeyPairs, DeleteKeyPairs.

Why: RunInstances installs a key pair's public key for root (ecs_instances.py), so the panel
can reach a bought host with the private half it keeps.

Sources: ImportKeyPair API reference (help.aliyun.com/en/ecs/developer-reference/
api-ecs-2014-05-26-importkeypair, and doc-detail/51774): at most 500 key pairs a region;
the imported key must be one of **rsa, dsa, ssh-rsa, ssh-dss, ecdsa** (the current page;
certificate forms are not in it, so they are refused): **Ed25519 is not in the list, so
it is refused**
with 400 `InvalidPublicKeyBody.Malformed` "The PublicKeyBody format is not supported.";
error table: `InvalidKeyPairName.Malformed`, 403 `QuotaExceed.KeyPair`, 400
`KeyPair.AlreadyExist`. The fingerprint is the MD5 of the public key blob (RFC 4716), as
DescribeKeyPairsRequest.KeyPairFingerPrint documents. Names: 2-128 characters, starting
with a Unicode letter (V2 ImportKeyPairRequest / CreateKeyPairRequest). CreateKeyPair's
PrivateKeyBody is an unencrypted PKCS#8 PEM, "-----BEGIN PRIVATE KEY-----" (V2
CreateKeyPairResponseBody.PrivateKeyBody: "PEM-encoded in PKCS#8 format"; help.aliyun.com
doc-detail/51792).
DescribeKeyPairs: KeyPairName takes `*` wildcards; PageSize at most 50 (V2 request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sandbox.aliyun.ecs import ECS
from sandbox.aliyun.gateway import errors, ids, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State

KEY_PAIRS_PER_REGION = 500
# rsa, dsa, ssh-rsa, ssh-dss, ecdsa: the list of the current API page (no certificate
# forms, no Ed25519), as the OpenSSH key type names of the public key line.
ACCEPTED_KEY_TYPES = (
    "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
)
# V2 ImportKeyPairRequest.KeyPairName: 2-128 characters, "must start with a letter ...
# or a Chinese character ... can contain characters that are classified as letters in
# Unicode, including letters, Chinese characters, and digits" and : _ . -
# ([^\W\d_] is a Unicode letter; \w is letters, digits and _.)
_NAME = re.compile(r"[^\W\d_][\w.:\-]{1,127}")
NAME_MALFORMED = errors.ApiError(400, "InvalidKeyPairName.Malformed",
                                 "Specified Key Pair name is not valid.")
BODY_MALFORMED = errors.ApiError(400, "InvalidPublicKeyBody.Malformed",
                                 "The PublicKeyBody format is not supported.")
ALREADY_EXISTS = errors.ApiError(400, "KeyPair.AlreadyExist", "The key pair already exist.")
QUOTA = errors.ApiError(403, "QuotaExceed.KeyPair", "The key pair quota exceeds.")
NOT_FOUND = errors.ApiError(404, "InvalidKeyPair.NotFound",
                            "The specified KeyPair does not exist.")


def key_pairs(state: State) -> dict[str, Any]:
    return state.table("ecs", "key_pairs")


def _key(region_id: str, name: str) -> str:
    return f"{region_id}/{name}"


def find(state: State, region_id: str, name: str) -> dict[str, Any] | None:
    return key_pairs(state).get(_key(region_id, name))


def parse_public_key(body: str) -> tuple[str, bytes]:
    """(type, blob) of an OpenSSH public key line of an accepted type, or BODY_MALFORMED."""
    fields = body.strip().split()
    if len(fields) < 2 or fields[0] not in ACCEPTED_KEY_TYPES:
        raise BODY_MALFORMED
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise BODY_MALFORMED from None
    declared = blob[4:4 + int.from_bytes(blob[:4], "big")] if len(blob) > 4 else b""
    if declared.decode(errors="replace") != fields[0]:
        raise BODY_MALFORMED  # the blob must be what the line says it is
    return fields[0], blob


def fingerprint(blob: bytes) -> str:
    return ":".join(f"{b:02x}" for b in hashlib.md5(blob, usedforsecurity=False).digest())


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name) or name.startswith(("http://", "https://")):
        raise NAME_MALFORMED


def _store(state: State, ctx: RequestContext, name: str, public_key: str, *, blob: bytes,
           params: Params) -> dict[str, Any]:
    _check_name(name)
    if find(state, ctx.region_id, name) is not None:
        raise ALREADY_EXISTS
    if sum(1 for k in key_pairs(state).values() if k["region_id"] == ctx.region_id) \
            >= KEY_PAIRS_PER_REGION:
        raise QUOTA
    entry = {
        "name": name, "region_id": ctx.region_id, "public_key": public_key.strip(),
        "fingerprint": fingerprint(blob), "key_pair_id": ids.resource_id("kp-", 20),
        "created_at": ctx.clock.now(), "tags": tags.from_repeat_list(params.raw),
        "resource_group_id": params["ResourceGroupId"] or "",
    }
    key_pairs(state)[_key(ctx.region_id, name)] = entry
    return entry


@ECS.action("ImportKeyPair", (
    Param("RegionId", required=True), Param("KeyPairName", required=True),
    Param("PublicKeyBody", required=True), Param("ResourceGroupId"),
))
def import_key_pair(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    _check_name(params["KeyPairName"])
    _type, blob = parse_public_key(params["PublicKeyBody"])
    entry = _store(state, ctx, params["KeyPairName"], params["PublicKeyBody"], blob=blob,
                   params=params)
    return {"KeyPairName": entry["name"], "KeyPairFingerPrint": entry["fingerprint"]}


def _generate_rsa() -> tuple[str, str]:
    """(private key PEM, public key line): what CreateKeyPair hands out (RSA 2048, the
    private key as unencrypted PKCS#8)."""
    with tempfile.TemporaryDirectory(prefix="emu-kp-") as tmp:
        path = Path(tmp) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PKCS8", "-N", "",
                        "-C", "", "-f", str(path)], check=True, capture_output=True)
        return path.read_text(), path.with_suffix(".pub").read_text().strip()


@ECS.action("CreateKeyPair", (
    Param("RegionId", required=True), Param("KeyPairName", required=True),
    Param("ResourceGroupId"),
))
def create_key_pair(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Alibaba makes the pair and returns the private key once (PrivateKeyBody)."""
    ctx.require_region()
    _check_name(params["KeyPairName"])
    if find(state, ctx.region_id, params["KeyPairName"]) is not None:
        raise ALREADY_EXISTS
    private, public = _generate_rsa()
    _type, blob = parse_public_key(public)
    entry = _store(state, ctx, params["KeyPairName"], public, blob=blob, params=params)
    return {"KeyPairName": entry["name"], "KeyPairFingerPrint": entry["fingerprint"],
            "KeyPairId": entry["key_pair_id"], "PrivateKeyBody": private}


def _matches(name: str, pattern: str) -> bool:
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name) is not None


@ECS.action("DescribeKeyPairs", (
    Param("RegionId", required=True), Param("KeyPairName"), Param("KeyPairFingerPrint"),
    Param("IncludePublicKey", "boolean", default=False), Param("ResourceGroupId"),
    *page_params(10, 50),
))
def describe_key_pairs(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted_tags = tags.from_repeat_list(params.raw)
    found = [
        k for k in sorted(key_pairs(state).values(), key=lambda k: k["created_at"])
        if k["region_id"] == ctx.region_id
        and (not params["KeyPairName"] or _matches(k["name"], params["KeyPairName"]))
        and (not params["KeyPairFingerPrint"]
             or k["fingerprint"] == params["KeyPairFingerPrint"])
        and tags.matches(k.get("tags", []), wanted_tags)
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    views = []
    for k in chosen:
        view = {"KeyPairName": k["name"], "KeyPairFingerPrint": k["fingerprint"],
                "CreationTime": iso_utc(k["created_at"]),
                "ResourceGroupId": k["resource_group_id"],
                "Tags": tags.as_response(k.get("tags", []))}
        if params["IncludePublicKey"]:
            view["PublicKey"] = k["public_key"]
        views.append(view)
    return {"TotalCount": len(found), "PageNumber": params["PageNumber"],
            "PageSize": params["PageSize"], "KeyPairs": {"KeyPair": views}}


@ECS.action("DeleteKeyPairs", (
    Param("RegionId", required=True), Param("KeyPairNames", required=True),
))
def delete_key_pairs(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """KeyPairNames is a JSON array (V2: "The value is a JSON array", at most 100). Names
    that do not exist are skipped; instances keep the public key they were given."""
    ctx.require_region()
    try:
        names = json.loads(params["KeyPairNames"])
    except ValueError:
        raise errors.invalid_parameter("KeyPairNames") from None
    if not isinstance(names, list) or not 1 <= len(names) <= 100 or not all(
            isinstance(n, str) for n in names):
        raise errors.invalid_parameter("KeyPairNames")
    for name in names:
        key_pairs(state).pop(_key(ctx.region_id, name), None)
    return {}
