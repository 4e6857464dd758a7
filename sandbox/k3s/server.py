"""`k3s server`: datastore, bootstrap, certificates, the :6443 listener, kubeconfig, own node.

Why: this is the sequence the panel drives and diagnoses (journal lines, files it reads over
SSH, what kubectl sees). Steps and messages follow K3s's startup order.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import threading
import time

import yaml

from sandbox.k3s import apiserver, bootstrap, certs, logs, nodes, secretsencrypt
from sandbox.k3s.config import Settings
from sandbox.k3s.dsn import (
    PG_SCHEMES,
    DSNError,
    endpoint_scheme,
    parse_endpoint,
    parse_pg_endpoint,
)
from sandbox.k3s.kine import BackendTLS, CompactSettings, DatastoreError, Kine
from sandbox.k3s.kine_pg import PostgresKine
from sandbox.k3s.runtime import (
    detect_node_ip,
    go_duration,
    hash_ca,
    node_name,
    notify_ready,
    write_private,
)
from sandbox.k3s.versions import Release

ALL_ADDRESSES = "0.0.0.0"  # noqa: S104 - K3s listens on every address unless --bind-address

BOOTSTRAP_FILES = ("ServerCA", "ServerCAKey", "ClientCA", "ClientCAKey", "RequestHeaderCA",
                   "RequestHeaderCAKey", "ServiceKey")
TLS_NAMES = {"ServerCA": "server-ca.crt", "ServerCAKey": "server-ca.key",
             "ClientCA": "client-ca.crt", "ClientCAKey": "client-ca.key",
             "RequestHeaderCA": "request-header-ca.crt",
             "RequestHeaderCAKey": "request-header-ca.key", "ServiceKey": "service.key"}


def _generate_bootstrap(secrets_encryption: bool = False) -> dict[str, bytes]:
    server_ca, server_key = certs.new_ca("k3s-server-ca")
    client_ca, client_key = certs.new_ca("k3s-client-ca")
    header_ca, header_key = certs.new_ca("k3s-request-header-ca")
    logs.info("generated self-signed CA certificate CN=k3s-server-ca")
    _, service_key = certs.new_ca("k3s-service-account")
    files = {"ServerCA": server_ca, "ServerCAKey": server_key, "ClientCA": client_ca,
             "ClientCAKey": client_key, "RequestHeaderCA": header_ca,
             "RequestHeaderCAKey": header_key, "ServiceKey": service_key}
    if secrets_encryption:
        files[secretsencrypt.BOOTSTRAP_FIELD] = secretsencrypt.new_config()
    return files


def _resolve_token(settings: Settings, token_path: str) -> str:
    token = settings.text("token")
    if not token and settings.text("token-file"):
        with open(settings.text("token-file"), encoding="utf-8") as handle:
            token = handle.read().strip()
    if not token and os.path.exists(token_path):
        with open(token_path, encoding="utf-8") as handle:
            token = handle.read().strip()
    return token


def _kubeconfig(server_url: str, server_ca: bytes, cert: bytes, key: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    doc = {
        "apiVersion": "v1",
        "clusters": [{"cluster": {"certificate-authority-data": b64(server_ca),
                                  "server": server_url}, "name": "default"}],
        "contexts": [{"context": {"cluster": "default", "user": "default"}, "name": "default"}],
        "current-context": "default", "kind": "Config", "preferences": {},
        "users": [{"name": "default", "user": {"client-certificate-data": b64(cert),
                                               "client-key-data": b64(key)}}],
    }
    return yaml.safe_dump(doc, default_flow_style=False, sort_keys=False)


def warmup_seconds() -> float:
    """How long /readyz fails after the API starts listening (real K3s: several seconds of
    post-start hooks). K3S_STANDIN_WARMUP_SECONDS overrides it; 0 turns it off."""
    return float(os.environ.get("K3S_STANDIN_WARMUP_SECONDS", "2"))


def _mode(text: str) -> int:
    return int(text, 8) if text else 0o600


class Server:
    def __init__(self, settings: Settings, rel: Release) -> None:
        self.settings = settings
        self.rel = rel
        self.data_dir = settings.text("data-dir")
        self.server_dir = os.path.join(self.data_dir, "server")
        self.tls_dir = os.path.join(self.server_dir, "tls")
        self.stop_event = threading.Event()

    def grace_seconds(self) -> float:
        value = self.settings.component_arg("kube-controller-manager-arg",
                                            "node-monitor-grace-period")
        return go_duration(value) if value else 40.0

    def heartbeat_seconds(self) -> float:
        value = self.settings.component_arg("kubelet-arg", "node-status-update-frequency")
        return go_duration(value) if value else 10.0

    def run(self) -> int:
        logs.info(f"Starting k3s {self.rel.version} ({self.rel.git_commit})")
        kine = self._open_datastore()
        os.makedirs(self.tls_dir, mode=0o700, exist_ok=True)
        token = _resolve_token(self.settings, os.path.join(self.server_dir, "token"))
        token = token or secrets.token_hex(16)
        try:
            files, _ = bootstrap.load_or_create(
                kine, token, lambda: _generate_bootstrap(self.settings.bool("secrets-encryption")))
        except (DatastoreError, bootstrap.TokenError) as exc:
            raise logs.Fatal(f"starting kubernetes: preparing server: {exc}") from None
        for field, content in files.items():
            if field in TLS_NAMES:
                write_private(os.path.join(self.tls_dir, TLS_NAMES[field]), content)
        password, agent_password = self._write_tokens(token, files["ServerCA"])
        encryption_config = self._write_encryption_config(files)

        bind = self.settings.text("bind-address")
        node_ips = self.settings.items("node-ip") or [bind or detect_node_ip()]
        port = int(self.settings.text("https-listen-port") or 6443)
        ctx = apiserver.ApiContext(
            kine=kine, version=self.rel.version, git_commit=self.rel.git_commit,
            server_ca=files["ServerCA"], client_ca=files["ClientCA"],
            client_ca_key=files["ClientCAKey"], server_password=password,
            agent_password=agent_password, grace_seconds=self.grace_seconds,
            encryption_config=encryption_config,
            ready_at=time.monotonic() + warmup_seconds(), service_key=files["ServiceKey"])
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        httpd = self._start_api(ctx, files, bind, node_ips, port)
        # :6443 accepts from here on, but like kube-apiserver it is ready (and K3s says so, and
        # tells systemd) only once its post-start hooks are done.
        logs.info("Waiting for API server to become available")
        if self.stop_event.wait(max(0.0, ctx.ready_at - time.monotonic())):
            httpd.shutdown()
            httpd.server_close()
            kine.close()
            logs.info("Shutting down k3s server")
            return 0
        logs.info("Kube API server is now running")
        logs.info("k3s is up and running")
        self._write_kubeconfig(files, bind, port)

        name = node_name(self.settings, socket.gethostname().lower())
        node = nodes.new_node(name, node_ips[0], self.rel.version, server=True,
                              external_ip=",".join(self.settings.items("node-external-ip")),
                              labels=self.settings.items("node-label"),
                              taints=self.settings.items("node-taint"))
        if encryption_config is not None:
            node["metadata"]["annotations"][secretsencrypt.HASH_ANNOTATION] = \
                secretsencrypt.config_hash(encryption_config)
        nodes.register(kine, node)
        logs.info(f"Successfully registered node {name}")
        notify_ready()
        threading.Thread(target=self._compactor, args=(kine,), daemon=True,
                         name="kine-compactor").start()
        self._loop(kine, name)
        httpd.shutdown()
        httpd.server_close()
        kine.close()
        logs.info("Shutting down k3s server")
        return 0

    def _open_datastore(self) -> Kine:
        endpoint = self.settings.text("datastore-endpoint")
        if not endpoint:
            raise logs.Fatal("starting kubernetes: preparing server: this K3s stand-in only "
                             "supports an external mysql:// or postgres:// datastore "
                             "(--datastore-endpoint)")
        try:
            backend_tls = BackendTLS(self.settings.text("datastore-cafile"),
                                     self.settings.text("datastore-certfile"),
                                     self.settings.text("datastore-keyfile"))
            kine: Kine
            if endpoint_scheme(endpoint) in PG_SCHEMES:
                kine = PostgresKine(parse_pg_endpoint(endpoint), self.rel, backend_tls)
            else:
                kine = Kine(parse_endpoint(endpoint), self.rel, backend_tls)
            kine.setup()
            kine.fill_pool()
        except (DSNError, DatastoreError) as exc:
            raise logs.Fatal("starting kubernetes: preparing server: creating storage endpoint:"
                             f" building kine: {exc}") from None
        logs.info("Kine available at unix://kine.sock")
        return kine

    def _write_encryption_config(self, files: dict[str, bytes]) -> bytes | None:
        """server/cred/encryption-config.json (0600) with --secrets-encryption, else None.

        The cluster's config comes from the bootstrap data; a server that starts with the
        flag in a cluster created without it generates its own (as K3s does), and its hash
        then differs from the other servers'.
        """
        path = os.path.join(self.server_dir, secretsencrypt.CONFIG_NAME)
        if not self.settings.bool("secrets-encryption"):
            return None
        content = files.get(secretsencrypt.BOOTSTRAP_FIELD)
        if content is None:
            content = (open(path, "rb").read() if os.path.exists(path)  # noqa: SIM115
                       else secretsencrypt.new_config())
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        write_private(path, content)
        return content

    def _write_tokens(self, token: str, server_ca: bytes) -> tuple[str, str]:
        """server/token (K10<ca hash>::server:<password>), node-token and agent-token."""
        password = bootstrap.normalize_token(token)
        ca_hash = hash_ca(server_ca)
        expected_hash = bootstrap.token_ca_hash(token)
        if expected_hash and expected_hash != ca_hash:
            raise logs.Fatal("starting kubernetes: preparing server: token CA hash does not "
                             f"match the Cluster CA certificate hash: {expected_hash} != "
                             f"{ca_hash}")
        write_private(os.path.join(self.server_dir, "token"),
                      f"K10{ca_hash}::server:{password}\n".encode())
        agent_token = self.settings.text("agent-token")
        agent_password = bootstrap.normalize_token(agent_token) if agent_token else password
        for link in ("node-token", "agent-token"):
            link_path = os.path.join(self.server_dir, link)
            if os.path.lexists(link_path):
                os.unlink(link_path)
            if link == "agent-token" and agent_token:
                write_private(link_path, f"K10{ca_hash}::node:{agent_password}\n".encode())
            else:
                os.symlink("token", link_path)
        return password, agent_password

    def _start_api(self, ctx: apiserver.ApiContext, files: dict[str, bytes], bind: str,
                   node_ips: list[str], port: int) -> apiserver.TLSServer:
        hostname = socket.gethostname().lower()
        sans = certs.serving_sans(hostname, node_ips + ([bind] if bind else []),
                                  self.settings.items("tls-san"))
        serving_cert, serving_key = certs.serving_cert(files["ServerCA"], files["ServerCAKey"],
                                                       sans)
        address = bind or ALL_ADDRESSES
        logs.info(f"Running kube-apiserver --advertise-address={node_ips[0]} "
                  f"--bind-address={address} --secure-port={port} "
                  f"--tls-cert-file={self.tls_dir}/serving-kube-apiserver.crt "
                  "--anonymous-auth=false --etcd-servers=unix://kine.sock")
        try:
            return apiserver.serve(ctx, address, port, cert_pem=serving_cert,
                                   key_pem=serving_key, tmp_dir=self.tls_dir)
        except OSError as exc:
            raise logs.Fatal(f"starting kubernetes: listen tcp {address}:{port}: "
                             f"bind: {(exc.strerror or str(exc)).lower()}") from None

    def _admin_certificate(self, files: dict[str, bytes]) -> tuple[bytes, bytes]:
        """client-admin.crt (leaf + CA) and key: kept across restarts, renewed like K3s does
        (missing, another CA, or within the release's renewal window of expiry)."""
        cert_path = os.path.join(self.tls_dir, "client-admin.crt")
        key_path = os.path.join(self.tls_dir, "client-admin.key")
        existing = None
        if os.path.exists(cert_path) and os.path.exists(key_path):
            with open(cert_path, "rb") as cert_file, open(key_path, "rb") as key_file:
                existing = (cert_file.read(), key_file.read())
        reason = certs.renewal_reason(existing[0] if existing else None, files["ClientCA"],
                                      self.rel.cert_renew_days)
        if existing and reason is None:
            return existing
        if existing:
            logs.info(f"Certificate {cert_path} {reason}; renewing it")
        cert, key = certs.client_cert(files["ClientCA"], files["ClientCAKey"], "system:admin",
                                      "system:masters")
        chain = cert + files["ClientCA"]
        write_private(cert_path, chain)
        write_private(key_path, key)
        return chain, key

    def _write_kubeconfig(self, files: dict[str, bytes], bind: str, port: int) -> None:
        chain, key = self._admin_certificate(files)
        host = bind if bind and bind not in (ALL_ADDRESSES, "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        text = _kubeconfig(f"https://{host}:{port}", files["ServerCA"], chain, key)
        path = self.settings.text("write-kubeconfig") or "/etc/rancher/k3s/k3s.yaml"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = _mode(self.settings.text("write-kubeconfig-mode"))
        write_private(path, text.encode(), mode)
        os.chmod(path, mode)
        logs.info(f"Wrote kubeconfig {path}")

    def _loop(self, kine: Kine, name: str) -> None:
        interval = self.heartbeat_seconds()
        while not self.stop_event.wait(interval):
            try:
                nodes.heartbeat(kine, name)
            except DatastoreError as exc:
                logs.error(f"Failed to update lease: {exc}")

    def _compactor(self, kine: Kine) -> None:
        """kine's compactor: the first pass after one interval, each pass compacting up to the
        revision the previous one saw (never the newest min-retain revisions)."""
        settings = CompactSettings.from_environment()
        if settings.interval <= 0:
            logs.info("COMPACT disabled; automatic compaction will not occur")
            return
        try:
            compact_rev, target_rev = kine.revisions()
        except DatastoreError:
            compact_rev, target_rev = 0, 0
        while not self.stop_event.wait(settings.interval):
            try:
                compact_rev, target_rev = kine.compact_iter(compact_rev, target_rev, settings)
            except DatastoreError as exc:
                logs.error(f"Compact failed: {exc}")
