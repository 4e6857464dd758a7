"""Host cleanup remembers whose K3s a host holds on the node, not in the step's memo: after a
user's Retry (which empties the memo) destroy still removes the K3s this cluster installed,
and still leaves alone a K3s another cluster put there.

The step runs in this process (the engine spec tier's in-process engine) against real lab
hosts over SSH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters import operations
from clusters.adapters import hostcleanup
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import (
    Cluster,
    ClusterStatus,
    LogLine,
    Node,
    NodeRole,
    Run,
    RunKind,
    RunStatus,
    StepStatus,
)
from sandbox.lab.lab import Lab
from sandbox.lab.state import Host
from tests.support.engine_specs import InProcessEngine, in_process_engine
from tests.support.factories import make_cluster

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRACES = ("/etc/rancher/k3s", "/usr/local/bin/k3s", "/usr/local/bin/k3s-uninstall.sh")


@pytest.fixture
def engine() -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven


@pytest.fixture
def hosts(lab: Lab) -> Iterator[tuple[Host, Host]]:
    ours, foreign = lab.hosts[0], lab.hosts[1]
    yield ours, foreign
    for host in (ours, foreign):
        lab.run(host, "rm -rf " + " ".join(TRACES))


def traces(lab: Lab, host: Host) -> list[str]:
    return lab.run(host, "ls -d " + " ".join(TRACES) + " 2>/dev/null").stdout.split()


def node_on(cluster: Cluster, host: Host, **fields: object) -> Node:
    return Node.objects.create(
        cluster=cluster, role=NodeRole.SERVER, private_ip=host.ip, ssh_port=host.ssh_port,
        ssh_user="root", ssh_private_key=Path(host.private_key_path).read_text(), **fields)


def test_destroy_retried_after_config_went_still_cleans_our_host_and_not_a_foreign_one(
        lab: Lab, hosts: tuple[Host, Host], engine: InProcessEngine) -> None:
    ours, foreign = hosts
    cluster = make_cluster(status=ClusterStatus.FAILED)
    # Ours: our install step ran there; a first cleanup removed config.yaml and was cut off
    # before the binary and the uninstall script went.
    lab.run(ours, "mkdir -p /usr/local/bin && echo k3s > /usr/local/bin/k3s && "
                  "printf '#!/bin/sh\\nexit 0\\n' > /usr/local/bin/k3s-uninstall.sh && "
                  "chmod +x /usr/local/bin/k3s /usr/local/bin/k3s-uninstall.sh", check=True)
    # Foreign: another cluster's K3s (another token), on an address typed into this cluster.
    lab.run(foreign, "mkdir -p /etc/rancher/k3s /usr/local/bin && "
                     "echo 'token: another-clusters-token' > /etc/rancher/k3s/config.yaml && "
                     "echo k3s > /usr/local/bin/k3s", check=True)
    mine = node_on(cluster, ours, k3s_installed=True, status="failed")
    theirs = node_on(cluster, foreign, status="failed")

    run = engine.act(pipeline.create_run, cluster, RunKind.DESTROY, [
        StepSpec("uninstall", "Remove K3s from every host", "destroy.hosts", retry_budget=3)],
        start=False)
    # The first try proved the host ours, then stopped (its memo said so); the user's Retry
    # starts the step afresh, with an empty memo.
    run.steps.update(status=StepStatus.FAILED, error="Could not remove K3s from 1 host(s)",
                     result={"claimed_hosts": [ours.ip]})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)

    engine.act(operations.retry, run)
    engine.deliver_all()

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, list(run.steps.values_list("error", flat=True))
    assert traces(lab, ours) == []
    assert traces(lab, foreign) == ["/etc/rancher/k3s", "/usr/local/bin/k3s"]
    verdicts = run.steps.get().result["hosts"]
    assert verdicts == {ours.ip: "removed", foreign.ip: "foreign"}
    assert LogLine.objects.filter(step__run=run, text__contains=f"{foreign.ip}: the K3s on "
                                  "this host was not installed for this cluster").exists()
    # Nothing of ours is left on our host; the other one was never ours.
    assert Node.objects.get(pk=mine.pk).k3s_installed is False
    assert Node.objects.get(pk=theirs.pk).k3s_installed is False
    assert hostcleanup.CLEANED in run.steps.get().result
