"""ServiceAccounts, ClusterRoleBindings and bound service-account tokens (the TokenRequest API).

Why: the panel hands out revocable kubeconfigs as ServiceAccount tokens. What makes them
revocable on a real K3s is how kube-apiserver checks a bound token on every request
(k8s.io/kubernetes pkg/serviceaccount/claims.go, `validator.Validate`): the signature (the
service-account key K3s keeps in `server/tls/service.key`, shared by every server through the
bootstrap data), `exp`/`nbf`, the audience, and then the ServiceAccount named in the private
`kubernetes.io` claim must still exist with the same UID. A deleted ServiceAccount, or one
deleted and created again under the same name, makes its tokens fail with 401 Unauthorized;
so does an expired token. Nothing else is revocable: a client certificate signed by the
client CA is valid until it expires (Kubernetes has no CRL).

TokenRequest validation as pkg/apis/authentication/validation: `expirationSeconds` at least
600 (10 minutes) and at most 2^32; the default is 3600. Tokens carry `jti` from Kubernetes 1.30
on (the ServiceAccountTokenJTI feature: alpha in 1.29, on by default since 1.30): the
apiserver's audit log shows it as the credential ID `JTI=<jti>`; older releases' have none.
K3s's audiences are `https://kubernetes.default.svc.cluster.local` and `k3s` (its default
--api-audiences); the issuer is the first audience. Objects live in the shared datastore under
K3s's keys (/registry/serviceaccounts/<ns>/<name>, /registry/clusterrolebindings/<name>).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import threading
import time
import uuid
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from sandbox.k3s.kine import KeyExists, Kine

SA_PREFIX = "/registry/serviceaccounts/"
CRB_PREFIX = "/registry/clusterrolebindings/"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = [ISSUER, "k3s"]
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
DEFAULT_EXPIRATION = 3600
# go-jose's jwt.DefaultLeeway, which kube-apiserver's token validation uses.
LEEWAY = 60
# kube-apiserver's default --authentication-token-cache TTL for successes.
SUCCESS_CACHE_TTL = 10.0
# The namespaces every K3s cluster has from its first start.
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# The bootstrap ClusterRoles the stand-in knows; only cluster-admin grants anything here.
CLUSTER_ROLES = ("cluster-admin", "admin", "edit", "view")


class ApiError(Exception):
    """An answer other than success: the HTTP code and the Status body to send."""

    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_namespace(namespace: str) -> None:
    if namespace not in NAMESPACES:
        raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                       {"name": namespace, "kind": "namespaces"})


def _sa_key(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}/{name}"


def _valid_name(name: str) -> bool:
    """A DNS-1123 subdomain, as metadata.name of these objects must be."""
    return 0 < len(name) <= 253 and all(
        part and part[0].isalnum() and part[-1].isalnum()
        and all(c.islower() or c.isdigit() or c == "-" for c in part)
        for part in name.split("."))


def _invalid_name(kind: str, name: str) -> ApiError:
    return ApiError(422, "Invalid",
                    f'{kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": a '
                    "lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                    "characters, '-' or '.', and must start and end with an alphanumeric "
                    "character", {"name": name, "kind": kind})


def _stamp(body: dict[str, Any], revision: int | None = None) -> dict[str, Any]:
    meta = body.setdefault("metadata", {})
    meta.setdefault("uid", str(uuid.uuid4()))
    meta.setdefault("creationTimestamp", _now())
    if revision is not None:
        meta["resourceVersion"] = str(revision)
    return body


# -- ServiceAccounts -----------------------------------------------------------------------------

def create_service_account(kine: Kine, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    _check_namespace(namespace)
    name = str((body.get("metadata") or {}).get("name", ""))
    if not _valid_name(name):
        raise _invalid_name("ServiceAccount", name)
    meta = body.setdefault("metadata", {})
    meta["namespace"] = namespace
    meta.pop("uid", None)
    obj = _stamp({"kind": "ServiceAccount", "apiVersion": "v1", "metadata": meta})
    try:
        revision = kine.create(_sa_key(namespace, name), json.dumps(obj).encode())
    except KeyExists:
        raise ApiError(409, "AlreadyExists", f'serviceaccounts "{name}" already exists',
                       {"name": name, "kind": "serviceaccounts"}) from None
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def get_service_account(kine: Kine, namespace: str, name: str) -> dict[str, Any]:
    row = kine.get(_sa_key(namespace, name))
    if row is None:
        raise ApiError(404, "NotFound", f'serviceaccounts "{name}" not found',
                       {"name": name, "kind": "serviceaccounts"})
    obj: dict[str, Any] = json.loads(row.value)
    obj["metadata"]["resourceVersion"] = str(row.id)
    return obj


def list_service_accounts(kine: Kine, namespace: str | None) -> dict[str, Any]:
    """GET [/namespaces/NS]/serviceaccounts: a ServiceAccountList (every namespace without
    one), sorted by key like etcd's range answer."""
    if namespace is not None:
        _check_namespace(namespace)
    prefix = SA_PREFIX + (f"{namespace}/" if namespace is not None else "")
    return _list(kine, prefix, "ServiceAccountList", "v1")


def _list(kine: Kine, prefix: str, kind: str, api_version: str) -> dict[str, Any]:
    items = []
    newest = 0
    for row in sorted(kine.list(prefix), key=lambda r: r.name):
        obj = json.loads(row.value)
        obj["metadata"]["resourceVersion"] = str(row.id)
        obj.pop("kind", None)
        obj.pop("apiVersion", None)
        items.append(obj)
        newest = max(newest, row.id)
    return {"kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": str(newest)}, "items": items}


def delete_service_account(kine: Kine, namespace: str, name: str) -> dict[str, Any]:
    obj = get_service_account(kine, namespace, name)
    kine.delete(_sa_key(namespace, name))
    return obj


# -- ClusterRoleBindings ---------------------------------------------------------------------------

def create_cluster_role_binding(kine: Kine, body: dict[str, Any]) -> dict[str, Any]:
    name = str((body.get("metadata") or {}).get("name", ""))
    if not _valid_name(name):
        raise _invalid_name("ClusterRoleBinding", name)
    role = body.get("roleRef") or {}
    if role.get("kind") != "ClusterRole" or role.get("apiGroup") != "rbac.authorization.k8s.io" \
            or not role.get("name"):
        raise ApiError(422, "Invalid", f'ClusterRoleBinding.rbac.authorization.k8s.io "{name}" '
                       "is invalid: roleRef: Required value", {"name": name})
    subjects = body.get("subjects") or []
    for subject in subjects:
        if subject.get("kind") == "ServiceAccount" and not subject.get("namespace"):
            raise ApiError(422, "Invalid", f'ClusterRoleBinding.rbac.authorization.k8s.io '
                           f'"{name}" is invalid: subjects[0].namespace: Required value',
                           {"name": name})
    meta = body.setdefault("metadata", {})
    meta.pop("uid", None)
    obj = _stamp({"kind": "ClusterRoleBinding", "apiVersion": "rbac.authorization.k8s.io/v1",
                  "metadata": meta, "roleRef": role, "subjects": subjects})
    try:
        revision = kine.create(CRB_PREFIX + name, json.dumps(obj).encode())
    except KeyExists:
        raise ApiError(409, "AlreadyExists", f'clusterrolebindings.rbac.authorization.k8s.io '
                       f'"{name}" already exists',
                       {"name": name, "group": "rbac.authorization.k8s.io",
                        "kind": "clusterrolebindings"}) from None
    obj["metadata"]["resourceVersion"] = str(revision)
    return obj


def get_cluster_role_binding(kine: Kine, name: str) -> dict[str, Any]:
    row = kine.get(CRB_PREFIX + name)
    if row is None:
        raise ApiError(404, "NotFound", f'clusterrolebindings.rbac.authorization.k8s.io '
                       f'"{name}" not found',
                       {"name": name, "group": "rbac.authorization.k8s.io",
                        "kind": "clusterrolebindings"})
    obj: dict[str, Any] = json.loads(row.value)
    obj["metadata"]["resourceVersion"] = str(row.id)
    return obj


def list_cluster_role_bindings(kine: Kine) -> dict[str, Any]:
    return _list(kine, CRB_PREFIX, "ClusterRoleBindingList", "rbac.authorization.k8s.io/v1")


def delete_cluster_role_binding(kine: Kine, name: str) -> dict[str, Any]:
    obj = get_cluster_role_binding(kine, name)
    kine.delete(CRB_PREFIX + name)
    return obj


def cluster_roles_of(kine: Kine, user: str, groups: list[str]) -> set[str]:
    """The ClusterRoles bound to this user or one of its groups (RBAC's cluster scope)."""
    roles = set()
    for row in kine.list(CRB_PREFIX):
        binding = json.loads(row.value)
        for subject in binding.get("subjects") or []:
            kind = subject.get("kind")
            if (kind == "ServiceAccount" and user == "system:serviceaccount:"
                    f"{subject.get('namespace')}:{subject.get('name')}") \
                    or (kind == "User" and subject.get("name") == user) \
                    or (kind == "Group" and subject.get("name") in groups):
                roles.add(binding["roleRef"]["name"])
    return roles


# -- tokens ----------------------------------------------------------------------------------------

def request_token(kine: Kine, service_key_pem: bytes, namespace: str, name: str,
                  body: dict[str, Any], *, now: float | None = None,
                  jti: bool = True) -> dict[str, Any]:
    """POST serviceaccounts/<name>/token: a signed bound token for an existing account
    (`jti`: whether the release puts one in, ServiceAccountTokenJTI: Kubernetes 1.30 on)."""
    # pkg/registry/core/serviceaccount/storage/token.go (TokenREST.Create): the account is
    # looked up first (a missing one is a 404 whatever the body says), then the request gets
    # its name, namespace and creationTimestamp, and only then is it validated, with an
    # empty name in the 422 (`errors.NewInvalid(gvk.GroupKind(), "", errs)`).
    account = get_service_account(kine, namespace, name)
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds")
    seconds = DEFAULT_EXPIRATION if seconds is None else seconds
    if not isinstance(seconds, int) or isinstance(seconds, bool):
        raise ApiError(400, "BadRequest", "TokenRequest in version \"v1\" cannot be handled as "
                       "a TokenRequest: json: cannot unmarshal into Go struct field "
                       "TokenRequestSpec.spec.expirationSeconds of type int64")
    issued = int(time.time() if now is None else now)
    created = datetime.datetime.fromtimestamp(issued, datetime.UTC)
    problem = ""
    if seconds < MIN_EXPIRATION:
        problem = "may not specify a duration less than 10 minutes"
    elif seconds > MAX_EXPIRATION:
        problem = "may not specify a duration larger than 2^32 seconds"
    if problem:
        raise ApiError(422, "Invalid", 'TokenRequest.authentication.k8s.io "" is '
                       f"invalid: spec.expirationSeconds: Invalid value: {seconds}: {problem}",
                       {"group": "authentication.k8s.io", "kind": "TokenRequest",
                        "causes": [{"reason": "FieldValueInvalid",
                                    "message": f"Invalid value: {seconds}: {problem}",
                                    "field": "spec.expirationSeconds"}]})
    audiences = spec.get("audiences") or AUDIENCES
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "aud": audiences, "exp": issued + seconds, "iat": issued, "iss": ISSUER,
        "kubernetes.io": {"namespace": namespace,
                          "serviceaccount": {"name": name,
                                             "uid": account["metadata"]["uid"]}},
        "nbf": issued, "sub": f"system:serviceaccount:{namespace}:{name}",
    }
    if jti:
        claims["jti"] = str(uuid.uuid4())
    token = sign(service_key_pem, claims)
    expires = datetime.datetime.fromtimestamp(issued + seconds, datetime.UTC)
    spec["audiences"] = audiences
    spec["expirationSeconds"] = seconds
    spec.setdefault("boundObjectRef", None)
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace,
                         "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
            "spec": spec,
            "status": {"token": token,
                       "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def _key_id(public: ec.EllipticCurvePublicKey) -> str:
    """`kid` as kube-apiserver derives it: the SHA-256 of the public key's DER, base64url."""
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return _b64url(digest.finalize())


def sign(service_key_pem: bytes, claims: dict[str, Any]) -> str:
    """A compact JWS, ES256 (K3s's service.key is the EC key the stand-in generates)."""
    key = serialization.load_pem_private_key(service_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # new_ca() makes P-256 keys
    header = {"alg": "ES256", "kid": _key_id(key.public_key())}
    signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + _b64url(json.dumps(claims, separators=(",", ":")).encode()))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def verified_claims(service_key_pem: bytes, token: str,
                    now: float | None = None) -> dict[str, Any] | None:
    """The claims of a token this cluster signed, for its audiences, not expired; else None."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        signature = _unb64url(signature_b64)
        claims = json.loads(_unb64url(claims_b64))
        header = json.loads(_unb64url(header_b64))
    except (ValueError, UnicodeDecodeError):
        return None
    key = serialization.load_pem_private_key(service_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    if not isinstance(header, dict) or header.get("alg") != "ES256" or len(signature) != 64 \
            or not isinstance(claims, dict):
        return None
    try:
        key.public_key().verify(
            encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                 int.from_bytes(signature[32:], "big")),
            f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return None
    moment = time.time() if now is None else now
    audience_ok = bool(set(claims.get("aud") or []) & set(AUDIENCES))
    return claims if claims.get("iss") == ISSUER and audience_ok and in_time(claims, moment) \
        else None


def in_time(claims: dict[str, Any], moment: float) -> bool:
    """`exp`, `nbf` and `iat` as kube-apiserver checks them (pkg/serviceaccount/claims.go calls
    go-jose's `jwt.Claims.Validate`, i.e. ValidateWithLeeway with DefaultLeeway, one minute):
    a token is still honoured up to 60 s after `exp` ("service account token has expired"
    only after that) and 60 s before `nbf`/`iat`, for clock skew between servers."""
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not isinstance(exp, int) or moment - LEEWAY > exp:
        return False
    return all(not isinstance(bound, int) or moment + LEEWAY >= bound for bound in (nbf, iat))


class SuccessCache:
    """kube-apiserver's cached token authenticator (its defaults, NewBuiltInAuthentication-
    Options in pkg/kubeapiserver/options/authentication.go: TokenSuccessCacheTTL 10 s,
    TokenFailureCacheTTL 0, failures not cached): a token that authenticated is taken as
    valid for 10 s without checking its ServiceAccount again, so a revoked token may still
    work for up to 10 s on each server that saw it just before. One cache per server, as
    each kube-apiserver has its own."""

    def __init__(self, ttl: float = SUCCESS_CACHE_TTL) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, tuple[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> tuple[str, list[str]] | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= time.monotonic():
                self._entries.pop(key, None)
                return None
            return entry[1]

    def put(self, token: str, identity: tuple[str, list[str]]) -> None:
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (now + self.ttl, identity)


def authenticate(kine: Kine, service_key_pem: bytes, token: str,
                 now: float | None = None,
                 cache: SuccessCache | None = None) -> tuple[str, list[str]] | None:
    """(user, groups) of a valid bound service-account token; None answers 401.

    The account named in the token must still exist with the UID it had when the token was
    issued: deleted ("has been deleted"), or deleted and created again, is refused (once the
    server's success cache, if any, has forgotten the token: at most 10 s)."""
    if cache is not None:
        cached = cache.get(token)
        if cached is not None:
            return cached
    identity = _authenticate(kine, service_key_pem, token, now)
    if identity is not None and cache is not None:
        cache.put(token, identity)
    return identity


def _authenticate(kine: Kine, service_key_pem: bytes, token: str,
                  now: float | None) -> tuple[str, list[str]] | None:
    claims = verified_claims(service_key_pem, token, now)
    if claims is None:
        return None
    private = claims.get("kubernetes.io") or {}
    namespace = str(private.get("namespace", ""))
    account = private.get("serviceaccount") or {}
    row = kine.get(_sa_key(namespace, str(account.get("name", ""))))
    if row is None or json.loads(row.value)["metadata"].get("uid") != account.get("uid"):
        return None
    return (f"system:serviceaccount:{namespace}:{account['name']}",
            ["system:serviceaccounts", f"system:serviceaccounts:{namespace}",
             "system:authenticated"])
