"""A cluster on everything the panel buys (issue 15's "must show"): a VPC and vSwitch it
creates, its own security group and key pair, 2 server + 1 agent ECS instances that are real
lab hosts, RDS and a CLB; kubectl through the load balancer lists three Ready nodes, and
destroy leaves nothing of it in the emulator's inventory.

The new VPC takes the world's reachable blocks (sandbox/world.py: reachable_vpc_cidr and
reachable_vswitch_cidr), the only ones whose private addresses the panel, running in the root
namespace, may dial.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from clusters import operations
from clusters.adapters.cloud import cloud_for
from clusters.models import (
    CloudAccount,
    CloudResource,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    InstallSource,
    NodeRole,
    RunStatus,
    StepStatus,
)
from clusters.operations.destroy import start_destroy
from tests.engine.test_ecs_lab import reachable, run_on, scan_script
from tests.support import runs
from tests.support.factories import make_user
from tests.support.world_clusters import K3S_VERSION, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"
BOUGHT_KINDS = ("ecs_instance", "ecs_security_group", "ecs_key_pair", "vpc", "vswitch",
                "rds_instance", "slb_load_balancer", "slb_listener")


def inventory(world) -> list[tuple[str, str]]:
    """What the emulator holds that the API created (seeded lab VPC and hosts excluded)."""
    return sorted((r["type"], r["id"]) for r in world.emulator.control.resources()
                  if r["type"] in BOUGHT_KINDS and not r["id"].startswith(("vpc-lab",
                                                                           "vsw-lab")))


def failures_of(run) -> list[tuple[str, str]]:
    return [(s.key, s.error) for s in run.steps.exclude(status__in=(StepStatus.SUCCEEDED,
                                                                    StepStatus.SKIPPED))]


@pytest.mark.world_hosts(1)
def test_a_cluster_on_a_network_and_instances_the_panel_bought_then_nothing_left(
        world, start_worker, tmp_path, settings):
    env = {**world_env(world), "PANEL_SSH_SOURCE_CIDRS": f"{world.lab.gateway_ip}/32"}
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{world.lab.gateway_ip}/32"]
    start_worker(concurrency=2, beat=True, **env)
    before = inventory(world)
    owner = make_user()
    account = CloudAccount.objects.create(
        owner=owner, name="bought", access_key_id=world.access_key_id,
        access_key_secret=world.access_key_secret, default_region=world.region)
    cluster = Cluster.objects.create(
        owner=owner, cloud_account=account, name="bought", region=world.region,
        zone=world.zone, vpc_id="", vswitch_id="", k3s_version=K3S_VERSION,
        install_source=InstallSource.CUSTOM, install_base_url=world.install_base_url,
        datastore_kind=DatastoreKind.RDS, rds_engine_version="8.0",
        network_order={"vpc_cidr": world.reachable_vpc_cidr,
                       "vswitch_cidr": world.reachable_vswitch_cidr},
        instance_order={"servers": 2, "agents": 1, "instance_type": "ecs.g7.large",
                        "image_id": IMAGE, "system_disk_gb": 40})
    run = runs.wait_finished(operations.start_create(cluster), timeout=420)
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.status == ClusterStatus.READY
    vpc = CloudResource.objects.get(cluster=cluster, kind="vpc").provider_id
    vswitch = CloudResource.objects.get(cluster=cluster, kind="vswitch").provider_id
    assert (cluster.vpc_id, cluster.vswitch_id) == (vpc, vswitch)
    bought = [r for r in world.emulator.control.resources() if r["type"] == "ecs_instance"
              and r["id"] in set(cluster.nodes.values_list("ecs_instance_id", flat=True))]
    assert len(bought) == 3
    # In the VPC and vSwitch the panel created, in its own group (DescribeInstances).
    described = cloud_for(cluster).describe_instances_by_ids([r["id"] for r in bought])
    assert {(i.vpc_id, i.vswitch_id) for i in described} == {(vpc, vswitch)}
    group = CloudResource.objects.get(cluster=cluster, kind="ecs_security_group").provider_id
    assert {c["params"].get("SecurityGroupId") for c in world.emulator.control.calls()
            if c["action"] == "RunInstances"} == {group}
    creates = [c["params"] for c in world.emulator.control.calls()
               if c["action"] in ("CreateVpc", "CreateVSwitch") and c["status"] == 200]
    assert {p["ClientToken"] for p in creates} == set(CloudResource.objects.filter(
        cluster=cluster, kind__in=("vpc", "vswitch")).values_list("client_token", flat=True))
    kinds = {kind for kind, _ in inventory(world)}
    assert {"vpc", "vswitch", "ecs_security_group", "ecs_key_pair", "ecs_instance",
            "rds_instance", "slb_load_balancer"} <= kinds

    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    assert f"server: https://{cluster.slb_address}:6443" in cluster.kubeconfig
    nodes = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes",
                            "--no-headers"], capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and all(row[1] == "Ready" for row in rows), nodes.stdout

    group_admits_what_k3s_needs_and_nothing_more(world, cluster, group, kubeconfig)

    destroyed = runs.wait_finished(start_destroy(cluster, confirm_name=cluster.name),
                                   timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED, failures_of(destroyed)
    assert inventory(world) == before  # nothing the panel bought is left
    assert not CloudResource.objects.filter(cluster=cluster, deleted_at__isnull=True).exists()


UDP_PROBE = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.5)\n"
    "nonce = b'k3s-standin-vxlan scan'\n"
    "s.sendto(nonce, (sys.argv[1], 8472))\n"
    "try:\n"
    "    print(s.recvfrom(512)[0] == nonce)\n"
    "except OSError:\n"
    "    print(False)\n"
)


def pod_network(node) -> dict[str, str]:
    """The node's pod-to-pod check over 8472/udp (sandbox/k3s/flannel.py), read over SSH."""
    text = run_on(node, "cat /var/lib/rancher/k3s/agent/pod-network.json")
    return json.loads(text)["peers"] if text.strip() else {}


def until(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(1.0)


def group_admits_what_k3s_needs_and_nothing_more(world, cluster, group, kubeconfig) -> None:
    """Pod traffic between nodes crosses 8472/udp: with the rule, every node reaches every
    other; without it, none does while every node stays Ready (as in real K3s, where only
    pod-to-pod traffic breaks). From outside the group only the API port answers."""
    nodes = list(cluster.nodes.all())
    ips = {n.private_ip for n in nodes}
    for node in nodes:
        expected = dict.fromkeys(ips - {node.private_ip}, "reachable")
        assert until(lambda node=node, expected=expected: pod_network(node) == expected), (
            node.private_ip, pod_network(node))
    server = next(n for n in nodes if n.role == "server")
    # From the lab's own host, in the VPC but outside the group: 6443 only, no VXLAN, no SSH.
    outside = world.lab.hosts[0]
    scan = world.lab.run(outside, ["python3", "-c", scan_script(server.private_ip)], timeout=30)
    assert reachable(scan.stdout) == {6443}, scan.stdout
    udp = world.lab.run(outside, ["python3", "-c", UDP_PROBE, server.private_ip], timeout=30)
    assert udp.stdout.strip() == "False", udp.stdout
    # Revoke 8472/udp: pod traffic between nodes fails; the nodes stay Ready.
    api = cloud_for(cluster)
    vxlan = [r for r in api.ingress_rules(group) or [] if r.protocol.upper() == "UDP"
             and r.port_range == "8472/8472"]
    assert len(vxlan) == 1 and vxlan[0].source_group_id == group
    api.revoke_ingress(group, vxlan)
    for node in nodes:
        expected = dict.fromkeys(ips - {node.private_ip}, "unreachable")
        assert until(lambda node=node, expected=expected: pod_network(node) == expected), (
            node.private_ip, pod_network(node))
    listed = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes",
                             "--no-headers"], capture_output=True, text=True, timeout=60)
    assert [line.split()[1] for line in listed.stdout.splitlines()] == ["Ready"] * 3


@pytest.mark.world_hosts(1)
def test_a_host_added_by_address_joins_the_bought_group_and_reaches_the_other_nodes(
        world, start_worker, tmp_path, settings):
    """A cluster on one bought server in the lab's VPC; the lab's own host (an ECS instance
    of that VPC the owner already had) added by address joins the nodes' group before K3s
    (add_nodes_plan: ecs.join_group), so the server's rules, which admit VXLAN 8472/udp
    only from the group's members, let its pod traffic in: Ready, and reaching the server
    both ways. Without the join the agent's probes would be dropped at the server."""
    env = {**world_env(world), "PANEL_SSH_SOURCE_CIDRS": f"{world.lab.gateway_ip}/32"}
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{world.lab.gateway_ip}/32"]
    start_worker(concurrency=2, beat=True, **env)
    owner = make_user()
    account = CloudAccount.objects.create(
        owner=owner, name="grown", access_key_id=world.access_key_id,
        access_key_secret=world.access_key_secret, default_region=world.region)
    cluster = Cluster.objects.create(
        owner=owner, cloud_account=account, name="grown", region=world.region,
        zone=world.zone, vpc_id=world.vpc_id, vswitch_id=world.vswitch_id,
        k3s_version=K3S_VERSION, install_source=InstallSource.CUSTOM,
        install_base_url=world.install_base_url, datastore_kind=DatastoreKind.ETCD,
        instance_order={"servers": 1, "agents": 0, "instance_type": "ecs.g7.large",
                        "image_id": IMAGE, "system_disk_gb": 40})
    created = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert created.status == RunStatus.SUCCEEDED, failures_of(created)
    host = world.lab.hosts[0]
    added = runs.wait_finished(operations.start_add_nodes(Cluster.objects.get(pk=cluster.pk), [
        {"role": NodeRole.AGENT, "private_ip": host.ip, "ssh_port": host.ssh_port,
         "ssh_user": "root", "ssh_private_key": Path(host.private_key_path).read_text()}]),
        timeout=240)
    assert added.status == RunStatus.SUCCEEDED, failures_of(added)
    cluster = Cluster.objects.get(pk=cluster.pk)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    shown = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes",
                            "--no-headers"], capture_output=True, text=True, timeout=60)
    assert [line.split()[1] for line in shown.stdout.splitlines()] == ["Ready"] * 2, shown
    agent = cluster.nodes.get(private_ip=host.ip)
    server = cluster.nodes.get(role=NodeRole.SERVER)
    for node, peer in ((agent, server), (server, agent)):
        assert until(lambda node=node, peer=peer: pod_network(node) == {
            peer.private_ip: "reachable"}), (node.private_ip, pod_network(node))
    group = CloudResource.objects.get(cluster=cluster, kind="ecs_security_group").provider_id
    (listed,) = cloud_for(cluster).describe_instances_by_ids([world.instance_ids[host.ip]])
    assert group in listed.security_group_ids
    # Recorded, so the node's removal and destroy take it out again (ecs.leave_group).
    assert CloudResource.objects.get(cluster=cluster, kind__startswith="ecs_join_",
                                     deleted_at__isnull=True).provider_id == listed.instance_id
