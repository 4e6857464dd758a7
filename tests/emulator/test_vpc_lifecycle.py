"""VPCs and vSwitches the panel creates: Pending then Available, CIDR rules, dependencies,
ClientToken, tags."""

from __future__ import annotations

import time
from pathlib import Path

from sandbox.aliyun.testing import Emulator
from tests.emulator.ecs_calls import (
    UBUNTU_2404,
    api,
    api_error,
    security_group,
    until,
    vpc_listed,
    vswitch_listed,
    wait_released,
    wait_status,
)


def _wait_available(emu: Emulator, what: str, **query: str) -> dict:
    action, key, item = (("DescribeVpcs", "Vpcs", "Vpc") if what == "vpc"
                         else ("DescribeVSwitches", "VSwitches", "VSwitch"))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        (found,) = api(emu, action, "Vpc", **query)[key][item]
        if found["Status"] == "Available":
            return dict(found)
        time.sleep(0.05)
    raise AssertionError(f"{what} {query} not Available")


def test_vpc_and_vswitch_lifecycle(tmp_path: Path) -> None:
    # 0.2: a VPC stays Pending 1 s, a vSwitch 0.6 s: long enough to see, whatever the load
    with Emulator(tmp_path / "state", time_scale=0.2) as emu:
        _lifecycle(emu)


def _lifecycle(emu: Emulator) -> None:
    zone = emu.vswitch["zone_id"]
    made = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16", VpcName="k3s-c1",
               ClientToken="vpc-1", Tag__1__Key="k3s-panel", Tag__1__Value="c1")
    vpc_id = made["VpcId"]
    assert api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16", VpcName="k3s-c1",
               ClientToken="vpc-1", Tag__1__Key="k3s-panel",
               Tag__1__Value="c1")["VpcId"] == vpc_id, "ClientToken replay buys nothing"
    (pending,) = api(emu, "DescribeVpcs", "Vpc", VpcId=vpc_id)["Vpcs"]["Vpc"]
    assert pending["Status"] == "Pending"
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrBlock="192.168.1.0/24") == "IncorrectVpcStatus"
    vpc = _wait_available(emu, "vpc", VpcId=vpc_id)
    assert vpc["Tags"]["Tag"] == [{"Key": "k3s-panel", "Value": "c1"}]
    tagged = api(emu, "DescribeVpcs", "Vpc", Tag__1__Key="k3s-panel", Tag__1__Value="c1")
    assert [v["VpcId"] for v in tagged["Vpcs"]["Vpc"]] == [vpc_id]
    bad = {
        "InvalidParameter": "10.0.0.0/24",                # outside the VPC
        "InvalidCirdrBlock.MaskLength": "192.168.0.0/30",  # longer than /29
        "InvalidCidrBlock.Malformed": "192.168.1.300/24",
    }
    for code, cidr in bad.items():
        assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                         CidrBlock=cidr) == code, cidr
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId="cn-nowhere-z",
                     CidrBlock="192.168.1.0/24") == "InvalidZoneId.NotFound"
    vsw_id = api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                 CidrBlock="192.168.1.0/24", VSwitchName="k3s-c1")["VSwitchId"]
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrBlock="192.168.2.0/24") == "IncorrectVSwitchStatus"  # one at a time
    vsw = _wait_available(emu, "vswitch", VSwitchId=vsw_id)
    assert (vsw["CidrBlock"], vsw["ZoneId"], vsw["VpcId"]) == ("192.168.1.0/24", zone, vpc_id)
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrBlock="192.168.1.128/25") == "InvalidCidrBlock.Overlapped"
    assert api_error(emu, "CreateVpc", "Vpc", CidrBlock="127.0.0.0/16") \
        == "InvalidCidrBlock.Malformed"
    assert api_error(emu, "CreateVpc", "Vpc", CidrBlock="10.0.0.0/8") \
        == "InvalidCirdrBlock.MaskLength"

    # An instance in the vSwitch and a group in the VPC hold them.
    group = security_group(emu, vpc_id)
    (bought,) = api(emu, "RunInstances", VSwitchId=vsw_id, ImageId=UBUNTU_2404,
                    InstanceType="ecs.g7.large", SecurityGroupId=group)[
        "InstanceIdSets"]["InstanceIdSet"]
    assert api_error(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id) == "DependencyViolation"
    assert api_error(emu, "DeleteVpc", "Vpc", VpcId=vpc_id) == "DependencyViolation.VSwitch"
    wait_status(emu, bought, "Running")
    api(emu, "DeleteInstance", InstanceId=bought, Force=True)
    # Releasing takes a while (DeleteSecurityGroup's page: "operations of releasing ECS
    # instances and ENIs are asynchronous"): meanwhile the instance still holds both.
    assert api_error(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id) == "DependencyViolation"
    assert api_error(emu, "DeleteSecurityGroup", SecurityGroupId=group) == "DependencyViolation"
    wait_released(emu, bought)
    api(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id)
    # So is a vSwitch's deletion: its VPC waits for it (terraform waits for both to vanish).
    assert vswitch_listed(emu, vsw_id)
    assert api_error(emu, "DeleteVpc", "Vpc", VpcId=vpc_id) == "DependencyViolation.VSwitch"
    until(lambda: not vswitch_listed(emu, vsw_id), "the vSwitch still listed")
    assert api_error(emu, "DeleteVpc", "Vpc", VpcId=vpc_id) == "DependencyViolation.SecurityGroup"
    api(emu, "DeleteSecurityGroup", SecurityGroupId=group)
    api(emu, "DeleteVpc", "Vpc", VpcId=vpc_id)
    assert vpc_listed(emu, vpc_id)
    until(lambda: not vpc_listed(emu, vpc_id), "the VPC still listed")
    assert api_error(emu, "DeleteVpc", "Vpc", VpcId=vpc_id) == "InvalidVpcId.NotFound"
    assert not [r for r in emu.control.resources() if r["type"] in ("vpc", "vswitch")]


def test_a_vswitch_from_its_mask_alone(fresh_emu: Emulator) -> None:
    """V2 CreateVSwitchRequest.CidrMask: "You must specify at least one of CidrBlock and
    CidrMask" (16 to 29 bits): with the mask alone the emulator picks a free block."""
    emu, zone = fresh_emu, fresh_emu.vswitch["zone_id"]
    vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
    _wait_available(emu, "vpc", VpcId=vpc_id)
    made = []
    for mask, expected in ((24, "192.168.0.0/24"), (24, "192.168.1.0/24"),
                           (23, "192.168.2.0/23"), (29, "192.168.4.0/29")):
        vsw_id = api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrMask=mask)["VSwitchId"]
        assert _wait_available(emu, "vswitch", VSwitchId=vsw_id)["CidrBlock"] == expected
        made.append(vsw_id)
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrMask=30) == "InvalidCirdrBlock.MaskLength"
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrMask=16) == "InvalidCidrBlock.Overlapped"  # the whole VPC: taken
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=zone,
                     CidrBlock="192.168.8.0/24", CidrMask=25) == "InvalidParameter"
    assert api_error(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id,
                     ZoneId=zone) == "MissingParameter"
    for vsw_id in made:
        api(emu, "DeleteVSwitch", "Vpc", VSwitchId=vsw_id)
    until(lambda: not any(vswitch_listed(emu, v) for v in made), "vSwitches still listed")
    api(emu, "DeleteVpc", "Vpc", VpcId=vpc_id)


def test_a_reset_deletes_created_vpcs_and_keeps_the_seeded_ones(fresh_emu: Emulator) -> None:
    emu = fresh_emu
    vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
    _wait_available(emu, "vpc", VpcId=vpc_id)
    api(emu, "CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=emu.vswitch["zone_id"], CidrMask=24)
    emu.control.reset()
    assert not [r for r in emu.control.resources() if r["type"] in ("vpc", "vswitch")]
    seeded = {v["VpcId"] for v in api(emu, "DescribeVpcs", "Vpc", PageSize=50)["Vpcs"]["Vpc"]}
    assert emu.vpc["vpc_id"] in seeded and vpc_id not in seeded
