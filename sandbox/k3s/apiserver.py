"""HTTPS on :6443: K3s's supervisor endpoints and a small, real Kubernetes API for nodes.

Why: the panel and the real kubectl talk to this port directly or through the SLB. What they
see must match K3s: /ping and /cacerts without auth; everything else of the API 401 without a
client certificate signed by the cluster client CA or a valid bound service-account token
(`Authorization: Bearer`, checked on every request: a deleted ServiceAccount's or an expired
token answers 401 like kube-apiserver); discovery, nodes (list/get/patch/delete, Table
output), kubelet leases, ServiceAccounts with their token subresource (TokenRequest) and
ClusterRoleBindings (serviceaccounts.py); supervisor endpoints for agents with token basic
auth. Authorization: system:masters, or a binding to the cluster-admin ClusterRole, may do
everything; nodes may read nodes and change their own.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import secrets
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sandbox.k3s import (
    bootstrap,
    certs,
    etcdnodes,
    logs,
    nodes,
    protobuf,
    secretsencrypt,
    serviceaccounts,
    snapshots,
)
from sandbox.k3s.kine import DatastoreError, Kine

LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
# What kube-apiserver's /readyz says (HTTP 500) while its post-start hooks are still running.
WARMING_UP = (b"[+]ping ok\n[+]log ok\n[+]etcd ok\n"
              b"[-]poststarthook/start-apiextensions-controllers failed: reason withheld\n"
              b"[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n"
              b"[+]shutdown ok\nreadyz check failed\n")

# ... once every check passes (asked with ?verbose) ...
PASSED = (b"[+]ping ok\n[+]log ok\n[+]etcd ok\n"
          b"[+]poststarthook/start-apiextensions-controllers ok\n"
          b"[+]poststarthook/rbac/bootstrap-roles ok\n[+]shutdown ok\n")

# ... and once the apiserver cannot read from etcd (no quorum).
ETCD_FAILED = (b"[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"
               b"[+]poststarthook/start-apiextensions-controllers ok\n"
               b"[+]poststarthook/rbac/bootstrap-roles ok\n"
               b"[+]shutdown ok\nreadyz check failed\n")


@dataclass
class ApiContext:
    """What the handlers need from the running server."""

    kine: Kine
    version: str
    git_commit: str
    server_ca: bytes
    client_ca: bytes
    client_ca_key: bytes
    server_password: str
    agent_password: str
    grace_seconds: Callable[[], float]
    # The server's encryption-config.json (None without --secrets-encryption).
    encryption_config: bytes | None = None
    # Until then /readyz and /healthz fail like a kube-apiserver whose post-start hooks have not
    # finished: port 6443 already accepts (a TCP health check passes) but it is not ready.
    ready_at: float = 0.0
    # server/tls/service.key: signs and verifies service-account tokens (the same on every
    # server: it travels in the bootstrap data).
    service_key: bytes = b""
    # Successful token authentications, kept 10 s like kube-apiserver's token cache.
    token_cache: serviceaccounts.SuccessCache = field(
        default_factory=serviceaccounts.SuccessCache)
    # A fault the test world injects: the object is created, but the answer to its create is
    # a proxy's HTML page instead of the object (what a client behind a broken proxy reads).
    garbled_create_kinds: set[str] = field(default_factory=set)
    # Embedded etcd: this server's member (None on an external datastore), the bootstrap
    # files a joining server fetches, and the node name snapshots are named after.
    member: Any = None
    bootstrap_files: dict[str, bytes] = field(default_factory=dict)
    node_name: str = ""
    snapshot_settings: Any = None


def status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


def _not_found(name: str) -> dict:
    return status(404, "NotFound", f'nodes "{name}" not found', {"name": name, "kind": "nodes"})


def version_info(version: str, commit: str) -> dict:
    kube = version.split("+", 1)[0].lstrip("v")
    major, minor = kube.split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": version, "gitCommit": commit,
            "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.6",
            "compiler": "gc", "platform": "linux/amd64"}


API_RESOURCES_V1 = {
    "kind": "APIResourceList", "groupVersion": "v1",
    "resources": [
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                   "watch"], "shortNames": ["no"]},
        {"name": "nodes/status", "singularName": "", "namespaced": False, "kind": "Node",
         "verbs": ["get", "patch", "update"]},
        {"name": "serviceaccounts", "singularName": "serviceaccount", "namespaced": True,
         # What the stand-in serves (create, delete, get, list), not kube-apiserver's full
         # set: kubectl picks its requests by these verbs, so none it sends can be a 405.
         "kind": "ServiceAccount", "verbs": ["create", "delete", "get", "list"],
         "shortNames": ["sa"]},
        {"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
         "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
         "verbs": ["create"]},
    ],
}
RBAC_GROUP = "rbac.authorization.k8s.io"
# ServiceAccountTokenJTI is on by default from Kubernetes 1.30: tokens carry a jti from then.
JTI_SINCE_MINOR = 30
CRB_PATH = f"/apis/{RBAC_GROUP}/v1/clusterrolebindings"
API_RESOURCES_RBAC = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{RBAC_GROUP}/v1",
    "resources": [{"name": "clusterrolebindings", "singularName": "clusterrolebinding",
                   "namespaced": False, "kind": "ClusterRoleBinding",
                   "verbs": ["create", "delete", "get", "list"]}],  # what is served
}
API_RESOURCES_COORDINATION = {
    "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "coordination.k8s.io/v1",
    "resources": [{"name": "leases", "singularName": "lease", "namespaced": True,
                   "kind": "Lease", "verbs": ["create", "delete", "deletecollection", "get",
                                              "list", "patch", "update", "watch"]}],
}
API_GROUPS = {
    "kind": "APIGroupList", "apiVersion": "v1",
    "groups": [{"name": group,
                "versions": [{"groupVersion": f"{group}/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": f"{group}/v1", "version": "v1"}}
               for group in ("coordination.k8s.io", "rbac.authorization.k8s.io")],
}

DISCOVERY = {"/apis": API_GROUPS, "/api/v1": API_RESOURCES_V1,
             "/apis/coordination.k8s.io/v1": API_RESOURCES_COORDINATION,
             f"/apis/{RBAC_GROUP}/v1": API_RESOURCES_RBAC}


class Handler(BaseHTTPRequestHandler):
    server_version = ""
    sys_version = ""
    protocol_version = "HTTP/1.1"
    ctx: ApiContext  # set on the subclass built by serve()
    _request_body = b""

    def log_message(self, format: str, *args: object) -> None:
        return

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: dict) -> None:
        if code == 201 and obj.get("kind") in self.ctx.garbled_create_kinds:
            self._send(201, b"<html>proxy</html>", "text/html")
            return
        self._send(code, json.dumps(obj).encode())

    def _body(self) -> bytes:
        """The request's body, read once by _dispatch before anything answers."""
        return self._request_body

    def _read_request_body(self) -> bytes:
        """Read the whole body off the connection, whatever the answer will be: an answer
        given over an unread body (a DELETE's DeleteOptions, a refused POST) leaves those bytes
        to be parsed as the next request on the kept-alive connection, and kubectl then reads
        an error page where it expects a status line ("malformed HTTP status code")."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _object_body(self) -> dict:
        """A request body as kube-apiserver reads it: JSON, or the protobuf kubectl's typed
        clients send (protobuf.py); anything else is a 415/400 like the real one's."""
        body = self._body()
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0]
        try:
            if content_type == protobuf.CONTENT_TYPE:
                return protobuf.decode(body)
            if content_type != "application/json":
                raise serviceaccounts.ApiError(
                    415, "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types '
                    f'include: application/json, application/yaml, {protobuf.CONTENT_TYPE}')
            obj = json.loads(body or b"{}")
        except (ValueError, protobuf.DecodeError) as exc:
            raise serviceaccounts.ApiError(400, "BadRequest", f"the object provided is not "
                                           f"readable: {exc}") from None
        if not isinstance(obj, dict):
            raise serviceaccounts.ApiError(400, "BadRequest", "the object provided is not an "
                                           "object")
        return obj

    def _client_identity(self) -> tuple[str, list[str]] | None:
        """(user, groups) from a client certificate signed by the cluster client CA."""
        der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        if not der:
            return None
        return certs.subject_of(der)

    def _bearer_identity(self) -> tuple[str, list[str]] | None:
        """(user, groups) of a valid service-account token, checked again on every request."""
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not self.ctx.service_key:
            return None
        identity = serviceaccounts.authenticate(self.ctx.kine, self.ctx.service_key,
                                                header[7:].strip(), cache=self.ctx.token_cache)
        if identity is None:
            # kube-apiserver logs this (never the token) and answers a bare 401.
            logs.error('"Unable to authenticate the request" err="[invalid bearer token, '
                       'service account token has expired or its ServiceAccount has been '
                       'deleted]"')
        return identity

    def _is_admin(self, identity: tuple[str, list[str]]) -> bool:
        user, groups = identity
        return "system:masters" in groups or (
            user.startswith("system:serviceaccount:")
            and "cluster-admin" in serviceaccounts.cluster_roles_of(self.ctx.kine, user, groups))

    def _basic_user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        expected = {"server": self.ctx.server_password, "node": self.ctx.agent_password}
        if user in expected and hmac.compare_digest(password, expected[user]):
            return user
        logs.error(f"Failed to authenticate request from {self.client_address[0]}:"
                   f"{self.client_address[1]}: invalid username/password combination")
        return None

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._request_body = self._read_request_body()
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        # Blank values kept: `/readyz?verbose` is a flag with no value (kube-apiserver's
        # healthz handler: r.URL.Query()["verbose"]).
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        try:
            if path == "/ping":
                self._send(200, b"pong", "text/plain")
            elif path == "/cacerts":
                self._send(200, self.ctx.server_ca, "text/plain")
            elif self.ctx.member is not None and path == "/db/info":
                self._db_info_authorized(method)
            elif path.startswith("/v1-k3s/") or (
                    self.ctx.member is not None and path == "/db/snapshot"):
                self._supervisor(method, path)
            else:
                identity = self._client_identity() or self._bearer_identity()
                if identity is None:
                    self._json(401, status(401, "Unauthorized", "Unauthorized"))
                    return
                self._api(method, path, query, identity)
        except DatastoreError as exc:
            logs.error(f"datastore error serving {method} {path}: {exc}")
            if self.ctx.member is not None:
                # An etcd client error is no API error: kube-apiserver's ErrorToAPIStatus makes
                # it a 500 with no reason, which kubectl prints as `Error from server: <msg>`.
                self._json(500, status(500, "", str(exc)))
            else:
                self._json(500, status(500, "InternalError", f"Internal error occurred: {exc}"))

    # -- supervisor (agents) -------------------------------------------------------------------
    def _supervisor(self, method: str, path: str) -> None:
        user = self._basic_user()
        if user is None:
            self._send(401, b"Unauthorized\n", "text/plain")
            return
        if path == "/v1-k3s/config" and method == "GET":
            self._json(200, {"ServerCA": "server-ca.crt", "ClusterDomain": "cluster.local",
                             "ClusterDNS": "10.43.0.10", "FlannelBackend": "vxlan",
                             "Version": self.ctx.version})
        elif path in ("/v1-k3s/server-ca.crt", "/v1-k3s/client-ca.crt"):
            ca = self.ctx.server_ca if "server" in path else self.ctx.client_ca
            self._send(200, ca, "text/plain")
        elif path == "/v1-k3s/client-kubelet.crt":
            self._issue_kubelet_cert()
        elif path == "/v1-k3s/server-bootstrap" and method == "GET" and user == "server" \
                and self.ctx.member is None:
            # bootstrapHandler (pkg/server/router.go): only an embedded-etcd server serves
            # its bootstrap data; a kine-backed one answers 400 "etcd disabled".
            logs.warn(f"Received HTTP bootstrap request from {self._remote()}, but embedded "
                      "etcd is not enabled.")
            self._send_error(400, "etcd disabled")
        elif path == "/v1-k3s/server-bootstrap" and method == "GET" and user == "server" \
                and self.ctx.bootstrap_files:
            self._send(200, bootstrap.encode_files(self.ctx.bootstrap_files), "application/json")
        elif path == "/db/snapshot" and method == "POST" and user == "server":
            self._db_snapshot()
        elif path == "/v1-k3s/encrypt/status" and method == "GET" and user == "server":
            servers = [n for n in nodes.load_nodes(self.ctx.kine, self.ctx.grace_seconds())
                       if n["metadata"].get("labels", {}).get(
                           "node-role.kubernetes.io/control-plane") == "true"]
            self._json(200, secretsencrypt.status(self.ctx.encryption_config, servers))
        else:
            self._send(404, b"404 page not found\n", "text/plain")

    def _remote(self) -> str:
        return f"{self.client_address[0]}:{self.client_address[1]}"

    def _send_error(self, code: int, message: str) -> None:
        """util.SendError (pkg/util/apierrors.go): a metav1.Status as ErrorNegotiated writes
        it, logged as `Sending HTTP/1.1 <code> response to <addr>: <err>`."""
        logs.error(f"Sending HTTP/1.1 {code} response to {self._remote()}: {message}")
        if code == 500:
            body = status(500, "InternalError", f"Internal error occurred: {message}",
                          {"causes": [{"message": message}]})
        elif code == 403:
            body = status(403, "Forbidden", message)
        elif code == 400:
            body = status(400, "BadRequest", message)
        else:
            body = status(code, "", message)
        self._json(code, body)

    def _send_error_with_id(self, message: str, code: int = 500) -> None:
        """util.SendErrorWithID: the detail only in the server's log, an error ID to the
        client."""
        error_id = f"{secrets.randbelow(99999):05d}"
        logs.error(f"etcd-snapshot error ID {error_id}: {message}")
        self._send_error(code, f"etcd-snapshot error ID {error_id}")

    def _db_info_authorized(self, method: str) -> None:
        """/db/info behind auth.IsLocalOrHasRole(k3s:server) (pkg/etcd/etcd.go handler,
        pkg/server/auth/auth.go): loopback needs no credentials; from elsewhere only the
        server token's user passes, anything else (the agent token, none) is 403 forbidden."""
        if self.client_address[0] not in ("127.0.0.1", "::1") and \
                self._basic_user() != "server":
            self._send_error(403, "forbidden")
            return
        if method != "GET":
            self._send_error(405, "method not allowed")
            return
        self._db_info()

    def _db_info(self) -> None:
        """infoHandler (pkg/etcd/etcd.go): etcd's MemberList within 2 s, else 500 "failed to
        get etcd MemberList: ...". K3s's etcd 3.5 client asks MemberList linearizable, which
        needs quorum; etcd 3.4's answers from the local member without one, so a linearizable
        read runs first and fails the same way when quorum is lost."""
        member = self.ctx.member
        try:
            member.client.range("health", timeout=2)
            members = member.client.member_list(timeout=2)
        except DatastoreError as exc:
            self._send_error(500, f"failed to get etcd MemberList: {exc}")
            return
        self._json(200, {"members": members})

    def _db_snapshot(self) -> None:
        """The server side of `k3s etcd-snapshot` (pkg/etcd/snapshot_handler.go)."""
        request = json.loads(self._body() or b"{}")
        settings = self.ctx.snapshot_settings
        # withRequest (pkg/etcd/snapshot_handler.go): the CLI's dir/compress/retention win.
        if request.get("retention") is not None:
            settings = dataclasses.replace(settings, retention=int(request["retention"]))
        if request.get("dir"):
            settings = dataclasses.replace(settings, directory=str(request["dir"]))
        if request.get("compress") is not None:
            settings = dataclasses.replace(settings, compress=bool(request["compress"]))
        operation = request.get("operation", "")
        names = list(request.get("name") or [])
        try:
            if operation == "save":
                saved = snapshots.save(self.ctx.member, settings, self.ctx.node_name,
                                       names[0] if names else "on-demand")
                if saved is None:  # a learner: K3s's nil result and nil error
                    self._send_error_with_id("<nil>")
                    return
                result: dict = saved
            elif operation == "list":
                result = snapshots.listing(settings, self.ctx.node_name)
            elif operation == "delete":
                result = snapshots.delete(settings, names)
            elif operation == "prune":
                result = {"created": [], "deleted": snapshots.retention(
                    settings, names[0] if names else "on-demand")}
            else:
                self._send(400, f"unsupported operation {operation!r}\n".encode(), "text/plain")
                return
        except DatastoreError as exc:
            self._send_error_with_id(str(exc))
            return
        self._json(200, result)

    def _issue_kubelet_cert(self) -> None:
        name = self.headers.get("K3s-Node-Name", "")
        password = self.headers.get("K3s-Node-Password", "")
        if not name or not password:
            self._send(400, b"missing node name or password\n", "text/plain")
            return
        key = f"{nodes.NODE_PASSWORD_PREFIX}{name}.node-password.k3s"
        digest = base64.b64encode(_hash(password)).decode()
        stored = self.ctx.kine.get(key)
        if stored is None:
            self.ctx.kine.put(key, json.dumps({"hash": digest}).encode())
        elif json.loads(stored.value)["hash"] != digest:
            self._send(403, b"Node password rejected, duplicate hostname or contents of "
                            b"'/etc/rancher/node/password' may not match server node-passwd "
                            b"entry, try enabling a unique node name with the --with-node-id "
                            b"flag\n", "text/plain")
            return
        cert, key_pem = certs.client_cert(self.ctx.client_ca, self.ctx.client_ca_key,
                                          f"system:node:{name}", "system:nodes")
        self._send(200, cert + self.ctx.client_ca + key_pem, "text/plain")

    # -- Kubernetes API ------------------------------------------------------------------------
    def _api(self, method: str, path: str, query: dict[str, str],
             identity: tuple[str, list[str]]) -> None:
        user, _groups = identity
        admin = self._is_admin(identity)
        if path in ("/readyz", "/healthz") and method == "GET" \
                and time.monotonic() < self.ctx.ready_at:
            self._send(500, WARMING_UP, "text/plain; charset=utf-8")
        elif path in ("/readyz", "/livez", "/healthz") and method == "GET" \
                and self.ctx.member is not None and not self.ctx.member.store.healthy():
            # kube-apiserver's etcd check: a read that fails within 2 s without quorum.
            self._send(500, ETCD_FAILED, "text/plain; charset=utf-8")
        elif path in ("/readyz", "/livez", "/healthz") and method == "GET" \
                and "verbose" in query:
            # k8s.io/apiserver pkg/server/healthz: with ?verbose every check, then "<name>
            # check passed"; without it a bare "ok".
            self._send(200, PASSED + f"{path[1:]} check passed\n".encode(),
                       "text/plain; charset=utf-8")
        elif path in ("/readyz", "/livez", "/healthz") and method == "GET":
            self._send(200, b"ok", "text/plain; charset=utf-8")
        elif path == "/version":
            self._json(200, version_info(self.ctx.version, self.ctx.git_commit))
        elif path == "/api":
            self._json(200, {"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [
                                 {"clientCIDR": "0.0.0.0/0",
                                  "serverAddress": self.headers.get("Host", "")}]})
        elif path in DISCOVERY:
            self._json(200, DISCOVERY[path])
        elif path == "/api/v1/serviceaccounts" or (
                path.startswith("/api/v1/namespaces/") and "/serviceaccounts" in path):
            self._service_accounts(method, path, user, admin)
        elif path == CRB_PATH or path.startswith(CRB_PATH + "/"):
            self._cluster_role_bindings(method, path[len(CRB_PATH) + 1:], user, admin)
        elif path == "/api/v1/nodes" or path.startswith("/api/v1/nodes/"):
            name = path[len("/api/v1/nodes/"):] if path != "/api/v1/nodes" else ""
            self._nodes(method, name, query, identity)
        elif path.startswith(LEASE_PATH):
            self._lease(method, path[len(LEASE_PATH):], user, admin)
        else:
            self._json(404, status(404, "NotFound", "the server could not find the requested "
                                                    "resource"))

    def _forbidden(self, user: str, verb: str, resource: str, name: str = "") -> None:
        target = f' "{name}"' if name else ""
        self._json(403, status(403, "Forbidden",
                               f'{resource}{target} is forbidden: User "{user}" cannot {verb} '
                               f'resource "{resource}" in API group "" at the cluster scope'))

    def _all_service_accounts(self, method: str, user: str, admin: bool) -> None:
        """/api/v1/serviceaccounts: every namespace's (`kubectl get sa -A`), list only."""
        if not admin:
            self._forbidden(user, "list", "serviceaccounts")
        elif method == "GET":
            self._json(200, serviceaccounts.list_service_accounts(self.ctx.kine, None))
        else:
            self._json(405, status(405, "MethodNotAllowed", "the server does not allow "
                                   "this method on the requested resource"))

    def _service_accounts(self, method: str, path: str, user: str, admin: bool) -> None:
        """/api/v1/namespaces/NS/serviceaccounts[/NAME[/token]]: cluster-admin only here."""
        if path == "/api/v1/serviceaccounts":
            self._all_service_accounts(method, user, admin)
            return
        parts = path[len("/api/v1/namespaces/"):].split("/")
        namespace, name = parts[0], parts[2] if len(parts) > 2 else ""
        token = len(parts) == 4 and parts[3] == "token"
        if len(parts) < 2 or parts[1] != "serviceaccounts" or len(parts) > 4 \
                or (len(parts) == 4 and not token):
            self._json(404, status(404, "NotFound", "the server could not find the requested "
                                                    "resource"))
            return
        verb = {"GET": "get" if name else "list", "POST": "create", "DELETE": "delete"}.get(
            method, method.lower())
        if not admin:
            resource = "serviceaccounts/token" if token else "serviceaccounts"
            target = f' "{name}"' if name else ""
            self._json(403, status(403, "Forbidden",
                                   f'{resource}{target} is forbidden: User "{user}" cannot '
                                   f'{verb} resource "{resource}" in API group "" in the '
                                   f'namespace "{namespace}"'))
            return
        kine = self.ctx.kine
        try:
            if token and method == "POST":
                minor = int(version_info(self.ctx.version, "")["minor"])
                self._json(201, serviceaccounts.request_token(
                    kine, self.ctx.service_key, namespace, name, self._object_body(),
                    jti=minor >= JTI_SINCE_MINOR))
            elif not name and method == "POST":
                self._json(201, serviceaccounts.create_service_account(
                    kine, namespace, self._object_body()))
            elif not name and method == "GET":
                self._json(200, serviceaccounts.list_service_accounts(kine, namespace))
            elif name and not token and method == "GET":
                self._json(200, serviceaccounts.get_service_account(kine, namespace, name))
            elif name and not token and method == "DELETE":
                gone = serviceaccounts.delete_service_account(kine, namespace, name)
                self._json(200, _deleted(gone, "serviceaccounts", ""))
            else:
                self._json(405, status(405, "MethodNotAllowed", "the server does not allow "
                                       "this method on the requested resource"))
        except serviceaccounts.ApiError as exc:
            self._json(exc.code, status(exc.code, exc.reason, exc.message, exc.details))

    def _cluster_role_bindings(self, method: str, name: str, user: str, admin: bool) -> None:
        if not admin:
            verb = {"GET": "get" if name else "list", "POST": "create",
                    "DELETE": "delete"}.get(method, method.lower())
            target = f' "{name}"' if name else ""
            self._json(403, status(403, "Forbidden",
                                   f'clusterrolebindings.{RBAC_GROUP}{target} is forbidden: '
                                   f'User "{user}" cannot {verb} resource "clusterrolebindings" '
                                   f'in API group "{RBAC_GROUP}" at the cluster scope'))
            return
        kine = self.ctx.kine
        try:
            if not name and method == "POST":
                self._json(201, serviceaccounts.create_cluster_role_binding(
                    kine, self._object_body()))
            elif not name and method == "GET":
                self._json(200, serviceaccounts.list_cluster_role_bindings(kine))
            elif name and method == "GET":
                self._json(200, serviceaccounts.get_cluster_role_binding(kine, name))
            elif name and method == "DELETE":
                gone = serviceaccounts.delete_cluster_role_binding(kine, name)
                self._json(200, _deleted(gone, "clusterrolebindings", RBAC_GROUP))
            else:
                self._json(405, status(405, "MethodNotAllowed", "the server does not allow "
                                       "this method on the requested resource"))
        except serviceaccounts.ApiError as exc:
            self._json(exc.code, status(exc.code, exc.reason, exc.message, exc.details))

    def _wants_table(self) -> bool:
        return "as=Table" in self.headers.get("Accept", "")

    def _nodes(self, method: str, name: str, query: dict[str, str],
               identity: tuple[str, list[str]]) -> None:
        user, groups = identity
        admin = self._is_admin(identity)
        reader = admin or "system:nodes" in groups
        if not name and method == "GET":
            if reader:
                self._list_nodes(query)
            else:
                self._forbidden(user, "list", "nodes")
        elif not name and method == "POST":
            self._create_node(user, admin)
        elif method == "GET":
            if reader:
                self._get_node(name)
            else:
                self._forbidden(user, "get", "nodes", name)
        elif admin or (user == f"system:node:{name}" and "system:nodes" in groups):
            self._change_node(method, name)
        else:
            self._forbidden(user, method.lower(), "nodes", name)

    def _list_nodes(self, query: dict[str, str]) -> None:
        items = nodes.load_nodes(self.ctx.kine, self.ctx.grace_seconds())
        selector = query.get("fieldSelector", "")
        if selector.startswith("metadata.name="):
            items = [n for n in items if n["metadata"]["name"] == selector.split("=", 1)[1]]
        revision = str(max([int(n["metadata"]["resourceVersion"]) for n in items] or [1]))
        if self._wants_table():
            self._json(200, nodes.table(items, revision))
        else:
            self._json(200, {"kind": "NodeList", "apiVersion": "v1",
                             "metadata": {"resourceVersion": revision}, "items": items})

    def _create_node(self, user: str, admin: bool) -> None:
        body = json.loads(self._body() or b"{}")
        new_name = body.get("metadata", {}).get("name", "")
        if not (admin or user == f"system:node:{new_name}"):
            self._forbidden(user, "create", "nodes")
            return
        nodes.register(self.ctx.kine, body)
        self._json(201, nodes.load_node(self.ctx.kine, new_name, self.ctx.grace_seconds())
                   or body)

    def _get_node(self, name: str) -> None:
        node = nodes.load_node(self.ctx.kine, name, self.ctx.grace_seconds())
        if node is None:
            self._json(404, _not_found(name))
        elif self._wants_table():
            self._json(200, nodes.table([node], node["metadata"]["resourceVersion"]))
        else:
            self._json(200, node)

    def _change_node(self, method: str, name: str) -> None:
        """PATCH (cordon, label), PUT (kubelet status) and DELETE of one node."""
        grace = self.ctx.grace_seconds()
        node = nodes.load_node(self.ctx.kine, name, grace)
        if node is None:
            self._json(404, _not_found(name))
        elif method == "PATCH":
            patch = json.loads(self._body() or b"{}")
            row = self.ctx.kine.get(nodes.NODE_PREFIX + name)
            if row is None:  # deleted since it was read just above
                self._json(404, _not_found(name))
                return
            stored = json.loads(row.value)
            _merge(stored, patch)
            self.ctx.kine.update(nodes.NODE_PREFIX + name, json.dumps(stored).encode(), row.id)
            self._json(200, nodes.load_node(self.ctx.kine, name, grace) or {})
        elif method == "PUT":
            body = json.loads(self._body() or b"{}")
            body.get("status", {}).pop("conditions", None)
            self.ctx.kine.put(nodes.NODE_PREFIX + name, json.dumps(body).encode())
            self._json(200, nodes.load_node(self.ctx.kine, name, grace) or {})
        elif method == "DELETE" and self.ctx.member is not None and \
                etcdnodes.is_etcd_node(node):
            self._delete_etcd_node(name, node)
        elif method == "DELETE":
            self.ctx.kine.delete(nodes.NODE_PREFIX + name)
            self.ctx.kine.delete(nodes.LEASE_PREFIX + name)
            self.ctx.kine.delete(f"{nodes.NODE_PASSWORD_PREFIX}{name}.node-password.k3s")
            self._json(200, node)
        else:
            self._json(405, status(405, "MethodNotAllowed", "the server does not allow this "
                                                            "method on the requested resource"))

    def _delete_etcd_node(self, name: str, node: dict) -> None:
        """DELETE of an etcd server's Node: the finalizer holds it while the member is
        removed; the answer is the object with its deletionTimestamp (kube-apiserver's answer
        while finalizers remain), and the Node is gone once the member is."""
        row = self.ctx.kine.get(nodes.NODE_PREFIX + name)
        if row is None:
            self._json(404, _not_found(name))
            return
        stored = json.loads(row.value)
        stored["metadata"].setdefault("deletionTimestamp", nodes.now_rfc3339())
        stored["metadata"].setdefault("deletionGracePeriodSeconds", 0)
        self.ctx.kine.update(nodes.NODE_PREFIX + name, json.dumps(stored).encode(), row.id)
        node["metadata"]["deletionTimestamp"] = stored["metadata"]["deletionTimestamp"]
        node["metadata"]["deletionGracePeriodSeconds"] = 0
        try:
            etcdnodes.finalize(self.ctx.member, self.ctx.kine, name)
        except DatastoreError as exc:
            logs.error(f"error syncing 'managed-etcd-controller' for node {name}: {exc}")
        self._json(200, node)

    def _lease(self, method: str, name: str, user: str, admin: bool) -> None:
        if not (admin or user == f"system:node:{name}"):
            self._forbidden(user, method.lower(), "leases", name)
            return
        key = nodes.LEASE_PREFIX + name
        if method == "GET":
            row = self.ctx.kine.get(key)
            if row is None:
                self._json(404, status(404, "NotFound", f'leases.coordination.k8s.io "{name}" '
                                                        "not found"))
            else:
                self._json(200, json.loads(row.value))
        elif method in ("PUT", "POST"):
            self._body()
            nodes.heartbeat(self.ctx.kine, name)
            renewed = self.ctx.kine.get(key)
            self._json(200, json.loads(renewed.value) if renewed is not None else {})
        else:
            self._json(405, status(405, "MethodNotAllowed", "method not allowed"))


def _deleted(obj: dict, kind: str, group: str) -> dict:
    """What a DELETE of a ServiceAccount or ClusterRoleBinding answers: a Success Status
    (their registries do not return the deleted object)."""
    details = {"name": obj["metadata"]["name"], "kind": kind,
               "uid": obj["metadata"].get("uid", "")}
    if group:
        details["group"] = group
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": details}


def _hash(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def _merge(target: dict, patch: dict) -> None:
    """JSON merge patch / the strategic merge subset kubectl cordon and label send."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


class TLSServer(ThreadingHTTPServer):
    """TLS handshake in the worker thread, so one slow client can't stall the accept loop."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, context: ssl.SSLContext) -> None:
        self.context = context
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, handler)

    def finish_request(self, request: socket.socket | tuple[bytes, socket.socket],
                       client_address: Any) -> None:
        assert isinstance(request, socket.socket)  # a TCP server's requests are sockets
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # kubectl's x509 failures end here; it prints its own error
        try:
            super().finish_request(tls, client_address)  # the handler, on the TLS socket
        finally:
            with contextlib.suppress(OSError):
                tls.close()


def serve(ctx: ApiContext, bind: str, port: int, *, cert_pem: bytes, key_pem: bytes,
          tmp_dir: str) -> TLSServer:
    """Start the HTTPS listener in a daemon thread."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert_path = os.path.join(tmp_dir, "serving-kube-apiserver.crt")
    key_path = os.path.join(tmp_dir, "serving-kube-apiserver.key")
    with open(cert_path, "wb") as handle:
        handle.write(cert_pem + ctx.server_ca)
    with open(os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        handle.write(key_pem)
    context.load_cert_chain(cert_path, key_path)
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=ctx.client_ca.decode())
    handler = type("BoundHandler", (Handler,), {"ctx": ctx})
    server = TLSServer((bind, port), handler, context)
    threading.Thread(target=server.serve_forever, name="https", daemon=True).start()
    return server
