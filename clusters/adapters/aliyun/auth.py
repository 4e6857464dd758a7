"""Where the keys that sign each request come from: always named, never found implicitly.

The four kinds a cloud account can be (`CloudAccount.credential_kind`):
- `AccessKey`: a RAM user's long-lived AccessKey pair.
- `AssumedRole`: STS AssumeRole of a RAM role (RoleArn, ExternalId, optional session policy),
  signed by a RAM user's AccessKey that should be allowed nothing but sts:AssumeRole.
- `EcsInstanceRole`: the RAM role attached to the ECS instance the panel runs on, read from
  the instance metadata service in hardened mode (a token first). Nothing long-lived is
  stored: only the role's name.
- `StsToken`: a short-lived AccessKeyId/AccessKeySecret/SecurityToken a person pasted; it is
  used until it expires and then refused with a hint, never renewed.

Why we do not let the SDK do it (read in aliyunsdkcore 2.16.1):
- `SignerFactory.get_signer` checks the environment variables ALIYUN_ACCESS_KEY_ID /
  ALIYUN_ACCESS_KEY_SECRET *before* the `credential=` argument, so
  `AcsClient(credential=StsTokenCredential(...))` on a host with those variables set signs
  with the host's key. `AliyunClient` therefore always constructs `AcsClient(ak, secret)`
  (the first branch, which never reads the environment) and sets the STS signer itself.
- `RamRoleArnSigner` sends AssumeRole over HTTPS through the SDK's endpoint resolution (the
  override cannot apply), with a fixed DurationSeconds, no ExternalId and no Policy.
- `EcsRamRoleSigner` hard-codes http://100.100.100.200 without the hardened-mode token; tests
  could not point it anywhere else, so it could reach the real address.
The newer `alibabacloud_credentials` default chain (env ALIBABA_CLOUD_*, ~/.alibabacloud,
the OIDC file, instance metadata) is never used by the panel.

Fail closed: when the API endpoints are overridden (the emulator), the metadata service must
be named too (`ALIYUN_ECS_METADATA_ENDPOINT`); it is never defaulted to 100.100.100.200 then.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from clusters.core.errors import PermanentError, TransientError

REAL_METADATA_ENDPOINT = "100.100.100.200"
METADATA_TOKEN_TTL = 600  # seconds a hardened-mode token lives (1 to 21600 allowed)
METADATA_TIMEOUT = 3
REFRESH_MARGIN = 300  # renew temporary keys this long before they expire
DEFAULT_SESSION_SECONDS = 3600
SESSION_NAME = "k3s-panel"

ROLE_ARN = re.compile(r"^acs:ram::\d{1,32}:role/[A-Za-z0-9.\-]{1,64}$")
SESSION_NAME_RULE = re.compile(r"^[A-Za-z0-9.@\-_]{2,64}$")
EXTERNAL_ID_RULE = re.compile(r"^[\w+=,.@:/\-]{2,1224}$")
ROLE_NAME_RULE = re.compile(r"^[A-Za-z0-9.\-]{1,64}$")


@dataclass(frozen=True)
class Keys:
    """What signs a request: an AccessKey pair, plus a SecurityToken for temporary keys."""

    access_key_id: str
    access_key_secret: str
    security_token: str = ""
    expires_at: float | None = None  # epoch seconds; None for a long-lived AccessKey

    def secrets(self) -> list[str]:
        return [value for value in (self.access_key_secret, self.security_token) if value]


class CredentialSource(Protocol):
    """Gives the keys to sign with now; renews temporary ones before they expire."""

    description: str
    renewable: bool  # new keys can be had (a role); a pasted token or an AccessKey cannot

    def keys(self) -> Keys: ...

    def invalidate(self) -> None:
        """Forget cached temporary keys (the cloud said they expired)."""


class AccessKeySource:
    def __init__(self, access_key_id: str, access_key_secret: str) -> None:
        if not access_key_id or not access_key_secret:
            raise PermanentError("An AccessKey ID and secret are required.")
        self._keys = Keys(access_key_id, access_key_secret)
        self.description = f"AccessKey {access_key_id}"
        self.renewable = False

    def keys(self) -> Keys:
        return self._keys

    def invalidate(self) -> None:
        """A long-lived key does not expire."""


class StsTokenSource:
    """A pasted STS token: used as it is until its expiry, then refused (never renewed)."""

    def __init__(self, access_key_id: str, access_key_secret: str, security_token: str,
                 expires_at: float | None = None) -> None:
        if not access_key_id or not access_key_secret or not security_token:
            raise PermanentError("An STS token needs its AccessKeyId, AccessKeySecret and "
                                 "SecurityToken.")
        self._keys = Keys(access_key_id, access_key_secret, security_token, expires_at)
        self.description = f"STS token {access_key_id}"
        self.renewable = False

    def keys(self) -> Keys:
        if self._keys.expires_at is not None and time.time() >= self._keys.expires_at:
            raise PermanentError(
                f"The STS token {self._keys.access_key_id} expired at "
                f"{_iso(self._keys.expires_at)}: paste a new one in the cloud account, or use "
                "a RAM role credential, which the panel renews by itself.",
                code="InvalidSecurityToken.Expired")
        return self._keys

    def invalidate(self) -> None:
        """Nothing to renew it from."""


class _Renewing:
    """Caches temporary keys and fetches new ones REFRESH_MARGIN before they expire."""

    description = ""
    renewable = True

    def __init__(self) -> None:
        self._cached: Keys | None = None
        self._lock = threading.Lock()

    def keys(self) -> Keys:
        with self._lock:
            cached = self._cached
            if cached is None or cached.expires_at is None or (
                    time.time() >= cached.expires_at - REFRESH_MARGIN):
                self._cached = cached = self._fetch()
            return cached

    def invalidate(self) -> None:
        with self._lock:
            self._cached = None

    def _fetch(self) -> Keys:
        raise NotImplementedError


AssumeRoleCall = Callable[[Keys, dict[str, str]], dict[str, Any]]


class AssumedRoleSource(_Renewing):
    """STS AssumeRole of `role_arn`, signed by `source` (a RAM user's AccessKey).

    `assume` sends the AssumeRole request with the given keys and parameters and returns the
    answer's JSON; the client module provides it (it owns endpoints, timeouts and errors).
    """

    def __init__(self, source: CredentialSource, role_arn: str, assume: AssumeRoleCall, *,
                 external_id: str = "", session_policy: str = "",
                 session_name: str = SESSION_NAME,
                 duration_seconds: int = DEFAULT_SESSION_SECONDS) -> None:
        super().__init__()
        problem = (role_arn_problem(role_arn) or external_id_problem(external_id)
                   or session_policy_problem(session_policy))
        if problem:
            raise PermanentError(problem)
        if not SESSION_NAME_RULE.match(session_name):
            raise PermanentError("A role session name is 2-64 letters, digits or . @ - _")
        self.source, self.role_arn, self._assume = source, role_arn, assume
        self.external_id, self.session_policy = external_id, session_policy
        self.session_name, self.duration_seconds = session_name, duration_seconds
        self.description = f"RAM role {role_arn}"

    def _fetch(self) -> Keys:
        params = {"RoleArn": self.role_arn, "RoleSessionName": self.session_name,
                  "DurationSeconds": str(self.duration_seconds)}
        if self.external_id:
            params["ExternalId"] = self.external_id
        if self.session_policy:
            params["Policy"] = self.session_policy
        answer = self._assume(self.source.keys(), params)
        return keys_from_answer(answer.get("Credentials") or {}, f"AssumeRole {self.role_arn}")


class EcsInstanceRoleSource(_Renewing):
    """The ECS instance RAM role `role_name`, from the metadata service at `endpoint`."""

    def __init__(self, role_name: str, endpoint: str) -> None:
        super().__init__()
        if not ROLE_NAME_RULE.match(role_name or ""):
            raise PermanentError("An ECS instance RAM role name is 1-64 letters, digits, "
                                 "'.' or '-'.")
        if not endpoint:
            raise PermanentError("No instance metadata endpoint is configured.")
        self.role_name, self.endpoint = role_name, endpoint
        self.description = f"ECS instance RAM role {role_name}"
        # No proxy, ever: the metadata service is link-local, a proxy would be a leak.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _open(self, request: urllib.request.Request) -> bytes:
        try:
            with self._opener.open(request, timeout=METADATA_TIMEOUT) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise PermanentError(
                    f"The ECS instance has no RAM role named {self.role_name!r} attached "
                    "(instance metadata answered 404): attach it in the ECS console.",
                    code="MetadataNotFound", http_status=404) from None
            raise TransientError(f"The instance metadata service answered HTTP {exc.code}.",
                                 http_status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransientError(f"The instance metadata service at {self.endpoint} could not "
                                 f"be reached ({type(exc).__name__}); is the panel running on "
                                 "ECS?") from None

    def _fetch(self) -> Keys:
        base = f"http://{self.endpoint}"
        token = self._open(urllib.request.Request(  # noqa: S310 - http to the metadata host
            f"{base}/latest/api/token", method="PUT",
            headers={"X-aliyun-ecs-metadata-token-ttl-seconds": str(METADATA_TOKEN_TTL)}))
        body = self._open(urllib.request.Request(  # noqa: S310
            f"{base}/latest/meta-data/ram/security-credentials/{self.role_name}",
            headers={"X-aliyun-ecs-metadata-token": token.decode()}))
        try:
            answer = json.loads(body)
        except ValueError:
            raise TransientError("The instance metadata service answered something that is "
                                 "not JSON.") from None
        if not isinstance(answer, dict) or answer.get("Code", "Success") != "Success":
            raise TransientError("The instance metadata service did not give credentials.")
        return keys_from_answer(answer, f"ECS instance role {self.role_name}")


def keys_from_answer(credentials: dict[str, Any], what: str) -> Keys:
    """Keys from an AssumeRole `Credentials` object or a metadata answer."""
    try:
        return Keys(str(credentials["AccessKeyId"]), str(credentials["AccessKeySecret"]),
                    str(credentials["SecurityToken"]), parse_expiration(
                        str(credentials["Expiration"])))
    except (KeyError, ValueError):
        raise TransientError(f"{what}: the answer carried no usable credentials.") from None


def parse_expiration(text: str) -> float:
    """`2015-04-09T11:52:19Z` → epoch seconds."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _iso(instant: float) -> str:
    return datetime.fromtimestamp(instant, UTC).strftime("%Y-%m-%d %H:%M UTC")


def role_arn_problem(role_arn: str) -> str | None:
    if not ROLE_ARN.match(role_arn or ""):
        return "A RAM role ARN looks like acs:ram::<account id>:role/<role name>."
    return None


def external_id_problem(external_id: str) -> str | None:
    if external_id and not EXTERNAL_ID_RULE.match(external_id):
        return ("An ExternalId is 2-1224 letters, digits or = , . @ : / - _ (it must equal the "
                "sts:ExternalId condition of the role's trust policy).")
    return None


def session_policy_problem(policy: str) -> str | None:
    """A session policy must be a RAM policy document of at most 2048 characters."""
    if not policy:
        return None
    if len(policy) > 2048:
        return "A session policy is at most 2048 characters."
    try:
        parsed = json.loads(policy)
    except ValueError:
        return "The session policy is not JSON."
    if not isinstance(parsed, dict) or str(parsed.get("Version")) != "1" or not isinstance(
            parsed.get("Statement"), list):
        return 'A session policy is a RAM policy: {"Version": "1", "Statement": [...]}.'
    return None


def metadata_endpoint(configured: str, api_overridden: bool) -> str:
    """Where the instance metadata service is: the setting, else the real address; never
    the real address while the API is overridden (fail closed, as for the endpoints)."""
    if configured.strip():
        return configured.strip()
    if api_overridden:
        raise PermanentError(
            "No ALIYUN_ECS_METADATA_ENDPOINT is set while the API endpoints are overridden: "
            "refusing to ask the real instance metadata service (fail closed).")
    return REAL_METADATA_ENDPOINT

