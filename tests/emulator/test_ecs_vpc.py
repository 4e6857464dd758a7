"""ECS and VPC reads the panel relies on, with response shapes checked path by path."""

from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526 import (
    AuthorizeSecurityGroupRequest,
    CreateSecurityGroupRequest,
    DescribeInstancesRequest,
    DescribeRegionsRequest,
    DescribeSecurityGroupAttributeRequest,
    DescribeSecurityGroupsRequest,
    DescribeZonesRequest,
)
from aliyunsdkvpc.request.v20160428 import DescribeVpcsRequest, DescribeVSwitchesRequest

from sandbox.aliyun.testing import Emulator
from tests.emulator.shapes import assert_shape
from tests.support.emulator_calls import as_json, call, host_ip


@pytest.fixture(scope="module")
def hosts(emu: Emulator) -> dict[str, str]:
    """Three lab hosts as ECS instances; the third is tagged."""
    found = {}
    for octet in (11, 12, 13):
        extra = {"tags": {"role": "spare"}} if octet == 13 else {}
        found[host_ip(emu, octet)] = emu.register_instance(f"k3s-m{octet}", host_ip(emu, octet),
                                                           **extra)
    return found


def test_describe_regions_and_zones(emu: Emulator) -> None:
    regions = call(emu, DescribeRegionsRequest.DescribeRegionsRequest())
    assert_shape(regions, {"Regions.Region[].RegionId": str, "Regions.Region[].LocalName": str,
                           "Regions.Region[].RegionEndpoint": str})
    zones = call(emu, DescribeZonesRequest.DescribeZonesRequest())
    assert_shape(zones, {"Zones.Zone[].ZoneId": str, "Zones.Zone[].LocalName": str,
                         "Zones.Zone[].AvailableResourceCreation.ResourceTypes[]": str})
    assert [z["ZoneId"] for z in zones["Zones"]["Zone"]] == [
        emu.vswitch["zone_id"], emu.vpc["vswitches"][1]["zone_id"]]


def test_unknown_region_is_refused(emu: Emulator) -> None:
    with pytest.raises(ServerException) as caught:
        emu.call(DescribeZonesRequest.DescribeZonesRequest(), emu.client(region_id="xx-nowhere-1"))
    assert caught.value.get_error_code() == "InvalidRegionId.NotFound"


INSTANCE_SHAPE = {
    "TotalCount": int, "PageNumber": int, "PageSize": int,
    "Instances.Instance[].InstanceId": str, "Instances.Instance[].HostName": str,
    "Instances.Instance[].Status": str, "Instances.Instance[].Cpu": int,
    "Instances.Instance[].Memory": int, "Instances.Instance[].InstanceNetworkType": str,
    "Instances.Instance[].VpcAttributes.VpcId": str,
    "Instances.Instance[].VpcAttributes.PrivateIpAddress.IpAddress[]": str,
    "Instances.Instance[].NetworkInterfaces.NetworkInterface[].PrivateIpSets.PrivateIpSet[]"
    ".Primary": bool,
    "Instances.Instance[].SecurityGroupIds.SecurityGroupId[]": str,
    "Instances.Instance[].Tags.Tag": list, "Instances.Instance[].OperationLocks.LockReason": list,
}


def test_describe_instances_by_private_ip(emu: Emulator, hosts: dict[str, str]) -> None:
    wanted = list(hosts)[:2]
    body = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                InstanceNetworkType="vpc", PrivateIpAddresses=as_json(wanted))
    assert_shape(body, INSTANCE_SHAPE)
    found = {i["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0]: i["InstanceId"]
             for i in body["Instances"]["Instance"]}
    assert found == {ip: hosts[ip] for ip in wanted}


def test_private_ip_filter_needs_vpc_network_type(emu: Emulator, hosts: dict[str, str]) -> None:
    """As documented, without InstanceNetworkType=vpc the IP filter is not applied at all."""
    body = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                PrivateIpAddresses=as_json([next(iter(hosts))]))
    assert body["TotalCount"] == len(hosts)


def test_describe_instances_by_ids_vpc_and_tag(emu: Emulator, hosts: dict[str, str]) -> None:
    ids = list(hosts.values())
    by_ids = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                  InstanceIds=as_json(ids[1:]))
    assert sorted(i["InstanceId"] for i in by_ids["Instances"]["Instance"]) == sorted(ids[1:])
    by_vpc = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                  VpcId=emu.vpc["vpc_id"])
    assert by_vpc["TotalCount"] == 3
    by_tag = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                  Tags=[{"Key": "role", "Value": "spare"}])
    assert [i["InstanceId"] for i in by_tag["Instances"]["Instance"]] == [ids[2]]
    unknown = call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                   InstanceIds=as_json(["i-doesnotexist"]))
    assert unknown["TotalCount"] == 0 and unknown["Instances"]["Instance"] == []


def test_describe_instances_paging(emu: Emulator, hosts: dict[str, str]) -> None:
    pages = [call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
                  PageNumber=n, PageSize=2) for n in (1, 2)]
    assert [len(p["Instances"]["Instance"]) for p in pages] == [2, 1]
    assert all(p["TotalCount"] == 3 for p in pages)
    seen = {i["InstanceId"] for p in pages for i in p["Instances"]["Instance"]}
    assert seen == set(hosts.values())


def test_max_results_is_brought_into_range_and_address_filters_filter(
        emu: Emulator, hosts: dict[str, str]) -> None:
    """V2 DescribeInstancesRequest: MaxResults below 10 counts as 10, above 100 as 100;
    PublicIpAddresses filters; InnerIpAddresses is the classic network's (no instance)."""
    describe = DescribeInstancesRequest.DescribeInstancesRequest
    assert call(emu, describe(), MaxResults=5)["PageSize"] == 10
    assert call(emu, describe(), MaxResults=500)["PageSize"] == 100
    everything = call(emu, describe())["TotalCount"]
    assert call(emu, describe(), InnerIpAddresses=as_json(list(hosts)))["TotalCount"] \
        == everything
    assert call(emu, describe(), PublicIpAddresses=as_json(["203.0.113.77"]))["TotalCount"] == 0


def test_instance_ids_must_be_a_json_array(emu: Emulator) -> None:
    with pytest.raises(ServerException) as caught:
        call(emu, DescribeInstancesRequest.DescribeInstancesRequest(),
             InstanceIds=["i-a", "i-b"])  # a Python list goes out as its repr
    assert caught.value.get_error_code() == "InvalidParameter"


def test_security_groups(emu: Emulator, hosts: dict[str, str]) -> None:
    groups = call(emu, DescribeSecurityGroupsRequest.DescribeSecurityGroupsRequest(),
                  VpcId=emu.vpc["vpc_id"])
    assert_shape(groups, {"SecurityGroups.SecurityGroup[].SecurityGroupId": str,
                          "SecurityGroups.SecurityGroup[].VpcId": str, "TotalCount": int})
    group_id = groups["SecurityGroups"]["SecurityGroup"][0]["SecurityGroupId"]
    rule = {"IpProtocol": "tcp", "PortRange": "6443/6443", "SourceCidrIp": emu.vpc["cidr"],
            "Policy": "accept", "Priority": "1", "Description": "k3s api"}
    for _ in range(2):  # an identical rule is accepted once and not duplicated
        call(emu, AuthorizeSecurityGroupRequest.AuthorizeSecurityGroupRequest(),
             SecurityGroupId=group_id, Permissions=[rule])
    attribute = call(emu,
                     DescribeSecurityGroupAttributeRequest.DescribeSecurityGroupAttributeRequest(),
                     SecurityGroupId=group_id)
    assert_shape(attribute, {"Permissions.Permission[].PortRange": str,
                             "Permissions.Permission[].Priority": str})
    assert [p["PortRange"] for p in attribute["Permissions"]["Permission"]] == ["6443/6443"]


def test_authorize_refuses_bad_rules(emu: Emulator, hosts: dict[str, str]) -> None:
    created = call(emu, CreateSecurityGroupRequest.CreateSecurityGroupRequest(),
                   VpcId=emu.vpc["vpc_id"], SecurityGroupName="k3s", ClientToken="sg-token-1")
    again = call(emu, CreateSecurityGroupRequest.CreateSecurityGroupRequest(),
                 VpcId=emu.vpc["vpc_id"], SecurityGroupName="k3s", ClientToken="sg-token-1")
    assert created["SecurityGroupId"] == again["SecurityGroupId"]
    for rule, code in (
        ({"IpProtocol": "tcp", "PortRange": "0/70000", "SourceCidrIp": "10.0.0.0/8"},
         "InvalidParam.PortRange"),
        ({"IpProtocol": "sctp", "PortRange": "1/2", "SourceCidrIp": "10.0.0.0/8"},
         "InvalidIpProtocol.ValueNotSupported"),
    ):
        with pytest.raises(ServerException) as caught:
            call(emu, AuthorizeSecurityGroupRequest.AuthorizeSecurityGroupRequest(),
                 SecurityGroupId=created["SecurityGroupId"], Permissions=[rule])
        assert caught.value.get_error_code() == code
    with pytest.raises(ServerException) as caught:
        call(emu, AuthorizeSecurityGroupRequest.AuthorizeSecurityGroupRequest(),
             SecurityGroupId="sg-missing", Permissions=[{"IpProtocol": "tcp",
                                                        "PortRange": "22/22",
                                                        "SourceCidrIp": "10.0.0.0/8"}])
    assert caught.value.get_error_code() == "InvalidSecurityGroupId.NotFound"


def test_describe_vpcs_and_vswitches(emu: Emulator) -> None:
    vpcs = call(emu, DescribeVpcsRequest.DescribeVpcsRequest())
    assert_shape(vpcs, {"Vpcs.Vpc[].VpcId": str, "Vpcs.Vpc[].CidrBlock": str,
                        "Vpcs.Vpc[].Status": str, "Vpcs.Vpc[].VSwitchIds.VSwitchId[]": str,
                        "Vpcs.Vpc[].IsDefault": bool, "TotalCount": int})
    switches = call(emu, DescribeVSwitchesRequest.DescribeVSwitchesRequest(),
                    VpcId=emu.vpc["vpc_id"], ZoneId=emu.vswitch["zone_id"])
    assert_shape(switches, {"VSwitches.VSwitch[].VSwitchId": str,
                            "VSwitches.VSwitch[].CidrBlock": str,
                            "VSwitches.VSwitch[].AvailableIpAddressCount": int,
                            "VSwitches.VSwitch[].ZoneId": str, "TotalCount": int})
    assert [v["VSwitchId"] for v in switches["VSwitches"]["VSwitch"]] == [
        emu.vswitch["vswitch_id"]]
    none = call(emu, DescribeVpcsRequest.DescribeVpcsRequest(), VpcId="vpc-unknown")
    assert none["Vpcs"]["Vpc"] == [] and none["TotalCount"] == 0
