"""A 3-server embedded-etcd cluster end to end: real worker, emulator, lab hosts, the K3s
stand-in's real etcd members (sandbox/k3s/README.md "Embedded etcd"), the real kubectl.

What K3s says (docs.k3s.io/datastore/ha-embedded): the first server `cluster-init`, the others
join through the fixed registration address; etcd needs a majority of its members.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from clusters import operations
from clusters.adapters import health
from clusters.k3s import etcd
from clusters.models import Cluster, ClusterStatus, DatastoreKind, EtcdSnapshot, Health, RunStatus
from clusters.operations.runs import OperationRefused
from sandbox.world import World
from tests.e2e.day2 import failures_of
from tests.support import runs
from tests.support.pollers import ReadyzPoller
from tests.support.ssh_login import ssh, ssh_run
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

FROM_VERSION = "v1.32.5+k3s1"
TO_VERSION = "v1.33.1+k3s1"
# The stand-in's leader promotes learners every 15 s, as K3s's manageTickerTime; the test's
# hosts do it every second (sandbox/k3s/etcd.py manage_interval).
QUICK_ETCD = "[Manager]\nDefaultEnvironment=K3S_STANDIN_ETCD_MANAGE_SECONDS=1\n"


def quick_etcd(world: World) -> None:
    for host in world.lab.hosts:
        world.lab.run(host, "mkdir -p /etc/systemd/system.conf.d && cat > "
                      "/etc/systemd/system.conf.d/91-tests-etcd.conf", input=QUICK_ETCD,
                      check=True)


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=90)


def answers_within(kubeconfig: Path, seconds: float) -> subprocess.CompletedProcess[str]:
    """kubectl get nodes through the load balancer until it answers (the CLB's health check
    takes a stopped backend out after a few failed probes)."""
    deadline = time.monotonic() + seconds
    while True:
        result = kubectl(kubeconfig, "get", "nodes", "--no-headers", "--request-timeout=20s")
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def health_until(cluster: Cluster, wanted, seconds: float) -> health.Assessment:
    """Health checks (as the beat runs them) until `wanted(assessment)`; the last one."""
    deadline = time.monotonic() + seconds
    while True:
        assessment = health.refresh(Cluster.objects.get(pk=cluster.pk))
        if wanted(assessment) or time.monotonic() > deadline:
            return assessment
        time.sleep(1)


def codes(assessment: health.Assessment) -> set[str]:
    return {r.get("code", "") for r in assessment.reasons if isinstance(r, dict)}


@pytest.mark.world_hosts(4)
@pytest.mark.timeout(600)  # the two stories in one: twice the usual bound
def test_three_etcd_servers_quorum_refusal_snapshot_before_upgrade_then_a_dead_one_replaced(
        world, start_worker, tmp_path):
    """One cluster for the whole story (a 3-server etcd create is the costly part): three
    servers with no RDS; quorum at risk, a removal refused, quorum lost and back; the upgrade's
    snapshot; then a server's host dies, its member is removed and a fourth host joins."""
    quick_etcd(world)
    start_worker(concurrency=2, beat=False, **world_env(world))
    cluster = make_world_cluster(world, servers=3, agents=0, k3s_version=FROM_VERSION,
                                 datastore_kind=DatastoreKind.ETCD)
    run = runs.wait_finished(operations.start_create(cluster), timeout=420)
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.status == ClusterStatus.READY

    # No RDS bought, none in the cloud's inventory; the servers behind the load balancer.
    inventory = world.emulator.control.resources()
    assert not [r for r in inventory if r["type"].startswith("rds")], inventory
    assert not cluster.resources.filter(kind__startswith="rds").exists()
    (slb,) = [r for r in inventory if r["type"] == "slb_load_balancer"]
    servers = list(cluster.nodes.filter(role="server").order_by("pk"))
    assert set(slb["backends"]) == {s.ecs_instance_id for s in servers}
    # The joins went one at a time, each after the one before was done.
    steps = {s.key: s for s in run.steps.all()}
    joins = [steps[f"server_{s.pk}"] for s in servers]
    assert joins[0].finished_at <= steps["slb_listener"].started_at
    assert steps["slb_listener"].finished_at <= joins[1].started_at
    assert joins[1].finished_at <= joins[2].started_at

    # config.yaml as K3s documents it: cluster-init on the first, server: the LB on the others.
    configs = [yaml.safe_load(ssh_run(ssh(world.lab.host(s.private_ip)),
                                      "cat /etc/rancher/k3s/config.yaml")[1]) for s in servers]
    assert configs[0].get("cluster-init") is True and "server" not in configs[0]
    for config in configs[1:]:
        assert config["server"] == f"https://{cluster.slb_address}:6443"
        assert "cluster-init" not in config
    assert all("datastore-endpoint" not in c and c["etcd-snapshot-retention"] == 5
               and c["etcd-snapshot-schedule-cron"] == "0 */12 * * *" for c in configs)

    # kubectl through the load balancer: three Ready control-plane (etcd) nodes.
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    listed = kubectl(kubeconfig, "get", "nodes", "--no-headers")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert len(rows) == 3 and all(r[1] == "Ready" and "control-plane" in r[2]
                                  and "etcd" in r[2] for r in rows), listed.stdout

    checked = health_until(cluster, lambda a: a.health == Health.HEALTHY, 30)
    assert checked.health == Health.HEALTHY, checked.reasons
    members = Cluster.objects.get(pk=cluster.pk).etcd_members
    assert [m["healthy"] for m in members] == [True] * 3
    assert sum(m["leader"] for m in members) == 1

    def stop(node) -> None:
        world.lab.run(world.lab.host(node.private_ip), "systemctl stop k3s", check=True)

    def start(node) -> None:
        world.lab.run(world.lab.host(node.private_ip), "systemctl start k3s", check=True)

    # One server down: the API still answers through the load balancer; quorum at risk.
    stop(servers[2])
    assert answers_within(kubeconfig, 60).returncode == 0
    at_risk = health_until(cluster, lambda a: "quorum_at_risk" in codes(a), 60)
    assert "quorum_at_risk" in codes(at_risk), at_risk.reasons
    assert at_risk.health == Health.DEGRADED

    # Removing a healthy server now would leave 1 of 3 healthy once its K3s is stopped:
    # refused, with why (from the last health check's member list: no SSH in the request).
    with pytest.raises(OperationRefused, match="1 of 3 etcd voting members would be healthy"):
        operations.start_remove_node(Cluster.objects.get(pk=cluster.pk), servers[0])
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY
    client = Client()
    client.force_login(cluster.owner)
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Quorum at risk: 2 of 3 members healthy" in page
    assert "1 of 3 etcd voting members would be healthy" in page  # the Remove button's note

    # Two down: health says quorum is lost.
    stop(servers[1])
    lost = health_until(cluster, lambda a: "quorum_lost" in codes(a), 90)
    assert "quorum_lost" in codes(lost), lost.reasons
    assert lost.health == Health.DOWN
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Quorum lost: 0 of 3 members healthy, 2 needed" in page \
        or "Quorum lost: 1 of 3 members healthy, 2 needed" in page

    # One back: quorum recovers, the API answers again.
    start(servers[1])
    back = health_until(cluster, lambda a: "quorum_lost" not in codes(a)
                        and "quorum_at_risk" in codes(a), 120)
    assert "quorum_lost" not in codes(back) and "quorum_at_risk" in codes(back), back.reasons
    assert answers_within(kubeconfig, 60).returncode == 0
    start(servers[2])
    healthy = health_until(cluster, lambda a: a.health == Health.HEALTHY, 120)
    assert healthy.health == Health.HEALTHY, healthy.reasons

    # The upgrade takes a snapshot first, shown on the page, and keeps the API answering.
    cluster = Cluster.objects.get(pk=cluster.pk)
    with ReadyzPoller(cluster.kubeconfig) as poller:
        upgrade = runs.wait_finished(operations.start_upgrade(cluster, TO_VERSION), timeout=600)
    assert upgrade.status == RunStatus.SUCCEEDED, failures_of(upgrade)
    assert not poller.failures, poller.failures[:5]
    backup = upgrade.steps.get(key="backup")
    first_server = upgrade.steps.get(key=f"server_{servers[0].pk}")
    assert backup.handler == "etcd.snapshot" and backup.finished_at <= first_server.started_at
    name = backup.result["snapshot"]
    assert name.startswith("pre-upgrade-v1.33.1-k3s1-")
    snapshot = EtcdSnapshot.objects.get(cluster=cluster, name=name)
    assert snapshot.size > 0 and snapshot.taken_at is not None
    listed_on_host = ssh_run(ssh(world.lab.host(servers[0].private_ip)),
                             "k3s etcd-snapshot ls")[1]
    assert name in listed_on_host
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert name in page and reverse("clusters:etcd-restore-doc") in page
    rows = [line.split() for line in kubectl(kubeconfig, "get", "nodes", "--no-headers")
            .stdout.splitlines()]
    assert len(rows) == 3 and {r[4] for r in rows} == {TO_VERSION}, rows

    # --- a server's host dies; removing it keeps quorum; a new host joins in its place ------
    dead = cluster.nodes.get(pk=servers[2].pk)
    dead_host = world.lab.host(dead.private_ip)
    # The host dies: K3s stops and the host leaves the network (SSH cannot reach it).
    world.lab.run(dead_host, "systemctl stop k3s; ip link set eth0 down", check=True)
    at_risk = health_until(cluster, lambda a: "quorum_at_risk" in codes(a), 60)
    assert "quorum_at_risk" in codes(at_risk), at_risk.reasons

    # Removing the dead one keeps quorum (2 of 2 healthy): allowed, and its member goes.
    removal = runs.wait_finished(operations.start_remove_node(
        Cluster.objects.get(pk=cluster.pk), dead), timeout=300)
    assert removal.status == RunStatus.SUCCEEDED, failures_of(removal)
    member_step = removal.steps.get(key="etcd_member")
    assert member_step.status == "succeeded" and member_step.result["removed"] == dead.private_ip
    # Member names are <hostname>-<hex>: the dead server's peer URL is what must be gone.
    assert len(member_step.result["members"]) == 2
    assert etcd.peer_url(dead.private_ip) not in member_step.result["peer_urls"]
    assert {etcd.peer_url(s.private_ip) for s in servers[:2]} <= set(
        member_step.result["peer_urls"])
    assert removal.steps.get(key="etcd_member").finished_at <= \
        removal.steps.get(key="uninstall").started_at
    assert removal.steps.get(key="uninstall").status == "skipped"  # the host is gone
    kubeconfig.write_text(Cluster.objects.get(pk=cluster.pk).kubeconfig)
    names = [line.split()[0] for line in answers_within(kubeconfig, 60).stdout.splitlines()]
    assert dead.name not in names and len(names) == 2, names

    # A new host joins as the third member, one at a time, and the cluster is healthy again.
    new = world.lab.hosts[3]
    added = runs.wait_finished(operations.start_add_nodes(
        Cluster.objects.get(pk=cluster.pk),
        [{"role": "server", "private_ip": new.ip, "ssh_port": new.ssh_port, "ssh_user": "root",
          "ssh_private_key": Path(new.private_key_path).read_text()}]), timeout=300)
    assert added.status == RunStatus.SUCCEEDED, failures_of(added)
    config = yaml.safe_load(ssh_run(ssh(new), "cat /etc/rancher/k3s/config.yaml")[1])
    address = Cluster.objects.get(pk=cluster.pk).slb_address
    assert config["server"] == f"https://{address}:6443" and "cluster-init" not in config
    healthy = health_until(cluster, lambda a: a.health == Health.HEALTHY, 120)
    assert healthy.health == Health.HEALTHY, healthy.reasons
    members = Cluster.objects.get(pk=cluster.pk).etcd_members
    assert sorted(m["node"] for m in members) == sorted(
        [servers[0].private_ip, servers[1].private_ip, new.ip])
    assert all(m["healthy"] for m in members)
