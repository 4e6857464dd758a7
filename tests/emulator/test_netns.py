"""Netns mode: SLB addresses appear as /32s in the cloud namespace and proxy inside it."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aliyunsdkslb.request.v20140515 import (
    AddBackendServersRequest,
    DeleteLoadBalancerRequest,
    StartLoadBalancerListenerRequest,
)

from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer, ask
from tests.emulator.test_slb import BACKEND_PORT, create_lb, create_listener, health, wait_for
from tests.support.emulator_calls import as_json, call

PREFIX = "emutest-"
DEVICE = "cloud0"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def _remove_leftovers() -> None:
    """Namespaces of earlier runs whose process is gone (names carry the pid)."""
    for name in _ip("netns", "list").stdout.split():
        if name.startswith(PREFIX):
            pid = name[len(PREFIX):].split("-")[0]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _ip("netns", "del", name)


@pytest.fixture
def cloud_netns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("netns mode needs root to create a network namespace")
    _remove_leftovers()
    name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    result = _ip("netns", "add", name)
    assert result.returncode == 0, f"ip netns add failed: {result.stderr}"
    try:
        steps = (
            ("link", "set", "lo", "up"),
            ("link", "add", DEVICE, "type", "veth", "peer", "name", f"{DEVICE}p"),
            ("link", "set", f"{DEVICE}p", "up"),
            ("link", "set", DEVICE, "up"),
            ("addr", "add", "10.251.1.11/32", "dev", DEVICE),
        )
        for args in steps:
            result = _ip("-n", name, *args)
            assert result.returncode == 0, f"ip {args}: {result.stderr}"
        yield name
    finally:
        _ip("netns", "del", name)


def _addresses(netns: str) -> str:
    return _ip("-n", netns, "-4", "addr", "show", "dev", DEVICE).stdout


@pytest.mark.lab
@pytest.mark.slow
def test_slb_lives_in_the_cloud_namespace(tmp_path: Path, cloud_netns: str) -> None:
    seed = {
        "regions": [{"region_id": "cn-hangzhou", "local_name": "Hangzhou",
                     "zones": ["cn-hangzhou-h", "cn-hangzhou-i"]}],
        "vpcs": [{"vpc_id": "vpc-netnstest", "region_id": "cn-hangzhou", "cidr": "10.251.0.0/16",
                  "vswitches": [{"vswitch_id": "vsw-netnstest", "zone_id": "cn-hangzhou-h",
                                 "cidr": "10.251.1.0/24"}]}],
    }
    with EchoServer("10.251.1.11", BACKEND_PORT, netns=cloud_netns), Emulator(
            tmp_path, netns=cloud_netns, netns_dev=DEVICE, seed=seed) as emu:
        instance = emu.register_instance("k3s-n1", "10.251.1.11")
        lb = create_lb(emu)
        address = lb["Address"]
        assert f"{address}/32" in _addresses(cloud_netns)
        create_listener(emu, lb["LoadBalancerId"])
        call(emu, AddBackendServersRequest.AddBackendServersRequest(),
             LoadBalancerId=lb["LoadBalancerId"], BackendServers=as_json([{"ServerId": instance}]))
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb["LoadBalancerId"], ListenerPort=6443)
        wait_for(lambda: health(emu, lb["LoadBalancerId"]) == {instance: "normal"},
                 what="health checked inside the namespace")
        assert ask(address, 6443, b"ns", netns=cloud_netns) == b"10.251.1.11:ns"
        assert ask(address, 6443, b"root") == b""  # not reachable from the root namespace
        call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(),
             LoadBalancerId=lb["LoadBalancerId"])
        assert f"{address}/32" not in _addresses(cloud_netns)
        assert ask(address, 6443, b"gone", netns=cloud_netns) == b""


@pytest.mark.lab
@pytest.mark.slow
def test_a_restart_on_the_same_state_keeps_addresses_listeners_and_the_endpoint(
        tmp_path: Path, cloud_netns: str) -> None:
    """"The cloud API went away and came back": the emulator restarted mid-run with the same
    state dir. Its /32s are still in the namespace (a second `ip addr add` said "Address
    already assigned"); it comes back on the same port, so a panel pointed at it keeps
    working, and the load balancer proxies again."""
    seed = {
        "regions": [{"region_id": "cn-hangzhou", "local_name": "Hangzhou",
                     "zones": ["cn-hangzhou-h", "cn-hangzhou-i"]}],
        "vpcs": [{"vpc_id": "vpc-netnsrestart", "region_id": "cn-hangzhou",
                  "cidr": "10.251.0.0/16",
                  "vswitches": [{"vswitch_id": "vsw-netnsrestart", "zone_id": "cn-hangzhou-h",
                                 "cidr": "10.251.1.0/24"}]}],
    }
    with EchoServer("10.251.1.11", BACKEND_PORT, netns=cloud_netns), Emulator(
            tmp_path, netns=cloud_netns, netns_dev=DEVICE, seed=seed) as emu:
        instance = emu.register_instance("k3s-n1", "10.251.1.11")
        lb = create_lb(emu)
        address, endpoint = lb["Address"], emu.endpoint
        create_listener(emu, lb["LoadBalancerId"])
        call(emu, AddBackendServersRequest.AddBackendServersRequest(),
             LoadBalancerId=lb["LoadBalancerId"], BackendServers=as_json([{"ServerId": instance}]))
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb["LoadBalancerId"], ListenerPort=6443)
        wait_for(lambda: ask(address, 6443, b"one", netns=cloud_netns) == b"10.251.1.11:one",
                 what="proxy before the restart")

        emu.restart()
        assert emu.endpoint == endpoint
        assert _addresses(cloud_netns).count(f"{address}/32") == 1
        wait_for(lambda: health(emu, lb["LoadBalancerId"]) == {instance: "normal"},
                 what="health after the restart")
        assert ask(address, 6443, b"two", netns=cloud_netns) == b"10.251.1.11:two"

        emu.restart()  # and again: nothing piles up
        assert _addresses(cloud_netns).count(f"{address}/32") == 1
        wait_for(lambda: ask(address, 6443, b"three", netns=cloud_netns) == b"10.251.1.11:three",
                 what="proxy after a second restart")
