"""A cluster created from channel `stable` stays on the release `stable` named that day.

The artifact server's `stable` moves to a newer release after the create (a K3s release day);
a server and an agent added afterwards run the same release as the first server, as the real
kubectl shows with the downloaded kubeconfig.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from clusters import operations
from clusters.models import Cluster, LogLine, Node, RunKind
from tests.e2e.day2 import assert_succeeded
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

STABLE_AT_CREATE = "v1.36.2+k3s1"   # stable in June 2026
STABLE_LATER = "v1.36.4+k3s1"       # stable since 2026-08-27


def host_entry(host, role: str) -> dict:
    return {"role": role, "private_ip": host.ip, "ssh_port": host.ssh_port, "ssh_user": "root",
            "ssh_private_key": Path(host.private_key_path).read_text()}


def kubectl_versions(cluster: Cluster, directory: Path) -> dict[str, str]:
    """{node name: VERSION column} of the real `kubectl get nodes` through the SLB."""
    path = directory / "kubeconfig.yaml"
    path.write_text(Cluster.objects.get(pk=cluster.pk).kubeconfig)
    shown = subprocess.run(["kubectl", "--kubeconfig", str(path), "get", "nodes",
                            "--no-headers"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines() if line.strip()]
    assert all(row[1] == "Ready" for row in rows), shown.stdout
    return {row[0]: row[4] for row in rows}


def install_logs(cluster: Cluster, kind: str) -> list[str]:
    return list(LogLine.objects.filter(step__run__cluster=cluster, step__run__kind=kind)
                .values_list("text", flat=True))


def test_nodes_added_after_stable_moved_run_the_release_the_cluster_was_created_with(
        world, start_worker, tmp_path):
    start_worker(concurrency=2, beat=True, **world_env(world))
    _, h2, h3 = world.lab.hosts  # the first host is the server the create installs
    world.artifacts.move_channel("stable", STABLE_AT_CREATE)
    cluster = make_world_cluster(world, servers=1, agents=0, k3s_version="",
                                 k3s_channel="stable")
    assert_succeeded(runs.wait_finished(operations.start_create(cluster), timeout=300))

    cluster = Cluster.objects.get(pk=cluster.pk)
    assert (cluster.k3s_channel, cluster.k3s_version) == ("stable", STABLE_AT_CREATE)
    (server,) = cluster.nodes.all()
    assert server.k3s_version == STABLE_AT_CREATE  # read back from the API by verify
    created = install_logs(cluster, RunKind.CREATE)
    assert any(f"Channel stable at {world.install_base_url} points at {STABLE_AT_CREATE}"
               in text for text in created)

    # Release day: stable moves on. Nothing about the cluster may follow it.
    assert world.artifacts.move_channel("stable", STABLE_LATER) == STABLE_AT_CREATE
    add = runs.wait_finished(operations.start_add_nodes(
        cluster, [host_entry(h2, "server"), host_entry(h3, "agent")]), timeout=300)
    assert_succeeded(add)

    versions = kubectl_versions(cluster, tmp_path)
    assert len(versions) == 3
    assert set(versions.values()) == {STABLE_AT_CREATE}, versions
    recorded = dict(Node.objects.filter(cluster=cluster).values_list("name", "k3s_version"))
    assert recorded == versions
    assert Cluster.objects.get(pk=cluster.pk).k3s_version == STABLE_AT_CREATE

    # Every host was installed with INSTALL_K3S_VERSION: the install script never asked a
    # channel ("Finding release for channel …"), and named only the pinned release.
    logs = created + install_logs(cluster, RunKind.ADD_NODE)
    assert not [text for text in logs if "Finding release for channel" in text]
    used = {m.group(1) for text in logs for m in [re.search(r"Using (\S+) as release", text)]
            if m}
    assert used == {STABLE_AT_CREATE}
    # kine v0.16's pool, as the servers' journals report it.
    assert any("kine keeps up to 20 idle MySQL connections per server" in text for text in logs)


def test_a_channel_that_cannot_be_resolved_fails_the_first_step_and_buys_nothing(
        world, start_worker):
    start_worker(concurrency=1, **world_env(world))
    cluster = make_world_cluster(world, servers=1, agents=0, k3s_version="",
                                 k3s_channel="v1.38")  # no such line yet
    run = runs.wait_finished(operations.start_create(cluster), timeout=120)
    first = run.steps.get(key="preflight_cloud")
    assert first.status == "failed"
    assert (f"K3s channel v1.38 does not exist at {world.install_base_url} "
            f"({world.install_base_url}/v1-release/channels/v1.38): HTTP 404") in first.error
    assert Cluster.objects.get(pk=cluster.pk).k3s_version == ""
    assert not [r for r in world.emulator.control.resources()
                if r["type"] in ("rds_instance", "slb_load_balancer")]
