"""A small Kubernetes API client that talks exactly as the user's kubectl will.

Why: the panel proves a cluster works through the SLB with TLS verified against the cluster
CA and the downloaded kubeconfig's client certificate; any shortcut (skipping verification,
talking to a server directly) could hide the x509 error the manual recipe runs into.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import yaml

from clusters.core.errors import PermanentError, TransientError

RBAC_BINDINGS = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: bool
    roles: tuple[str, ...]
    version: str
    unschedulable: bool


def _b64(data: str) -> bytes:
    return base64.b64decode(data)


@contextlib.contextmanager
def _client_context(ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> Iterator[ssl.SSLContext]:
    context = ssl.create_default_context(cadata=ca_pem.decode())
    # load_cert_chain only reads files: a private directory that lives for this call only.
    with tempfile.TemporaryDirectory(prefix="kubeapi-") as directory:
        os.chmod(directory, 0o700)
        cert_path, key_path = os.path.join(directory, "c"), os.path.join(directory, "k")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as handle:
                handle.write(data)
        context.load_cert_chain(cert_path, key_path)
    yield context


class KubeClient:
    """GET requests against the server of a kubeconfig, as its user."""

    def __init__(self, kubeconfig: str, *, server: str | None = None, timeout: float = 10):
        # libyaml's safe loader when built in (the same safe subset): the pure-Python one
        # spent ~20 ms of every health check parsing the kubeconfig.
        config = yaml.load(kubeconfig, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server = server or cluster["server"]
        self.timeout = timeout
        self._ca = _b64(cluster["certificate-authority-data"])
        self._cert = _b64(user["client-certificate-data"])
        self._key = _b64(user["client-key-data"])

    def get(self, path: str) -> tuple[int, bytes]:
        return self.send("GET", path)

    def send(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json") -> tuple[int, bytes]:
        """One request as the kubeconfig's user; `body` is sent as JSON when given."""
        parts = urlsplit(self.server)
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        with _client_context(self._ca, self._cert, self._key) as context:
            conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                               timeout=self.timeout, context=context)
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                return response.status, response.read()
            except ssl.SSLCertVerificationError as exc:
                raise PermanentError(
                    f"TLS verification of {self.server} failed: {exc.verify_message}. "
                    "The API server's certificate does not cover this address; it must be "
                    "in --tls-san."
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise TransientError(f"The API at {self.server} did not answer: {exc}") \
                    from None
            finally:
                conn.close()

    def get_json(self, path: str) -> Any:
        status, body = self.get(path)
        if status >= 500 or status == 429:
            raise TransientError(f"The API at {self.server} answered {status} for {path}")
        if status != 200:
            raise PermanentError(f"The API at {self.server} answered {status} for {path}: "
                                 f"{body[:200].decode(errors='replace')}")
        return json.loads(body)

    def cordon(self, name: str) -> bool:
        """Mark a node unschedulable, as `kubectl cordon` does; False when it does not exist."""
        status, body = self.send("PATCH", f"/api/v1/nodes/{quote(name, safe='')}",
                                 {"spec": {"unschedulable": True}},
                                 "application/strategic-merge-patch+json")
        return self._changed(status, body, f"cordon node {name}")

    def delete_node(self, name: str) -> bool:
        """Delete a node object, as `kubectl delete node` does; False when already gone."""
        status, body = self.send("DELETE", f"/api/v1/nodes/{quote(name, safe='')}")
        return self._changed(status, body, f"delete node {name}")

    def pods_to_evict(self, node_name: str) -> list[str] | None:
        """`namespace/name` of the pods a drain would evict from the node (DaemonSet pods
        stay, as with `kubectl drain --ignore-daemonsets`); None when the API serves no pods."""
        selector = quote(f"spec.nodeName={node_name}", safe="")
        status, body = self.send("GET", f"/api/v1/pods?fieldSelector={selector}")
        if status == 404:
            return None
        if status != 200:
            self._changed(status, body, f"list the pods of node {node_name}")
        evictable = []
        for pod in json.loads(body).get("items", []):
            meta = pod.get("metadata", {})
            owners = {owner.get("kind") for owner in meta.get("ownerReferences", [])}
            if "DaemonSet" not in owners and pod.get("status", {}).get("phase") not in (
                    "Succeeded", "Failed"):
                evictable.append(f"{meta.get('namespace', '')}/{meta.get('name', '')}")
        return evictable

    # -- revocable credentials: a ServiceAccount, its ClusterRoleBinding, a bound token ------

    def create_service_account(self, namespace: str, name: str,
                               annotations: dict[str, str]) -> str:
        """Create the ServiceAccount; returns its UID (what its tokens are bound to)."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": name, "namespace": namespace,
                             "labels": {"app.kubernetes.io/managed-by": "k3s-panel"},
                             "annotations": annotations}}
        status, answer = self.send(
            "POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts", body)
        self._created(status, answer, f"create the ServiceAccount {namespace}/{name}")
        try:
            uid = json.loads(answer)["metadata"]["uid"]
        except (ValueError, KeyError, TypeError):
            raise PermanentError(f"The API at {self.server} answered the creation of "
                                 f"{namespace}/{name} with no ServiceAccount UID.") from None
        if not isinstance(uid, str) or not uid:
            raise PermanentError(f"The API at {self.server} answered the creation of "
                                 f"{namespace}/{name} with no ServiceAccount UID.")
        return uid

    def bind_cluster_role(self, name: str, role: str, namespace: str, account: str) -> None:
        """A ClusterRoleBinding `name` of ClusterRole `role` to the ServiceAccount."""
        body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name,
                             "labels": {"app.kubernetes.io/managed-by": "k3s-panel"}},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": account,
                              "namespace": namespace}]}
        status, answer = self.send("POST", RBAC_BINDINGS, body)
        self._created(status, answer, f"bind the ClusterRole {role} to {namespace}/{account}")

    def request_token(self, namespace: str, name: str, seconds: int) -> tuple[str, str]:
        """A bound token of the ServiceAccount (TokenRequest, `kubectl create token`):
        (token, expirationTimestamp). The issuer may shorten the lifetime asked for
        (--service-account-max-token-expiration), so the caller records the answer's expiry.
        Errors never quote the answer of a success, which carries the token."""
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                "spec": {"expirationSeconds": seconds}}
        status, answer = self.send(
            "POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/"
                    f"{quote(name, safe='')}/token", body)
        self._created(status, answer, f"request a token for {namespace}/{name}")
        try:
            result = json.loads(answer)["status"]
            return str(result["token"]), str(result["expirationTimestamp"])
        except (ValueError, KeyError, TypeError):
            raise PermanentError(f"The API at {self.server} answered a token request "
                                 "without a token.") from None

    def delete_service_account(self, namespace: str, name: str) -> bool:
        """Delete it (its bound tokens stop working); False when already gone."""
        status, body = self.send(
            "DELETE", f"/api/v1/namespaces/{quote(namespace, safe='')}/serviceaccounts/"
                      f"{quote(name, safe='')}")
        return self._changed(status, body, f"delete the ServiceAccount {namespace}/{name}")

    def delete_cluster_role_binding(self, name: str) -> bool:
        status, body = self.send("DELETE", f"{RBAC_BINDINGS}/{quote(name, safe='')}")
        return self._changed(status, body, f"delete the ClusterRoleBinding {name}")

    def _created(self, status: int, body: bytes, what: str) -> None:
        if status == 404:
            raise PermanentError(f"The API at {self.server} could not {what}: "
                                 f"{body[:200].decode(errors='replace')}")
        if status not in (200, 201):
            self._changed(status, body, what)

    def _changed(self, status: int, body: bytes, what: str) -> bool:
        if status == 404:
            return False
        if status >= 500 or status == 429:
            raise TransientError(f"The API at {self.server} answered {status} to {what}")
        if status >= 300:
            raise PermanentError(f"The API at {self.server} refused to {what} ({status}): "
                                 f"{body[:200].decode(errors='replace')}")
        return True

    def readyz(self) -> str:
        status, body = self.get("/readyz")
        text = body.decode(errors="replace").strip()
        return text if status == 200 else f"HTTP {status}: {text[:200]}"

    def nodes(self) -> list[NodeState]:
        items = self.get_json("/api/v1/nodes").get("items", [])
        states = []
        for item in items:
            labels = item.get("metadata", {}).get("labels", {})
            conditions = item.get("status", {}).get("conditions", [])
            ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in conditions)
            roles = tuple(sorted(key.split("/", 1)[1] for key in labels
                                 if key.startswith("node-role.kubernetes.io/")))
            states.append(NodeState(
                name=item["metadata"]["name"], ready=ready, roles=roles,
                version=item.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
                unschedulable=bool(item.get("spec", {}).get("unschedulable")),
            ))
        return states


def node_ready_in_json(text: str) -> bool:
    """`kubectl get node NAME -o json`: its Ready condition is True."""
    try:
        item = json.loads(text)
    except ValueError:
        return False
    conditions = item.get("status", {}).get("conditions", []) if isinstance(item, dict) else []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
