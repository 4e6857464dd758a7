"""Create a K3s HA cluster end to end: real worker, emulator, lab hosts, the real kubectl."""

from __future__ import annotations

import subprocess

import pytest

from clusters import operations
from clusters.models import Cluster, ClusterStatus, LogLine, Node, RunStatus, StepStatus
from tests.e2e.conftest import make_world_cluster, world_env
from tests.support import runs

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def kubectl(kubeconfig_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60)


def live(world, kind: str) -> list[dict]:
    return [r for r in world.emulator.control.resources() if r.get("kind") == kind]


def test_two_servers_and_an_agent_through_the_slb(world, start_worker, tmp_path):
    start_worker(concurrency=2, beat=True, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=1)
    run = operations.start_create(cluster)
    run = runs.wait_finished(run, timeout=300)
    failures = [(s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert run.status == RunStatus.SUCCEEDED, failures

    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.status == ClusterStatus.READY
    resources = world.emulator.control.resources()
    print(resources)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    nodes = kubectl(kubeconfig, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0, nodes.stderr
    lines = [line.split() for line in nodes.stdout.splitlines()]
    assert len(lines) == 3 and all(line[1] == "Ready" for line in lines), nodes.stdout
    assert f"https://{cluster.slb_address}:6443" in cluster.kubeconfig
    assert not LogLine.objects.filter(step__run=run, text__contains="x509").exists()
    assert set(Node.objects.filter(cluster=cluster).values_list("status", flat=True)) == {"ready"}
