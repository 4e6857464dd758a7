"""One place that builds the official SDK client and sends a request.

Why each choice (read in aliyunsdkcore 2.16.1's source):
- Endpoint override, FAIL CLOSED. With an override configured, every request gets
  `request.set_endpoint(...)`; `AcsClient._implementation_of_do_action` then skips endpoint
  resolution entirely. A product without an override is refused before anything is sent,
  and the client's resolver chain (global `region_provider` entries, endpoints.json, the
  product's endpoint_map, the HTTPS LocationService lookup) is replaced by one that raises,
  so no code path can fall back to a real Alibaba Cloud endpoint.
- No proxy. `HttpResponse` reads HTTP(S)_PROXY itself and ignores NO_PROXY; passing
  `proxy={"http": None, "https": None}` makes requests select no proxy, and the session's
  `trust_env` is off (no ~/.netrc, no env CA/proxy lookups).
- SDK retries off (`auto_retry=False`): one HTTP attempt per call. RDS/SLB/VPC are never
  retried by the SDK anyway, ECS Describe* would be retried up to 3 times with sleeps inside
  a worker; the engine retries TransientError with backoff in its step budget instead, and
  never re-sends a create without the same ClientToken.
- Per-action read timeouts (CreateDBInstance can take ~20 s to answer, per its API doc).
- Credentials are named, never found: `auth.py` says where keys come from and why the SDK's
  own credential classes and environment lookups are bypassed. The SDK client is always
  built as `AcsClient(ak, secret)` (the only form that never reads the environment) and, for
  temporary keys, given an `StsTokenSigner` of those keys.
- The SDK logs every request's parameters at DEBUG (AccountPassword included) and the full
  request URL on errors: a filter drops the former and scrubs the latter.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.auth.signers.sts_token_signer import StsTokenSigner
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import AcsRequest

from clusters.adapters.aliyun.auth import AccessKeySource, CredentialSource, Keys
from clusters.adapters.aliyun.errors import map_sdk_error, scrub
from clusters.adapters.aliyun.models import items
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.core.redaction import Redactor

# BssOpenApi: GetPayAsYouGoPrice (business.aliyuncs.com), for the review page's prices.
PRODUCTS = ("Ecs", "Vpc", "Rds", "Slb", "Nlb", "BssOpenApi", "Sts")
CONNECT_TIMEOUT = 5
DEFAULT_READ_TIMEOUT = 10
READ_TIMEOUTS = {  # seconds; actions that do real work before answering
    "CreateDBInstance": 30, "DeleteDBInstance": 20, "CreateLoadBalancer": 30,
    "DeleteLoadBalancer": 20, "CreateLoadBalancerTCPListener": 20, "ModifyParameter": 20,
    "CreateBackup": 20, "AddBackendServers": 20, "RemoveBackendServers": 20,
    "CreateServerGroup": 20, "CreateListener": 20, "AddServersToServerGroup": 20,
    "RemoveServersFromServerGroup": 20,
}
_HOST_PORT = re.compile(r"^(?:http://)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")


class EndpointPolicy:
    """Where each product's requests go. No override = Alibaba Cloud's own endpoints (HTTPS).

    `override` is "host:port" for every product, or {"Rds": "host:port", ...}; the emulator
    speaks plain HTTP. Once an override exists, a product without one is refused.
    """

    def __init__(self, override: str | Mapping[str, str] | None = None) -> None:
        self._all: str | None = None
        self._per_product: dict[str, str] = {}
        if isinstance(override, str) and override.strip():
            self._all = _checked(override.strip())
        elif isinstance(override, Mapping) and override:
            known = {p.lower(): p for p in PRODUCTS}
            for product, endpoint in override.items():
                if product.lower() not in known:
                    raise PermanentError(f"Unknown product {product!r} in the endpoint override.")
                self._per_product[known[product.lower()]] = _checked(endpoint)

    @property
    def overridden(self) -> bool:
        return bool(self._all or self._per_product)

    def endpoint_for(self, product: str) -> str | None:
        """host:port for `product`, None for the real cloud; refuses unknown products."""
        if not self.overridden:
            return None
        endpoint = self._all or self._per_product.get(product)
        if endpoint is None:
            raise PermanentError(
                f"No endpoint override for {product}: refusing to send it to Alibaba Cloud "
                "while overrides are configured (fail closed).")
        return endpoint


def _checked(endpoint: str) -> str:
    match = _HOST_PORT.match(endpoint)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise PermanentError(f"Endpoint override {endpoint!r} must be host:port.")
    return f"{match.group(1)}:{match.group(2)}"


def parse_override(text: str | None) -> str | dict[str, str] | None:
    """Read the override from a setting/env value: "host:port" or "Rds=h:p,Slb=h:p"."""
    if not text or not text.strip():
        return None
    if "=" not in text:
        return text.strip()
    pairs = (part.split("=", 1) for part in text.split(",") if part.strip())
    return {product.strip(): endpoint.strip() for product, endpoint in pairs}


class _RefusingResolver:
    """Stands in for the SDK's resolver chain when an override is set: never resolves."""

    def resolve(self, request: Any) -> str:
        raise ClientException("SDK.EndpointResolvingError",
                              "endpoint resolution is disabled while an override is set")

    def put_endpoint_entry(self, *_args: Any) -> None:
        raise ClientException("SDK.EndpointResolvingError",
                              "endpoint entries are disabled while an override is set")


class _ScrubSdkLogs(logging.Filter):
    """Drop the SDK's per-request parameter dumps; scrub URLs out of its error lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(("Request received", "Response received")):
            return False
        record.msg, record.args = scrub(message), None
        return True


class _DropHttpDebug(logging.Filter):
    """With env DEBUG=sdk the SDK logs each request line, query string (secrets) included."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


def _install_log_filters() -> None:
    for name, kind in (("aliyunsdkcore.client", _ScrubSdkLogs),
                       ("aliyunsdkcore.http.http_response", _DropHttpDebug)):
        logger = logging.getLogger(name)
        if not any(isinstance(f, kind) for f in logger.filters):
            logger.addFilter(kind())


_install_log_filters()


#: How many SDK clients a process keeps (`_sdk_client`): one per identity and region in use.
SDK_CLIENTS_KEPT = 32
_sdk_clients: OrderedDict[tuple[Keys, str, bool], AcsClient] = OrderedDict()
_sdk_clients_lock = threading.Lock()


def _sdk_client(keys: Keys, region: str, overridden: bool) -> AcsClient:
    """The process's SDK client for these keys and region, built on first use.

    Why one per process and not one per AliyunClient (issue 18): every step execution builds
    its AliyunClient, and AcsClient's constructor loads the SDK's endpoint tables (about 20
    ms of CPU, more than the signed call itself); a kept client also keeps its HTTP session,
    so the next step's call reuses the open connection instead of a new TCP (and, against
    Alibaba Cloud, TLS) handshake. Keyed by the keys themselves: renewed temporary keys get
    a client of their own, and the oldest are dropped (SDK_CLIENTS_KEPT). A client holds no
    per-call state: each request carries its own endpoint, protocol and timeouts (`_call`).
    """
    key = (keys, region, overridden)
    with _sdk_clients_lock:
        sdk = _sdk_clients.get(key)
        if sdk is not None:
            _sdk_clients.move_to_end(key)
            return sdk
    # ak + secret given: SignerFactory's first branch, which never reads the environment.
    sdk = AcsClient(
        keys.access_key_id, keys.access_key_secret, region, auto_retry=False,
        max_retry_time=0, connect_timeout=CONNECT_TIMEOUT, timeout=DEFAULT_READ_TIMEOUT,
        proxy={"http": None, "https": None})
    if keys.security_token:
        sdk._signer = StsTokenSigner(StsTokenCredential(  # see auth.py: set, not found
            keys.access_key_id, keys.access_key_secret, keys.security_token))
    sdk.session.trust_env = False
    if overridden:
        sdk._endpoint_resolver = _RefusingResolver()  # see the module docstring
    with _sdk_clients_lock:
        _sdk_clients[key] = sdk
        while len(_sdk_clients) > SDK_CLIENTS_KEPT:
            _sdk_clients.popitem(last=False)
    return sdk


class AliyunClient:
    """Sends SDK requests for one identity and region; returns parsed JSON bodies.

    The identity is an AccessKey pair, or `credentials` (any `auth.CredentialSource`: an
    assumed RAM role, the ECS instance role, a pasted STS token), asked for its current keys
    before every call so temporary keys are renewed before they expire.
    """

    def __init__(self, access_key_id: str, access_key_secret: str, region: str,
                 endpoint_override: str | Mapping[str, str] | None = None, *,
                 read_timeouts: Mapping[str, float] | None = None,
                 credentials: CredentialSource | None = None) -> None:
        self.credentials: CredentialSource = credentials or AccessKeySource(
            access_key_id, access_key_secret)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", region or ""):
            raise PermanentError(f"{region!r} is not a region id (e.g. cn-hangzhou).")
        self.region = region
        self.policy = EndpointPolicy(endpoint_override)
        self.read_timeouts = {**READ_TIMEOUTS, **(read_timeouts or {})}
        self._signed_with: Keys | None = None
        self._sdk: AcsClient | None = None

    @property
    def sdk(self) -> AcsClient:
        """The SDK client for the current keys (built on first use, not at construction:
        a role's keys are fetched only when a call needs them)."""
        return self._client_for(self.credentials.keys())

    def _client_for(self, keys: Keys) -> AcsClient:
        """The SDK client signing with `keys` (rebuilt only when the keys change)."""
        if self._sdk is not None and self._signed_with == keys:
            return self._sdk
        self._sdk, self._signed_with = _sdk_client(keys, self.region, self.policy.overridden), keys
        return self._sdk

    def call(self, request: AcsRequest, *, secrets: Iterable[str] = ()) -> dict[str, Any]:
        """Send one request (one HTTP attempt); StepError on any failure."""
        try:
            return self._call(request, secrets)
        except StepError as error:
            if error.code != "InvalidSecurityToken.Expired" or not self.credentials.renewable:
                raise
            # Our clock said the keys were still good: renew them and let the engine retry.
            self.credentials.invalidate()
            raise TransientError(str(error.message), code=error.code,
                                 request_id=error.request_id,
                                 http_status=error.http_status) from None

    def _call(self, request: AcsRequest, secrets: Iterable[str]) -> dict[str, Any]:
        keys = self.credentials.keys()
        sdk = self._client_for(keys)
        product, action = request.get_product(), request.get_action_name()
        endpoint = self.policy.endpoint_for(product)
        if endpoint:
            request.set_endpoint(endpoint)
            request.set_protocol_type("http")
        else:
            request.set_protocol_type("https")
        request.set_connect_timeout(CONNECT_TIMEOUT)
        request.set_read_timeout(self.read_timeouts.get(action, DEFAULT_READ_TIMEOUT))
        redact = Redactor([*secrets, *keys.secrets()])
        try:
            body = sdk.do_action_with_exception(request)
        except (ServerException, ClientException) as exc:
            raise map_sdk_error(exc, product=product, action=action, endpoint=endpoint or "",
                                redact=redact) from None
        except IndexError:
            # aliyunsdkcore crashes on a SignatureDoesNotMatch message without ':' (§1.4).
            raise PermanentError(f"{product} {action} failed: the AccessKey secret is wrong "
                                 "(signature rejected).", code="SignatureDoesNotMatch") from None
        try:
            parsed = json.loads(body)
        except (ValueError, TypeError):
            raise TransientError(f"{product} {action}: the answer was not JSON.") from None
        if not isinstance(parsed, dict):
            raise TransientError(f"{product} {action}: unexpected answer shape.")
        return parsed

    def secret_values(self) -> list[str]:
        """The secrets of the keys in use now (for a caller's redactor)."""
        return self._signed_with.secrets() if self._signed_with else []


MAX_PAGES = 100


def pages(client: AliyunClient, make: Callable[[int], AcsRequest],
          path: tuple[str, str]) -> list[dict[str, Any]]:
    """Every item of a PageNumber/PageSize/TotalCount listing (`make(page)` builds a request)."""
    collected: list[dict[str, Any]] = []
    for number in range(1, MAX_PAGES + 1):
        body = client.call(make(number))
        batch = items(body, *path)
        collected.extend(batch)
        total = int(body.get("TotalCount", body.get("TotalRecordCount", 0)) or 0)
        if not batch or len(collected) >= total:
            break
    return collected


def token_pages(client: AliyunClient, make: Callable[[str], AcsRequest],
                path: tuple[str, str]) -> list[dict[str, Any]]:
    """Every item of a MaxResults/NextToken listing (`make(token)` builds a request; "" for
    the first page). The last page answers an empty NextToken; at most MAX_PAGES pages."""
    collected: list[dict[str, Any]] = []
    token = ""
    for _ in range(MAX_PAGES):
        body = client.call(make(token))
        collected.extend(items(body, *path))
        token = str(body.get("NextToken") or "")
        if not token:
            break
    return collected


def check_client_token(client_token: str) -> None:
    """Creates must carry the caller's recorded ClientToken (≤ 64 ASCII characters)."""
    if not client_token or len(client_token) > 64 or not client_token.isascii():
        raise PermanentError("A ClientToken of 1-64 ASCII characters is required for a create.")


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """{"k": "v"} → the [{"Key", "Value"}] list the SDK's set_Tags expands to Tag.N.*"""
    return [{"Key": key, "Value": value} for key, value in tags.items()]


__all__ = [
    "AliyunClient",
    "EndpointPolicy",
    "StepError",
    "check_client_token",
    "pages",
    "parse_override",
    "tag_list",
    "token_pages",
]
