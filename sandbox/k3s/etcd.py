"""K3s's embedded etcd, run for real: a child `etcd` process, its certificates, and a client.

Why: a cluster made with `--cluster-init` keeps its state in etcd, so quorum, member lists,
snapshots and restores are real and what the panel diagnoses over SSH is what a K3s host
shows. K3s runs etcd in-process (k3s-io/k3s pkg/daemons/executor); the stand-in runs the
Debian etcd 3.4 binary as a child that dies with the server (PR_SET_PDEATHSIG), so
`systemctl stop k3s` stops the member as it does on a real host.

Facts from k3s-io/k3s pkg/etcd/etcd.go (ETCD.cluster, newCluster, join, setName, RemovePeer,
Test), pkg/cluster/managed.go (assignManagedDriver, start) and
pkg/daemons/control/deps/deps.go (the server/tls/etcd file names):
  data dir         ${data-dir}/server/db/etcd, member name in db/etcd/name
                   (`<node name>-<8 hex of a UUID>`), reset flag ${data-dir}/server/db/reset-flag
  listen client    https://127.0.0.1:2379,https://<node-ip>:2379 (loopback only while resetting),
                   HTTP (JSON gateway) https://127.0.0.1:2382 (ListenClientHTTPURLs)
  listen peer      https://127.0.0.1:2380,https://<node-ip>:2380; advertise <node-ip>
  metrics          http://127.0.0.1:2381
  TLS              server-ca.crt/.key and peer-ca.crt/.key (shared through the bootstrap data as
                   ETCDServerCA, ETCDServerCAKey, ETCDPeerCA, ETCDPeerCAKey); per server
                   server-client.crt/.key (etcd's client listener), peer-server-client.crt/.key
                   (peer listener and peer client), client.crt/.key (what K3s's own clients use)
  tuning           --election-timeout=5000 --heartbeat-interval=500 --snapshot-count=10000
  joining          /db/info of the server joined, MemberAddAsLearner, then
                   --initial-cluster-state=existing; the leader promotes learners every 15 s.
The stand-in talks to etcd through etcd's v3 JSON gateway on https://127.0.0.1:2382 (where a
real K3s's embedded etcd serves it: ListenClientHTTPURLs, so its 2379 is gRPC only) and uses
etcdctl (gRPC, 2379) only for snapshot save/restore (K3s uses etcd's snapshot package).
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from sandbox.k3s import certs, logs
from sandbox.k3s.kine import DatastoreError, KeyExists, Kine, Row
from sandbox.k3s.runtime import write_private

ETCD_BINARY = os.environ.get("K3S_STANDIN_ETCD_BINARY", "/usr/bin/etcd")
ETCDCTL_BINARY = os.environ.get("K3S_STANDIN_ETCDCTL_BINARY", "/usr/bin/etcdctl")

# Bootstrap fields (k3s pkg/daemons/config ControlRuntimeBootstrap) -> path under server/tls.
BOOTSTRAP_TLS = {"ETCDServerCA": "etcd/server-ca.crt", "ETCDServerCAKey": "etcd/server-ca.key",
                 "ETCDPeerCA": "etcd/peer-ca.crt", "ETCDPeerCAKey": "etcd/peer-ca.key"}

# Node metadata K3s's etcd controllers use (pkg/etcd/etcd.go, member_controller.go).
ETCD_ROLE_LABEL = "node-role.kubernetes.io/etcd"
NODE_NAME_ANNOTATION = "etcd.k3s.cattle.io/node-name"
NODE_ADDRESS_ANNOTATION = "etcd.k3s.cattle.io/node-address"
REMOVE_ANNOTATION = "etcd.k3s.cattle.io/remove"
REMOVED_NODE_NAME_ANNOTATION = "etcd.k3s.cattle.io/removed-node-name"
# wrangler's OnRemove handler "managed-etcd-controller" holds its finalizer on every Node.
MEMBER_FINALIZER = "wrangler.cattle.io/managed-etcd-controller"

# What etcd's rafthttp says when its peers tell it it is no member any more.
MEMBER_REMOVED = "the member has been permanently removed from the cluster"
MAX_BACKUP_RETENTION = 5     # maxBackupRetention

TEST_TIMEOUT = 10.0          # testTimeout
DIAL_TIMEOUT = 2.0           # defaultDialTimeout
# etcd's own request timeout is 5 s + 2 x election timeout (15 s with K3s's 5000 ms): without
# quorum a write answers "etcdserver: request timed out" after 15 s, a linearizable read after
# about 28 s (measured on etcd 3.4.23); wait longer than that for etcd's own answer.
REQUEST_TIMEOUT = 40.0


# ListenClientHTTPURLs (pkg/etcd/etcd.go cluster()): etcd's JSON gateway, loopback only.
HTTP_CLIENT_URL = "https://127.0.0.1:2382"
# rpctypes.ErrTooManyLearners and ErrUnhealthy: ETCD.Start retries the join on these.
JOIN_RETRY_ERRORS = ("etcdserver: too many learner members in cluster",
                     "etcdserver: unhealthy cluster")


class JoinRetry(Exception):
    """A join ETCD.Start tries again a second later (the message is etcd's or K3s's)."""


def manage_interval() -> float:
    """manageTickerTime (15 s): how often the leader tries to promote learners.
    K3S_STANDIN_ETCD_MANAGE_SECONDS scales it for tests."""
    return float(os.environ.get("K3S_STANDIN_ETCD_MANAGE_SECONDS", "15"))


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def _prefix_end(prefix: str) -> str:
    """etcd's range end for a prefix (clientv3.GetPrefixRangeEnd)."""
    raw = bytearray(prefix.encode())
    for index in range(len(raw) - 1, -1, -1):
        if raw[index] < 0xFF:
            raw[index] += 1
            return _b64(bytes(raw[:index + 1]))
    return _b64(b"\0")


@dataclass(frozen=True)
class EtcdPaths:
    data_dir: str  # K3s's --data-dir

    @property
    def server_dir(self) -> str:
        return os.path.join(self.data_dir, "server")

    @property
    def db_dir(self) -> str:
        return os.path.join(self.server_dir, "db", "etcd")

    @property
    def wal_dir(self) -> str:
        return os.path.join(self.db_dir, "member", "wal")

    @property
    def name_file(self) -> str:
        return os.path.join(self.db_dir, "name")

    @property
    def reset_file(self) -> str:
        return os.path.join(self.server_dir, "db", "reset-flag")

    @property
    def snapshot_dir(self) -> str:
        return os.path.join(self.server_dir, "db", "snapshots")

    @property
    def tls_dir(self) -> str:
        return os.path.join(self.server_dir, "tls", "etcd")

    def tls(self, name: str) -> str:
        return os.path.join(self.tls_dir, name)

    def remove_tombstoned(self) -> None:
        """Register: a tombstone moves db/etcd to db/etcd-backup-<unix> (5 kept), so the
        server joins the cluster again as a new member (backupDirWithRetention)."""
        if not os.path.exists(os.path.join(self.db_dir, "tombstone")):
            return
        logs.info("tombstone file has been detected, removing data dir to rejoin the cluster")
        parent = os.path.dirname(self.db_dir)
        base = os.path.basename(self.db_dir) + "-backup"
        backups = sorted((e for e in os.listdir(parent) if e.startswith(base)
                          and os.path.isdir(os.path.join(parent, e))),
                         key=lambda e: os.path.getmtime(os.path.join(parent, e)), reverse=True)
        for old in backups[MAX_BACKUP_RETENTION:]:
            shutil.rmtree(os.path.join(parent, old), ignore_errors=True)
        os.rename(self.db_dir, f"{self.db_dir}-backup-{int(time.time())}")

    def initialized(self) -> bool:
        """IsInitialized: the WAL directory exists."""
        return os.path.isdir(self.wal_dir)


def new_cas() -> dict[str, bytes]:
    """The two etcd CAs the first server mints (CN etcd-server-ca@<ts>, etcd-peer-ca@<ts>)."""
    server_ca, server_key = certs.new_ca("etcd-server-ca")
    peer_ca, peer_key = certs.new_ca("etcd-peer-ca")
    return {"ETCDServerCA": server_ca, "ETCDServerCAKey": server_key,
            "ETCDPeerCA": peer_ca, "ETCDPeerCAKey": peer_key}


def write_leaf_certs(paths: EtcdPaths, files: dict[str, bytes], node_ips: list[str]) -> None:
    """Each server's three etcd leaves, re-issued on every start as deps.genETCDCerts does."""
    sans = ["localhost", "127.0.0.1", *node_ips]
    leaves = {
        "client": certs.etcd_leaf(files["ETCDServerCA"], files["ETCDServerCAKey"],
                                  "etcd-client", None, server=False),
        "server-client": certs.etcd_leaf(files["ETCDServerCA"], files["ETCDServerCAKey"],
                                         "etcd-server", sans, server=True),
        "peer-server-client": certs.etcd_leaf(files["ETCDPeerCA"], files["ETCDPeerCAKey"],
                                              "etcd-peer", sans, server=True),
    }
    for base, (cert, key) in leaves.items():
        write_private(paths.tls(f"{base}.crt"), cert)
        write_private(paths.tls(f"{base}.key"), key)


# -- client ---------------------------------------------------------------------------------
class EtcdClient:
    """etcd's v3 JSON gateway over HTTPS with K3s's client certificate (server/tls/etcd)."""

    def __init__(self, endpoints: list[str], paths: EtcdPaths) -> None:
        self.endpoints = endpoints
        self.paths = paths
        self._context: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        if self._context is None:
            context = ssl.create_default_context(cafile=self.paths.tls("server-ca.crt"))
            context.load_cert_chain(self.paths.tls("client.crt"), self.paths.tls("client.key"))
            context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
            self._context = context
        return self._context

    def call(self, path: str, body: dict, timeout: float = REQUEST_TIMEOUT,
             endpoint: str | None = None) -> dict:
        """POST to the first endpoint that answers; DatastoreError with etcd's message."""
        last = ""
        for target in [endpoint] if endpoint else self.endpoints:
            request = urllib.request.Request(  # noqa: S310 - https endpoints only
                target.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(  # noqa: S310 - https endpoints only
                        request, context=self.context(), timeout=timeout) as answer:
                    return dict(json.loads(answer.read() or b"{}"))
            except urllib.error.HTTPError as exc:
                try:
                    detail = json.loads(exc.read() or b"{}")
                except ValueError:
                    detail = {}
                raise DatastoreError(detail.get("message") or detail.get("error")
                                     or f"{exc.code} {exc.reason}") from None
            except TimeoutError:
                last = "context deadline exceeded"
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                host = target.split("://", 1)[-1]
                if isinstance(reason, ConnectionRefusedError):
                    last = f"dial tcp {host}: connect: connection refused"
                elif isinstance(reason, TimeoutError):
                    last = "context deadline exceeded"
                else:
                    last = str(reason)
        raise DatastoreError(last or "no etcd endpoint")

    # -- cluster / maintenance --------------------------------------------------------------
    def member_list(self, timeout: float = TEST_TIMEOUT) -> list[dict]:
        return list(self.call("/v3/cluster/member/list", {}, timeout).get("members", []))

    def member_add(self, peer_urls: list[str], learner: bool) -> dict:
        return self.call("/v3/cluster/member/add", {"peerURLs": peer_urls,
                                                    "isLearner": learner})

    def member_remove(self, member_id: str) -> None:
        self.call("/v3/cluster/member/remove", {"ID": member_id})

    def member_promote(self, member_id: str) -> None:
        self.call("/v3/cluster/member/promote", {"ID": member_id}, TEST_TIMEOUT)

    def member_update(self, member_id: str, peer_urls: list[str]) -> None:
        self.call("/v3/cluster/member/update", {"ID": member_id, "peerURLs": peer_urls})

    def status(self, endpoint: str | None = None, timeout: float = TEST_TIMEOUT) -> dict:
        return self.call("/v3/maintenance/status", {}, timeout, endpoint)

    # -- key/value ----------------------------------------------------------------------------
    def range(self, key: str, prefix: bool = False, timeout: float = REQUEST_TIMEOUT) -> dict:
        body: dict = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _prefix_end(key)
        return self.call("/v3/kv/range", body, timeout)

    def put(self, key: str, value: bytes) -> int:
        answer = self.call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(answer.get("header", {}).get("revision", 0))


def _row(kv: dict) -> Row:
    return Row(id=int(kv.get("mod_revision", 0)), name=base64.b64decode(kv["key"]).decode(),
               created=0, deleted=0, create_revision=int(kv.get("create_revision", 0)),
               prev_revision=0, value=base64.b64decode(kv.get("value", "")))


class EtcdStore(Kine):
    """The apiserver's storage in etcd, with kine's interface (get/list/create/update/delete).

    A Row's id is the key's mod_revision, the resourceVersion kube-apiserver reports."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client
        self._lock = threading.RLock()

    def get(self, name: str) -> Row | None:
        kvs = self.client.range(name).get("kvs", [])
        return _row(kvs[0]) if kvs else None

    def list(self, prefix: str) -> list[Row]:
        return sorted((_row(kv) for kv in self.client.range(prefix, prefix=True).get("kvs", [])),
                      key=lambda row: row.name)

    def _txn(self, name: str, compare: dict, value: bytes) -> int:
        answer = self.client.call("/v3/kv/txn", {
            "compare": [{"key": _b64(name), "result": "EQUAL", **compare}],
            "success": [{"request_put": {"key": _b64(name), "value": _b64(value)}}]})
        if not answer.get("succeeded"):
            raise KeyExists()
        return int(answer.get("header", {}).get("revision", 0))

    def create(self, name: str, value: bytes) -> int:
        return self._txn(name, {"target": "CREATE", "create_revision": "0"}, value)

    def update(self, name: str, value: bytes, revision: int) -> int:
        return self._txn(name, {"target": "MOD", "mod_revision": str(revision)}, value)

    def delete(self, name: str) -> bool:
        answer = self.client.call("/v3/kv/deleterange", {"key": _b64(name)})
        return int(answer.get("deleted", 0)) > 0

    def close(self) -> None:
        return None

    def revisions(self) -> tuple[int, int]:
        header = self.client.range("compact_rev_key").get("header", {})
        return 0, int(header.get("revision", 0))

    def healthy(self) -> bool:
        """kube-apiserver's etcd health check: a linearizable read within 2 s."""
        try:
            self.client.range("health", timeout=DIAL_TIMEOUT)
        except DatastoreError:
            return False
        return True


# -- the member -------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """In the child: SIGKILL when the server process (its parent) dies, as an in-process etcd."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def go_list(items: list[str]) -> str:
    """A []string as Go's %v prints it."""
    return "[" + " ".join(items) + "]"


class Member:
    """This server's etcd member: its name, process, local client and K3s's operations."""

    def __init__(self, paths: EtcdPaths, node_name: str, address: str,
                 extra_args: list[str] | None = None, expose_metrics: bool = False) -> None:
        self.expose_metrics = expose_metrics
        self.paths = paths
        self.node_name = node_name
        self.address = address
        self.extra_args = extra_args or []
        self.name = ""
        self.proc: subprocess.Popen | None = None
        self.stopping = False
        self.removed = False
        self.client = EtcdClient([HTTP_CLIENT_URL], paths)
        self.store = EtcdStore(self.client)

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:2380"

    @property
    def client_url(self) -> str:
        return f"https://{self.address}:2379"

    def set_name(self, force: bool) -> None:
        """setName: `<node name>-<first 8 characters of a UUID>`, kept in db/etcd/name."""
        if os.path.exists(self.paths.name_file) and not force:
            with open(self.paths.name_file, encoding="utf-8") as handle:
                self.name = handle.read().strip()
            return
        self.name = f"{self.node_name}-{str(uuid.uuid4())[:8]}"
        write_private(self.paths.name_file, self.name.encode())

    # -- process ------------------------------------------------------------------------------
    def start(self, initial_cluster: str, state: str, reset: bool = False) -> None:
        os.makedirs(self.paths.db_dir, mode=0o700, exist_ok=True)
        os.chmod(self.paths.db_dir, 0o700)
        local = reset or self.address == "127.0.0.1"  # one listener per address
        # K3s: ListenClientURLs 2379 (gRPC) and ListenClientHTTPURLs https://127.0.0.1:2382
        # (the HTTP/JSON gateway, etcd-io/etcd#15402). etcd 3.4 has no separate HTTP
        # listener (it ignores the listen-client-http-urls key K3s writes): 2382 is one more
        # client listener here, and 2379 keeps answering JSON too.
        client_urls = "https://127.0.0.1:2379" + ("" if local else f",{self.client_url}") \
            + f",{HTTP_CLIENT_URL}"
        peer_urls = "https://127.0.0.1:2380" + ("" if local else f",{self.peer_url}")
        tls = self.paths.tls
        config: dict[str, object] = {
            "advertise-client-urls": self.client_url,
            "client-transport-security": {
                "cert-file": tls("server-client.crt"), "client-cert-auth": True,
                "key-file": tls("server-client.key"), "trusted-ca-file": tls("server-ca.crt")},
            "data-dir": self.paths.db_dir, "election-timeout": 5000,
            # etcd 3.5's embed.NewConfig (what K3s embeds) serves the JSON gateway by default;
            # the 3.4 binary reading a config file does not unless told: the one key a real
            # K3s host's file lacks.
            "enable-grpc-gateway": True,
            "experimental-initial-corrupt-check": True, "heartbeat-interval": 500,
            "initial-advertise-peer-urls": self.peer_url, "initial-cluster": initial_cluster,
            "initial-cluster-state": state, "listen-client-http-urls": HTTP_CLIENT_URL,
            "listen-client-urls": client_urls,
            # listenMetricsURLs: loopback, plus the node IP with --etcd-expose-metrics.
            "listen-metrics-urls": "http://127.0.0.1:2381" + (
                f",http://{self.address}:2381" if self.expose_metrics and not local else ""),
            "listen-peer-urls": peer_urls,
            "log-outputs": ["stderr"], "logger": "zap", "name": self.name,
            "peer-transport-security": {
                "cert-file": tls("peer-server-client.crt"), "client-cert-auth": True,
                "key-file": tls("peer-server-client.key"), "trusted-ca-file": tls("peer-ca.crt")},
            "snapshot-count": 10000,
        }
        if reset:
            config["force-new-cluster"] = True
        for arg in self.extra_args:  # --etcd-arg key=value, merged as K3s does
            key, _, value = arg.lstrip("-").partition("=")
            config[key] = yaml.safe_load(value) if value else True
        # K3s hands its embedded etcd this file (executor.ETCDConfig.ToConfigFile); a real
        # host has server/db/etcd/config with these keys (k3s-io/k3s#8744 shows one).
        config_path = os.path.join(self.paths.db_dir, "config")
        write_private(config_path, yaml.safe_dump(config, sort_keys=True).encode())
        argv = [ETCD_BINARY, f"--config-file={config_path}"]
        if not os.access(ETCD_BINARY, os.X_OK):
            raise logs.Fatal(f"starting kubernetes: preparing server: start managed database: "
                             f"{ETCD_BINARY} not found (install etcd-server)")
        self.removed = False
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent)  # noqa: PLW1509 - before any thread of ours forks
        threading.Thread(target=self._forward_log, args=(self.proc,), daemon=True,
                         name="etcd-log").start()

    def _forward_log(self, proc: subprocess.Popen) -> None:
        """etcd's zap lines into the server's journal, as K3s's embedded etcd logs to stderr;
        a member told it was removed leaves a tombstone (pkg/daemons/executor/embed.go)."""
        if proc.stderr is None:
            return
        for line in iter(proc.stderr.readline, b""):
            os.write(2, line)
            if MEMBER_REMOVED.encode() in line and not self.removed:
                self._tombstone()

    def _tombstone(self) -> None:
        self.removed = True
        write_private(os.path.join(self.paths.db_dir, "tombstone"), b"")
        logs.info("This node has been removed from the cluster - please restart k3s to rejoin "
                  "the cluster")

    def watch(self, on_exit: Callable[[str], None]) -> None:
        """Call on_exit when etcd exits unexpectedly (K3s: `etcd exited` is fatal); a removed
        member's etcd stops and the server keeps running, as K3s's does."""
        def wait() -> None:
            proc = self.proc
            if proc is None:
                return
            code = proc.wait()
            time.sleep(0.5)  # let the log forwarder see etcd's last lines
            if code == 0 and not self.stopping and not self.removed:
                # etcd exits 0 on its own only once it has stopped itself: removed from the
                # cluster (etcdmain: the server's stop channel, then exit 0).
                self._tombstone()
            if self.removed:
                logs.info("etcd server stopped")
            elif not self.stopping:
                on_exit(f"etcd exited: exit status {code}")
        threading.Thread(target=wait, daemon=True, name="etcd-watch").start()

    def stop(self) -> None:
        self.stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    # -- K3s operations -----------------------------------------------------------------------
    def new_cluster(self, reset: bool = False) -> None:
        logs.info("Starting etcd for new cluster")
        self.start(f"{self.name}={self.peer_url}", "new", reset=reset)

    def start_existing(self) -> None:
        logs.info("Starting etcd for existing cluster member")
        self.start(f"{self.name}={self.peer_url}", "existing")

    def join(self, members: list[dict]) -> None:
        """ETCD.join: `members` is the joined server's /db/info; add ourselves as a learner
        through the other voting members' client URLs, then start etcd.

        Raises JoinRetry for what ETCD.Start retries every second (etcd's "too many learner
        members in cluster" and "unhealthy cluster"), logs.Fatal("etcd cluster join failed:
        ...") for anything else."""
        urls = [url for member in members if not member.get("isLearner")
                for url in member.get("clientURLs", [])
                if url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") != self.address]
        remote = EtcdClient(urls, self.paths)
        add = True
        cluster: list[str] = []
        for member in members:
            for peer in member.get("peerURLs", []):
                host = peer.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
                if not member.get("name") and host == self.address:
                    member["name"] = self.name
                if member.get("name") == self.name and host == self.address:
                    add = False
                cluster.append(f"{member.get('name', '')}={member['peerURLs'][0]}")
            name = str(member.get("name", ""))
            node = name[:name.rfind("-")] if name.rfind("-") > 1 else name
            if name != self.name and node == self.node_name:
                with contextlib.suppress(OSError):
                    os.remove(self.paths.name_file)
                raise logs.Fatal("etcd cluster join failed: duplicate node name found, please "
                                 "use a unique name for this node")
        if add:
            logs.info(f"Adding member {self.name}={self.peer_url} to etcd cluster "
                      f"{go_list(cluster)}")
            try:
                remote.member_add([self.peer_url], learner=True)
            except DatastoreError as exc:
                if str(exc) in JOIN_RETRY_ERRORS:
                    raise JoinRetry(str(exc)) from None
                raise logs.Fatal(f"etcd cluster join failed: {exc}") from None
            cluster.append(f"{self.name}={self.peer_url}")
        logs.info(f"Starting etcd to join cluster with members {go_list(cluster)}")
        self.start(",".join(cluster), "existing")

    def test(self) -> None:
        """ETCD.Test: a voting member of the cluster it belongs to; raises DatastoreError."""
        status = self.client.status()
        if status.get("isLearner"):
            raise DatastoreError("this server has not yet been promoted from learner to voting "
                                 "member")
        found = []
        for member in self.client.member_list():
            if self.peer_url in member.get("peerURLs", []) and member.get("name") == self.name:
                return
            if member.get("peerURLs"):
                found.append(f"{member.get('name', '')}={member['peerURLs'][0]}")
        raise DatastoreError(f"this server is a not a member of the etcd cluster. Found "
                             f"{go_list(found)}, expect: {self.name}={self.address}")

    def wait_ready(self, stop: threading.Event) -> bool:
        """testClusterDB: test every 5 s until the member is a voting member."""
        while not stop.is_set():
            if self.proc is not None and self.proc.poll() not in (None, 0):
                # (0: removed from the cluster; K3s keeps testing until it is restarted.)
                raise logs.Fatal(f"starting kubernetes: preparing server: etcd exited: exit "
                                 f"status {self.proc.returncode}")
            try:
                self.test()
            except DatastoreError as exc:
                logs.info(f"Failed to test data store connection: {exc}")
            else:
                logs.info("etcd data store connection OK")
                return True
            stop.wait(min(5.0, max(0.5, manage_interval() / 3)))
        return False

    def is_leader(self) -> bool:
        try:
            status = self.client.status(timeout=DIAL_TIMEOUT)
        except DatastoreError:
            return False
        return bool(status.get("leader")) and \
            status.get("leader") == status.get("header", {}).get("member_id")

    def manage_learners(self, stop: threading.Event) -> None:
        """The leader promotes a learner every manageTickerTime (trackLearnerProgress)."""
        while not stop.wait(manage_interval()):
            if not self.is_leader():
                continue
            try:
                members = self.client.member_list()
            except DatastoreError as exc:
                logs.error(f"Failed to get etcd members for learner management: {exc}")
                continue
            for member in members:
                if member.get("isLearner"):
                    try:
                        self.client.member_promote(str(member["ID"]))
                    except DatastoreError:
                        pass
                    else:
                        logs.info(f"Promoted learner {member.get('name', '')}")
                    break

    def remove_peer(self, name: str, address: str, allow_self: bool = True) -> None:
        """RemovePeer: the member with this name and peer address leaves the cluster."""
        for member in self.client.member_list(60):
            if member.get("name") != name:
                continue
            for peer in member.get("peerURLs", []):
                if peer.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]") != address:
                    continue
                if self.address == address and not allow_self:
                    raise DatastoreError("not removing self from etcd cluster")
                logs.info(f"Removing name={name} id={int(member['ID'])} address={address} "
                          "from etcd")
                try:
                    self.client.member_remove(str(member["ID"]))
                except DatastoreError as exc:
                    if "member not found" not in str(exc):
                        raise
                return

    # -- snapshots (etcdctl, as K3s uses etcd's snapshot package) -----------------------------
    def _etcdctl_env(self) -> dict[str, str]:
        return {"ETCDCTL_API": "3", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def snapshot_save(self, path: str) -> None:
        tls = self.paths.tls
        result = subprocess.run(
            [ETCDCTL_BINARY, "--endpoints=https://127.0.0.1:2379",
             f"--cacert={tls('server-ca.crt')}", f"--cert={tls('client.crt')}",
             f"--key={tls('client.key')}", "--command-timeout=60s", "snapshot", "save", path],
            capture_output=True, text=True, timeout=120, env=self._etcdctl_env(), check=False)
        if result.returncode != 0:
            with contextlib.suppress(OSError):
                os.remove(path)
            raise DatastoreError((result.stderr.strip().splitlines() or ["snapshot failed"])[-1])

    def restore(self, snapshot: str) -> str:
        """ETCD.Restore: move db/etcd aside (db/etcd-old-<unix>), restore as a 1-member cluster."""
        old = f"{self.paths.db_dir}-old-{int(time.time())}"
        if os.path.exists(self.paths.db_dir):
            os.rename(self.paths.db_dir, old)
            logs.info(f"Pre-restore etcd database moved to {old}")
        staging = f"{self.paths.db_dir}-restore-tmp"
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [ETCDCTL_BINARY, "snapshot", "restore", snapshot, f"--name={self.name}",
             f"--data-dir={staging}", f"--initial-cluster={self.name}={self.peer_url}",
             f"--initial-advertise-peer-urls={self.peer_url}", "--skip-hash-check=false"],
            capture_output=True, text=True, timeout=120, env=self._etcdctl_env(), check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise logs.Fatal("starting kubernetes: preparing server: start managed database: "
                             + (result.stderr.strip().splitlines() or ["restore failed"])[-1])
        os.rename(staging, self.paths.db_dir)
        write_private(self.paths.name_file, self.name.encode())
        return old
