"""STS 2015-04-01 AssumeRole, the RAM roles it assumes, and the ECS metadata service stand-in.

Why: a careful user lends the panel a RAM role, not a long-lived AccessKey. The panel then
needs temporary keys from one of two sources: STS AssumeRole signed by a RAM user's key that
may do nothing else, or the ECS instance RAM role read from the instance metadata service
(100.100.100.200 on a real ECS; here the emulator's own address, which tests set through the
panel's `ALIYUN_ECS_METADATA_ENDPOINT` setting, so no test ever reaches the real one).

Rules, with their sources:
- Parameters and answer: the V2 model alibabacloud_sts20150401 (AssumeRoleRequest and
  AssumeRoleResponseBody docstrings): RoleArn `acs:ram::<account_id>:role/<role_name>`,
  RoleSessionName 2-64 characters of letters, digits and `. @ - _`, DurationSeconds 900 to
  the role's MaxSessionDuration (default 3600), ExternalId 2-1224 characters of
  `[\\w+=,.@:/-]`, Policy 1-2048 characters, the token's rights = role ∩ Policy.
- Error codes: help "STS common errors" (doc-detail/42775): NoPermission (root accounts may not
  assume roles; the trust policy does not allow the caller), InvalidParameter.RoleSessionName,
  InvalidParameter.DurationSeconds, InvalidParameter.PolicyGrammar; EntityNotExist.Role for a
  role that does not exist (RAM's code for a missing role). InvalidParameter.RoleArn and
  InvalidParameter.ExternalId for a malformed value are our choice of the same family.
- Metadata service (help "Instance metadata", "Instance RAM roles"): hardened mode,
  `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds` (1-21600) gives a
  token that `GET /latest/meta-data/ram/security-credentials/<role>` needs in
  `X-aliyun-ecs-metadata-token`; the answer is JSON AccessKeyId, AccessKeySecret,
  SecurityToken, Expiration, LastUpdated, Code "Success". The credentials last one hour
  here (our choice; the real service rotates them before they expire).
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from typing import Any

from sandbox.aliyun.gateway import errors, ram
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, Principal, RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import Product, control_route, path_route, register_product
from sandbox.aliyun.gateway.state import State

ACCOUNT_UID = "1865023457093187"  # the emulated Alibaba Cloud account's id (16 digits)
DEFAULT_MAX_SESSION = 3600
METADATA_CREDENTIALS_SECONDS = 3600
METADATA_PREFIX = "/latest/meta-data/ram/security-credentials/"
TOKEN_PATH = "/latest/api/token"  # noqa: S105 - a URL path, not a password

_ROLE_ARN = re.compile(r"^acs:ram::(\d+):role/([A-Za-z0-9.\-]{1,64})$")
_SESSION_NAME = re.compile(r"^[A-Za-z0-9.@\-_]{2,64}$")
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/\-]{2,1224}$")
_ALNUM = string.ascii_letters + string.digits


def no_permission(auth_action: str, principal: str, verdict: str) -> errors.ApiError:
    """STS's way of saying RAM refused the caller (help doc-detail/42775)."""
    return errors.ApiError(
        403, "NoPermission",
        "You are not authorized to do this action. You should be authorized by RAM.",
        {"AccessDeniedDetail": {"AuthAction": auth_action, "AuthPrincipalDisplayName": principal,
                                "NoPermissionType": verdict}})


STS = register_product(Product("Sts", "2015-04-01", "sts.aliyuncs.com", forbidden=no_permission))

NOT_TRUSTED = errors.ApiError(
    403, "NoPermission",
    "No permission perform sts:AssumeRole on this Role. Maybe you should check the role trust "
    "policy, or the ExternalId you sent.",
)
ROOT_MAY_NOT_ASSUME = errors.ApiError(
    403, "NoPermission", "Roles may not be assumed by root accounts.")
SESSION_NAME_ERROR = errors.ApiError(
    400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed.")
ROLE_ARN_ERROR = errors.ApiError(
    400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed.")
EXTERNAL_ID_ERROR = errors.ApiError(
    400, "InvalidParameter.ExternalId", "The parameter ExternalId is wrongly formed.")
POLICY_GRAMMAR = errors.ApiError(
    400, "InvalidParameter.PolicyGrammar", "The parameter Policy has not passed grammar check.")


def role_arn(name: str) -> str:
    return f"acs:ram::{ACCOUNT_UID}:role/{name.lower()}"


def roles(state: State) -> dict[str, Any]:
    return state.bucket("ram_roles")


def _duration_error(maximum: int) -> errors.ApiError:
    shown = f"{maximum // 3600}hr" if maximum % 3600 == 0 else f"{maximum}s"
    return errors.ApiError(400, "InvalidParameter.DurationSeconds",
                           f"The Min/Max value of DurationSeconds is 15min/{shown}.")


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def issue(state: State, role: dict[str, Any], session_name: str, duration: int, *,
          session_policy: dict[str, Any] | None, source: str) -> dict[str, Any]:
    """New temporary credentials for `role`, remembered so the gateway accepts them."""
    now = time.time()
    key_id = "STS." + _random(28)
    credentials = {
        "AccessKeyId": key_id, "AccessKeySecret": _random(44),
        "SecurityToken": "CAIS" + secrets.token_urlsafe(180),
        "Expiration": iso_utc(now + duration),
    }
    arn = f"{role['arn']}/{session_name}"
    state.bucket("sts_tokens")[key_id] = {
        "secret": credentials["AccessKeySecret"],
        "security_token": credentials["SecurityToken"], "expires": now + duration,
        "role": role["name"], "arn": arn, "session_policy": session_policy, "source": source,
        "issued": now,
    }
    return {"Credentials": credentials,
            "AssumedRoleUser": {"Arn": arn, "AssumedRoleId": f"{role['id']}:{session_name}"}}


def _trusted(role: dict[str, Any], caller: Principal | None, external_id: str) -> bool:
    """The trust policy allows this account's RAM identities, with its sts:ExternalId."""
    for statement in role["trust_policy"]["Statement"]:
        if ram.decision({"Statement": [statement]}, "sts:AssumeRole") != "Allow":
            continue
        principals = statement.get("Principal", {}).get("RAM", [])
        principals = [principals] if isinstance(principals, str) else principals
        caller_arn = caller.display_name if caller else ""
        if not ({"*", f"acs:ram::{ACCOUNT_UID}:root", caller_arn} & set(principals)):
            continue
        wanted = (statement.get("Condition", {}).get("StringEquals", {})
                  .get("sts:ExternalId"))
        if wanted is not None:
            allowed = [wanted] if isinstance(wanted, str) else list(wanted)
            if external_id not in allowed:
                continue
        return True
    return False


@STS.action("AssumeRole", (
    Param("RoleArn", required=True), Param("RoleSessionName", required=True),
    Param("DurationSeconds", "integer"), Param("Policy", max_length=ram.MAX_POLICY_LENGTH),
    Param("ExternalId"), Param("SourceIdentity"),
))
def assume_role(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    match = _ROLE_ARN.match(params["RoleArn"])
    if match is None:
        raise ROLE_ARN_ERROR
    role = roles(state).get(match.group(2).lower())
    if match.group(1) != ACCOUNT_UID or role is None:
        raise errors.ApiError(404, "EntityNotExist.Role",
                              f"The role not exists: {params['RoleArn']}.")
    if not _SESSION_NAME.match(params["RoleSessionName"]):
        raise SESSION_NAME_ERROR
    maximum = int(role.get("max_session_duration") or DEFAULT_MAX_SESSION)
    duration = params["DurationSeconds"] if params["DurationSeconds"] is not None else min(
        DEFAULT_MAX_SESSION, maximum)
    if not 900 <= duration <= maximum:
        raise _duration_error(maximum)
    external_id = params["ExternalId"] or ""
    if external_id and not _EXTERNAL_ID.match(external_id):
        raise EXTERNAL_ID_ERROR
    session_policy = None
    if params["Policy"]:
        try:
            session_policy = ram.parse_policy(params["Policy"])
        except ram.PolicyGrammarError:
            raise POLICY_GRAMMAR from None
    if ctx.principal is not None and ctx.principal.root:
        raise ROOT_MAY_NOT_ASSUME
    if not _trusted(role, ctx.principal, external_id):
        raise NOT_TRUSTED
    return issue(state, role, params["RoleSessionName"], duration,
                 session_policy=session_policy, source=ctx.access_key_id)


# ---- the ECS instance metadata service stand-in ----------------------------------------------


def _metadata_token_valid(cloud: Cloud, headers: dict[str, str]) -> bool:
    token = headers.get("x-aliyun-ecs-metadata-token", "")
    issued = cloud.runtime.setdefault("metadata_tokens", {})
    expires = issued.get(token)
    return bool(token) and expires is not None and time.time() < expires


def _metadata_token(cloud: Cloud, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    ttl = headers.get("x-aliyun-ecs-metadata-token-ttl-seconds", "")
    if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
        return 400, {}, b"invalid X-aliyun-ecs-metadata-token-ttl-seconds"
    token = secrets.token_urlsafe(32)
    cloud.runtime.setdefault("metadata_tokens", {})[token] = time.time() + int(ttl)
    return 200, {}, token.encode()


@path_route("/latest/")
def metadata(cloud: Cloud, method: str, path: str, headers: dict[str, str],
             client: str) -> tuple[int, dict[str, str], bytes]:
    """Hardened-mode metadata: a token first, then the attached role's credentials."""
    if path == TOKEN_PATH and method == "PUT":
        return _metadata_token(cloud, headers)
    if method != "GET" or not path.startswith(METADATA_PREFIX):
        return 404, {}, b"Not Found"
    if not _metadata_token_valid(cloud, headers):
        return 401, {}, b"Unauthorized: a metadata token is required (hardened mode)"
    wanted = path[len(METADATA_PREFIX):].strip("/")
    with cloud.lock:
        attached = cloud.state.bucket("config").get("ecs_instance_role")
        if not wanted:
            return 200, {}, (attached or "").encode()
        role = roles(cloud.state).get((attached or "").lower())
        if role is None or wanted.lower() != role["name"].lower():
            return 404, {}, b"Not Found"
        issued = issue(cloud.state, role, "ecs-instance-role", METADATA_CREDENTIALS_SECONDS,
                       session_policy=None, source="ecs-metadata")
        cloud.state.save()
    answer = {**issued["Credentials"], "LastUpdated": iso_utc(time.time()), "Code": "Success"}
    return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()


# ---- control API ------------------------------------------------------------------------------


def trust_policy(*, external_id: str | None = None, ecs: bool = False) -> dict[str, Any]:
    """This account may assume the role (with `external_id`), or ECS instances may."""
    statement: dict[str, Any] = {"Action": "sts:AssumeRole", "Effect": "Allow",
                                 "Principal": ({"Service": ["ecs.aliyuncs.com"]} if ecs else
                                               {"RAM": [f"acs:ram::{ACCOUNT_UID}:root"]})}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "1", "Statement": [statement]}


@control_route("POST", "ram/roles")
def create_role(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """{name, policy?, external_id?, ecs?, max_session_duration?} -> {arn}."""
    name = str(body.get("name") or "")
    if not re.fullmatch(r"[A-Za-z0-9.\-]{1,64}", name):
        return 400, {"error": "a role name is 1-64 letters, digits, '.' or '-'"}
    try:
        policy = ram.parse_policy(body["policy"]) if body.get("policy") else None
    except ram.PolicyGrammarError as exc:
        return 400, {"error": f"bad policy: {exc}"}
    maximum = int(body.get("max_session_duration") or DEFAULT_MAX_SESSION)
    if not 3600 <= maximum <= 43200:
        return 400, {"error": "MaxSessionDuration is 3600 to 43200 seconds"}
    with cloud.lock:
        roles(cloud.state)[name.lower()] = {
            "name": name, "arn": role_arn(name), "id": str(secrets.randbelow(10**18) + 10**18),
            "policy": policy, "max_session_duration": maximum,
            "trust_policy": trust_policy(external_id=body.get("external_id"),
                                         ecs=bool(body.get("ecs"))),
        }
        if body.get("ecs"):
            cloud.state.bucket("config")["ecs_instance_role"] = name
        cloud.state.save()
    return 200, {"arn": role_arn(name)}


@control_route("GET", "sts/tokens")
def issued_tokens(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """What STS issued (no secrets): key id, role, source, expiry."""
    with cloud.lock:
        tokens = [{"access_key_id": key, "role": t["role"], "source": t["source"],
                   "expires": t["expires"], "arn": t["arn"]}
                  for key, t in cloud.state.bucket("sts_tokens").items()]
    return 200, {"tokens": tokens}


@control_route("POST", "sts/expire")
def expire_tokens(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Make every issued token (or those of `role`) expired now: "an hour has passed"."""
    role = str(body.get("role") or "").lower()
    with cloud.lock:
        expired = 0
        for issued in cloud.state.bucket("sts_tokens").values():
            if not role or issued["role"].lower() == role:
                issued["expires"] = time.time() - 1
                expired += 1
        cloud.state.save()
    return 200, {"expired": expired}
