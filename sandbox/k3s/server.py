"""`k3s server`: datastore, bootstrap, certificates, the :6443 listener, kubeconfig, own node.

Why: this is the sequence the panel drives and diagnoses (journal lines, files it reads over
SSH, what kubectl sees). Steps and messages follow K3s's startup order.
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
import time

import yaml

from sandbox.k3s import (
    apiserver,
    bootstrap,
    certs,
    etcd,
    etcdnodes,
    flannel,
    logs,
    nodes,
    secretsencrypt,
    snapshots,
)
from sandbox.k3s.agent import JoinError
from sandbox.k3s.agent import _get as agent_get
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
             "RequestHeaderCAKey": "request-header-ca.key", "ServiceKey": "service.key",
             **etcd.BOOTSTRAP_TLS}


def _generate_bootstrap(secrets_encryption: bool = False, embedded_etcd: bool = False
                        ) -> dict[str, bytes]:
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
    if embedded_etcd:
        files.update(etcd.new_cas())
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

    def embedded_etcd(self) -> bool:
        """assignManagedDriver (k3s pkg/cluster/managed.go): etcd when its WAL is on disk, or
        with no --datastore-endpoint and either --cluster-init or --server plus a token.
        --cluster-init with an endpoint is not an error: the external datastore is used.
        A removed member's data (tombstone) is moved aside first, so it joins again."""
        paths = etcd.EtcdPaths(self.data_dir)
        if paths.initialized() and not self.settings.bool("cluster-reset"):
            paths.remove_tombstoned()
        if paths.initialized():
            return True
        if self.settings.text("datastore-endpoint"):
            return False
        token = self.settings.text("token") or self.settings.text("token-file")
        return self.settings.bool("cluster-init") or bool(token and self.settings.text("server"))

    def run(self) -> int:  # noqa: PLR0915 - K3s's start-up sequence, in the order it logs
        logs.info(f"Starting k3s {self.rel.version} ({self.rel.git_commit})")
        os.makedirs(self.tls_dir, mode=0o700, exist_ok=True)
        token = _resolve_token(self.settings, os.path.join(self.server_dir, "token"))
        token = token or secrets.token_hex(16)
        bind = self.settings.text("bind-address")
        node_ips = self.settings.items("node-ip") or [bind or detect_node_ip()]
        name = node_name(self.settings, socket.gethostname().lower())
        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop_event.set())
        member: etcd.Member | None = None
        kine: Kine
        if self.embedded_etcd():
            member = etcd.Member(etcd.EtcdPaths(self.data_dir), name, node_ips[0],
                                 self.settings.items("etcd-arg"),
                                 self.settings.bool("etcd-expose-metrics"))
            self.member = member
            files = self._start_etcd(member, token, node_ips)
            kine = member.store
        else:
            kine = self._open_datastore()
            try:
                files, _ = bootstrap.load_or_create(
                    kine, token,
                    lambda: _generate_bootstrap(self.settings.bool("secrets-encryption")))
            except (DatastoreError, bootstrap.TokenError) as exc:
                raise logs.Fatal(f"starting kubernetes: preparing server: {exc}") from None
        for field, content in files.items():
            if field in TLS_NAMES:
                write_private(os.path.join(self.tls_dir, TLS_NAMES[field]), content)
        password, agent_password = self._write_tokens(token, files["ServerCA"])
        encryption_config = self._write_encryption_config(files)
        port = int(self.settings.text("https-listen-port") or 6443)
        ctx = apiserver.ApiContext(
            kine=kine, version=self.rel.version, git_commit=self.rel.git_commit,
            server_ca=files["ServerCA"], client_ca=files["ClientCA"],
            client_ca_key=files["ClientCAKey"], server_password=password,
            agent_password=agent_password, grace_seconds=self.grace_seconds,
            encryption_config=encryption_config,
            ready_at=time.monotonic() + warmup_seconds(), service_key=files["ServiceKey"],
            member=member, bootstrap_files=files, node_name=name,
            snapshot_settings=self.snapshot_settings())
        httpd = self._start_api(ctx, files, bind, node_ips, port)
        # :6443 accepts from here on, but like kube-apiserver it is ready (and K3s says so, and
        # tells systemd) only once its post-start hooks are done.
        logs.info("Waiting for API server to become available")
        if self.stop_event.wait(max(0.0, ctx.ready_at - time.monotonic())):
            httpd.shutdown()
            httpd.server_close()
            kine.close()
            self._stop_etcd()
            logs.info("Shutting down k3s server")
            return 0
        logs.info("Kube API server is now running")
        logs.info("k3s is up and running")
        self._write_kubeconfig(files, bind, port)

        node = nodes.new_node(name, node_ips[0], self.rel.version, server=True,
                              external_ip=",".join(self.settings.items("node-external-ip")),
                              labels=self.settings.items("node-label"),
                              taints=self.settings.items("node-taint"))
        if encryption_config is not None:
            node["metadata"]["annotations"][secretsencrypt.HASH_ANNOTATION] = \
                secretsencrypt.config_hash(encryption_config)
        if member is not None:
            etcdnodes.etcd_node_metadata(node, member)
        nodes.register(kine, node)
        logs.info(f"Successfully registered node {name}")
        if (self.settings.text("flannel-backend") or "vxlan") == "vxlan":
            flannel.Flannel(node_ips[0], lambda: flannel.internal_ips(
                nodes.load_nodes(kine, self.grace_seconds())), self.data_dir,
                self.stop_event).start()
        notify_ready()
        if member is None:
            threading.Thread(target=self._compactor, args=(kine,), daemon=True,
                             name="kine-compactor").start()
        else:
            self._start_etcd_controllers(member, ctx)
        self._loop(kine, name)
        httpd.shutdown()
        httpd.server_close()
        kine.close()
        self._stop_etcd()
        logs.info("Shutting down k3s server")
        return 0

    # -- embedded etcd --------------------------------------------------------------------------
    member: etcd.Member | None = None

    def _stop_etcd(self) -> None:
        if self.member is not None:
            self.member.stop()

    def _start_etcd(self, member: etcd.Member, token: str, node_ips: list[str]
                    ) -> dict[str, bytes]:
        """Start (or create, or join) this server's member; the cluster's bootstrap files.

        Order as K3s: bootstrap data first (generated, from disk, or over HTTPS from the
        server joined), then etcd, then the datastore test, then the bootstrap key in etcd
        (which is what refuses a restarted server whose token is not the cluster's)."""
        paths = member.paths
        server_url = self.settings.text("server")
        if self.settings.bool("cluster-reset"):
            self._cluster_reset(member, token, node_ips)
        if os.path.exists(paths.reset_file):
            os.remove(paths.reset_file)
        try:
            bootstrap.normalize_token(token)  # a malformed token fails before anything starts
        except bootstrap.TokenError as exc:
            raise logs.Fatal(f"starting kubernetes: preparing server: {exc}") from None
        if paths.initialized():
            files = self._files_from_disk()
            etcd.write_leaf_certs(paths, files, node_ips)
            member.set_name(False)
            member.start_existing()
        elif server_url:
            logs.info("Managed etcd cluster not yet initialized")
            files = self._http_bootstrap(server_url, token)
            self._write_files(files)
            etcd.write_leaf_certs(paths, files, node_ips)
            member.set_name(False)
            self._join(member, server_url, token)
        else:
            files = _generate_bootstrap(self.settings.bool("secrets-encryption"),
                                        embedded_etcd=True)
            self._write_files(files)
            etcd.write_leaf_certs(paths, files, node_ips)
            member.set_name(False)
            member.new_cluster()
        member.watch(self._etcd_exited)
        if not member.wait_ready(self.stop_event):
            member.stop()
            raise SystemExit(0)
        try:
            stored, _ = bootstrap.load_or_create(member.store, token, lambda: files)
        except (DatastoreError, bootstrap.TokenError) as exc:
            member.stop()
            raise logs.Fatal(f"starting kubernetes: preparing server: {exc}") from None
        except logs.Fatal:
            member.stop()
            raise
        return stored

    def _etcd_exited(self, message: str) -> None:
        """K3s's executor: etcd stopping under a running server is fatal (systemd restarts)."""
        logs.fatal(message)
        os._exit(1)

    def _write_files(self, files: dict[str, bytes]) -> None:
        for field, content in files.items():
            if field in TLS_NAMES:
                write_private(os.path.join(self.tls_dir, TLS_NAMES[field]), content)

    def _files_from_disk(self) -> dict[str, bytes]:
        files = {}
        for field, relative in TLS_NAMES.items():
            path = os.path.join(self.tls_dir, relative)
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    files[field] = handle.read()
        missing = [f for f in ("ETCDServerCA", "ETCDServerCAKey", "ETCDPeerCA", "ETCDPeerCAKey")
                   if f not in files]
        if missing:
            raise logs.Fatal("starting kubernetes: preparing server: etcd certificates missing "
                             f"under {self.tls_dir}/etcd: {', '.join(missing)}")
        return files

    def _join_client(self, server_url: str, token: str) -> ssl.SSLContext:
        """clientaccess.ParseAndValidateToken: the cluster CA from /cacerts, checked against a
        K10 token's hash; a short token trusts whatever CA the server sends."""
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        try:
            ca = agent_get(f"{server_url}/cacerts", insecure)
        except JoinError as exc:
            raise logs.Fatal(f"starting kubernetes: preparing server: failed to get CA certs: "
                             f"{exc}") from None
        expected = bootstrap.token_ca_hash(token)
        if expected and expected != hash_ca(ca):
            raise logs.Fatal("starting kubernetes: preparing server: token CA hash does not "
                             f"match the Cluster CA certificate hash: {expected} != "
                             f"{hash_ca(ca)}")
        context = ssl.create_default_context(cadata=ca.decode())
        context.check_hostname = False  # K3s dials the --server address, which may be an LB
        return context

    def _auth(self, token: str) -> dict[str, str]:
        credentials = f"server:{bootstrap.normalize_token(token)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}

    def _http_bootstrap(self, server_url: str, token: str) -> dict[str, bytes]:
        """httpBootstrap: GET /v1-k3s/server-bootstrap with the server token.

        A wrong token is refused by the server: `.../v1-k3s/server-bootstrap: 401
        Unauthorized` (k3s-io/k3s#2463, #2310 made it a 401)."""
        server_url = server_url.rstrip("/")
        context = self._join_client(server_url, token)
        try:
            body = agent_get(f"{server_url}/v1-k3s/server-bootstrap", context, self._auth(token))
        except JoinError as exc:
            raise logs.Fatal(f"starting kubernetes: preparing server: {exc}") from None
        return bootstrap.decode_files(body)

    def _db_info(self, server_url: str, token: str) -> list[dict]:
        """ClientURLs: the member list from the joined server's /db/info (its CA checked
        against a K10 token's hash first); JoinRetry as K3s's memberListError."""
        server_url = server_url.rstrip("/")
        context = self._join_client(server_url, token)
        try:
            body = agent_get(f"{server_url}/db/info", context, self._auth(token))
            return list(json.loads(body).get("members", []))
        except (JoinError, ValueError, AttributeError) as exc:
            raise etcd.JoinRetry(f"failed to get MemberList from server: {exc}") from None

    def _join(self, member: etcd.Member, server_url: str, token: str) -> None:
        """ETCD.Start's join loop (pkg/etcd/etcd.go): every second until it works; etcd's
        "too many learners"/"unhealthy cluster" and a failed /db/info are waited out, anything
        else is fatal (`etcd cluster join failed: ...`)."""
        while True:
            try:
                members = self._db_info(server_url, token)
            except etcd.JoinRetry as exc:
                logs.info(f"Waiting to retrieve etcd cluster member list: {exc}")
            else:
                try:
                    member.join(members)
                    return
                except etcd.JoinRetry as exc:
                    logs.info(f"Waiting for other members to finish joining etcd cluster: "
                              f"{exc}")
            if self.stop_event.wait(1.0):
                raise SystemExit(0)

    def _cluster_reset(self, member: etcd.Member, token: str, node_ips: list[str]) -> None:
        """--cluster-reset [--cluster-reset-restore-path]: a new one-member cluster from this
        member's data (or from a snapshot), then exit (pkg/cluster/managed.go start,
        pkg/etcd/etcd.go Reset/Restore)."""
        paths = member.paths
        restore_path = self.settings.text("cluster-reset-restore-path")
        if not restore_path and os.path.exists(paths.reset_file):
            raise logs.Fatal(
                "starting kubernetes: preparing server: start managed database: Managed etcd "
                "cluster membership was previously reset, please remove the cluster-reset flag "
                "and start k3s normally. If you need to perform another cluster reset, you must "
                f"first manually delete the {paths.reset_file} file")
        files = self._files_from_disk()
        etcd.write_leaf_certs(paths, files, node_ips)
        member.set_name(False)
        if restore_path:
            if not os.path.exists(restore_path):
                raise logs.Fatal("starting kubernetes: preparing server: start managed database: "
                                 f"etcd: snapshot path does not exist: {restore_path}")
            if os.path.isdir(restore_path):
                raise logs.Fatal("starting kubernetes: preparing server: start managed database: "
                                 "etcd: snapshot path must be a file, not a directory: "
                                 f"{restore_path}")
            member.set_name(True)
            member.restore(restore_path)
        else:
            member.set_name(True)
        write_private(paths.reset_file, b"")
        member.new_cluster(reset=True)
        try:
            while not self.stop_event.wait(2):
                if member.proc is not None and member.proc.poll() is not None:
                    raise logs.Fatal("starting kubernetes: preparing server: start managed "
                                     f"database: etcd exited: exit status "
                                     f"{member.proc.returncode}")
                try:
                    member.test()
                    members = member.client.member_list()
                except DatastoreError:
                    continue
                if len(members) == 1 and members[0].get("name") == member.name:
                    bootstrap.load_or_create(member.store, token, lambda: files)
                    member.stop()
                    logs.info("Managed etcd cluster membership has been reset, restart without "
                              "--cluster-reset flag now. Backup and delete ${datadir}/server/db "
                              "on each peer etcd server and rejoin the nodes")
                    raise SystemExit(0)
        finally:
            member.stop()
        raise SystemExit(0)

    def _start_etcd_controllers(self, member: etcd.Member, ctx: apiserver.ApiContext) -> None:
        threading.Thread(target=member.manage_learners, args=(self.stop_event,), daemon=True,
                         name="etcd-learners").start()
        threading.Thread(target=self._member_controller, args=(member, ctx), daemon=True,
                         name="etcd-member-controller").start()
        if not self.settings.bool("etcd-disable-snapshots"):
            threading.Thread(target=self._snapshot_cron, args=(member, ctx), daemon=True,
                             name="etcd-snapshot-cron").start()

    def _member_controller(self, member: etcd.Member, ctx: apiserver.ApiContext) -> None:
        """managed-etcd-controller (pkg/etcd/member_controller.go), on the etcd leader: a Node
        annotated etcd.k3s.cattle.io/remove=true has its member removed; a deleted Node
        (held by the finalizer) has its member removed, then the finalizer goes."""
        logs.info("Starting managed etcd member removal controller")
        while not self.stop_event.wait(max(1.0, etcd.manage_interval() / 5)):
            if not member.is_leader():
                continue
            try:
                etcdnodes.reconcile(member, ctx.kine)
            except DatastoreError as exc:
                logs.error(f"managed-etcd-controller: {exc}")

    def _snapshot_cron(self, member: etcd.Member, ctx: apiserver.ApiContext) -> None:
        schedule = self.settings.text("etcd-snapshot-schedule-cron") or "0 */12 * * *"
        try:
            cron = snapshots.Cron(schedule)
        except ValueError as exc:
            logs.error(f"Failed to parse etcd-snapshot-schedule-cron {schedule!r}: {exc}")
            return
        while not self.stop_event.is_set():
            if self.stop_event.wait(cron.seconds_until_next()):
                return
            try:
                snapshots.save(member, self.snapshot_settings(), ctx.node_name,
                               self.settings.text("etcd-snapshot-name") or "etcd-snapshot",
                               scheduled=True)
            except DatastoreError as exc:
                logs.error(f"Failed to take scheduled snapshot: {exc}")

    def snapshot_settings(self) -> snapshots.SnapshotSettings:
        retention = self.settings.text("etcd-snapshot-retention")
        default = etcd.EtcdPaths(self.data_dir).snapshot_dir
        return snapshots.SnapshotSettings(
            directory=self.settings.text("etcd-snapshot-dir") or default,
            retention=int(retention) if retention else 5, default_directory=default,
            compress=self.settings.bool("etcd-snapshot-compress"))

    def _open_datastore(self) -> Kine:
        endpoint = self.settings.text("datastore-endpoint")
        if not endpoint:
            raise logs.Fatal("starting kubernetes: preparing server: this K3s stand-in "
                             "supports an external mysql:// or postgres:// datastore "
                             "(--datastore-endpoint) or embedded etcd (--cluster-init, or "
                             "--server with --token), not SQLite")
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
                  "--anonymous-auth=false " + (
                      f"--etcd-cafile={self.tls_dir}/etcd/server-ca.crt "
                      f"--etcd-certfile={self.tls_dir}/etcd/client.crt "
                      f"--etcd-keyfile={self.tls_dir}/etcd/client.key "
                      "--etcd-servers=https://127.0.0.1:2379" if self.member is not None
                      else "--etcd-servers=unix://kine.sock"))
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
        """Renew the lease until stopped. The renewals run in their own thread: a write that
        hangs (etcd without quorum answers after 15 s) must not delay a stop."""
        threading.Thread(target=self._heartbeats, args=(kine, name), daemon=True,
                         name="kubelet-lease").start()
        while not self.stop_event.wait(1):  # short waits: signal handlers run in between
            pass

    def _heartbeats(self, kine: Kine, name: str) -> None:
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
