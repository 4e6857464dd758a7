"""API errors as the gateway returns them: an HTTP status, a Code and a Message.

Why: the SDK raises only on a non-2xx status and reads Code/Message/RequestId from the JSON
body, so every failure must be an `ApiError` that the server renders with a 4xx/5xx status;
an error inside a 200 would be silently taken for success by the client.
"""

from __future__ import annotations


class ApiError(Exception):
    """A failure to report to the caller exactly as Alibaba Cloud would."""

    def __init__(self, http_status: int, code: str, message: str,
                 extra: dict[str, object] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.http_status = http_status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})  # more fields of the error body (AccessDeniedDetail)


def missing_parameter(name: str) -> ApiError:
    return ApiError(
        400, "MissingParameter",
        f'The input parameter "{name}" that is mandatory for processing this request is not '
        "supplied.",
    )


def missing_named(name: str) -> ApiError:
    """The older `Missing{Name}` form used for common parameters and by RDS."""
    return ApiError(400, f"Missing{name}", f"{name} is mandatory for this action.")


def invalid_parameter(name: str) -> ApiError:
    return ApiError(400, "InvalidParameter", f'The specified parameter "{name}" is not valid.')


def invalid_named(name: str) -> ApiError:
    """The `Invalid{Name}.Malformed` form some products use for a badly formed value."""
    return ApiError(
        400, f"Invalid{name}.Malformed", f"The specified parameter {name} is not valid.",
    )


INVALID_ACCESS_KEY = ApiError(
    404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.",
)
INACTIVE_ACCESS_KEY = ApiError(
    400, "InvalidAccessKeyId.Inactive", "Specified access key is disabled.",
)
INCOMPLETE_SIGNATURE = ApiError(
    400, "IncompleteSignature", "The request signature does not conform to Aliyun standards.",
)
TIMESTAMP_FORMAT = ApiError(
    400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted.",
)
TIMESTAMP_EXPIRED = ApiError(
    400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.",
)
NONCE_USED = ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
SIGNATURE_METHOD = ApiError(
    400, "InvalidSignatureMethod", "Specified signature method is not valid.",
)
SIGNATURE_VERSION = ApiError(
    400, "InvalidSignatureVersion", "Specified signature version is not valid.",
)
ACTION_NOT_FOUND = ApiError(
    404, "InvalidAction.NotFound", "Specified api is not found, please check your url and method.",
)
NO_SUCH_VERSION = ApiError(400, "NoSuchVersion", "The specified version does not exist.")
THROTTLING = ApiError(400, "Throttling", "Request was denied due to request throttling.")
INTERNAL_ERROR = ApiError(
    500, "InternalError",
    "The request processing has failed due to some unknown error, exception or failure.",
)
SERVICE_UNAVAILABLE = ApiError(
    503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server.",
)
# STS credentials (help "STS common errors" doc-detail/42775; the SDK's StsTokenSigner sends
# the token as the SecurityToken query parameter).
MISSING_SECURITY_TOKEN = ApiError(
    400, "MissingSecurityToken", "SecurityToken is mandatory for this action.",
)
SECURITY_TOKEN_EXPIRED = ApiError(
    400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.",
)
SECURITY_TOKEN_MISMATCH = ApiError(
    400, "InvalidSecurityToken.MismatchWithAccessKey",
    "Specified SecurityToken mismatch with the AccessKey.",
)
SECURITY_TOKEN_MALFORMED = ApiError(
    400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.",
)


def forbidden_ram(auth_action: str, principal: str, verdict: str) -> ApiError:
    """RAM refused the call. Alibaba's gateway answers 403 Forbidden.RAM and, since 2023, an
    `AccessDeniedDetail` naming the action it checked (its fields as we recall them from real
    answers; the SDK keeps only Code/Message/RequestId, so the panel names the action from
    what it sent)."""
    return ApiError(
        403, "Forbidden.RAM",
        "User not authorized to operate on the specified resource, or this API doesn't "
        "support RAM.",
        {"AccessDeniedDetail": {"AuthAction": auth_action, "AuthPrincipalDisplayName": principal,
                                "NoPermissionType": verdict,
                                "PolicyType": "AccountLevelIdentityBasedPolicy"}},
    )


REGION_NOT_FOUND = ApiError(
    404, "InvalidRegionId.NotFound", "The specified RegionId does not exist.",
)


def signature_mismatch(server_string_to_sign: str) -> ApiError:
    """The message must hold a colon: the SDK splits on it to compare strings-to-sign."""
    return ApiError(
        400, "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation. server string to sign is:"
        + server_string_to_sign,
    )


KNOWN_FAULTS: dict[str, ApiError] = {
    e.code: e for e in (THROTTLING, INTERNAL_ERROR, SERVICE_UNAVAILABLE)
}
KNOWN_FAULTS["Throttling.User"] = ApiError(
    400, "Throttling.User", "Request was denied due to user flow control.",
)
