"""The REST API and panelctl end to end, on the offline world, through HTTP only.

One world and one cluster for the whole module (it is the slow part): panelctl logs in with
a token, creates a 2+1 cluster from cluster.yaml (keys read from files), follows the create
run to its end, downloads the kubeconfig (merged into a kubeconfig that already had an
entry, with a backup), and the real kubectl lists the three nodes through the SLB. Every
panelctl here is its own process (`python -m panelctl`), talking to the panel served on a
real port (live_server) and a real Celery worker. Then the agent is removed with
`panelctl nodes remove --watch`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusters.models import AuditAction, AuditEvent, Cluster, ClusterStatus
from panelctl.client import Client
from tests.support.api import issue
from tests.support.factories import make_user
from tests.support.world_clusters import K3S_VERSION, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

REPO = Path(__file__).parents[2]


def panelctl(env: dict[str, str], *args: str, input: str | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "panelctl", *args], input=input, env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_panelctl_creates_a_cluster_follows_it_and_kubectl_lists_its_nodes(
        world: Any, start_worker: Any, live_server: Any, tmp_path: Path) -> None:
    start_worker(concurrency=2, beat=True, **world_env(world))
    user = make_user("ops")
    token = issue(user, "ci-deploy")
    env = {key: value for key, value in os.environ.items()
           if not key.lower().endswith("_proxy") and key != "DJANGO_SETTINGS_MODULE"}
    env.update({"PANELCTL_CONFIG": str(tmp_path / "panelctl.json"), "HOME": str(tmp_path)})

    login = panelctl(env, "login", "--url", live_server.url, input=token + "\n")
    assert login.returncode == 0, login.stderr
    assert token not in login.stdout + login.stderr

    # The cloud account through the API (its secret is taken once, never answered).
    api = Client(live_server.url, token)
    account = api.post("cloud-accounts/", {
        "name": "sandbox", "access_key_id": world.access_key_id,
        "access_key_secret": world.access_key_secret, "default_region": world.region})
    assert world.access_key_secret not in str(account)

    hosts = world.lab.hosts[:3]
    spec = {
        "name": "shop", "cloud_account": account["id"], "region": world.region,
        "network": {"zone": world.zone, "vpc": world.vpc_id, "vswitch": world.vswitch_id},
        "datastore": {"kind": "rds"},
        "hosts": [{"role": "server" if index < 2 else "agent", "private_ip": host.ip,
                   "ssh_port": host.ssh_port, "ssh_user": "root",
                   "private_key_file": host.private_key_path}
                  for index, host in enumerate(hosts)],
        "k3s": {"version": K3S_VERSION, "install_source": "custom",
                "install_base_url": world.install_base_url},
        "billing_ack": True,
    }
    (tmp_path / "cluster.yaml").write_text(yaml.safe_dump(spec))
    created = panelctl(env, "clusters", "create", "-f", str(tmp_path / "cluster.yaml"))
    assert created.returncode == 0, created.stdout + created.stderr
    assert "cluster shop (" in created.stdout

    watched = panelctl(env, "runs", "watch", "shop", timeout=400)
    assert watched.returncode == 0, watched.stdout[-4000:] + watched.stderr
    assert "run #" in watched.stdout and "(create) succeeded" in watched.stdout
    assert "Create the RDS MySQL instance: succeeded" in watched.stdout
    assert "    | " in watched.stdout  # the steps' logs came along
    cluster = Cluster.objects.get(name="shop")
    assert cluster.status == ClusterStatus.READY

    # The kubeconfig merged into one that already had another cluster, with a backup.
    kube = tmp_path / ".kube" / "config"
    kube.parent.mkdir()
    kube.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "other", "cluster": {"server": "https://127.0.0.9:6443"}}],
        "users": [{"name": "other", "user": {"token": "other-token"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    merged = panelctl(env, "kubeconfig", "get", "shop", "--merge")
    assert merged.returncode == 0, merged.stderr
    assert "previous file kept as" in merged.stdout
    assert list(kube.parent.glob("config.panelctl-*.bak"))
    assert oct(kube.stat().st_mode & 0o777) == "0o600"
    nodes = subprocess.run(["kubectl", "--kubeconfig", str(kube), "--context", "shop", "get",
                            "nodes", "--no-headers"], capture_output=True, text=True,
                           timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and {row[1] for row in rows} == {"Ready"}, nodes.stdout
    contexts = yaml.safe_load(kube.read_text())
    assert {c["name"] for c in contexts["contexts"]} == {"other", "shop"}

    # What `clusters show -o yaml` prints is a spec that create takes again.
    shown = panelctl(env, "clusters", "show", "shop", "-o", "yaml")
    assert shown.returncode == 0 and "BEGIN OPENSSH" not in shown.stdout
    again = yaml.safe_load(shown.stdout)
    again["name"] = "shop-copy"
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(again))
    dry = panelctl(env, "clusters", "create", "-f", str(tmp_path / "copy.yaml"), "--dry-run",
                   "--ssh-key-file", hosts[0].private_key_path)
    assert dry.returncode == 0, dry.stdout + dry.stderr

    listed = panelctl(env, "clusters", "list")
    assert "shop" in listed.stdout and "ready" in listed.stdout

    # Day 2 from the command line: the agent leaves, followed to the end.
    removed = panelctl(env, "nodes", "remove", "shop", hosts[2].ip, "--watch", timeout=300)
    assert removed.returncode == 0, removed.stdout[-4000:] + removed.stderr
    assert "(remove_node) succeeded" in removed.stdout
    left = subprocess.run(["kubectl", "--kubeconfig", str(kube), "--context", "shop", "get",
                           "nodes", "--no-headers"], capture_output=True, text=True, timeout=60)
    assert len(left.stdout.splitlines()) == 2, left.stdout + left.stderr
    # The trail names the token for each thing it did.
    for action in (AuditAction.CLOUD_ACCOUNT_ADD, AuditAction.CLUSTER_CREATE,
                   AuditAction.KUBECONFIG_DOWNLOAD, AuditAction.NODE_REMOVE,
                   AuditAction.API_TOKEN_USE):
        event = AuditEvent.objects.filter(action=action).latest("time")
        assert event.details.get("api_token") == "ci-deploy", action
