"""NLB (Nlb 2022-04-30) API: zones, jobs and statuses, refusals, idempotency, tags, RAM, the
inventory and the DNS stand-in. Every answer is checked against its V2 response model."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException

from sandbox.aliyun.nlb import resolve
from sandbox.aliyun.nlb.dns import NXDOMAIN, REFUSED, parse_answer, query_packet
from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer, ask
from tests.support.emulator_calls import host_ip
from tests.support.nlb_calls import (
    add_servers,
    create_group,
    create_listener,
    create_nlb,
    job_done,
    lb_status,
    nlb,
    nlb_error,
    wait_for,
    zone_addresses,
    zone_mappings,
)


@pytest.fixture(scope="module")
def slow_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """Jobs take a tenth of their real time: long enough to act while one is running."""
    with Emulator(tmp_path_factory.mktemp("nlb-slow"), time_scale=0.1) as emulator:
        yield emulator


def test_zone_mappings_are_checked_against_the_seeded_world(emu: Emulator) -> None:
    base = {"AddressType": "Intranet", "VpcId": emu.vpc["vpc_id"]}
    one, two = emu.vpc["vswitches"]
    # The region has two zones: one zone is not enough.
    assert nlb_error(emu, "CreateLoadBalancer", **base, **zone_mappings(emu, 1)) == \
        "InvalidZones"
    swapped = {"ZoneMappings.1.VSwitchId": one["vswitch_id"], "ZoneMappings.1.ZoneId":
               two["zone_id"], "ZoneMappings.2.VSwitchId": two["vswitch_id"],
               "ZoneMappings.2.ZoneId": one["zone_id"]}
    assert nlb_error(emu, "CreateLoadBalancer", **base, **swapped) == \
        "Mismatch.ZoneIdAndVswitchId"
    same = {**zone_mappings(emu), "ZoneMappings.2.VSwitchId": one["vswitch_id"],
            "ZoneMappings.2.ZoneId": one["zone_id"]}
    assert nlb_error(emu, "CreateLoadBalancer", **base, **same) == \
        "OperationFailed.DuplicateZones."
    unknown = {**zone_mappings(emu), "ZoneMappings.1.VSwitchId": "vsw-nosuchthing"}
    assert nlb_error(emu, "CreateLoadBalancer", **base, **unknown) == "ResourceNotFound.VSwitch"
    assert nlb_error(emu, "CreateLoadBalancer", AddressType="Intranet",
                     VpcId="vpc-nosuchthing", **zone_mappings(emu)) == "ResourceNotFound.Vpc"
    assert nlb_error(emu, "CreateLoadBalancer", AddressType="Intranet",
                     **zone_mappings(emu)) == "MissingParam.VpcId"
    assert nlb_error(emu, "CreateLoadBalancer", **base) == "MissingParam.ZoneMappings"
    assert not [r for r in emu.control.resources() if r["type"] == "nlb_load_balancer"
                and r["state"] == "Provisioning" and not r["addresses"]]


def test_each_zone_gets_an_address_of_its_vswitch(emu: Emulator) -> None:
    lb_id = create_nlb(emu, wait=False)
    body = nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)
    assert body["LoadBalancerStatus"] == "Provisioning"
    assert body["DNSName"] == f"{lb_id}.{emu.region_id}.nlb.aliyuncsslb.com"
    for mapping, vsw in zip(body["ZoneMappings"], emu.vpc["vswitches"], strict=True):
        assert (mapping["ZoneId"], mapping["VSwitchId"]) == (vsw["zone_id"], vsw["vswitch_id"])
        address = mapping["LoadBalancerAddresses"][0]["PrivateIPv4Address"]
        assert address.rsplit(".", 1)[0] == vsw["cidr"].rsplit(".", 1)[0]
    wait_for(lambda: lb_status(emu, lb_id) == "Active", what="Active")


@pytest.mark.slow  # ~10 s of jobs at a tenth of their real time
def test_jobs_move_statuses_as_the_api_reference_says(slow_emu: Emulator) -> None:
    emu = slow_emu
    lb_id = create_nlb(emu, wait=False)
    assert lb_status(emu, lb_id) == "Provisioning"
    group = nlb(emu, "CreateServerGroup", ServerGroupName="sg-1", VpcId=emu.vpc["vpc_id"])
    listed = nlb(emu, "ListServerGroups", **{"ServerGroupIds.1": group["ServerGroupId"]})
    assert listed["ServerGroups"][0]["ServerGroupStatus"] == "Creating"
    assert nlb(emu, "GetJobStatus", JobId=group["JobId"])["Status"] == "Processing"
    wait_for(lambda: job_done(emu, group["JobId"]), what="group created")
    listed = nlb(emu, "ListServerGroups", **{"ServerGroupIds.1": group["ServerGroupId"]})
    assert listed["ServerGroups"][0]["ServerGroupStatus"] == "Available"
    server = emu.register_instance("nlb-jobs", host_ip(emu, 21))
    job = add_servers(emu, group["ServerGroupId"], [(server, 16443)], wait=False)
    rows = nlb(emu, "ListServerGroupServers", ServerGroupId=group["ServerGroupId"])["Servers"]
    assert [r["Status"] for r in rows] == ["Adding"]
    wait_for(lambda: job_done(emu, job), what="servers added")
    rows = nlb(emu, "ListServerGroupServers", ServerGroupId=group["ServerGroupId"])["Servers"]
    assert [(r["ServerId"], r["Status"], r["Port"]) for r in rows] == \
        [(server, "Available", 16443)]
    wait_for(lambda: lb_status(emu, lb_id) == "Active", what="Active")
    listener = nlb(emu, "CreateListener", LoadBalancerId=lb_id, ListenerProtocol="TCP",
                   ListenerPort=6443, ServerGroupId=group["ServerGroupId"])
    status = nlb(emu, "GetListenerAttribute", ListenerId=listener["ListenerId"])
    assert status["ListenerStatus"] == "Provisioning"
    wait_for(lambda: job_done(emu, listener["JobId"]), what="listener")
    assert nlb(emu, "GetListenerAttribute",
               ListenerId=listener["ListenerId"])["ListenerStatus"] == "Running"
    deleting = nlb(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id)
    assert lb_status(emu, lb_id) == "Deleting"
    wait_for(lambda: job_done(emu, deleting["JobId"]), what="deleted")
    assert nlb_error(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id) == \
        "ResourceNotFound.loadBalancer"
    # The listeners went with it; the server group stays (it is its own resource).
    assert nlb_error(emu, "GetListenerAttribute", ListenerId=listener["ListenerId"]) == \
        "ResourceNotFound.listener"
    assert nlb(emu, "ListServerGroups", **{"ServerGroupIds.1": group["ServerGroupId"]}
               )["ServerGroups"][0]["RelatedLoadBalancerIds"] == []


def test_a_resource_still_configuring_refuses_with_the_documented_code(
        slow_emu: Emulator) -> None:
    emu = slow_emu
    lb_id = create_nlb(emu, wait=False)
    group = nlb(emu, "CreateServerGroup", ServerGroupName="sg-2", VpcId=emu.vpc["vpc_id"])
    server = emu.register_instance("nlb-refuse", host_ip(emu, 22))
    servers = {"Servers.1.ServerId": server, "Servers.1.ServerType": "Ecs",
               "Servers.1.Port": "16443"}
    assert nlb_error(emu, "AddServersToServerGroup", ServerGroupId=group["ServerGroupId"],
                     **servers) == "IncorrectStatus.serverGroup"
    assert nlb_error(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id) == \
        "ResourceInCreating.loadbalancer"
    wait_for(lambda: job_done(emu, group["JobId"]), what="group")
    assert nlb_error(emu, "CreateListener", LoadBalancerId=lb_id, ListenerProtocol="TCP",
                     ListenerPort=6443, ServerGroupId=group["ServerGroupId"]) == \
        "IncorrectStatus.loadbalancer"
    job = add_servers(emu, group["ServerGroupId"], [(server, 16443)], wait=False)
    # Another job holds the group: its lock conflicts (Terraform retries this code).
    assert nlb_error(emu, "RemoveServersFromServerGroup",
                     ServerGroupId=group["ServerGroupId"], **servers) == "Conflict.Lock"
    assert nlb_error(emu, "DeleteServerGroup", ServerGroupId=group["ServerGroupId"]) == \
        "Conflict.Lock"
    wait_for(lambda: job_done(emu, job), what="servers")
    wait_for(lambda: lb_status(emu, lb_id) == "Active", what="Active")
    listener = nlb(emu, "CreateListener", LoadBalancerId=lb_id, ListenerProtocol="TCP",
                   ListenerPort=6443, ServerGroupId=group["ServerGroupId"])
    assert nlb_error(emu, "DeleteListener", ListenerId=listener["ListenerId"]) == \
        "IncorrectStatus.listener"
    assert nlb_error(emu, "CreateListener", LoadBalancerId=lb_id, ListenerProtocol="TCP",
                     ListenerPort=6443, ServerGroupId=group["ServerGroupId"]) == "Conflict.Port"
    wait_for(lambda: job_done(emu, listener["JobId"]), what="listener")
    # A group a listener uses cannot go; the listener first.
    assert nlb_error(emu, "DeleteServerGroup", ServerGroupId=group["ServerGroupId"]) == \
        "ResourceInUse.serverGroup"
    gone = nlb(emu, "DeleteListener", ListenerId=listener["ListenerId"])
    wait_for(lambda: job_done(emu, gone["JobId"]), what="listener deleted")
    dropped = nlb(emu, "DeleteServerGroup", ServerGroupId=group["ServerGroupId"])
    wait_for(lambda: job_done(emu, dropped["JobId"]), what="group deleted")
    nlb(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id)


@pytest.mark.slow  # ~10 s of jobs at a tenth of their real time
def test_updates_are_jobs_too(slow_emu: Emulator) -> None:
    emu = slow_emu
    lb_id = create_nlb(emu)
    group = create_group(emu)
    listener = create_listener(emu, lb_id, group)
    job = nlb(emu, "UpdateServerGroupAttribute", ServerGroupId=group, Scheduler="Rr",
              **{"HealthCheckConfig.HealthyThreshold": 3})["JobId"]
    listed = nlb(emu, "ListServerGroups", **{"ServerGroupIds.1": group})["ServerGroups"][0]
    assert (listed["ServerGroupStatus"], listed["Scheduler"]) == ("Configuring", "Rr")
    assert listed["HealthCheck"]["HealthyThreshold"] == 3
    assert listed["HealthCheck"]["HealthCheckInterval"] == 1  # untouched fields stay
    assert nlb_error(emu, "UpdateServerGroupAttribute", ServerGroupId=group,
                     Scheduler="Wrr") == "Conflict.Lock"
    wait_for(lambda: job_done(emu, job), what="group updated")
    job = nlb(emu, "UpdateListenerAttribute", ListenerId=listener,
              ListenerDescription="k3s api")["JobId"]
    assert nlb(emu, "GetListenerAttribute", ListenerId=listener)["ListenerStatus"] == \
        "Configuring"
    assert nlb_error(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id) == "Conflict.Lock"
    wait_for(lambda: job_done(emu, job), what="listener updated")
    body = nlb(emu, "GetListenerAttribute", ListenerId=listener)
    assert (body["ListenerStatus"], body["ListenerDescription"]) == ("Running", "k3s api")


def test_client_token_makes_create_idempotent(emu: Emulator) -> None:
    params = {"AddressType": "Intranet", "VpcId": emu.vpc["vpc_id"], **zone_mappings(emu),
              "LoadBalancerName": "idem", "ClientToken": "nlb-token-1"}
    first = nlb(emu, "CreateLoadBalancer", **params)
    again = nlb(emu, "CreateLoadBalancer", **params)
    assert again["LoadbalancerId"] == first["LoadbalancerId"]
    named = nlb(emu, "ListLoadBalancers", **{"LoadBalancerNames.1": "idem"})
    assert named["TotalCount"] == 1
    assert nlb_error(emu, "CreateLoadBalancer", **{**params, "LoadBalancerName": "other"}) == \
        "IdempotenceSignatureMismatch"


def test_dry_run_checks_and_creates_nothing(emu: Emulator) -> None:
    before = nlb(emu, "ListLoadBalancers")["TotalCount"]
    assert nlb_error(emu, "CreateLoadBalancer", AddressType="Intranet",
                     VpcId=emu.vpc["vpc_id"], DryRun=True, **zone_mappings(emu)) == \
        "DryRunOperation"
    assert nlb(emu, "ListLoadBalancers")["TotalCount"] == before


def test_tags_on_create_and_after_filter_every_list(emu: Emulator) -> None:
    lb_id = create_nlb(emu, **{"Tag.1.Key": "k3s-panel-cluster", "Tag.1.Value": "c-tags"})
    other = create_nlb(emu, wait=False, **{"Tag.1.Key": "k3s-panel-cluster",
                                           "Tag.1.Value": "c-else"})
    group = create_group(emu, **{"Tag.1.Key": "k3s-panel-cluster", "Tag.1.Value": "c-tags"})
    by_tag = {"Tag.1.Key": "k3s-panel-cluster", "Tag.1.Value": "c-tags"}
    found = nlb(emu, "ListLoadBalancers", **by_tag)["LoadBalancers"]
    assert [lb["LoadBalancerId"] for lb in found] == [lb_id]
    assert found[0]["Tags"] == [{"Key": "k3s-panel-cluster", "Value": "c-tags"}]
    any_value = nlb(emu, "ListLoadBalancers", **{"Tag.1.Key": "k3s-panel-cluster"})
    assert {lb_id, other} <= {lb["LoadBalancerId"] for lb in any_value["LoadBalancers"]}
    groups = nlb(emu, "ListServerGroups", **by_tag)["ServerGroups"]
    assert [g["ServerGroupId"] for g in groups] == [group]
    rows = nlb(emu, "ListTagResources", ResourceType="loadbalancer", **by_tag)["TagResources"]
    assert [(r["ResourceId"], r["TagKey"], r["TagValue"]) for r in rows] == \
        [(lb_id, "k3s-panel-cluster", "c-tags")]
    nlb(emu, "TagResources", ResourceType="loadbalancer", **{"ResourceId.1": other},
        **{"Tag.1.Key": "k3s-panel-cluster", "Tag.1.Value": "c-tags"})
    rows = nlb(emu, "ListTagResources", ResourceType="loadbalancer", **by_tag)["TagResources"]
    assert {r["ResourceId"] for r in rows} == {lb_id, other}
    attribute = nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=other)
    assert attribute["Tags"] == [{"TagKey": "k3s-panel-cluster", "TagValue": "c-tags"}]
    nlb(emu, "UntagResources", ResourceType="loadbalancer", **{"ResourceId.1": other},
        **{"TagKey.1": "k3s-panel-cluster"})
    assert nlb(emu, "ListTagResources", ResourceType="loadbalancer",
               **{"ResourceId.1": other})["TagResources"] == []
    assert nlb_error(emu, "TagResources", ResourceType="loadbalancer",
                     **{"ResourceId.1": "nlb-nosuchthing0000000"},
                     **{"Tag.1.Key": "k"}) == "ResourceNotFound.loadBalancer"


def test_paging_with_next_token(emu: Emulator) -> None:
    for _ in range(3):
        create_nlb(emu, wait=False, **{"Tag.1.Key": "paging"})
    first = nlb(emu, "ListLoadBalancers", MaxResults=2, **{"Tag.1.Key": "paging"})
    assert len(first["LoadBalancers"]) == 2 and first["NextToken"]
    rest = nlb(emu, "ListLoadBalancers", MaxResults=2, NextToken=first["NextToken"],
               **{"Tag.1.Key": "paging"})
    assert len(rest["LoadBalancers"]) == 1 and rest["NextToken"] == ""
    assert first["TotalCount"] == rest["TotalCount"] == 3


def test_ram_authorises_nlb_actions(emu: Emulator) -> None:
    emu.control.add_account("LTAInlbreadonly", "nlb-read-secret-000000", {
        "Version": "1", "Statement": [{"Effect": "Allow", "Action": ["nlb:List*", "nlb:Get*"],
                                       "Resource": "*"}]})
    reader = emu.client(access_key_id="LTAInlbreadonly",
                        access_key_secret="nlb-read-secret-000000")
    nlb(emu, "ListLoadBalancers", client=reader)
    with pytest.raises(ServerException) as caught:
        nlb(emu, "CreateServerGroup", client=reader, ServerGroupName="no", VpcId="vpc-x")
    assert caught.value.get_error_code() == "Forbidden.RAM"
    assert any(c["action"] == "CreateServerGroup" and c["code"] == "Forbidden.RAM"
               for c in emu.control.calls())


def test_inventory_lists_everything_and_delete_leaves_nothing(fresh_emu: Emulator) -> None:
    emu = fresh_emu
    lb_id = create_nlb(emu, **{"Tag.1.Key": "k3s-panel-cluster", "Tag.1.Value": "inv"})
    group = create_group(emu)
    listener = create_listener(emu, lb_id, group)
    addresses = zone_addresses(emu, lb_id)
    listed = {r["id"]: r for r in emu.control.resources() if r["type"].startswith("nlb_")}
    assert listed[lb_id]["dns_name"].startswith(lb_id)
    assert sorted(listed[lb_id]["addresses"]) == sorted(addresses)
    assert listed[listener]["listening"] and sorted(listed[listener]["addresses"]) == \
        sorted(addresses)
    assert listed[group]["state"] == "Available"
    nlb(emu, "DeleteListener", ListenerId=listener)
    wait_for(lambda: not nlb(emu, "ListListeners")["Listeners"], what="listener gone")
    nlb(emu, "DeleteServerGroup", ServerGroupId=group)
    nlb(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id)
    wait_for(lambda: not [r for r in emu.control.resources() if r["type"].startswith("nlb_")],
             what="nothing left")
    assert ask(addresses[0], 6443) == b""
    # The addresses went back to their vSwitches: a new NLB may get them again.
    again = create_nlb(emu, wait=False)
    assert sorted(zone_addresses(emu, again)) == sorted(addresses)


# ---- DNS ----------------------------------------------------------------------------------
def _dns(emu: Emulator) -> tuple[str, int]:
    found = emu.control.request("GET", "nlb/dns")
    if not found.get("address"):
        address = emu.vpc["cidr"].split(".")[:2]
        found = emu.control.request("POST", "nlb/dns", {
            "address": ".".join([*address, "255", "53"]), "port": 0})
    return found["address"], int(found["port"])


def test_dns_stand_in_answers_nlb_names_only(emu: Emulator) -> None:
    server = _dns(emu)
    lb_id = create_nlb(emu, wait=False)
    name = f"{lb_id}.{emu.region_id}.nlb.aliyuncsslb.com"
    # Not in DNS while it is being created.
    with pytest.raises(resolve.NotResolved):
        resolve.query(name, server)
    wait_for(lambda: lb_status(emu, lb_id) == "Active", what="Active")
    assert sorted(resolve.query(name, server)) == sorted(zone_addresses(emu, lb_id))
    assert sorted(resolve.query(name.upper() + ".", server)) == sorted(zone_addresses(emu, lb_id))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(query_packet(f"nlb-nosuchthing.{emu.region_id}.nlb.aliyuncsslb.com", 7),
                    server)
        assert parse_answer(sock.recv(512))[0] == NXDOMAIN
        sock.sendto(query_packet("example.com", 8), server)
        assert parse_answer(sock.recv(512))[0] == REFUSED


def test_python_and_other_programs_resolve_the_name(emu: Emulator, tmp_path: Path) -> None:
    server = _dns(emu)
    lb_id = create_nlb(emu)
    name = f"{lb_id}.{emu.region_id}.nlb.aliyuncsslb.com"
    with resolve.cloud_dns(server):
        found = {info[4][0] for info in socket.getaddrinfo(name, 6443, type=socket.SOCK_STREAM)}
        assert found == set(zone_addresses(emu, lb_id))
        assert socket.getaddrinfo("127.0.0.1", 80)  # other names: the resolver underneath
        with pytest.raises(socket.gaierror, match="network fence"):
            socket.getaddrinfo("example.com", 80)  # ... which is the tests' fence here
    with pytest.raises(socket.gaierror, match="network fence"):
        socket.getaddrinfo(name, 6443)  # gone, and the fence is back in place
    with resolve.resolved_command(["getent", "ahostsv4", name], server, [name]) as argv:
        out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    assert {line.split()[0] for line in out.stdout.splitlines()} == set(zone_addresses(emu, lb_id))
    assert name not in Path("/etc/hosts").read_text()  # the machine's file is untouched
    env = {"ALIYUN_EMULATOR_DNS": f"{server[0]}:{server[1]}", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": f"{resolve.hook_dir()}:{Path(__file__).resolve().parents[2]}"}
    code = "import socket, sys; print(socket.getaddrinfo(sys.argv[1], 1)[0][4][0])"
    child = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True,
                           text=True, timeout=20)
    assert child.stdout.strip() in zone_addresses(emu, lb_id), child.stderr




def test_regions_and_zones(emu: Emulator) -> None:
    zones = nlb(emu, "DescribeZones")["Zones"]
    assert [z["ZoneId"] for z in zones] == [v["zone_id"] for v in emu.vpc["vswitches"]]
    regions = nlb(emu, "DescribeRegions")["Regions"]
    assert {"RegionId": emu.region_id, "LocalName": "China (Hangzhou)",
            "RegionEndpoint": f"nlb.{emu.region_id}.aliyuncs.com"} in regions


def test_a_restart_brings_back_listeners_and_the_dns(fresh_emu: Emulator) -> None:
    emu = fresh_emu
    backend = host_ip(emu, 71)
    with EchoServer(backend, 16443):
        instance = emu.register_instance("nlb-restart", backend)
        lb_id = create_nlb(emu)
        group = create_group(emu)
        add_servers(emu, group, [(instance, 16443)])
        create_listener(emu, lb_id, group)
        server = _dns(emu)
        name = f"{lb_id}.{emu.region_id}.nlb.aliyuncsslb.com"
        address = zone_addresses(emu, lb_id)[0]
        wait_for(lambda: ask(address, 6443, b"a") == f"{backend}:a".encode(), what="forwarding")
        emu.restart()
        assert emu.control.nlb_dns()["port"] == server[1]
        assert sorted(resolve.query(name, server)) == sorted(zone_addresses(emu, lb_id))
        wait_for(lambda: ask(address, 6443, b"b") == f"{backend}:b".encode(),
                 what="forwarding after the restart")


def test_a_creation_the_cloud_fails_can_only_be_deleted(fresh_emu: Emulator) -> None:
    emu = fresh_emu
    emu.control.fail_nlb_creates(1)
    lb_id = create_nlb(emu, wait=False)
    wait_for(lambda: lb_status(emu, lb_id) == "CreateFailed", what="CreateFailed")
    group = create_group(emu)
    assert nlb_error(emu, "CreateListener", LoadBalancerId=lb_id, ListenerProtocol="TCP",
                     ListenerPort=6443, ServerGroupId=group) == "IncorrectStatus.loadbalancer"
    assert create_nlb(emu) != lb_id  # only one creation fails
    gone = nlb(emu, "DeleteLoadBalancer", LoadBalancerId=lb_id)
    wait_for(lambda: job_done(emu, gone["JobId"]), what="deleted")
    assert nlb_error(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id) == \
        "ResourceNotFound.loadBalancer"


def test_an_internet_nlb_answers_by_name_on_its_public_addresses(emu: Emulator) -> None:
    server = _dns(emu)
    lb_id = create_nlb(emu, AddressType="Internet")
    body = nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)
    public = [a["PublicIPv4Address"] for z in body["ZoneMappings"]
              for a in z["LoadBalancerAddresses"]]
    assert len(set(public)) == 2 and not set(public) & set(zone_addresses(emu, lb_id))
    assert sorted(resolve.query(body["DNSName"], server)) == sorted(public)


def test_a_zone_without_nlb_is_not_listed_and_a_mapping_there_is_refused(
        fresh_emu: Emulator) -> None:
    """Not every ECS zone sells NLB: NLB's DescribeZones lists where it is (V2
    alibabacloud_nlb20220430 DescribeZonesResponseBody), and CreateLoadBalancer refuses a
    ZoneMapping elsewhere with UnauthorizedZone. The seed's "nlb_zones" says which."""
    (region,) = fresh_emu.seed_document["regions"]
    one = fresh_emu.vpc["vswitches"][0]
    fresh_emu.control.seed({"regions": [{**region, "nlb_zones": [one["zone_id"]]}]})
    assert [z["ZoneId"] for z in nlb(fresh_emu, "DescribeZones")["Zones"]] == [one["zone_id"]]
    assert nlb_error(fresh_emu, "CreateLoadBalancer", AddressType="Intranet",
                     VpcId=fresh_emu.vpc["vpc_id"], **zone_mappings(fresh_emu)) == \
        "UnauthorizedZone"
