"""CLB access control lists: the API rules, and the real proxy refusing what the ACL refuses.

In loopback mode every emulator address is a 127.X.Y.Z; a client binds the source address
it connects from, so "from inside the allowed CIDR" and "from elsewhere" are real sources.
"""

from __future__ import annotations

from typing import Any

from aliyunsdkslb.request.v20140515 import (
    AddAccessControlListEntryRequest,
    AddBackendServersRequest,
    CreateAccessControlListRequest,
    DeleteAccessControlListRequest,
    DeleteLoadBalancerRequest,
    DescribeAccessControlListAttributeRequest,
    DescribeAccessControlListsRequest,
    DescribeLoadBalancerTCPListenerAttributeRequest,
    RemoveAccessControlListEntryRequest,
    StartLoadBalancerListenerRequest,
)

from sandbox import netns as netns_tools
from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer
from tests.emulator.shapes import assert_shape
from tests.emulator.test_slb import (
    BACKEND_PORT,
    create_lb,
    create_listener,
    error_code,
    health,
    wait_for,
)
from tests.support.emulator_calls import as_json, call, host_ip


def create_acl(emu: Emulator, name: str, **setters: Any) -> str:
    return call(emu, CreateAccessControlListRequest.CreateAccessControlListRequest(),
                AclName=name, **setters)["AclId"]


def add(emu: Emulator, acl_id: str, *cidrs: str) -> None:
    call(emu, AddAccessControlListEntryRequest.AddAccessControlListEntryRequest(), AclId=acl_id,
         AclEntrys=as_json([{"entry": c, "comment": "test"} for c in cidrs]))


def remove(emu: Emulator, acl_id: str, *cidrs: str) -> None:
    call(emu, RemoveAccessControlListEntryRequest.RemoveAccessControlListEntryRequest(),
         AclId=acl_id, AclEntrys=as_json([{"entry": c} for c in cidrs]))


def entries(emu: Emulator, acl_id: str) -> list[str]:
    body = call(emu, DescribeAccessControlListAttributeRequest.
                DescribeAccessControlListAttributeRequest(), AclId=acl_id, PageSize=50)
    return [e["AclEntryIP"] for e in body["AclEntrys"]["AclEntry"]]


def answer_from(source: str, address: str, port: int = 6443) -> bytes:
    """What the listener answers a client at `source`: b'' when it was reset or closed."""
    try:
        sock = netns_tools.connect_tcp(address, port, None, timeout=3, source=source)
    except OSError:
        return b""
    with sock:
        try:
            sock.sendall(b"hi")
            chunks = []
            while chunk := sock.recv(1024):
                chunks.append(chunk)
            return b"".join(chunks)
        except OSError:
            return b""


def test_acl_entries_are_cidrs_added_once_at_most_fifty_a_call(emu: Emulator) -> None:
    acl_id = create_acl(emu, "k3s-entries", Tags=[{"Key": "cluster", "Value": "acl1"}])
    assert error_code(lambda: create_acl(emu, "k3s-entries")) == "AclNameExist"
    add(emu, acl_id, "10.0.0.0/24", "203.0.113.7/32")
    add(emu, acl_id, "10.0.0.0/24")  # already there: not added again
    assert entries(emu, acl_id) == ["10.0.0.0/24", "203.0.113.7/32"]
    assert error_code(lambda: add(emu, acl_id, "10.0.0.1/24")) == "InvalidParameter.AclEntrys"
    assert error_code(lambda: add(emu, acl_id, "not-an-ip")) == "InvalidParameter.AclEntrys"
    many = [f"10.9.{n}.0/24" for n in range(51)]
    assert error_code(lambda: add(emu, acl_id, *many)) == "InvalidParameter.AclEntrys"
    remove(emu, acl_id, "10.0.0.0/24", "192.0.2.0/24")  # one absent entry: no error
    assert entries(emu, acl_id) == ["203.0.113.7/32"]
    listed = call(emu, DescribeAccessControlListsRequest.DescribeAccessControlListsRequest(),
                  Tags=[{"Key": "cluster", "Value": "acl1"}])
    assert_shape(listed, {"Acls.Acl[].AclId": str, "Acls.Acl[].AclName": str,
                          "Acls.Acl[].Tags.Tag[].TagKey": str, "TotalCount": int})
    assert [a["AclId"] for a in listed["Acls"]["Acl"]] == [acl_id]
    assert error_code(lambda: entries(emu, "acl-doesnotexist000000")) == "AclNotExist"


def test_a_bound_acl_cannot_be_deleted_until_its_listener_goes(emu: Emulator) -> None:
    acl_id = create_acl(emu, "k3s-bound")
    lb_id = create_lb(emu)["LoadBalancerId"]
    assert error_code(lambda: create_listener(emu, lb_id, AclStatus="on", AclType="white")) \
        == "MissingParameter"
    create_listener(emu, lb_id, AclStatus="on", AclType="white", AclId=acl_id)
    attribute = call(emu, DescribeLoadBalancerTCPListenerAttributeRequest.
                     DescribeLoadBalancerTCPListenerAttributeRequest(),
                     LoadBalancerId=lb_id, ListenerPort=6443)
    assert (attribute["AclStatus"], attribute["AclType"], attribute["AclId"]) == (
        "on", "white", acl_id)
    related = call(emu, DescribeAccessControlListAttributeRequest.
                   DescribeAccessControlListAttributeRequest(), AclId=acl_id)
    assert related["RelatedListeners"]["RelatedListener"] == [
        {"LoadBalancerId": lb_id, "ListenerPort": 6443, "AclType": "white", "Protocol": "tcp"}]
    delete = DeleteAccessControlListRequest.DeleteAccessControlListRequest
    assert error_code(lambda: call(emu, delete(), AclId=acl_id)) == "AclInUsed"
    call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(), LoadBalancerId=lb_id)
    call(emu, delete(), AclId=acl_id)
    assert error_code(lambda: call(emu, delete(), AclId=acl_id)) == "AclNotExist"


def test_the_proxy_forwards_only_whitelisted_sources_live(emu: Emulator) -> None:
    backend_ip, allowed, other = host_ip(emu, 71), host_ip(emu, 72), host_ip(emu, 73)
    with EchoServer(backend_ip, BACKEND_PORT):
        instance = emu.register_instance("k3s-acl", backend_ip)
        acl_id = create_acl(emu, "k3s-live")
        lb = create_lb(emu)
        lb_id, address = lb["LoadBalancerId"], lb["Address"]
        create_listener(emu, lb_id, AclStatus="on", AclType="white", AclId=acl_id)
        call(emu, AddBackendServersRequest.AddBackendServersRequest(), LoadBalancerId=lb_id,
             BackendServers=as_json([{"ServerId": instance, "Weight": "100", "Type": "ecs"}]))
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb_id, ListenerPort=6443)
        wait_for(lambda: set(health(emu, lb_id).values()) == {"normal"}, what="normal")
        # CLB: a whitelist without entries filters nothing.
        assert answer_from(other, address) == f"{backend_ip}:hi".encode()
        add(emu, acl_id, f"{allowed}/32")
        assert answer_from(allowed, address) == f"{backend_ip}:hi".encode()
        assert answer_from(other, address) == b""
        refused = _refused_by_proxy(emu, lb_id)
        assert refused >= 1
        add(emu, acl_id, f"{other}/32")
        assert answer_from(other, address) == f"{backend_ip}:hi".encode()
        remove(emu, acl_id, f"{other}/32")
        assert answer_from(other, address) == b""
        call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(), LoadBalancerId=lb_id)


def _refused_by_proxy(emu: Emulator, lb_id: str) -> int:
    for resource in emu.control.resources():
        if resource["type"] == "slb_listener" and resource["id"] == f"{lb_id}:6443":
            return int(resource["acl"]["refused"])
    raise AssertionError("listener not listed")


def test_a_refused_client_is_reset_before_any_byte(emu: Emulator) -> None:
    """The refusal is an RST, so a client sees 'connection reset', not a silent hang."""
    backend_ip, allowed, other = host_ip(emu, 81), host_ip(emu, 82), host_ip(emu, 83)
    with EchoServer(backend_ip, BACKEND_PORT):
        instance = emu.register_instance("k3s-acl-rst", backend_ip)
        acl_id = create_acl(emu, "k3s-rst")
        add(emu, acl_id, f"{allowed}/32")
        lb = create_lb(emu)
        create_listener(emu, lb["LoadBalancerId"], AclStatus="on", AclType="white",
                        AclId=acl_id)
        call(emu, AddBackendServersRequest.AddBackendServersRequest(),
             LoadBalancerId=lb["LoadBalancerId"],
             BackendServers=as_json([{"ServerId": instance, "Weight": "100", "Type": "ecs"}]))
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb["LoadBalancerId"], ListenerPort=6443)
        reset = False
        try:  # the RST may already come while connect() returns, under load
            sock = netns_tools.connect_tcp(lb["Address"], 6443, None, timeout=3, source=other)
            with sock:
                sock.sendall(b"x")
                reset = sock.recv(10) == b""
        except (ConnectionResetError, BrokenPipeError):
            reset = True
        assert reset
        call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(),
             LoadBalancerId=lb["LoadBalancerId"])
