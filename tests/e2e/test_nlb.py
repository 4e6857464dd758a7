"""A cluster behind an NLB in two zones, end to end, on one world and one cluster.

Two servers and one agent on the lab hosts; the NLB's DNS name resolves through the world's
DNS stand-in (the lab hosts' resolv.conf names it; this process and the workers use
sandbox.aliyun.nlb.resolve). In order: the worker is SIGKILLed during CreateLoadBalancer and
again during CreateListener, and the create still ends with exactly one of each; the real
kubectl through the DNS name (TLS verified) lists three Ready nodes; a rolling upgrade with
a /readyz poller through the NLB sees no failure; removing a server drains it first; destroy
leaves no NLB resource.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from clusters import operations
from clusters.adapters import api_balancer, cloud
from clusters.models import (
    CloudResource,
    Cluster,
    ClusterStatus,
    LoadBalancerKind,
    LogLine,
    RunStatus,
    StepStatus,
)
from sandbox.aliyun.nlb.resolve import ENV, cloud_dns, hook_dir, resolved_command
from sandbox.world import World
from tests.support import runs
from tests.support.pollers import ReadyzPoller
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

FROM_VERSION = "v1.31.4+k3s1"
TO_VERSION = "v1.32.5+k3s1"
ROOT = Path(__file__).resolve().parents[2]
CRASHY = {"PANEL_STEP_LEASE_SECONDS": "4", "PANEL_SWEEP_INTERVAL_SECONDS": "1"}
NLB_KINDS = ("nlb_load_balancer", "nlb_server_group", "nlb_listener")


def failures_of(run: Any) -> list[tuple[str, str]]:
    return [(s.key, s.error) for s in run.steps.exclude(
        status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])]


def nlb_inventory(world: World) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {kind: [] for kind in NLB_KINDS}
    for resource in world.emulator.control.resources():
        if resource["type"] in found and resource["state"] != "Deleted":
            found[resource["type"]].append(resource)
    return found


def sent(cluster: Cluster, kind: str) -> bool:
    """The ledger says the create of `kind` was sent (written just before the call)."""
    row = CloudResource.objects.filter(cluster=cluster, kind=kind).first()
    return bool(row and row.attributes.get("creates_sent"))


def kubectl(world: World, cluster: Cluster, kubeconfig: Path, *args: str
            ) -> subprocess.CompletedProcess[str]:
    argv = ["kubectl", "--kubeconfig", str(kubeconfig), *args]
    with resolved_command(argv, world.dns_server, [cluster.api_dns_name]) as command:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)


def run_log(run: Any) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step__position", "seq")
                .values_list("text", flat=True))


def test_a_cluster_behind_an_nlb_in_two_zones(world: World, start_worker: Any,
                                              tmp_path: Path) -> None:
    host, port = world.dns_server
    env = {**world_env(world), **CRASHY, ENV: f"{host}:{port}",
           # The hook's sitecustomize imports sandbox: the repository must be on the path too
           # (`python -m celery` adds the working directory only after site ran).
           "PYTHONPATH": os.pathsep.join(p for p in (str(hook_dir()), str(ROOT),
                                                     os.environ.get("PYTHONPATH", "")) if p)}
    zones = [{"zone": v["zone_id"], "vswitch_id": v["vswitch_id"]} for v in world.vswitches]
    assert len({z["zone"] for z in zones}) == 2
    cluster = make_world_cluster(world, servers=2, agents=1, k3s_version=FROM_VERSION,
                                 load_balancer_kind=LoadBalancerKind.NLB, nlb_zones=zones)
    # Each create is slow to answer once, so the worker can be killed while it waits.
    for action in ("CreateLoadBalancer", "CreateListener"):
        world.emulator.control.add_fault(action=action, product="Nlb", delay=2, count=1)

    # --- create, with the worker killed during the NLB's and the listener's create ----------
    first = start_worker(concurrency=2, beat=True, **env)
    run = operations.start_create(cluster)
    runs.wait_until(lambda: sent(cluster, api_balancer.NLB_KIND), 120,
                    "CreateLoadBalancer to be sent")
    first.kill_hard()
    second = start_worker(concurrency=2, beat=True, **env)
    runs.wait_until(lambda: sent(cluster, api_balancer.NLB_LISTENER_KIND), 300,
                    "CreateListener to be sent")
    second.kill_hard()
    start_worker(concurrency=2, beat=True, **env)
    run = runs.wait_finished(run, timeout=420)
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    assert run.steps.get(key="slb_create").tries + run.steps.get(key="slb_listener").tries >= 2

    cluster = Cluster.objects.select_related("cloud_account").get(pk=cluster.pk)
    found = nlb_inventory(world)
    assert [len(found[kind]) for kind in NLB_KINDS] == [1, 1, 1], found
    (nlb,), (group,), (listener,) = (found[kind] for kind in NLB_KINDS)
    assert len({z["zone_id"] for z in nlb["zones"]}) == 2
    assert cluster.api_dns_name == nlb["dns_name"]
    assert sorted(s["ip"] for s in group["servers"]) == sorted(
        cluster.nodes.filter(role="server").values_list("private_ip", flat=True))
    assert {s["status"] for s in group["servers"]} == {"Available"}
    assert listener["state"] == "Running" and listener["server_group_id"] == group["id"]
    assert set(listener["health"].values()) == {"Healthy"} and len(listener["health"]) == 2, \
        listener["health"]
    # Health reads the server group's health through GetListenerHealthStatus.
    said = list(run.steps.get(key="health").log_lines.values_list("text", flat=True))
    assert f"NLB {group['id']}: 2/2 backends normal" in said, said
    assert cluster.health == "healthy", cluster.health_reasons
    kinds = sorted(CloudResource.objects.filter(cluster=cluster)
                   .values_list("kind", flat=True))
    assert kinds == ["nlb", "nlb_listener", "nlb_server_group", "rds_instance"]

    # --- the real kubectl through the NLB's DNS name, TLS verified --------------------------
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    assert f"https://{nlb['dns_name']}:6443" in cluster.kubeconfig
    nodes = kubectl(world, cluster, kubeconfig, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and all(row[1] == "Ready" for row in rows), nodes.stdout
    insecure = kubectl(world, cluster, kubeconfig, "get", "nodes",
                       "--tls-server-name", "not-the-api.example")
    assert insecure.returncode != 0 and "x509" in insecure.stderr  # TLS is really verified

    with cloud_dns(world.dns_server):
        # --- a rolling upgrade behind the NLB, a poller through it all along ----------------
        with ReadyzPoller(cluster.kubeconfig) as poller:
            upgrade = runs.wait_finished(operations.start_upgrade(cluster, TO_VERSION),
                                         timeout=600)
        assert upgrade.status == RunStatus.SUCCEEDED, failures_of(upgrade)
        timeline = [f"{t:%H:%M:%S.%f} {x}" for t, x in LogLine.objects.filter(  # why, if not
            step__run=upgrade).order_by("time").values_list("time", "text")]
        assert not poller.failures, (poller.failures[:5], timeline)
        assert poller.successes > 20
        servers = list(cluster.nodes.filter(role="server").order_by("pk")
                       .values_list("private_ip", flat=True))
        order = [text.split(":")[0] for text in run_log(upgrade)
                 if ": removed from NLB" in text or ": healthy behind the NLB again" in text]
        assert order == [servers[0], servers[0], servers[1], servers[1]], order

        # --- removing a server drains it (the removal job) before K3s is touched ------------
        leaving = cluster.nodes.filter(role="server").order_by("pk").last()
        assert leaving is not None
        world.emulator.control.clear_calls()
        removal = runs.wait_finished(operations.start_remove_node(
            Cluster.objects.get(pk=cluster.pk), leaving), timeout=300)
        assert removal.status == RunStatus.SUCCEEDED, failures_of(removal)
        detach, uninstall = removal.steps.get(key="slb_detach"), removal.steps.get(key="uninstall")
        assert detach.finished_at <= uninstall.started_at
        actions = [c["action"] for c in world.emulator.control.calls() if c["status"] == 200]
        removed = actions.index("RemoveServersFromServerGroup")
        assert "GetJobStatus" in actions[removed:]
        left = nlb_inventory(world)["nlb_server_group"][0]["servers"]
        assert [s["ip"] for s in left] == [servers[0]]

    # --- destroy: listener, server group and NLB deleted, nothing left ----------------------
    destroyed = runs.wait_finished(operations.start_destroy(
        Cluster.objects.get(pk=cluster.pk), confirm_name=cluster.name), timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED, failures_of(destroyed)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYED
    assert nlb_inventory(world) == {kind: [] for kind in NLB_KINDS}
    tagged = cloud.cloud_for(cluster).find_nlb_by_tag(cloud.TAG_KEY, str(cluster.code))
    assert tagged == []
