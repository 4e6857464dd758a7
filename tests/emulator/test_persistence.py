"""State survives a restart, running listeners come back, reset removes everything."""

from __future__ import annotations

import pytest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkslb.request.v20140515 import (
    AddBackendServersRequest,
    DescribeLoadBalancerAttributeRequest,
    DescribeLoadBalancersRequest,
    StartLoadBalancerListenerRequest,
)

from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer, ask, listening
from tests.emulator.test_slb import BACKEND_PORT, create_lb, create_listener, health, wait_for
from tests.support.emulator_calls import as_json, call, host_ip


def started_lb(emu: Emulator, backend_ip: str) -> dict[str, str]:
    instance = emu.register_instance("k3s-r1", backend_ip)
    lb = create_lb(emu, Tags=[{"Key": "cluster", "Value": "restart"}])
    create_listener(emu, lb["LoadBalancerId"])
    call(emu, AddBackendServersRequest.AddBackendServersRequest(),
         LoadBalancerId=lb["LoadBalancerId"], BackendServers=as_json([{"ServerId": instance}]))
    call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
         LoadBalancerId=lb["LoadBalancerId"], ListenerPort=6443)
    return {"lb_id": lb["LoadBalancerId"], "address": lb["Address"], "instance": instance}


@pytest.mark.slow
def test_restart_keeps_resources_and_reopens_listeners(fresh_emu: Emulator) -> None:
    backend_ip = host_ip(fresh_emu, 31)
    with EchoServer(backend_ip, BACKEND_PORT):
        made = started_lb(fresh_emu, backend_ip)
        wait_for(lambda: ask(made["address"], 6443, b"one") == f"{backend_ip}:one".encode(),
                 what="proxy before restart")
        fresh_emu.stop()
        assert not listening(made["address"], 6443)
        fresh_emu.start()
        attribute = call(fresh_emu, DescribeLoadBalancerAttributeRequest.
                         DescribeLoadBalancerAttributeRequest(), LoadBalancerId=made["lb_id"])
        assert attribute["ListenerPorts"]["ListenerPort"] == [6443]
        assert attribute["BackendServers"]["BackendServer"][0]["ServerId"] == made["instance"]
        instances = call(fresh_emu, DescribeInstancesRequest(),
                         InstanceIds=as_json([made["instance"]]))
        assert instances["TotalCount"] == 1
        wait_for(lambda: health(fresh_emu, made["lb_id"]) == {made["instance"]: "normal"},
                 what="health after restart")
        assert ask(made["address"], 6443, b"two") == f"{backend_ip}:two".encode()


def test_reset_deletes_resources_and_closes_listeners(fresh_emu: Emulator) -> None:
    backend_ip = host_ip(fresh_emu, 32)
    with EchoServer(backend_ip, BACKEND_PORT):
        made = started_lb(fresh_emu, backend_ip)
        wait_for(lambda: listening(made["address"], 6443), what="listening")
        fresh_emu.control.reset()
        assert not listening(made["address"], 6443)
        assert fresh_emu.control.resources() == []
        listed = call(fresh_emu, DescribeLoadBalancersRequest.DescribeLoadBalancersRequest())
        assert listed["TotalCount"] == 0
        # The seed and the account survive a plain reset.
        assert create_lb(fresh_emu)["LoadBalancerId"]
