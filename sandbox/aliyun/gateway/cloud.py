"""The emulated cloud: authentication, dispatch, faults, idempotency and the shared state.

Why: every product shares one gateway behaviour (signature v1, nonce and timestamp checks,
error shapes, faults, ClientToken replay) and one lock-protected state, so products only
write handlers. The HTTP layer (server.py) stays a thin adapter around `Cloud.call`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.aliyun.gateway import errors, ids, network, ram, signing
from sandbox.aliyun.gateway.calllog import CallLog, redact
from sandbox.aliyun.gateway.clock import Clock, parse_iso_utc
from sandbox.aliyun.gateway.faults import FaultBook
from sandbox.aliyun.gateway.params import validate
from sandbox.aliyun.gateway.registry import Action, Product, load_products
from sandbox.aliyun.gateway.state import State

TIMESTAMP_TOLERANCE = 15 * 60
TICK_SECONDS = 0.2
# Parameters of the gateway itself: not part of a ClientToken fingerprint, not for handlers.
COMMON_PARAMS = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod",
    "SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp", "ClientToken",
    "SecurityToken",
})
STS_KEY_PREFIX = "STS."  # AccessKeyIds of temporary credentials (AssumeRole answer docs)


@dataclass(frozen=True)
class Principal:
    """Who signed a call: a RAM user's AccessKey or an STS token of an assumed role.

    `policies` must all allow an action (a role's policy ∩ the session policy); an empty
    tuple means "not restricted" (an account the test created without a policy).
    """

    access_key_id: str
    kind: str  # "User" | "AssumedRoleUser"
    display_name: str
    policies: tuple[dict[str, Any], ...] = ()
    root: bool = False


@dataclass
class RequestContext:
    """What a handler knows about the call besides its parameters."""

    cloud: Cloud
    product: Product
    action: str
    request_id: str
    region_id: str
    access_key_id: str
    principal: Principal | None = None

    @property
    def clock(self) -> Clock:
        return self.cloud.clock

    @property
    def netns(self) -> str | None:
        """The cloud namespace services must live in (None in loopback mode)."""
        return self.cloud.plumbing.netns

    def require_region(self) -> dict[str, Any]:
        """The seeded region named by RegionId, or the error the gateway gives for others."""
        found = network.region(self.cloud.state, self.region_id)
        if not self.region_id:
            raise errors.missing_parameter("RegionId")
        if found is None:
            raise errors.REGION_NOT_FOUND
        return found


@dataclass
class Outcome:
    """An HTTP answer: status and JSON body, or `drop` to close the connection unanswered."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    xml_root: str | None = None


class Cloud:
    def __init__(
        self, state_dir: str, time_scale: float = 1.0, netns: str | None = None,
        netns_dev: str | None = None, fault_seed: int | None = None, *,
        lab_state_dir: str | None = None,
    ) -> None:
        self.state = State(state_dir)
        self.clock = Clock(time_scale)
        self.lock = threading.RLock()
        self.plumbing = network.AddressPlumbing(netns, netns_dev)
        # The lab's state directory (sandbox/lab/machines.py): where RunInstances starts
        # real hosts. None: instances are records only (the emulator's own tests).
        self.lab_state_dir = lab_state_dir
        self.faults = FaultBook(fault_seed)
        self.calls = CallLog()
        self.products = load_products()
        self._nonces: dict[tuple[str, str], float] = {}
        self._nonce_lock = threading.Lock()
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        # Live, non-persistent objects of products (sockets, process handles), by product.
        self.runtime: dict[str, Any] = {}

    # ---- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Bring back what the saved state says is running, then start the ticker."""
        with self.lock:
            for address, entry in self.state.bucket("addresses").items():
                if not entry.get("on_host"):  # an ECS public IP lives in its host
                    self.plumbing.bring_up(address)
            for product in self.products.values():
                for hook in product.start_hooks:
                    hook(self)
            self.state.save()
        self._ticker = threading.Thread(target=self._tick_forever, name="cloud-ticker",
                                        daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        """Stop processes and sockets but keep state, so a restart resumes."""
        self._stopping.set()
        if self._ticker:
            self._ticker.join(timeout=5)
        with self.lock:
            for product in self.products.values():
                for hook in product.stop_hooks:
                    hook(self)
            self.state.save()

    def reset(self, everything: bool = False) -> None:
        """Delete every resource (stopping what runs); keep accounts and seed unless everything."""
        with self.lock:
            for product in self.products.values():
                for hook in product.reset_hooks:
                    hook(self)
            for address in list(self.state.bucket("addresses")):
                self.plumbing.take_down(address)
            self.state.wipe(keep=() if everything else
                            ("accounts", "regions", "vpcs", "vswitches", "config",
                             "ram_roles", "sts_tokens"))
            self.state.save()
        self.faults.clear()
        self.calls.clear()

    def tick(self) -> None:
        with self.lock:
            for product in self.products.values():
                for hook in product.tickers:
                    hook(self)
            self.state.save()

    def _tick_forever(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:  # a failing ticker must not kill the emulator
                traceback.print_exc(file=sys.stderr)

    def resources(self) -> list[dict[str, Any]]:
        with self.lock:
            listed: list[dict[str, Any]] = []
            for product in self.products.values():
                for lister in product.resource_listers:
                    listed.extend(lister(self))
            return listed

    # ---- accounts ----------------------------------------------------------------------
    def add_account(self, access_key_id: str, access_key_secret: str,
                    policy: dict[str, Any] | None = None, *, name: str = "",
                    root: bool = False) -> None:
        """A RAM user's AccessKey (`policy`: what it may call; None = anything), or the
        account's own (`root`), which may not assume roles."""
        with self.lock:
            self.state.bucket("accounts")[access_key_id] = {
                "secret": access_key_secret, "enabled": True,
                "policy": ram.parse_policy(policy) if policy else None,
                "name": name or access_key_id, "root": root,
            }
            self.state.save()

    # ---- the API -----------------------------------------------------------------------
    def call(self, method: str, params: Mapping[str, str]) -> Outcome:
        """Serve one RPC call (`params` = query plus form body, already URL-decoded)."""
        request_id = ids.request_id()
        started = time.time()
        product: Product | None = self.products.get(params.get("Version", ""))
        action_name = params.get("Action", "")
        try:
            product, action = self._route(params)
            principal = self._authenticate(method, params)
            self._authorize(product, action, principal)
            fault = self.faults.pick(product.code, action.name)
            delay = fault.delay if fault else 0.0
            if fault and fault.drop:
                outcome = Outcome(0, delay=delay, drop=True)
            elif fault and fault.lose_answer:
                with contextlib.suppress(errors.ApiError):  # a refusal is lost all the same
                    self._dispatch(product, action, params, request_id, principal)
                outcome = Outcome(0, delay=delay, drop=True)
            elif fault and fault.error():
                raise _Delayed(fault.error(), delay)  # type: ignore[arg-type]
            else:
                body = self._dispatch(product, action, params, request_id, principal)
                outcome = Outcome(200, {"RequestId": request_id, **body}, delay=delay)
        except _Delayed as delayed:
            outcome = self._error(delayed.error, request_id, product)
            outcome.delay = delayed.delay
        except errors.ApiError as error:
            outcome = self._error(error, request_id, product)
        if params.get("Format", "XML").upper() == "XML":
            outcome.xml_root = f"{action_name}Response" if outcome.status == 200 else "Error"
        self.calls.record({
            "time": started, "product": product.code if product else "",
            "version": params.get("Version", ""), "action": action_name,
            "params": redact({k: v for k, v in params.items() if k != "Signature"}),
            "status": outcome.status if not outcome.drop else 0,
            "code": outcome.body.get("Code", "") if outcome.status != 200 else "",
            "request_id": request_id,
        })
        return outcome

    def _route(self, params: Mapping[str, str]) -> tuple[Product, Action]:
        version = params.get("Version", "")
        if not version:
            raise errors.missing_named("Version")
        product = self.products.get(version)
        if product is None:
            raise errors.NO_SUCH_VERSION
        name = params.get("Action", "")
        if not name:
            raise errors.missing_named("Action")
        action = product.actions.get(name)
        if action is None:
            raise errors.ACTION_NOT_FOUND
        return product, action

    def _authenticate(self, method: str, params: Mapping[str, str]) -> Principal:
        for name in ("AccessKeyId", "Signature", "Timestamp", "SignatureNonce"):
            if not params.get(name):
                raise errors.missing_named(name)
        if params.get("SignatureMethod", "") != "HMAC-SHA1":
            raise errors.SIGNATURE_METHOD
        if params.get("SignatureVersion", "") != "1.0":
            raise errors.SIGNATURE_VERSION
        try:
            sent_at = parse_iso_utc(params["Timestamp"])
        except ValueError:
            raise errors.TIMESTAMP_FORMAT from None
        now = time.time()
        if abs(now - sent_at) > TIMESTAMP_TOLERANCE:
            raise errors.TIMESTAMP_EXPIRED
        access_key_id = params["AccessKeyId"]
        if access_key_id.startswith(STS_KEY_PREFIX):
            secret, principal = self._sts_principal(access_key_id, params, now)
        else:
            with self.lock:
                account = self.state.bucket("accounts").get(access_key_id)
            if account is None:
                raise errors.INVALID_ACCESS_KEY
            if not account.get("enabled", True):
                raise errors.INACTIVE_ACCESS_KEY
            secret = account["secret"]
            policy = account.get("policy")
            principal = Principal(access_key_id, "User", account.get("name", access_key_id),
                                  (policy,) if policy else (), bool(account.get("root")))
        expected_sts = signing.string_to_sign(method, params)
        expected = signing.sign(expected_sts, secret)
        if not signing.signatures_match(expected, params["Signature"]):
            raise errors.signature_mismatch(expected_sts)
        self._remember_nonce(access_key_id, params["SignatureNonce"], now)
        return principal

    def _sts_principal(self, access_key_id: str, params: Mapping[str, str],
                       now: float) -> tuple[str, Principal]:
        """An STS key must come with its SecurityToken, before its Expiration."""
        with self.lock:
            issued = self.state.bucket("sts_tokens").get(access_key_id)
            if issued is None:
                raise errors.INVALID_ACCESS_KEY
            role = self.state.bucket("ram_roles").get(issued["role"].lower())
        token = params.get("SecurityToken", "")
        if not token:
            raise errors.MISSING_SECURITY_TOKEN
        if not signing.signatures_match(issued["security_token"], token):
            raise errors.SECURITY_TOKEN_MISMATCH
        if now >= issued["expires"]:
            raise errors.SECURITY_TOKEN_EXPIRED
        policies: list[dict[str, Any]] = []
        if role is None:  # the role was deleted: its sessions can do nothing
            policies.append({"Version": "1", "Statement": [
                {"Effect": "Deny", "Action": "*", "Resource": "*"}]})
        elif role.get("policy"):
            policies.append(role["policy"])
        if issued.get("session_policy"):
            policies.append(issued["session_policy"])
        return issued["secret"], Principal(access_key_id, "AssumedRoleUser", issued["arn"],
                                           tuple(policies))

    def _authorize(self, product: Product, action: Action, principal: Principal) -> None:
        """RAM: every policy of the principal must allow `<namespace>:<Action>`."""
        if not principal.policies:
            return
        auth_action = f"{product.ram_namespace}:{action.name}"
        verdict = ram.evaluate(list(principal.policies), auth_action)
        if verdict != "Allow":
            raise product.forbidden(auth_action, principal.display_name, verdict)

    def _remember_nonce(self, access_key_id: str, nonce: str, now: float) -> None:
        key = (access_key_id, nonce)
        with self._nonce_lock:
            if key in self._nonces:
                raise errors.NONCE_USED
            self._nonces[key] = now + 2 * TIMESTAMP_TOLERANCE
            if len(self._nonces) > 50000:
                self._nonces = {k: v for k, v in self._nonces.items() if v > now}

    def _dispatch(
        self, product: Product, action: Action, params: Mapping[str, str], request_id: str,
        principal: Principal,
    ) -> dict[str, Any]:
        access_key_id = principal.access_key_id
        typed = validate(action.params, params, product.missing)
        ctx = RequestContext(self, product, action.name, request_id,
                             params.get("RegionId", ""), access_key_id, principal)
        with self.lock:
            for hook in product.tickers:
                hook(self)
            self.state.save()  # a failing handler rolls back to here, not before the tick
            token = params.get("ClientToken", "")
            token_key = ""
            if action.client_token and token:
                token_key = f"{product.code}:{action.name}:{access_key_id}:{token}"
                fingerprint = _fingerprint(params)
                seen = self.state.bucket("client_tokens").get(token_key)
                if seen is not None:
                    if seen["fingerprint"] != fingerprint:
                        raise action.client_token.conflict
                    return dict(seen["response"])
            try:
                body = action.handler(self.state, typed, ctx)
            except errors.ApiError:
                self.state.rollback()
                raise
            except Exception:
                self.state.rollback()
                traceback.print_exc(file=sys.stderr)
                raise errors.INTERNAL_ERROR from None
            if token_key:
                self.state.bucket("client_tokens")[token_key] = {
                    "fingerprint": _fingerprint(params), "response": body,
                }
            self.state.save()
            return body

    def _error(self, error: errors.ApiError, request_id: str, product: Product | None) -> Outcome:
        code = product.code if product else "OpenAPI"
        host = product.host_id if product else "aliyuncs.com"
        return Outcome(error.http_status, {
            **error.extra, "RequestId": request_id, "HostId": host, "Code": error.code,
            "Message": error.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={error.code}&product={code}"
                         f"&requestId={request_id}",
        })


class _Delayed(Exception):
    def __init__(self, error: errors.ApiError, delay: float) -> None:
        super().__init__(error.code)
        self.error = error
        self.delay = delay


def _fingerprint(params: Mapping[str, str]) -> str:
    relevant = sorted((k, v) for k, v in params.items() if k not in COMMON_PARAMS)
    return hashlib.sha256(json.dumps(relevant).encode()).hexdigest()
