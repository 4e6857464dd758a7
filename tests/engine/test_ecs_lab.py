"""Instances the panel buys are real lab hosts (the emulator's RunInstances with a lab): the
panel's steps buy them, preflight reaches them over SSH with the generated key and pins each
host key on first contact, and the nodes' security group admits what its rules say and
nothing more, enforced inside each host (sandbox/aliyun/ecs_firewall.py).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from clusters.adapters import cloud
from clusters.adapters.nodes import target_for
from clusters.adapters.ssh import load_private_key
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import CloudAccount, Cluster, Run, RunKind, StepStatus
from sandbox.world import World, running_world
from tests.support.engine_specs import InProcessEngine
from tests.support.factories import make_user
from tests.support.runs import step
from tests.support.tools import require

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

LISTENER = (
    "import socket, threading\n"
    "def serve(port):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(16)\n"
    "    while True: s.accept()[0].close()\n"
    "for p in (6443, 10250, 2379, 8080): threading.Thread(target=serve, args=(p,)).start()\n"
)
SCAN = (22, 6443, 10250, 2379, 8080)
PLAN = [StepSpec("keypair", "Key pair", "ecs.keypair"),
        StepSpec("group", "Security group", "ecs.security_group", ["keypair"]),
        StepSpec("check", "DryRun", "ecs.check_order", ["group"]),
        StepSpec("buy", "Instances", "ecs.run_instances", ["check"]),
        StepSpec("preflight", "Preflight", "preflight.hosts", ["buy"])]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    require("nft")
    with running_world(hosts=1, time_scale=0.02) as started:
        yield started


def settle(engine: InProcessEngine, seconds: float = 240.0) -> None:
    engine.settle(seconds, pause=0.3)


def run_on(node: Any, command: str, timeout: float = 40.0) -> str:
    """A command on a bought host, over SSH with the node's own (generated) key."""
    target = target_for(node)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - the test's own check
    client.connect(target.host, port=target.port, username=target.username,
                   pkey=load_private_key(node.ssh_private_key), timeout=10,
                   allow_agent=False, look_for_keys=False)
    try:
        _, out, _ = client.exec_command(command, timeout=timeout)
        return str(out.read().decode())
    finally:
        client.close()


def reachable(text: str) -> set[int]:
    return {int(p) for p, ok in (line.split() for line in text.splitlines()) if ok == "True"}


def scan_script(ip: str) -> str:
    return ("import socket\n"
            f"for p in {list(SCAN)!r}:\n"
            "    s = socket.socket(); s.settimeout(0.8)\n"
            f"    print(p, s.connect_ex(({ip!r}, p)) == 0)\n")


def test_bought_hosts_are_reached_with_the_generated_key_and_admit_only_k3s_ports(
        world: World, engine: InProcessEngine, settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{world.lab.gateway_ip}/32"]  # the panel, as hosts see it
    settings.PANEL_CLOUD_POLL_SECONDS = 0.5
    owner = make_user()
    account = CloudAccount.objects.create(owner=owner, name="world",
                                          access_key_id=world.emulator.access_key_id,
                                          access_key_secret=world.emulator.access_key_secret)
    cluster = Cluster.objects.create(
        owner=owner, cloud_account=account, name="bought", region=world.region,
        zone=world.zone, vpc_id=world.vpc_id, vswitch_id=world.vswitch_id,
        k3s_token="K10" + "a" * 40,
        instance_order={"servers": 1, "agents": 1, "instance_type": "ecs.g7.large",
                        "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd",
                        "system_disk_gb": 40})
    run: Run = engine.act(create_run, cluster, RunKind.TEST, PLAN)
    settle(engine)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    preflight = step(run, "preflight")
    server, agent = sorted(cluster.nodes.all(), key=lambda n: n.role != "server")
    # Preflight reached both over SSH with the generated key; their host keys are pinned now.
    assert preflight.status == StepStatus.SUCCEEDED, preflight.error
    server.refresh_from_db()
    agent.refresh_from_db()
    assert server.host_key.startswith("SHA256:") and agent.host_key.startswith("SHA256:")
    assert "ID=ubuntu" in run_on(server, "cat /etc/os-release")

    for node in (server, agent):
        run_on(node, f"nohup python3 -c {shlex.quote(LISTENER)} >/dev/null 2>&1 &")
    time.sleep(1.0)
    # Inside the group: the API, flannel's and kubelet's ports; SSH only from the panel.
    inside = reachable(run_on(agent, f"python3 -c {shlex.quote(scan_script(server.private_ip))}"))
    assert inside == {6443, 10250}
    # From the VPC, outside the group (the lab's own host): the API only.
    outside = world.lab.run(world.lab.hosts[0], ["python3", "-c", scan_script(
        server.private_ip)], timeout=30)
    assert reachable(outside.stdout) == {6443}
    group = cluster.resources.get(kind="ecs_security_group").provider_id
    assert group and cloud.cloud_for(cluster).ingress_rules(group)


def test_a_host_bought_with_bandwidth_is_reached_at_its_public_address(
        world: World, engine: InProcessEngine, settings: Any) -> None:
    """InternetMaxBandwidthOut > 0: RunInstances assigns a public address, on the host too
    (the lab plumbs it), and the Node records it. The lab's gateway (the panel, as the hosts
    see it) lies inside the VPC's block, so the group admits the panel's SSH from inside the
    VPC only and the panel logs in at the private address (steps/ecs.py ssh_by_private_ip);
    preflight does, and pins the host key."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{world.lab.gateway_ip}/32"]
    settings.PANEL_CLOUD_POLL_SECONDS = 0.5
    owner = make_user()
    account = CloudAccount.objects.create(owner=owner, name="world-public",
                                          access_key_id=world.emulator.access_key_id,
                                          access_key_secret=world.emulator.access_key_secret)
    cluster = Cluster.objects.create(
        owner=owner, cloud_account=account, name="public", region=world.region,
        zone=world.zone, vpc_id=world.vpc_id, vswitch_id=world.vswitch_id,
        k3s_token="K10" + "b" * 40,
        instance_order={"servers": 1, "agents": 0, "instance_type": "ecs.g7.large",
                        "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd",
                        "system_disk_gb": 40, "public_bandwidth_mbps": 5})
    run: Run = engine.act(create_run, cluster, RunKind.TEST, PLAN)
    settle(engine)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    (node,) = cluster.nodes.all()
    assert node.public_ip and node.public_ip != node.private_ip
    assert node.ssh_private_only and target_for(node).host == node.private_ip
    preflight = step(run, "preflight")
    assert preflight.status == StepStatus.SUCCEEDED, preflight.error
    node.refresh_from_db()
    assert node.host_key.startswith("SHA256:")
    assert node.public_ip in run_on(node, "ip -4 -o addr show")
