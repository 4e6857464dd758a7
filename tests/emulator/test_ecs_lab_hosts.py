"""Bought ECS instances are real lab hosts: SSH with the key pair, the image's os-release,
security groups enforced with nftables inside each host, Stop/Delete remove the host.

Slow: a lab with one host of its own (outside every bought instance's group) plus the
instances RunInstances starts.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException

from sandbox.lab import network as lab_network
from sandbox.netns import netns_exists
from sandbox.world import World, running_world
from tests.emulator.ecs_calls import (
    api,
    instance,
    keypair,
    security_group,
    until,
    vswitch_listed,
    wait_released,
    wait_status,
)
from tests.support.tools import require

pytestmark = [pytest.mark.slow, pytest.mark.lab]
LISTENER = (
    "import socket, threading\n"
    "def serve(port):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(16)\n"
    "    while True: s.accept()[0].close()\n"
    "for p in (6443, 10250, 2379): threading.Thread(target=serve, args=(p,)).start()\n"
)
SCANNED = (22, 6443, 10250, 2379)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    require("nft")
    with running_world(hosts=1, time_scale=0.02) as started:
        yield started


@pytest.fixture(scope="module")
def key(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, public = keypair(tmp_path_factory.mktemp("keys"), "rsa")
    api(world.emulator, "ImportKeyPair", KeyPairName="lab-panel", PublicKeyBody=public)
    return path


def ssh(key: Path, ip: str, command: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
         f"root@{ip}", command], capture_output=True, text=True, timeout=timeout, check=False)


def buy(world: World, group: str, count: int, **extra: Any) -> list[str]:
    bought = api(world.emulator, "RunInstances", VSwitchId=world.vswitch_id,
                 ImageId="ubuntu_24_04_x64_20G_alibase_20250722.vhd",
                 InstanceType="ecs.g7.large", SecurityGroupId=group, KeyPairName="lab-panel",
                 Amount=count, **extra)["InstanceIdSets"]["InstanceIdSet"]
    for instance_id in bought:
        wait_status(world.emulator, instance_id, "Running", timeout=90)
    return list(bought)


def private_ip(world: World, instance_id: str) -> str:
    return str(instance(world.emulator, instance_id)["VpcAttributes"]["PrivateIpAddress"][
        "IpAddress"][0])


def allow(world: World, group: str, port: str, source: str, protocol: str = "tcp") -> None:
    api(world.emulator, "AuthorizeSecurityGroup", SecurityGroupId=group,
        Permissions__1__IpProtocol=protocol, Permissions__1__PortRange=port,
        Permissions__1__SourceCidrIp=source)


def revoke(world: World, group: str, port: str, source: str) -> None:
    api(world.emulator, "RevokeSecurityGroup", SecurityGroupId=group,
        Permissions__1__IpProtocol="tcp", Permissions__1__PortRange=port,
        Permissions__1__SourceCidrIp=source)


def open_from_lab_host(world: World, ip: str, ports: tuple[int, ...] = SCANNED) -> set[int]:
    """Ports of `ip` a TCP connect from the lab's own host reaches (it is in no group)."""
    script = ("import socket, sys\n"
              "for p in sys.argv[2:]:\n"
              "    s = socket.socket(); s.settimeout(0.8)\n"
              "    print(p, s.connect_ex((sys.argv[1], int(p))) == 0)\n")
    done = world.lab.run(world.lab.hosts[0], ["python3", "-c", script, ip,
                                              *map(str, ports)], timeout=30)
    return {int(p) for p, ok in (line.split() for line in done.stdout.splitlines())
            if ok == "True"}


def open_from(key: Path, source_ip: str, ip: str, ports: tuple[int, ...] = SCANNED) -> set[int]:
    """Ports of `ip` a connect from a bought host reaches (run over SSH on it)."""
    script = ("import socket\n"
              f"for p in {list(ports)!r}:\n"
              "    s = socket.socket(); s.settimeout(0.8)\n"
              f"    print(p, s.connect_ex(({ip!r}, p)) == 0)\n")
    done = ssh(key, source_ip, f"python3 -c {shlex.quote(script)}", timeout=40)
    assert done.returncode == 0, done.stderr
    return {int(p) for p, ok in (line.split() for line in done.stdout.splitlines())
            if ok == "True"}


def test_bought_host_logs_in_with_the_key_and_wears_the_image(world: World, key: Path) -> None:
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")  # the panel's address
    (bought,) = buy(world, group, 1, HostName="k3s-s1")
    ip = private_ip(world, bought)
    done = ssh(key, ip, "cat /etc/os-release; hostname; id -un")
    assert done.returncode == 0, done.stderr
    assert 'VERSION_ID="24.04"' in done.stdout and "ID=ubuntu" in done.stdout
    assert done.stdout.split()[-2:] == ["k3s-s1", "root"]
    assert ssh(key, ip, "true").returncode == 0
    host_key = ssh(key, ip, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout
    # Stop powers the host off; Start brings the same disk (same host key) back.
    api(world.emulator, "StopInstance", InstanceId=bought)
    wait_status(world.emulator, bought, "Stopped")
    deadline = time.monotonic() + 20
    while ssh(key, ip, "true", timeout=10).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ssh(key, ip, "true", timeout=10).returncode != 0, "a Stopped instance answers SSH"
    api(world.emulator, "StartInstance", InstanceId=bought)
    wait_status(world.emulator, bought, "Running", timeout=90)
    assert ssh(key, ip, "cat /etc/ssh/ssh_host_ed25519_key.pub").stdout == host_key
    netns = next(r["netns"] for r in world.emulator.control.resources() if r["id"] == bought)
    assert netns and netns_exists(netns)
    api(world.emulator, "DeleteInstance", InstanceId=bought, Force=True)
    deadline = time.monotonic() + 20
    while netns_exists(netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not netns_exists(netns), "DeleteInstance leaves the host's namespace"
    assert ssh(key, ip, "true", timeout=10).returncode != 0


def test_password_login_without_a_key_pair(world: World) -> None:
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    bought = api(world.emulator, "RunInstances", VSwitchId=world.vswitch_id,
                 ImageId="debian_12_11_x64_20G_alibase_20250722.vhd",
                 InstanceType="ecs.c7.large", SecurityGroupId=group,
                 Password="Lab-Passw0rd")["InstanceIdSets"]["InstanceIdSet"][0]
    wait_status(world.emulator, bought, "Running", timeout=90)
    # The password is nowhere in clear: the emulator keeps a salted hash, the host's
    # config (its host.json) forgets even that once root's password is set.
    assert "Lab-Passw0rd" not in (world.emulator.state_dir / "state.json").read_text()
    host_json = Path(world.lab.state_dir) / f"bought-{bought}" / "host.json"
    assert "Lab-Passw0rd" not in host_json.read_text()
    assert json.loads(host_json.read_text())["accounts"] == {}
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - a lab host
    client.connect(private_ip(world, bought), username="root", password="Lab-Passw0rd",
                   look_for_keys=False, allow_agent=False, timeout=10)
    try:
        _, out, _ = client.exec_command("cat /etc/os-release")
        assert "ID=debian" in out.read().decode()
    finally:
        client.close()
    with pytest.raises(paramiko.AuthenticationException):
        other = paramiko.SSHClient()
        other.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
        try:
            other.connect(private_ip(world, bought), username="root", password="wrong-Passw0rd",
                          look_for_keys=False, allow_agent=False, timeout=10)
        finally:
            other.close()
    api(world.emulator, "DeleteInstance", InstanceId=bought, Force=True)


def test_security_group_rules_are_enforced(world: World, key: Path) -> None:
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    first, second = buy(world, group, 2)
    a, b = private_ip(world, first), private_ip(world, second)
    started = ssh(key, a, f"nohup python3 -c {shlex.quote(LISTENER)} >/dev/null 2>&1 &")
    assert started.returncode == 0, started.stderr
    vpc_cidr = world.emulator.vpc["cidr"]
    allow(world, group, "6443/6443", vpc_cidr)
    # From outside the group (the lab's own host, inside the VPC): only what rules allow.
    assert open_from_lab_host(world, a) == {6443}
    # Narrowed rules stay narrow: another destination, a source port no client uses.
    for narrowing in ({"Permissions__1__DestCidrIp": f"{b}/32"},
                      {"Permissions__1__SourcePortRange": "1/1"}):
        api(world.emulator, "AuthorizeSecurityGroup", SecurityGroupId=group,
            Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="10250/10250",
            Permissions__1__SourceCidrIp=vpc_cidr, **narrowing)
    assert open_from_lab_host(world, a) == {6443}
    # Inside the group (InnerAccessPolicy Accept, a basic group's default): everything.
    assert open_from(key, b, a) == set(SCANNED)
    # Isolated inside: only the rules; a SourceGroupId rule opens the kubelet to members.
    api(world.emulator, "ModifySecurityGroupPolicy", SecurityGroupId=group,
        InnerAccessPolicy="Drop")
    assert open_from(key, b, a) == {6443}
    api(world.emulator, "AuthorizeSecurityGroup", SecurityGroupId=group,
        Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="10250/10250",
        Permissions__1__SourceGroupId=group)
    assert open_from(key, b, a) == {6443, 10250}
    assert open_from_lab_host(world, a) == {6443}
    # Removing a rule closes the port at once; a higher-priority Drop beats an Accept.
    revoke(world, group, "6443/6443", vpc_cidr)
    assert open_from_lab_host(world, a) == set()
    allow(world, group, "2379/2379", vpc_cidr)
    api(world.emulator, "AuthorizeSecurityGroup", SecurityGroupId=group,
        Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="2379/2379",
        Permissions__1__SourceCidrIp=world.lab.hosts[0].ip + "/32",
        Permissions__1__Policy="drop", Permissions__1__Priority="1")
    assert open_from_lab_host(world, a) == set()
    assert 2379 in open_from(key, b, a)
    # Leaving the group: the member's address is no longer admitted by SourceGroupId rules.
    other = security_group(world.emulator, world.vpc_id)
    api(world.emulator, "JoinSecurityGroup", SecurityGroupId=other, InstanceId=second)
    api(world.emulator, "LeaveSecurityGroup", SecurityGroupId=group, InstanceId=second)
    allow(world, other, "22/22", f"{world.lab.gateway_ip}/32")
    assert 10250 not in open_from(key, b, a)
    api(world.emulator, "DeleteInstances", InstanceId__1=first, InstanceId__2=second,
        Force=True)


def _bought_namespaces(world: World) -> set[str]:
    return set(lab_network.existing_netns(world.lab.prefix)) - {
        h.netns for h in world.lab.hosts}


def test_a_failed_batch_start_boots_no_host(world: World, key: Path) -> None:
    """StartInstances (AllTogether) failing on a later instance changes nothing: the
    Stopped one before it gets no host (no namespace, no SSH, no duplicate address)."""
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    first, second = buy(world, group, 2)
    a = private_ip(world, first)
    old_netns = next(r["netns"] for r in world.emulator.control.resources()
                     if r["id"] == first)
    api(world.emulator, "StopInstance", InstanceId=first)
    wait_status(world.emulator, first, "Stopped")
    deadline = time.monotonic() + 20
    while netns_exists(old_netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not netns_exists(old_netns), "a Stopped instance keeps its namespace"
    before = _bought_namespaces(world)
    with pytest.raises(ServerException, match="IncorrectInstanceStatus"):
        api(world.emulator, "StartInstances", InstanceId__1=first, InstanceId__2=second)
    deadline = time.monotonic() + 15  # a boot takes a few seconds: long enough to see one
    while time.monotonic() < deadline:
        assert _bought_namespaces(world) <= before, "a host booted for a failed start"
        time.sleep(0.25)
    assert instance(world.emulator, first)["Status"] == "Stopped"
    assert ssh(key, a, "true", timeout=10).returncode != 0
    api(world.emulator, "StartInstance", InstanceId=first)
    wait_status(world.emulator, first, "Running", timeout=90)
    assert ssh(key, a, "true").returncode == 0
    api(world.emulator, "DeleteInstances", InstanceId__1=first, InstanceId__2=second,
        Force=True)


def test_a_failed_boot_leaves_nothing_and_ends_stopped(world: World, key: Path) -> None:
    """A host that does not answer SSH in time: its namespace, veth and init go, the
    instance is Stopped (not stuck in Starting), so it starts again or is released."""
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    before = _bought_namespaces(world)
    world.emulator.control.set_ecs_ready_timeout(0)
    try:
        (bought,) = api(world.emulator, "RunInstances", VSwitchId=world.vswitch_id,
                        ImageId="ubuntu_24_04_x64_20G_alibase_20250722.vhd",
                        InstanceType="ecs.g7.large", SecurityGroupId=group,
                        KeyPairName="lab-panel")["InstanceIdSets"]["InstanceIdSet"]
        wait_status(world.emulator, bought, "Stopped", timeout=90)
    finally:
        world.emulator.control.set_ecs_ready_timeout(None)
    deadline = time.monotonic() + 20
    while _bought_namespaces(world) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _bought_namespaces(world) - before, "the failed host's namespace stayed"
    assert [r["netns"] for r in world.emulator.control.resources() if r["id"] == bought] \
        == [""]
    api(world.emulator, "StartInstance", InstanceId=bought)
    wait_status(world.emulator, bought, "Running", timeout=90)
    assert ssh(key, private_ip(world, bought), "true").returncode == 0
    api(world.emulator, "StopInstance", InstanceId=bought)
    wait_status(world.emulator, bought, "Stopped")
    api(world.emulator, "DeleteInstance", InstanceId=bought)


def _cloud_route(world: World, cidr: str) -> str:
    return subprocess.run(["ip", "-n", world.lab.cloud_netns, "route", "show", cidr],
                          capture_output=True, text=True, check=True).stdout


def test_a_block_two_vpcs_share_keeps_its_route_until_the_last(world: World) -> None:
    """Two VPCs may number vSwitches from the same block: the cloud namespace's route to
    it stays while one of them is left."""
    emu, cidr, made = world.emulator, "192.168.77.0/24", []
    for _ in range(2):
        vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
        _until_available(world, "DescribeVpcs", "Vpcs", "Vpc", VpcId=vpc_id)
        vsw_id = api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=world.zone,
                     CidrBlock=cidr)["VSwitchId"]
        _until_available(world, "DescribeVSwitches", "VSwitches", "VSwitch", VSwitchId=vsw_id)
        made.append((vpc_id, vsw_id))
    assert cidr in _cloud_route(world, cidr)
    api(emu, "DeleteVSwitch", "Vpc", VSwitchId=made[0][1])
    until(lambda: not vswitch_listed(emu, made[0][1]), "the vSwitch still listed")
    assert cidr in _cloud_route(world, cidr), "the other VPC's vSwitch lost its route"
    api(emu, "DeleteVSwitch", "Vpc", VSwitchId=made[1][1])
    until(lambda: not vswitch_listed(emu, made[1][1]), "the vSwitch still listed")
    assert cidr not in _cloud_route(world, cidr)
    for vpc_id, _ in made:
        api(emu, "DeleteVpc", "Vpc", VpcId=vpc_id)


def _until_available(world: World, action: str, key: str, item: str, **query: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        (found,) = api(world.emulator, action, "Vpc", **query)[key][item]
        if found["Status"] == "Available":
            return
        time.sleep(0.05)
    raise AssertionError(f"{action} {query}: not Available")


def test_hosts_in_a_vpc_the_panel_created(world: World, key: Path) -> None:
    """A VPC and vSwitch outside the lab's subnet: the panel reaches the hosts by their
    public IPs (as from outside a real VPC); they reach each other and the cloud's
    services (the DNS stand-in on the cloud address) over their private addresses."""
    emu = world.emulator
    vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
    _until_available(world, "DescribeVpcs", "Vpcs", "Vpc", VpcId=vpc_id)
    vsw_id = api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=world.zone,
                 CidrBlock="192.168.1.0/24")["VSwitchId"]
    _until_available(world, "DescribeVSwitches", "VSwitches", "VSwitch", VSwitchId=vsw_id)
    group = security_group(emu, vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    bought = api(emu, "RunInstances", VSwitchId=vsw_id,
                 ImageId="aliyun_3_x64_20G_alibase_20250629.vhd", InstanceType="ecs.g7.large",
                 SecurityGroupId=group, KeyPairName="lab-panel", Amount=2,
                 InternetMaxBandwidthOut=10)["InstanceIdSets"]["InstanceIdSet"]
    for instance_id in bought:
        wait_status(emu, instance_id, "Running", timeout=90)
    first, second = (instance(emu, i) for i in bought)
    public = first["PublicIpAddress"]["IpAddress"][0]
    peer = second["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]
    assert peer.startswith("192.168.1.")
    done = ssh(key, public, "cat /etc/os-release; ip -4 -o addr show dev eth0")
    assert done.returncode == 0, done.stderr
    assert 'ID="alinux"' in done.stdout
    assert first["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0] in done.stdout
    assert open_from(key, public, peer, (22,)) == {22}
    assert open_from(key, public, world.lab.cloud_ip, (53,)) == {53}
    api(emu, "DeleteInstances", InstanceId__1=bought[0], InstanceId__2=bought[1], Force=True)
    wait_released(emu, *bought)
    api(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id)  # released instances hold nothing
    api(emu, "DeleteSecurityGroup", SecurityGroupId=group)
    until(lambda: not vswitch_listed(emu, vsw_id), "the vSwitch still listed")
    api(emu, "DeleteVpc", "Vpc", VpcId=vpc_id)


def test_a_created_vswitch_on_the_lab_subnet_is_reached_privately(world: World,
                                                                   key: Path) -> None:
    emu = world.emulator
    vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock=world.reachable_vpc_cidr)["VpcId"]
    _until_available(world, "DescribeVpcs", "Vpcs", "Vpc", VpcId=vpc_id)
    vsw_id = api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=world.zone,
                 CidrBlock=world.reachable_vswitch_cidr)["VSwitchId"]
    _until_available(world, "DescribeVSwitches", "VSwitches", "VSwitch", VSwitchId=vsw_id)
    group = security_group(emu, vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    (bought,) = api(emu, "RunInstances", VSwitchId=vsw_id,
                    ImageId="ubuntu_22_04_x64_20G_alibase_20250722.vhd",
                    InstanceType="ecs.c7.large", SecurityGroupId=group,
                    KeyPairName="lab-panel")["InstanceIdSets"]["InstanceIdSet"]
    wait_status(emu, bought, "Running", timeout=90)
    done = ssh(key, private_ip(world, bought), "grep VERSION_ID /etc/os-release")
    assert done.returncode == 0, done.stderr
    assert '"22.04"' in done.stdout
    api(emu, "DeleteInstance", InstanceId=bought, Force=True)
    wait_released(emu, bought)
    api(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id)
    api(emu, "DeleteSecurityGroup", SecurityGroupId=group)
    until(lambda: not vswitch_listed(emu, vsw_id), "the vSwitch still listed")
    api(emu, "DeleteVpc", "Vpc", VpcId=vpc_id)
    # The cloud namespace's own route to the lab subnet was never touched.
    routes = subprocess.run(["ip", "-n", world.lab.cloud_netns, "route", "show",
                             world.lab.subnet], capture_output=True, text=True, check=True)
    assert "proto kernel" in routes.stdout
    assert open_from_lab_host(world, world.lab.cloud_ip, (53,)) == {53}


def test_the_cloud_api_restarting_does_not_power_hosts_off(world: World, key: Path) -> None:
    group = security_group(world.emulator, world.vpc_id)
    allow(world, group, "22/22", f"{world.lab.gateway_ip}/32")
    first, second = buy(world, group, 2)
    a, b = private_ip(world, first), private_ip(world, second)
    pids = {r["id"]: r["pids"] for r in world.emulator.control.resources()
            if r["id"] in (first, second)}
    os.kill(pids[second][0], signal.SIGKILL)  # one host dies while the API is away
    world.restart_cloud()
    assert instance(world.emulator, first)["Status"] == "Running"
    assert ssh(key, a, "true").returncode == 0
    assert [r["pids"] for r in world.emulator.control.resources() if r["id"] == first] == [
        pids[first]], "the living host was left alone"
    deadline = time.monotonic() + 60
    while ssh(key, b, "true", timeout=10).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ssh(key, b, "hostname").returncode == 0, "the dead host was booted again"
    api(world.emulator, "DeleteInstances", InstanceId__1=first, InstanceId__2=second,
        Force=True)


def test_reset_removes_every_bought_host(world: World, key: Path) -> None:
    """Last in this module: a reset also forgets the key pair, the groups, and the VPCs
    the API created (with their blocks' routes in the cloud namespace)."""
    group = security_group(world.emulator, world.vpc_id)
    buy(world, group, 1)
    vpc_id = api(world.emulator, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
    _until_available(world, "DescribeVpcs", "Vpcs", "Vpc", VpcId=vpc_id)
    api(world.emulator, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=world.zone,
        CidrBlock="192.168.88.0/24")
    assert "192.168.88.0/24" in _cloud_route(world, "192.168.88.0/24")
    netns = [r["netns"] for r in world.emulator.control.resources() if r.get("bought")]
    assert netns and all(netns_exists(n) for n in netns)
    world.emulator.control.reset()
    deadline = time.monotonic() + 20
    while any(netns_exists(n) for n in netns) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [n for n in netns if netns_exists(n)]
    assert not [r for r in world.emulator.control.resources() if r["type"] == "ecs_instance"
                and r.get("bought")]
    assert "192.168.88.0/24" not in _cloud_route(world, "192.168.88.0/24")
