"""SLB: the API the panel calls, and a started listener that really proxies TCP."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkslb.request.v20140515 import (
    AddBackendServersRequest,
    AddTagsRequest,
    CreateLoadBalancerRequest,
    CreateLoadBalancerTCPListenerRequest,
    DeleteLoadBalancerListenerRequest,
    DeleteLoadBalancerRequest,
    DescribeHealthStatusRequest,
    DescribeLoadBalancerAttributeRequest,
    DescribeLoadBalancersRequest,
    DescribeLoadBalancerTCPListenerAttributeRequest,
    DescribeRegionsRequest,
    DescribeTagsRequest,
    ListTagResourcesRequest,
    RemoveBackendServersRequest,
    RemoveTagsRequest,
    SetBackendServersRequest,
    SetLoadBalancerDeleteProtectionRequest,
    StartLoadBalancerListenerRequest,
    StopLoadBalancerListenerRequest,
    TagResourcesRequest,
    UntagResourcesRequest,
)

from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer, ask, listening
from tests.emulator.shapes import assert_shape
from tests.support.emulator_calls import as_json, call, host_ip

BACKEND_PORT = 16443


def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def create_lb(emu: Emulator, **setters: Any) -> dict[str, Any]:
    setters.setdefault("VSwitchId", emu.vswitch["vswitch_id"])
    setters.setdefault("InstanceChargeType", "PayByCLCU")  # the only CLB sold since 2025-06-01
    return call(emu, CreateLoadBalancerRequest.CreateLoadBalancerRequest(), **setters)


def create_listener(emu: Emulator, lb_id: str, **setters: Any) -> None:
    params = {"LoadBalancerId": lb_id, "ListenerPort": 6443, "BackendServerPort": BACKEND_PORT,
              "Bandwidth": -1, "HealthyThreshold": 2, "UnhealthyThreshold": 2,
              "healthCheckInterval": 1, "HealthCheckConnectTimeout": 2, **setters}
    call(emu, CreateLoadBalancerTCPListenerRequest.CreateLoadBalancerTCPListenerRequest(),
         **params)


def health(emu: Emulator, lb_id: str) -> dict[str, str]:
    body = call(emu, DescribeHealthStatusRequest.DescribeHealthStatusRequest(),
                LoadBalancerId=lb_id)
    return {b["ServerId"]: b["ServerHealthStatus"] for b in body["BackendServers"]["BackendServer"]}


def error_code(action: Callable[[], Any]) -> str:
    with pytest.raises(ServerException) as caught:
        action()
    return caught.value.get_error_code()


def test_create_intranet_lb_from_the_vswitch(emu: Emulator) -> None:
    lb = create_lb(emu, LoadBalancerName="k3s-api", ClientToken="lb-token-1",
                   Tags=[{"Key": "cluster", "Value": "c1"}])
    assert_shape(lb, {"LoadBalancerId": str, "Address": str, "NetworkType": str, "VpcId": str,
                      "VSwitchId": str, "AddressIPVersion": str})
    prefix = emu.vswitch["cidr"].rsplit(".", 1)[0] + "."
    assert lb["Address"].startswith(prefix) and lb["VpcId"] == emu.vpc["vpc_id"]
    again = create_lb(emu, LoadBalancerName="k3s-api", ClientToken="lb-token-1",
                      Tags=[{"Key": "cluster", "Value": "c1"}])
    assert again["LoadBalancerId"] == lb["LoadBalancerId"]
    assert error_code(lambda: create_lb(emu, LoadBalancerName="other",
                                        ClientToken="lb-token-1")) == "LX_REQUEST_TOKEN_CONFLICT"
    attribute = call(emu, DescribeLoadBalancerAttributeRequest.
                     DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb["LoadBalancerId"])
    assert_shape(attribute, {
        "LoadBalancerStatus": str, "Address": str, "AddressType": str, "CreateTimeStamp": int,
        "ListenerPorts.ListenerPort": list, "BackendServers.BackendServer": list,
        "ListenerPortsAndProtocol.ListenerPortAndProtocol": list, "Tags.Tag[].TagKey": str,
        "MasterZoneId": str, "SlaveZoneId": str, "Bandwidth": int,
    })
    assert (attribute["LoadBalancerStatus"], attribute["AddressType"]) == ("active", "intranet")
    listed = call(emu, DescribeLoadBalancersRequest.DescribeLoadBalancersRequest(),
                  Tags=as_json([{"TagKey": "cluster", "TagValue": "c1"}]))
    assert_shape(listed, {"LoadBalancers.LoadBalancer[].LoadBalancerId": str, "TotalCount": int})
    assert [x["LoadBalancerId"] for x in listed["LoadBalancers"]["LoadBalancer"]] == [
        lb["LoadBalancerId"]]


def test_internet_lb_comes_from_the_public_pool(emu: Emulator) -> None:
    lb = create_lb(emu, VSwitchId="", AddressType="internet")
    assert lb["Address"].startswith(emu.seed_document["public_cidr"].rsplit(".", 1)[0] + ".")
    assert lb["NetworkType"] == "classic"


def test_create_refusals(emu: Emulator) -> None:
    assert error_code(lambda: create_lb(emu, VSwitchId="vsw-missing")) == (
        "InvalidVSwitchId.NotExist")
    assert error_code(lambda: create_lb(emu, LoadBalancerSpec="slb.huge")) == "InvalidParameter"
    assert error_code(lambda: call(
        emu, DescribeLoadBalancerAttributeRequest.DescribeLoadBalancerAttributeRequest(),
        LoadBalancerId="lb-nothere")) == "InvalidLoadBalancerId.NotFound"


def test_pay_by_spec_is_no_longer_sold_and_lcu_reads_back_as_the_api_reports_it(
        emu: Emulator) -> None:
    # Sold out since 2025-06-01: explicitly, and by omission (PayBySpec is the parameter's
    # default, which is what the panel used to send with LoadBalancerSpec alone).
    for setters in ({"InstanceChargeType": "PayBySpec", "LoadBalancerSpec": "slb.s1.small"},
                    {"InstanceChargeType": None, "LoadBalancerSpec": "slb.s1.small"}):
        request = CreateLoadBalancerRequest.CreateLoadBalancerRequest()
        request.set_VSwitchId(emu.vswitch["vswitch_id"])
        for name, value in setters.items():
            if value is not None:
                getattr(request, f"set_{name}")(value)
        with pytest.raises(ServerException) as caught:
            emu.call(request)
        assert caught.value.get_error_code() == "IllegalParam.InstanceChargeType"
        assert caught.value.get_http_status() == 400
        assert caught.value.get_request_id()
    assert error_code(lambda: create_lb(emu, VSwitchId="", AddressType="internet",
                                        InternetChargeType="paybybandwidth", Bandwidth=10)) == (
        "Instance.InternetChargeTypeNotAllowed")

    lb = create_lb(emu, PayType="PayOnDemand", LoadBalancerName="k3s-lcu")
    attribute = call(emu, DescribeLoadBalancerAttributeRequest.
                     DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb["LoadBalancerId"])
    assert (attribute["InstanceChargeType"], attribute["LoadBalancerSpec"],
            attribute["PayType"]) == ("PayByCLCU", "slb.lcu.elastic", "PayOnDemand")
    listed = call(emu, DescribeLoadBalancersRequest.DescribeLoadBalancersRequest(),
                  LoadBalancerId=lb["LoadBalancerId"])
    (entry,) = listed["LoadBalancers"]["LoadBalancer"]
    assert (entry["InstanceChargeType"], entry["LoadBalancerSpec"]) == (
        "PayByCLCU", "slb.lcu.elastic")


def test_a_pay_by_spec_lb_bought_before_the_cutoff_keeps_working(emu: Emulator) -> None:
    seeded = emu.control.seed_legacy_load_balancer(
        region_id=emu.region_id, vswitch_id=emu.vswitch["vswitch_id"], spec="slb.s2.small",
        name="k3s-old", tags={"cluster": "old"})
    lb_id = seeded["load_balancer_id"]
    attribute = call(emu, DescribeLoadBalancerAttributeRequest.
                     DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb_id)
    assert (attribute["InstanceChargeType"], attribute["LoadBalancerSpec"]) == (
        "PayBySpec", "slb.s2.small")
    assert attribute["CreateTime"] < "2025-06-01"
    create_listener(emu, lb_id)
    instance = emu.register_instance("legacy-backend", host_ip(emu, 61))
    call(emu, AddBackendServersRequest.AddBackendServersRequest(), LoadBalancerId=lb_id,
         BackendServers=as_json([{"ServerId": instance, "Weight": "100"}]))
    call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
         LoadBalancerId=lb_id, ListenerPort=6443)
    assert set(health(emu, lb_id)) == {instance}
    call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(), LoadBalancerId=lb_id)
    assert lb_id not in {r["id"] for r in emu.control.resources()}
    with pytest.raises(Exception, match="spec must be one of"):
        emu.control.seed_legacy_load_balancer(region_id=emu.region_id, spec="slb.lcu.elastic",
                                              vswitch_id=emu.vswitch["vswitch_id"])


def test_listener_lifecycle_and_attributes(emu: Emulator) -> None:
    lb_id = create_lb(emu)["LoadBalancerId"]
    missing_bandwidth = CreateLoadBalancerTCPListenerRequest.CreateLoadBalancerTCPListenerRequest()
    assert error_code(lambda: call(emu, missing_bandwidth, LoadBalancerId=lb_id,
                                   ListenerPort=6443, BackendServerPort=6443)) == (
        "MissingParameter")
    create_listener(emu, lb_id)
    assert error_code(lambda: create_listener(emu, lb_id)) == "ListenerAlreadyExists"
    request = DescribeLoadBalancerTCPListenerAttributeRequest
    attribute = call(emu, request.DescribeLoadBalancerTCPListenerAttributeRequest(),
                     LoadBalancerId=lb_id, ListenerPort=6443)
    assert_shape(attribute, {
        "Status": str, "ListenerPort": int, "BackendServerPort": int, "Bandwidth": int,
        "HealthCheck": str, "HealthyThreshold": int, "UnhealthyThreshold": int,
        "HealthCheckInterval": int, "HealthCheckConnectTimeout": int, "Scheduler": str,
        "HealthCheckConnectPort": int,
    })
    assert (attribute["Status"], attribute["HealthCheckInterval"]) == ("stopped", 1)
    start = StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest
    call(emu, start(), LoadBalancerId=lb_id, ListenerPort=6443)
    assert error_code(lambda: call(emu, start(), LoadBalancerId=lb_id, ListenerPort=6443)) == (
        "OperationFailed.ListenerStatusNotSupport")
    wait_for(lambda: call(emu, request.DescribeLoadBalancerTCPListenerAttributeRequest(),
                          LoadBalancerId=lb_id, ListenerPort=6443)["Status"] == "running",
             what="listener running")
    call(emu, StopLoadBalancerListenerRequest.StopLoadBalancerListenerRequest(),
         LoadBalancerId=lb_id, ListenerPort=6443)
    assert call(emu, request.DescribeLoadBalancerTCPListenerAttributeRequest(),
                LoadBalancerId=lb_id, ListenerPort=6443)["Status"] == "stopped"
    assert error_code(lambda: call(emu, start(), LoadBalancerId=lb_id, ListenerPort=7000)) == (
        "InvalidParameter")


def test_backend_servers_are_checked(emu: Emulator) -> None:
    lb_id = create_lb(emu)["LoadBalancerId"]
    instance = emu.register_instance("k3s-b1", host_ip(emu, 41))
    add = AddBackendServersRequest.AddBackendServersRequest
    body = call(emu, add(), LoadBalancerId=lb_id,
                BackendServers=as_json([{"ServerId": instance, "Weight": "100"}]))
    assert_shape(body, {"BackendServers.BackendServer[].ServerId": str,
                        "BackendServers.BackendServer[].Weight": str})
    assert error_code(lambda: call(emu, add(), LoadBalancerId=lb_id, BackendServers=as_json(
        [{"ServerId": instance}]))) == "InvalidParameter.BackendServerExists"
    assert error_code(lambda: call(emu, add(), LoadBalancerId=lb_id, BackendServers=as_json(
        [{"ServerId": "i-unknown"}]))) == "InvalidParameter.ServerId"
    stopped = emu.register_instance("k3s-b2", host_ip(emu, 42), status="Stopped")
    assert error_code(lambda: call(emu, add(), LoadBalancerId=lb_id, BackendServers=as_json(
        [{"ServerId": stopped}]))) == "IncorrectInstanceStatus"
    body = call(emu, RemoveBackendServersRequest.RemoveBackendServersRequest(),
                LoadBalancerId=lb_id,
                BackendServers=as_json([{"ServerId": instance, "Type": "ecs"}]))
    assert body["BackendServers"]["BackendServer"] == []


@pytest.mark.slow
def test_started_listener_proxies_to_healthy_backends(emu: Emulator) -> None:
    ips = [host_ip(emu, 21), host_ip(emu, 22)]
    servers = [EchoServer(ip, BACKEND_PORT) for ip in ips]
    try:
        ids = [emu.register_instance(f"k3s-p{n}", ip) for n, ip in enumerate(ips)]
        lb = create_lb(emu)
        lb_id, address = lb["LoadBalancerId"], lb["Address"]
        create_listener(emu, lb_id)
        call(emu, AddBackendServersRequest.AddBackendServersRequest(), LoadBalancerId=lb_id,
             BackendServers=as_json([{"ServerId": i, "Weight": "100", "Type": "ecs"}
                                     for i in ids]))
        assert set(health(emu, lb_id).values()) == {"unavailable"}  # listener still stopped
        assert not listening(address, 6443)
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb_id, ListenerPort=6443)
        wait_for(lambda: set(health(emu, lb_id).values()) == {"normal"}, what="both normal")
        assert_shape(call(emu, DescribeHealthStatusRequest.DescribeHealthStatusRequest(),
                          LoadBalancerId=lb_id, ListenerPort=6443), {
            "BackendServers.BackendServer[].ServerId": str,
            "BackendServers.BackendServer[].ServerIp": str,
            "BackendServers.BackendServer[].Port": int,
            "BackendServers.BackendServer[].ListenerPort": int,
            "BackendServers.BackendServer[].ServerHealthStatus": str,
        })
        answers = {ask(address, 6443, b"ping") for _ in range(6)}
        assert answers == {f"{ip}:ping".encode() for ip in ips}

        servers[0].stop()
        wait_for(lambda: health(emu, lb_id)[ids[0]] == "abnormal", what="first abnormal")
        assert health(emu, lb_id)[ids[1]] == "normal"
        assert {ask(address, 6443, b"again") for _ in range(5)} == {f"{ips[1]}:again".encode()}

        call(emu, StopLoadBalancerListenerRequest.StopLoadBalancerListenerRequest(),
             LoadBalancerId=lb_id, ListenerPort=6443)
        assert not listening(address, 6443)
        call(emu, StartLoadBalancerListenerRequest.StartLoadBalancerListenerRequest(),
             LoadBalancerId=lb_id, ListenerPort=6443)
        wait_for(lambda: ask(address, 6443, b"back") == f"{ips[1]}:back".encode(),
                 what="proxy back after restart of the listener")
        call(emu, DeleteLoadBalancerRequest.DeleteLoadBalancerRequest(), LoadBalancerId=lb_id)
        assert not listening(address, 6443)
        assert error_code(lambda: health(emu, lb_id)) == "InvalidLoadBalancerId.NotFound"
        assert all(r["id"] != lb_id for r in emu.control.resources())
    finally:
        for server in servers:
            server.stop()


def test_delete_protection(emu: Emulator) -> None:
    lb_id = create_lb(emu, DeleteProtection="on")["LoadBalancerId"]
    delete = DeleteLoadBalancerRequest.DeleteLoadBalancerRequest
    assert error_code(lambda: call(emu, delete(), LoadBalancerId=lb_id)) == (
        "OperationDenied.DeleteProtectionIsOn")
    call(emu, SetLoadBalancerDeleteProtectionRequest.SetLoadBalancerDeleteProtectionRequest(),
         LoadBalancerId=lb_id, DeleteProtection="off")
    call(emu, delete(), LoadBalancerId=lb_id)


def test_tags(emu: Emulator) -> None:
    lb_id = create_lb(emu)["LoadBalancerId"]
    call(emu, AddTagsRequest.AddTagsRequest(), LoadBalancerId=lb_id,
         Tags=as_json([{"TagKey": "owner", "TagValue": "panel"}, {"TagKey": "env",
                                                                  "TagValue": "test"}]))
    described = call(emu, DescribeTagsRequest.DescribeTagsRequest(), LoadBalancerId=lb_id)
    assert_shape(described, {"TagSets.TagSet[].TagKey": str, "TagSets.TagSet[].InstanceCount": int})
    assert {(t["TagKey"], t["TagValue"]) for t in described["TagSets"]["TagSet"]} == {
        ("owner", "panel"), ("env", "test")}
    listed = call(emu, ListTagResourcesRequest.ListTagResourcesRequest(), ResourceType="instance",
                  Tags=[{"Key": "owner", "Value": "panel"}])
    assert_shape(listed, {"TagResources.TagResource[].ResourceId": str})
    assert lb_id in {r["ResourceId"] for r in listed["TagResources"]["TagResource"]}
    call(emu, RemoveTagsRequest.RemoveTagsRequest(), LoadBalancerId=lb_id,
         Tags=as_json([{"TagKey": "env", "TagValue": "test"}]))
    attribute = call(emu, DescribeLoadBalancerAttributeRequest.
                     DescribeLoadBalancerAttributeRequest(), LoadBalancerId=lb_id)
    assert attribute["Tags"]["Tag"] == [{"TagKey": "owner", "TagValue": "panel"}]


def test_remaining_actions(emu: Emulator) -> None:
    regions = call(emu, DescribeRegionsRequest.DescribeRegionsRequest())
    assert_shape(regions, {"Regions.Region[].RegionId": str, "Regions.Region[].LocalName": str})
    lb_id = create_lb(emu)["LoadBalancerId"]
    instance = emu.register_instance("k3s-w1", host_ip(emu, 51))
    call(emu, AddBackendServersRequest.AddBackendServersRequest(), LoadBalancerId=lb_id,
         BackendServers=str([{"ServerId": instance, "Weight": "100", "Type": "ecs"}]))  # TF style
    body = call(emu, SetBackendServersRequest.SetBackendServersRequest(), LoadBalancerId=lb_id,
                BackendServers=as_json([{"ServerId": instance, "Weight": "0"}]))
    assert body["BackendServers"]["BackendServer"][0]["Weight"] == "0"
    create_listener(emu, lb_id, ListenerPort=7443)
    call(emu, DeleteLoadBalancerListenerRequest.DeleteLoadBalancerListenerRequest(),
         LoadBalancerId=lb_id, ListenerPort=7443)
    attribute = DescribeLoadBalancerAttributeRequest.DescribeLoadBalancerAttributeRequest
    assert call(emu, attribute(), LoadBalancerId=lb_id)["ListenerPorts"]["ListenerPort"] == []
    call(emu, TagResourcesRequest.TagResourcesRequest(), ResourceType="instance",
         ResourceIds=[lb_id], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    call(emu, UntagResourcesRequest.UntagResourcesRequest(), ResourceType="instance",
         ResourceIds=[lb_id], TagKeys=["a"])
    assert call(emu, attribute(), LoadBalancerId=lb_id)["Tags"]["Tag"] == [
        {"TagKey": "b", "TagValue": "2"}]
