"""An Internet-facing cluster whose API answers only the allowed sources: a real worker, the
emulator's SLB proxy enforcing the CLB whitelist, lab namespaces as the clients, real kubectl.

The panel reaches the lab from the root namespace (the bridge's gateway address), and it proves
the cluster through the SLB, so its address is on the list; so is one lab host. Another lab
host, outside the list, is refused by the proxy.
"""

from __future__ import annotations

import subprocess

import pytest

from clusters import operations
from clusters.models import CloudResource, Cluster, ClusterStatus, LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def kubectl_from(netns: str | None, kubeconfig, *args: str) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    return subprocess.run([*prefix, "kubectl", "--kubeconfig", str(kubeconfig),
                           "--request-timeout=10s", *args],
                          capture_output=True, text=True, timeout=60)


def inventory(world, kind: str) -> list[dict]:
    return [r for r in world.emulator.control.resources() if r["type"] == kind]


def test_an_internet_api_answers_only_the_allowed_cidrs(world, start_worker, tmp_path):
    """The careful user's cluster whole: Internet API behind the allow-list, datastore over
    verified TLS, Secrets encrypted at rest (each also has its own deeper test)."""
    start_worker(concurrency=2, PANEL_RDS_CA_BUNDLE=str(world.emulator.rds_ca_bundle),
                 **world_env(world))
    allowed_host, other_host = world.lab.hosts[1], world.lab.hosts[2]
    allowed = [f"{world.lab.gateway_ip}/32", f"{allowed_host.ip}/32"]
    cluster = make_world_cluster(world, servers=1, agents=0, slb_address_type="internet",
                                 api_allowed_cidrs=allowed, rds_engine_version="8.0",
                                 datastore_tls=True, secrets_encryption=True)
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.status == ClusterStatus.READY
    verified = run.steps.get(key="verify").result
    assert verified["secrets_encryption"] == "Enabled, stage start, all hashes match"
    assert LogLine.objects.filter(step__run=run, text__contains="verified against the "
                                  "datastore CA").exists()

    # The cloud holds one ACL with exactly the list, bound to the listener as a whitelist.
    (acl,) = inventory(world, "slb_acl")
    assert sorted(acl["entries"]) == sorted(allowed)
    (listener,) = inventory(world, "slb_listener")
    assert listener["acl"]["status"] == "on" and listener["acl"]["type"] == "white"
    assert listener["acl"]["id"] == acl["id"]
    assert CloudResource.objects.get(cluster=cluster, kind="slb_acl").provider_id == acl["id"]
    (slb,) = inventory(world, "slb_load_balancer")
    assert slb["addresses"] == [cluster.slb_address]

    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    for netns in (None, allowed_host.netns):  # the panel's address, then the allowed host
        nodes = kubectl_from(netns, kubeconfig, "get", "nodes", "--no-headers")
        assert nodes.returncode == 0 and " Ready " in nodes.stdout, (netns, nodes.stderr)
    refused_before = listener["acl"]["refused"]
    outside = kubectl_from(other_host.netns, kubeconfig, "get", "nodes")
    assert outside.returncode != 0
    assert "connection reset" in outside.stderr or "EOF" in outside.stderr, outside.stderr
    (listener,) = inventory(world, "slb_listener")
    assert listener["acl"]["refused"] > refused_before

    # Day 2: the owner lets the other host in; the proxy applies it to the next connection.
    widened = [*allowed, f"{other_host.ip}/32"]
    change = runs.wait_finished(
        operations.start_allowlist_change(cluster, "\n".join(widened), cluster.owner),
        timeout=120)
    assert change.status == RunStatus.SUCCEEDED
    (acl,) = inventory(world, "slb_acl")
    assert sorted(acl["entries"]) == sorted(widened)
    inside = kubectl_from(other_host.netns, kubeconfig, "get", "nodes", "--no-headers")
    assert inside.returncode == 0, inside.stderr

    # Destroy deletes the ACL once its listener went with the SLB.
    destroyed = runs.wait_finished(
        operations.start_destroy(cluster, confirm_name=cluster.name), timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED
    assert inventory(world, "slb_acl") == [] and inventory(world, "slb_load_balancer") == []
    assert set(CloudResource.objects.filter(cluster=cluster).values_list(
        "state", flat=True)) == {"deleted"}
