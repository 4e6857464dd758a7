"""`k3s agent`: join through the supervisor with the token, then register and heartbeat.

Why: agents are how the panel grows a cluster; a wrong token or a changed CA must fail the way
K3s does (it keeps retrying with the same journal lines, and the node never appears).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request

from sandbox.k3s import bootstrap, flannel, logs, nodes
from sandbox.k3s.config import Settings
from sandbox.k3s.runtime import (
    detect_node_ip,
    go_duration,
    hash_ca,
    node_name,
    notify_ready,
    write_private,
)
from sandbox.k3s.versions import Release

NODE_PASSWORD_FILE = "/etc/rancher/node/password"  # noqa: S105 - a path


class JoinError(Exception):
    pass


def _get(url: str, context: ssl.SSLContext, headers: dict[str, str] | None = None,
         method: str = "GET", body: bytes | None = None) -> bytes:
    request = urllib.request.Request(  # noqa: S310 - https URLs only (checked in run)
        url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(  # noqa: S310 - https URLs only (checked in run)
                request, context=context, timeout=10) as response:
            return response.read()
    except urllib.error.HTTPError as exc:
        raise JoinError(f"{url}: {exc.code} {_status_text(exc.code)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise JoinError(f'Get "{url}": {_go_net_error(url, reason)}') from None


def _status_text(code: int) -> str:
    return {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            500: "Internal Server Error", 503: "Service Unavailable"}.get(code, "Error")


def _go_net_error(url: str, reason: object) -> str:
    host = urllib.parse.urlsplit(url).netloc
    if isinstance(reason, ConnectionRefusedError):
        return f"dial tcp {host}: connect: connection refused"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"dial tcp {host}: i/o timeout"
    return str(reason)


class Agent:
    def __init__(self, settings: Settings, rel: Release) -> None:
        self.settings = settings
        self.rel = rel
        self.stop_event = threading.Event()

    def run(self) -> int:  # noqa: PLR0915 - K3s agent start-up sequence, in the order it logs
        logs.info(f"Starting k3s agent {self.rel.version} ({self.rel.git_commit})")
        server_url = self.settings.text("server").rstrip("/")
        token = self.settings.text("token")
        if not token and self.settings.text("token-file"):
            with open(self.settings.text("token-file"), encoding="utf-8") as handle:
                token = handle.read().strip()
        if not server_url:
            raise logs.Fatal("Error: --server is required")
        if not token:
            raise logs.Fatal("Error: --token is required")
        if not server_url.startswith("https://"):
            raise logs.Fatal(f"Error: only https:// URLs are supported, invalid scheme: "
                             f"{server_url}")
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        try:
            password = bootstrap.normalize_token(token)
        except bootstrap.TokenError as exc:
            raise logs.Fatal(f"Error: {exc}") from None
        ca = self._validate_connection(server_url, token)
        if ca is None:
            return 0
        verified = ssl.create_default_context(cadata=ca.decode())
        verified.check_hostname = False  # the supervisor URL may be the SLB; CA pins it
        auth = {"Authorization": "Basic " + base64.b64encode(f"node:{password}".encode()).decode()}
        name = node_name(self.settings, socket.gethostname().lower())
        cert_bundle = self._retrieve_config(server_url, verified, auth, name)
        if cert_bundle is None:
            return 0
        data_dir = self.settings.text("data-dir")
        agent_dir = os.path.join(data_dir, "agent")
        cert_path = os.path.join(agent_dir, "client-kubelet.crt")
        key_path = os.path.join(agent_dir, "client-kubelet.key")
        cert_pem, _, key_rest = cert_bundle.partition(b"-----BEGIN PRIVATE KEY-----")
        write_private(cert_path, cert_pem)
        write_private(key_path, b"-----BEGIN PRIVATE KEY-----" + key_rest)
        write_private(os.path.join(agent_dir, "server-ca.crt"), ca)
        client = ssl.create_default_context(cadata=ca.decode())
        client.check_hostname = False
        client.load_cert_chain(cert_path, key_path)

        node_ip = (self.settings.items("node-ip") or [detect_node_ip()])[0]
        node = nodes.new_node(name, node_ip, self.rel.version, server=False,
                              labels=self.settings.items("node-label"),
                              taints=self.settings.items("node-taint"))
        self._register(server_url, client, node)
        logs.info(f"Successfully registered node {name}")
        self._start_flannel(node_ip, server_url, client, data_dir)
        notify_ready()
        interval = go_duration(self.settings.component_arg(
            "kubelet-arg", "node-status-update-frequency") or "10s")
        lease_url = (f"{server_url}/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                     f"leases/{name}")
        while not self.stop_event.wait(interval):
            try:
                _get(lease_url, client, {"Content-Type": "application/json"}, "PUT",
                     json.dumps(nodes.new_lease(name)).encode())
            except JoinError as exc:
                logs.error(f"Failed to update lease: {exc}")
        logs.info("Shutting down k3s agent")
        return 0

    def _start_flannel(self, node_ip: str, server_url: str, client: ssl.SSLContext,
                       data_dir: str) -> None:
        """Pod traffic to the other nodes over 8472/udp (sandbox/k3s/flannel.py); the peers
        are the nodes the API lists (a node may list nodes: system:nodes)."""
        if (self.settings.text("flannel-backend") or "vxlan") != "vxlan":
            return
        flannel.Flannel(node_ip, lambda: flannel.internal_ips(json.loads(_get(
            f"{server_url}/api/v1/nodes", client)).get("items", [])), data_dir,
            self.stop_event).start()

    def _validate_connection(self, server_url: str, token: str) -> bytes | None:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        expected = bootstrap.token_ca_hash(token)
        while not self.stop_event.is_set():
            try:
                ca = _get(f"{server_url}/cacerts", insecure)
            except JoinError as exc:
                logs.error(f"Failed to validate connection to cluster at {server_url}: "
                           f"failed to get CA certs: {exc}")
            else:
                actual = hash_ca(ca)
                if not expected:
                    logs.warn("Cluster CA certificate is not trusted by the host CA bundle, but "
                              "the token does not include a CA hash. Use the full token from "
                              "the server's node-token file to enable Cluster CA validation.")
                    return ca
                if expected == actual:
                    return ca
                logs.error(f"Failed to validate connection to cluster at {server_url}: token CA "
                           f"hash does not match the Cluster CA certificate hash: {expected} != "
                           f"{actual}")
            self.stop_event.wait(2)
        return None

    def _node_password(self) -> str:
        path = NODE_PASSWORD_FILE
        if not os.path.exists(path):
            write_private(path, (secrets.token_hex(16) + "\n").encode())
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()

    def _retrieve_config(self, server_url: str, context: ssl.SSLContext,
                         auth: dict[str, str], name: str) -> bytes | None:
        while not self.stop_event.is_set():
            try:
                _get(f"{server_url}/v1-k3s/config", context, auth)
                headers = dict(auth)
                headers.update({"K3s-Node-Name": name, "K3s-Node-Password": self._node_password()})
                return _get(f"{server_url}/v1-k3s/client-kubelet.crt", context, headers)
            except JoinError as exc:
                logs.info("Waiting to retrieve agent configuration; server is not ready: "
                          f"failed to retrieve configuration from server: {exc}")
            self.stop_event.wait(5)
        return None

    def _register(self, server_url: str, client: ssl.SSLContext, node: dict) -> None:
        url = f"{server_url}/api/v1/nodes"
        while not self.stop_event.is_set():
            try:
                _get(url, client, {"Content-Type": "application/json"}, "POST",
                     json.dumps(node).encode())
                return
            except JoinError as exc:
                logs.error(f"Unable to register node with API server: {exc}")
            self.stop_event.wait(2)
