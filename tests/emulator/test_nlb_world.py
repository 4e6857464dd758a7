"""The NLB in the offline world (lab namespaces): two zones from the world's two vSwitches,
servers on lab hosts, and its DNS name resolved the way each kind of process does it: a lab
host through its own /etc/resolv.conf (the cloud's DNS stand-in, port 53), the root namespace
through sandbox.aliyun.nlb.resolve (Python hook, and a private mount namespace for any other
program)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sandbox.aliyun.nlb import resolve
from sandbox.world import World, running_world
from tests.emulator.echo import EchoServer
from tests.support.nlb_calls import (
    add_servers,
    create_group,
    create_listener,
    create_nlb,
    nlb,
    wait_for,
    zone_addresses,
)

PORT = 16443
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with running_world(hosts=3, time_scale=0.01) as started:
        yield started


ASK = ("import socket, sys\n"
       "with socket.create_connection((sys.argv[1], 6443), timeout=5) as s:\n"
       "    s.sendall(b'via-name'); print(s.recv(100).decode())\n")


def test_the_nlb_name_resolves_and_forwards_from_hosts_and_the_panel(world: World) -> None:
    emu = world.emulator
    backends, client = world.lab.hosts[:2], world.lab.hosts[2]
    servers = [EchoServer(h.ip, PORT, netns=h.netns) for h in backends]
    try:
        lb_id = create_nlb(emu)
        group = create_group(emu)
        add_servers(emu, group, [(world.instance_ids[h.ip], PORT) for h in backends])
        listener = create_listener(emu, lb_id, group)
        attribute = nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)
        assert [z["VSwitchId"] for z in attribute["ZoneMappings"]] == \
            [v["vswitch_id"] for v in world.vswitches]
        name = attribute["DNSName"]
        addresses = set(zone_addresses(emu, lb_id))
        wait_for(lambda: not nlb(emu, "GetListenerHealthStatus", ListenerId=listener)[
            "ListenerHealthStatus"][0]["ServerGroupInfos"][0]["NonNormalServers"],
            what="both Healthy")
        # A lab host: glibc through its /etc/resolv.conf, the stand-in on the cloud address.
        looked_up = world.lab.run(client, ["getent", "ahostsv4", name], check=True)
        assert {line.split()[0] for line in looked_up.stdout.splitlines()} == addresses
        answered = world.lab.run(client, [sys.executable, "-c", ASK, name], check=True)
        assert answered.stdout.strip() in {f"{h.ip}:via-name" for h in backends}
        # The panel's process (root namespace), and a program such as kubectl.
        with resolve.cloud_dns(world.dns_server), \
                socket.create_connection((name, 6443), timeout=5) as sock:
            sock.sendall(b"panel")
            assert sock.recv(100).decode() in {f"{h.ip}:panel" for h in backends}
        assert name in world.nlb_names()
        with world.resolving(["getent", "ahostsv4", name]) as argv:
            out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
        assert {line.split()[0] for line in out.stdout.splitlines()} == addresses
        # Other names stay unresolvable on the hosts: the world is offline.
        assert world.lab.run(client, ["getent", "hosts", "example.com"]).returncode != 0
    finally:
        for server in servers:
            server.stop()
