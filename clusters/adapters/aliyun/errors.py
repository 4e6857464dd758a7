"""Alibaba Cloud SDK exceptions → TransientError / PermanentError with a plain hint.

Why: the engine retries transient failures with backoff (we switched the SDK's own retries
off), so "busy" must be told apart from "wrong": throttling, 5xx, dropped connections and the
busy states terraform-provider-alicloud retries (IncorrectDBInstanceState,
OperationDenied.DBInstanceStatus, ServiceIsConfiguring …; aliyun-openapi.md §3.3, §4, §6) are
transient; everything else needs a person. Messages name the Aliyun code and RequestId (via
StepError) and never carry a secret: SignatureDoesNotMatch's message echoes the whole
string-to-sign (with e.g. AccountPassword) and SDK.HttpError echoes the request URL, so both
are scrubbed, and the caller's Redactor runs last.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException

from clusters.core.errors import PermanentError, StepError, TransientError

TRANSIENT_CODES = frozenset({
    # gateway / any product
    "ServiceUnavailable", "InternalError", "UnknownError", "Rejected.Throttling",
    "InvokeProxyFailure", "ExternalFailure", "SystemBusy", "OperationFailed.SystemBusy",
    # RDS busy states (TF retries these around account/db/privilege/delete calls)
    "IncorrectDBInstanceState", "OperationDenied.DBInstanceStatus",
    "OperationDenied.DBClusterStatus", "OperationDenied.DBStatus", "OperationDenied.OutofUsage",
    "OperationDenied.ReadDBInstanceStatus", "LockTimeout", "InstanceConnectTimeoutFault",
    "ConcurrentTaskExceeded", "Database.ConnectError", "BackupJobExists", "TaskConflict",
    # SLB busy states
    "ServiceIsConfiguring", "OperationBusy", "ListenerProcessing", "BackendServerProcessing",
    "OperationFailed.TokenIsProcessing", "RspoolVipExist", "ObtainIpFail", "ServiceIsStopping",
    "BackendServer.configuring",
    # DeleteAccessControlList while a listener still holds the ACL (terraform-provider-alicloud
    # retries it, resource_alicloud_slb_acl.go): the listener's delete is still settling
    "AclInUsed",
    # NLB busy states: terraform-provider-alicloud retries these around every NLB write
    # (resource_alicloud_nlb_load_balancer.go, _server_group.go, _listener.go,
    # _server_group_server_attachment.go: Conflict.Lock, IncorrectStatus.loadbalancer,
    # IncorrectStatus.serverGroup, IncorrectStatus.listener, SystemBusy; DeleteServerGroup
    # while its listener's delete settles: ResourceInUse.ServerGroup)
    "Conflict.Lock", "IncorrectStatus.loadbalancer", "IncorrectStatus.serverGroup",
    "IncorrectStatus.listener", "IncorrectStatus.LoadBalancer", "IncorrectStatus.ServerGroup",
    "IncorrectStatus.Listener", "ResourceInUse.ServerGroup", "IdempotenceProcessing",
    # ECS / VPC
    "IncorrectInstanceStatus.Initializing", "LastTokenProcessing", "OperationConflict",
    "IncorrectVSwitchStatus",
})

NOT_FOUND_CODES = frozenset({
    "InvalidDBInstanceId.NotFound", "InvalidDBInstanceName.NotFound", "InvalidDBInstance.NotFound",
    "InvalidLoadBalancerId.NotFound", "InvalidInstanceId.NotFound", "Forbidden.InstanceNotFound",
    "InvalidVpcID.NotFound", "InvalidVswitchID.NotFound", "Forbidden.VpcNotFound",
    # DeleteVpc / DeleteVSwitch error tables (help.aliyun.com doc_api_Vpc_DeleteVpc)
    "InvalidVpcId.NotFound", "InvalidVSwitchId.NotFound",
    "InvalidSecurityGroupId.NotFound",
    # LeaveSecurityGroup: the instance is not in the group (400 since July 8, 2024; page
    # alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-leavesecuritygroup)
    "InvalidSecurityGroupAssociation.NotFound",
    "InvalidAccountName.NotFound", "InvalidDBName.NotFound", "InvalidDB.NotFound",
    "AclNotExist",
    # NLB (API reference error codes of GetLoadBalancerAttribute, GetListenerAttribute,
    # DeleteServerGroup ...)
    "ResourceNotFound.loadBalancer", "ResourceNotFound.LoadBalancer",
    "ResourceNotFound.serverGroup", "ResourceNotFound.ServerGroup",
    "ResourceNotFound.listener", "ResourceNotFound.Listener",
})

_HINTS: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), h) for p, h in (
    (r"^InvalidAccessKeyId(\.NotFound)?$",
     "Alibaba Cloud does not know this AccessKey ID: check it was copied whole and not deleted."),
    (r"^InvalidAccessKeyId\.Inactive$",
     "This AccessKey is disabled: enable it in the RAM console or create a new one."),
    (r"^(SignatureDoesNotMatch|InvalidAccessKeySecret|IncompleteSignature)$",
     "The AccessKey secret is wrong (Alibaba Cloud could not verify the request signature)."),
    (r"^InvalidTimeStamp\.",
     "This server's clock differs from Alibaba Cloud's by more than 15 minutes: fix NTP."),
    (r"^InvalidSecurityToken\.Expired$",
     "The STS token expired: paste a new one, or use a RAM role credential, which the panel "
     "renews by itself."),
    (r"^(MissingSecurityToken|InvalidSecurityToken\.\w+)$",
     "The STS token does not belong to this AccessKey ID or is incomplete: paste the "
     "AccessKeyId, AccessKeySecret and SecurityToken of one AssumeRole answer."),
    (r"^EntityNotExist\.Role$",
     "No RAM role has this ARN: copy the role's ARN (acs:ram::<account id>:role/<name>) from "
     "the RAM console."),
    (r"^(Forbidden\.RAM|Forbidden|NoPermission|Forbidden\.NoPermission|"
     r"Forbidden\.RiskControl|Forbbiden\.NoPermission)$",
     "The RAM identity behind these credentials lacks the permission {ram_action}: add "
     "{ram_action} to its policy (the README gives the least-privilege policy)."),
    # LimitExceed: also ECS's AuthorizationLimitExceed (AuthorizeSecurityGroup's table)
    (r"(Quota|LimitExceed|QuotaExceed)",
     "An Alibaba Cloud quota was reached ({code}): release unused resources or ask for a "
     "higher quota in the Quota Center."),
    (r"^(InsufficientBalance|Account\.Arrearage|OperationDenied\.Arrearage|"
     r"PaymentAccount\.Arrearage)",
     "The Alibaba Cloud account has an overdue balance: top it up."),
    (r"^(OperationDenied\.ZoneResource|Zone\.NotOnSale|ResourceNotAvailable|"
     r"InvalidResourceType\.NotSupported|OperationDenied\.NoStock)",
     "This instance type is sold out or not offered in this zone: pick another zone or class."),
    (r"^VswitchIpExhausted$", "The vSwitch has no free IP addresses left."),
    (r"^(InvalidZoneId\.NotSupported|InvalidZone\.NotSupported)$",
     "The zone does not offer this product: pick the zone of another vSwitch."),
))
_ALREADY_ACTIVATED_HINT = ("Alibaba Cloud says this service is already activated for the "
                           "account (您已开通过); repeating the call cannot change that.")

_STRING_TO_SIGN = re.compile(r"(string to sign is:).*", re.IGNORECASE | re.DOTALL)
_TRANSPORT_REASON = re.compile(r"\[Errno -?\d+\][^')\"]*"
                               r"|Read timed out\.?( \(read timeout=[\d.]+\))?"
                               r"|timed out|Connection aborted|RemoteDisconnected[^')]*")
_URL = re.compile(r"(url: |https?://[^\s/]+)(/\?\S*|\S*\?\S*)")


def scrub(text: str) -> str:
    """Remove echoed request contents (query strings, string-to-sign) from an SDK text."""
    text = _STRING_TO_SIGN.sub(r"\1 <removed>", text)
    return _URL.sub(r"\1/?<removed>", text)


# A 500 whose message says the service is "already activated" (您已开通过) is an answer, not a
# fault: asking again gets the same. terraform-provider-alicloud's NeedRetry (alicloud/errors.go)
# returns false for "code: 500, 您已开通过" before its generic 5xx-is-retryable rule.
ALREADY_ACTIVATED = "您已开通过"


def is_transient_code(code: str, http_status: int | None = None, message: str = "") -> bool:
    """Busy, throttled or a server fault; never the permanent "already activated" 500."""
    if ALREADY_ACTIVATED in message:
        return False
    return (code in TRANSIENT_CODES or code.startswith("Throttling")
            or (http_status is not None and http_status >= 500))


class CloudNotFound(PermanentError):
    """The resource does not exist (any more): a delete may treat this as done."""


# Codes about the ClientToken itself: the token is being processed, or was already used with
# other parameters. Either says a create with this token WAS seen, so they never count as a
# refusal that frees the token. Sources: ECS/VPC "How to ensure idempotence"
# (IdempotentParameterMismatch), ECS LastTokenProcessing and IdempotenceParamNotMatch,
# terraform-provider-alicloud's retries of SLB OperationFailed.TokenIsProcessing; RDS
# InvalidRequestId and SLB LX_REQUEST_TOKEN_CONFLICT are what the emulator answers (CHOSEN
# there, see sandbox/aliyun/rds/rules.py and slb/product.py).
CLIENT_TOKEN_CODES = frozenset({
    "IdempotentParameterMismatch", "IdempotenceParamNotMatch", "LastTokenProcessing",
    "OperationFailed.TokenIsProcessing", "LX_REQUEST_TOKEN_CONFLICT", "InvalidRequestId",
    # NLB: "The idempotence token of request is mismatched" / still being processed
    # (CreateLoadBalancer, CreateServerGroup, CreateListener error codes)
    "IdempotenceSignatureMismatch", "IdempotenceProcessing",
})


def create_refused(error: StepError) -> bool:
    """Alibaba Cloud answered a create with a definite error: nothing was bought.

    A 4xx answer with an error code (quota, stock, a wrong parameter, throttling) is a refusal
    of the request. Anything else is not proof: no answer (timeout, connection refused or
    dropped: the create may have run), a 5xx (the server may have failed after buying), a
    ClientToken code (a create with this token was seen), or an error raised before sending.
    Alibaba's idempotence guide advises a new ClientToken after a failed create (ECS
    "How to ensure idempotence": after a failure for lack of stock, retry with another token).
    """
    status = error.http_status
    return (status is not None and 400 <= status < 500 and bool(error.code)
            and error.code not in CLIENT_TOKEN_CODES)


# RAM's service namespace of each product (RAM "Services that work with RAM"): the action a
# policy must allow is "<namespace>:<API action>", e.g. rds:CreateDBInstance.
RAM_NAMESPACES = {"Ecs": "ecs", "Vpc": "vpc", "Rds": "rds", "Slb": "slb", "Nlb": "nlb",
                  "BssOpenApi": "bssapi",
                  "Sts": "sts"}


def ram_action(product: str, action: str) -> str:
    """The RAM action a policy must allow for `product`'s API `action`."""
    return f"{RAM_NAMESPACES.get(product, product.lower())}:{action}"


def hint_for(code: str, action: str, product: str = "") -> str | None:
    for pattern, hint in _HINTS:
        if pattern.search(code):
            return hint.format(action=action, code=code,
                               ram_action=ram_action(product, action) if product else action)
    return None


def _transport_reason(detail: str) -> str:
    """The telling part of a requests error ("[Errno 111] Connection refused", "Read timed
    out. (read timeout=10)") rather than urllib3's object reprs."""
    match = _TRANSPORT_REASON.search(detail)
    return match.group(0).rstrip("')") if match else detail[:200]


def map_sdk_error(exc: Exception, *, product: str, action: str, endpoint: str = "",
                  redact: Callable[[str], str] = lambda s: s) -> StepError:
    """Translate one SDK exception for `product.action` into our error kinds."""
    what = f"{product} {action}"
    if isinstance(exc, ServerException):
        code = str(exc.get_error_code() or "SDK.UnknownServerError")
        status = exc.get_http_status()
        request_id = str(exc.get_request_id() or "")
        said = redact(scrub(str(exc.get_error_msg() or "")))
        hint = hint_for(code, action, product)
        if ALREADY_ACTIVATED in said:
            hint = _ALREADY_ACTIVATED_HINT
        if code in ("SignatureDoesNotMatch", "InvalidAccessKeySecret"):
            said = ""  # the server's text is the string-to-sign: nothing a person needs
        text = f"{what} failed: {hint} Alibaba Cloud said: {said}" if hint and said else (
            f"{what} failed: {hint or said or f'HTTP {status}'}")
        # SLB answers a missing listener with InvalidParameter and this text (Terraform
        # treats the text as "not found" for the same reason).
        if code in NOT_FOUND_CODES or "specified resource does not exist" in said.lower():
            return CloudNotFound(text, code=code, request_id=request_id, http_status=status)
        kind = TransientError if is_transient_code(code, status, said) else PermanentError
        return kind(text.rstrip(), code=code, request_id=request_id, http_status=status)
    if isinstance(exc, ClientException):
        code = str(exc.get_error_code() or "SDK.ClientError")
        detail = redact(scrub(str(exc.get_error_msg() or "")))
        if code == "SDK.HttpError":
            if "timed out" in detail.lower():
                reason = "did not answer in time"
            elif "refused" in detail.lower():
                reason = "refused the connection"
            else:
                reason = "could not be reached"
            where = f" at {endpoint}" if endpoint else ""
            return TransientError(
                f"{what}: Alibaba Cloud{where} {reason} ({_transport_reason(detail)})", code=code)
        return PermanentError(f"{what} could not be sent: {detail}", code=code)
    raise TypeError(f"not an SDK exception: {type(exc).__name__}")
