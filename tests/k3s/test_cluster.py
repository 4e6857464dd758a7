"""Two K3s servers on one datastore, joined by agents, seen through the real kubectl."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandbox.k3s.binary import write_binary
from sandbox.k3s.testing import ScratchHost, ScratchMariaDB
from tests.support.k3s_nodes import Node, kubectl, refused_within, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.lab]

TOKEN = "panel-generated-token-1"
FAST = ["--kube-controller-manager-arg=node-monitor-grace-period=5s",
        "--kubelet-arg=node-status-update-frequency=1s"]


class Cluster:
    def __init__(self, db: ScratchMariaDB, workdir: Path) -> None:
        self.db, self.workdir = db, workdir
        self.hosts: list[ScratchHost] = []
        self.endpoint = db.endpoint("k3s_cluster")

    def start(self, name: str, args: list[str], version: str = "v1.33.1+k3s1") -> Node:
        host = ScratchHost(name)
        self.hosts.append(host)
        write_binary(host.path("/usr/local/bin/k3s"), version)
        log = self.workdir / f"{name}.log"
        return Node(host, log, host.start(["/usr/local/bin/k3s", *args], str(log)))

    def server(self, name: str, ip: str, token: str = TOKEN, extra: list[str] = ()) -> Node:
        return self.start(name, ["server", "--token", token, "--datastore-endpoint",
                                 self.endpoint, "--bind-address", ip, *FAST, *extra])

    def close(self) -> None:
        for host in self.hosts:
            host.close()


@pytest.fixture(scope="module")
def cluster(mariadb: ScratchMariaDB, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    env = Cluster(mariadb, tmp_path_factory.mktemp("cluster"))
    try:
        first = env.server("server-a", "127.73.1.11")
        first.wait_for("k3s is up and running")
        second = env.server("server-b", "127.73.1.12")
        second.wait_for("Successfully registered node server-b")
        yield {"env": env, "a": first, "b": second}
    finally:
        env.close()


def node_rows(kubeconfig: str) -> dict[str, list[str]]:
    result = kubectl(kubeconfig, "get", "nodes", "-o", "wide")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_both_kubeconfigs_list_both_servers_ready(cluster: dict) -> None:
    for server in (cluster["a"], cluster["b"]):
        wait_until(lambda s=server: len(node_rows(s.kubeconfig())) == 2, 15, "nodes missing")
        rows = node_rows(server.kubeconfig())
        assert rows["server-a"][1:3] == ["Ready", "control-plane,master"]
        assert rows["server-b"][1:3] == ["Ready", "control-plane,master"]
        assert rows["server-a"][4] == "v1.33.1+k3s1"
        assert rows["server-b"][5] == "127.73.1.12"


def test_one_bootstrap_key_and_k3s_shaped_files(cluster: dict, mariadb: ScratchMariaDB) -> None:
    keys = mariadb.sql("SELECT DISTINCT name FROM kine WHERE name LIKE '/bootstrap/%'",
                       "k3s_cluster")
    assert len(keys) == 1 and len(keys[0][0]) == len("/bootstrap/") + 12
    tokens = [Path(n.host.path("/var/lib/rancher/k3s/server/token")).read_text().strip()
              for n in (cluster["a"], cluster["b"])]
    assert tokens[0] == tokens[1]
    assert tokens[0].startswith("K10") and tokens[0].endswith(f"::server:{TOKEN}")
    node_token = cluster["a"].host.path("/var/lib/rancher/k3s/server/node-token")
    assert Path(node_token).read_text().strip() == tokens[0]

    kubeconfig = cluster["a"].kubeconfig()
    assert stat.S_IMODE(os.stat(kubeconfig).st_mode) == 0o600
    doc = yaml.safe_load(Path(kubeconfig).read_text())
    assert doc["current-context"] == "default"
    assert doc["clusters"][0]["name"] == "default"
    assert doc["clusters"][0]["cluster"]["server"] == "https://127.73.1.11:6443"
    ca_a = doc["clusters"][0]["cluster"]["certificate-authority-data"]
    doc_b = yaml.safe_load(Path(cluster["b"].kubeconfig()).read_text())
    assert doc_b["clusters"][0]["cluster"]["certificate-authority-data"] == ca_a


def _raw_get(host: str, path: str) -> tuple[int, bytes]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, 6443), timeout=5) as raw, \
            context.wrap_socket(raw) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_ping_is_open_but_health_needs_a_client_certificate(cluster: dict) -> None:
    assert _raw_get("127.73.1.11", "/ping") == (200, b"pong")
    code, body = _raw_get("127.73.1.11", "/readyz")
    assert code == 401 and json.loads(body)["message"] == "Unauthorized"
    result = kubectl(cluster["b"].kubeconfig(), "get", "--raw", "/readyz")
    assert result.stdout == "ok"


def _token_kubeconfig(admin_kubeconfig: str, server: str, token: str, path: Path) -> str:
    """The admin kubeconfig's cluster with a bearer-token user instead of the certificate."""
    doc = yaml.safe_load(Path(admin_kubeconfig).read_text())
    doc["clusters"][0]["cluster"]["server"] = server
    doc["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_service_account_token_works_on_every_server_until_its_account_is_deleted(
        cluster: dict, tmp_path: Path) -> None:
    """What real kubectl sends for a revocable credential (create sa, clusterrolebinding,
    create token) is served; the token authenticates at any server of the datastore, and
    deleting the ServiceAccount makes it 401 Unauthorized within seconds (kube-apiserver's
    10 s success cache), and a new account and binding of the same names (another UID) does
    not bring it back."""
    admin = cluster["a"].kubeconfig()
    for args in (("create", "serviceaccount", "-n", "kube-system", "alice-1"),
                 ("create", "clusterrolebinding", "alice-1", "--clusterrole=cluster-admin",
                  "--serviceaccount=kube-system:alice-1")):
        result = kubectl(admin, *args)
        assert result.returncode == 0, result.stderr
    short = kubectl(admin, "create", "token", "-n", "kube-system", "alice-1",
                    "--duration=60s")
    assert short.returncode != 0
    assert "may not specify a duration less than 10 minutes" in short.stderr
    created = kubectl(admin, "create", "token", "-n", "kube-system", "alice-1",
                      "--duration=15m")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "system:serviceaccount:kube-system:alice-1"
    assert claims["jti"] and claims["exp"] - claims["iat"] == 900  # v1.33: a jti
    via_b = _token_kubeconfig(admin, "https://127.73.1.12:6443", token, tmp_path / "b.yaml")
    assert "server-a" in kubectl(via_b, "get", "nodes").stdout

    unbound = kubectl(admin, "create", "serviceaccount", "-n", "kube-system", "bob-1")
    assert unbound.returncode == 0, unbound.stderr
    bob = kubectl(admin, "create", "token", "-n", "kube-system", "bob-1")
    bob_config = _token_kubeconfig(admin, "https://127.73.1.11:6443", bob.stdout.strip(),
                                   tmp_path / "bob.yaml")
    refused = kubectl(bob_config, "get", "nodes")
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    assert kubectl(admin, "delete", "serviceaccount", "-n", "kube-system", "bob-1")\
        .returncode == 0

    for args in (("delete", "clusterrolebinding", "alice-1"),
                 ("delete", "serviceaccount", "-n", "kube-system", "alice-1")):
        result = kubectl(admin, *args)
        assert result.returncode == 0, result.stderr
    gone = refused_within(lambda: kubectl(via_b, "get", "nodes"))
    assert gone.returncode != 0
    assert "Unauthorized" in gone.stderr
    listed = kubectl(admin, "get", "serviceaccounts", "-n", "kube-system", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "serviceaccount/alice-1" not in listed.stdout.split()
    # The same names again, binding included: only the UID check can refuse the old token.
    for args in (("create", "serviceaccount", "-n", "kube-system", "alice-1"),
                 ("create", "clusterrolebinding", "alice-1", "--clusterrole=cluster-admin",
                  "--serviceaccount=kube-system:alice-1")):
        result = kubectl(admin, *args)
        assert result.returncode == 0, result.stderr
    assert "serviceaccount/alice-1" in kubectl(
        admin, "get", "serviceaccounts", "-n", "kube-system", "-o", "name").stdout.split()
    again = kubectl(via_b, "get", "nodes")
    assert again.returncode != 0 and "Unauthorized" in again.stderr, again.stderr
    assert "clusterrolebinding.rbac.authorization.k8s.io/alice-1" in kubectl(
        admin, "get", "clusterrolebindings", "-o", "name").stdout.split()

def test_server_with_another_token_fails_like_k3s(cluster: dict) -> None:
    intruder = cluster["env"].server("server-c", "127.73.1.13", token="some-other-token")
    assert intruder.proc.wait(30) == 1
    assert ('level=fatal msg="starting kubernetes: preparing server: bootstrap data already '
            'found and encrypted with different token"') in intruder.journal()


def test_agent_joins_and_wrong_token_agent_is_refused(cluster: dict) -> None:
    env = cluster["env"]
    token = Path(cluster["a"].host.path("/var/lib/rancher/k3s/server/token")).read_text().strip()
    agent = env.start("agent-1", ["agent", "--server", "https://127.73.1.12:6443", "--token",
                                  token, "--node-ip", "127.73.1.21", *FAST[1:]])
    agent.wait_for("Successfully registered node agent-1")
    bad = env.start("agent-bad", ["agent", "--server", "https://127.73.1.11:6443", "--token",
                                  "not-the-token", *FAST[1:]])
    bad.wait_for("v1-k3s/config: 401 Unauthorized")
    assert "Waiting to retrieve agent configuration; server is not ready" in bad.journal()
    assert "invalid username/password combination" in cluster["a"].journal()
    rows = node_rows(cluster["a"].kubeconfig())
    assert rows["agent-1"][1:3] == ["Ready", "<none>"]
    assert "agent-bad" not in rows

    cordon = kubectl(cluster["a"].kubeconfig(), "cordon", "agent-1")
    assert cordon.returncode == 0, cordon.stderr
    assert node_rows(cluster["b"].kubeconfig())["agent-1"][1] == "Ready,SchedulingDisabled"
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(10) == 0
    deleted = kubectl(cluster["a"].kubeconfig(), "delete", "node", "agent-1")
    assert deleted.returncode == 0, deleted.stderr
    assert "agent-1" not in node_rows(cluster["b"].kubeconfig())


def test_stopped_server_turns_not_ready(cluster: dict) -> None:
    cluster["b"].proc.send_signal(signal.SIGTERM)
    assert cluster["b"].proc.wait(10) == 0
    wait_until(lambda: node_rows(cluster["a"].kubeconfig())["server-b"][1] == "NotReady", 20,
               "server-b never turned NotReady")
    assert node_rows(cluster["a"].kubeconfig())["server-a"][1] == "Ready"


def test_san_check_matches_kubectl_x509_behaviour(mariadb: ScratchMariaDB,
                                                  tmp_path: Path) -> None:
    """A kubeconfig aimed at an address missing from the SANs fails; --tls-san fixes it."""
    env = Cluster(mariadb, tmp_path)
    env.endpoint = mariadb.endpoint("k3s_san")
    lb_address = "127.73.2.99"
    try:
        plain = env.start("san-1", ["server", "--token", TOKEN, "--datastore-endpoint",
                                    env.endpoint, "--node-ip", "127.73.2.11",
                                    "--https-listen-port", "16443"])
        plain.wait_for("Wrote kubeconfig")
        rewritten = tmp_path / "lb.yaml"
        doc = yaml.safe_load(Path(plain.kubeconfig()).read_text())
        doc["clusters"][0]["cluster"]["server"] = f"https://{lb_address}:16443"
        rewritten.write_text(yaml.safe_dump(doc))
        failed = kubectl(str(rewritten), "get", "--raw", "/readyz")
        assert failed.returncode != 0
        assert "x509: certificate is valid for" in failed.stderr
        assert f"not {lb_address}" in failed.stderr

        plain.proc.send_signal(signal.SIGTERM)
        plain.proc.wait(10)
        with_san = env.start("san-2", ["server", "--token", TOKEN, "--datastore-endpoint",
                                       env.endpoint, "--node-ip", "127.73.2.12",
                                       "--https-listen-port", "16443", "--tls-san", lb_address])
        with_san.wait_for("Wrote kubeconfig")
        ok = kubectl(str(rewritten), "get", "--raw", "/readyz")
        assert ok.stdout == "ok", ok.stderr
    finally:
        env.close()


def test_binary_runs_as_kubectl_and_reports_version(tmp_path: Path) -> None:
    binary = write_binary(str(tmp_path / "k3s"), "v1.28.8+k3s1")

    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("k3s version v1.28.8+k3s1 (")


def test_agent_token_admits_only_agents_and_a_wrong_ca_hash_is_refused(
        mariadb: ScratchMariaDB, tmp_path: Path) -> None:
    """K3s's agent-token: agents join with it (secure form), the server token no longer
    lets an agent in (agents log in as `node`), a token pinning another CA is refused."""
    env = Cluster(mariadb, tmp_path)
    env.endpoint = mariadb.endpoint("k3s_agent_token")
    try:
        server = env.server("at-server", "127.73.3.11", extra=["--agent-token", "agents-only-1"])
        server.wait_for("k3s is up and running")
        files = Path(server.host.path("/var/lib/rancher/k3s/server"))
        server_token = (files / "token").read_text().strip()
        agent_token = (files / "agent-token").read_text().strip()
        ca_hash = server_token[3:].split("::")[0]
        assert agent_token == f"K10{ca_hash}::node:agents-only-1"
        assert server_token == f"K10{ca_hash}::server:{TOKEN}"

        url = "https://127.73.3.11:6443"
        good = env.start("at-agent", ["agent", "--server", url, "--token", agent_token,
                                      "--node-ip", "127.73.3.21", *FAST[1:]])
        admin = env.start("at-admin", ["agent", "--server", url, "--token", server_token,
                                       *FAST[1:]])
        forged = env.start("at-forged", ["agent", "--server", url, "--token",
                                         f"K10{'0' * 64}::node:agents-only-1", *FAST[1:]])
        good.wait_for("Successfully registered node at-agent")
        admin.wait_for("v1-k3s/config: 401 Unauthorized")
        forged.wait_for(f"Failed to validate connection to cluster at {url}: token CA hash does "
                        f"not match the Cluster CA certificate hash: {'0' * 64} != {ca_hash}")
        assert "v1-k3s" not in forged.journal()  # nothing was sent to the wrong CA
        rows = node_rows(server.kubeconfig())
        assert "at-agent" in rows and "at-admin" not in rows and "at-forged" not in rows
    finally:
        env.close()

