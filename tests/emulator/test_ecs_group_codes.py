"""Join/LeaveSecurityGroup and AuthorizeSecurityGroup answer with Alibaba's documented codes.

Sources: LeaveSecurityGroup's page ("modified the verification rules ... on July 8, 2024":
not a member is 400 InvalidSecurityGroupAssociation.NotFound, the last group 403
InstanceLastSecurityGroup; alibabacloud.com/help/en/ecs/developer-reference/
api-ecs-2014-05-26-leavesecuritygroup), JoinSecurityGroup's error table
(help.aliyun.com/zh/ecs/api-joinsecuritygroup: 400 InvalidInstanceId.Mismatch, 400
InstanceSecurityGroupLimitExceeded, 400 InvalidOperation.MultiGroupType, 403
IncorrectInstanceStatus unless Stopped or Running), AuthorizeSecurityGroup's error table
(AlibabaCloudDocs/ecs "API Reference/Security groups/AuthorizeSecurityGroup.md", doc
1031569: 403 AuthorizationLimitExceed, 400 MissingParameter.Source, 400
InvalidIpProtocol.ValueNotSupported, 400 InvalidParam.PortRange, 400
InvalidParam.Ipv6ProtocolConflictWithIpv4Address, 404 InvalidSourceGroupId.NotFound, 400
InvalidSourceGroupId.Mismatch).
"""

from __future__ import annotations

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException

from sandbox.aliyun.testing import Emulator
from tests.emulator.ecs_calls import api, instance, security_group
from tests.support.emulator_calls import host_ip


def _refused(emu: Emulator, action: str, product: str = "Ecs", **params: object
             ) -> tuple[int, str]:
    """(HTTP status, code) of a call that must fail."""
    with pytest.raises(ServerException) as caught:
        api(emu, action, product, **params)
    return caught.value.get_http_status(), str(caught.value.get_error_code())


@pytest.fixture(scope="module")
def other_vpc_group(emu: Emulator) -> str:
    """A security group of a second VPC (created through the API)."""
    vpc_id = api(emu, "CreateVpc", "Vpc", CidrBlock="192.168.0.0/16")["VpcId"]
    return security_group(emu, str(vpc_id))


def test_leave_answers_the_2024_codes(emu: Emulator) -> None:
    host = emu.register_instance("leave-1", host_ip(emu, 61))
    (first,) = instance(emu, host)["SecurityGroupIds"]["SecurityGroupId"]
    other = security_group(emu, emu.vpc["vpc_id"])
    assert _refused(emu, "LeaveSecurityGroup", SecurityGroupId=other, InstanceId=host) \
        == (400, "InvalidSecurityGroupAssociation.NotFound")
    assert _refused(emu, "LeaveSecurityGroup", SecurityGroupId=first, InstanceId=host) \
        == (403, "InstanceLastSecurityGroup")
    assert _refused(emu, "LeaveSecurityGroup", SecurityGroupId="sg-nothing", InstanceId=host) \
        == (404, "InvalidSecurityGroupId.NotFound")
    api(emu, "JoinSecurityGroup", SecurityGroupId=other, InstanceId=host)
    api(emu, "LeaveSecurityGroup", SecurityGroupId=first, InstanceId=host)
    assert instance(emu, host)["SecurityGroupIds"]["SecurityGroupId"] == [other]


def test_join_answers_the_documented_codes(emu: Emulator, other_vpc_group: str) -> None:
    host = emu.register_instance("join-1", host_ip(emu, 62))
    assert _refused(emu, "JoinSecurityGroup", SecurityGroupId=other_vpc_group,
                    InstanceId=host) == (400, "InvalidInstanceId.Mismatch")
    (first,) = instance(emu, host)["SecurityGroupIds"]["SecurityGroupId"]
    assert _refused(emu, "JoinSecurityGroup", SecurityGroupId=first, InstanceId=host) \
        == (403, "InvalidInstanceId.AlreadyExists")
    for _ in range(4):
        api(emu, "JoinSecurityGroup", InstanceId=host,
            SecurityGroupId=security_group(emu, emu.vpc["vpc_id"]))
    assert _refused(emu, "JoinSecurityGroup", InstanceId=host,
                    SecurityGroupId=security_group(emu, emu.vpc["vpc_id"])) \
        == (400, "InstanceSecurityGroupLimitExceeded")
    advanced = str(api(emu, "CreateSecurityGroup", VpcId=emu.vpc["vpc_id"],
                       SecurityGroupType="enterprise")["SecurityGroupId"])
    second = emu.register_instance("join-2", host_ip(emu, 63))
    assert _refused(emu, "JoinSecurityGroup", SecurityGroupId=advanced, InstanceId=second) \
        == (400, "InvalidOperation.MultiGroupType")


def test_join_and_leave_need_a_running_or_stopped_instance(emu: Emulator) -> None:
    busy = emu.register_instance("busy-1", host_ip(emu, 64), status="Stopping")
    (first,) = instance(emu, busy)["SecurityGroupIds"]["SecurityGroupId"]
    other = security_group(emu, emu.vpc["vpc_id"])
    assert _refused(emu, "JoinSecurityGroup", SecurityGroupId=other, InstanceId=busy) \
        == (403, "IncorrectInstanceStatus")
    assert _refused(emu, "LeaveSecurityGroup", SecurityGroupId=first, InstanceId=busy) \
        == (403, "IncorrectInstanceStatus")
    stopped = emu.register_instance("stopped-1", host_ip(emu, 65), status="Stopped")
    api(emu, "JoinSecurityGroup", SecurityGroupId=other, InstanceId=stopped)


def _rule(emu: Emulator, group: str, **fields: str) -> tuple[int, str]:
    wanted = {"IpProtocol": "TCP", "PortRange": "22/22", "SourceCidrIp": "10.0.0.0/8",
              **fields}
    return _refused(emu, "AuthorizeSecurityGroup", SecurityGroupId=group,
                    **{f"Permissions__1__{k}": v for k, v in wanted.items() if v})


def test_authorize_answers_the_documented_codes(emu: Emulator, other_vpc_group: str) -> None:
    group = security_group(emu, emu.vpc["vpc_id"])
    assert _rule(emu, group, SourceCidrIp="") == (400, "MissingParameter.Source")
    assert _rule(emu, group, IpProtocol="SCTP") == (400, "InvalidIpProtocol.ValueNotSupported")
    assert _rule(emu, group, PortRange="22-23") == (400, "InvalidParam.PortRange")
    assert _rule(emu, group, PortRange="0/65536") == (400, "InvalidParam.PortRange")
    assert _rule(emu, group, IpProtocol="ICMPv6", PortRange="-1/-1") \
        == (400, "InvalidParam.Ipv6ProtocolConflictWithIpv4Address")
    assert _rule(emu, group, SourceCidrIp="", SourceGroupId="sg-nobody") \
        == (404, "InvalidSourceGroupId.NotFound")
    assert _rule(emu, group, SourceCidrIp="", SourceGroupId=other_vpc_group) \
        == (400, "InvalidSourceGroupId.Mismatch")
    assert _rule(emu, group, Policy="allow-all") == (400, "InvalidPolicy.Malformed")


def test_the_rule_quota_is_authorization_limit_exceed(emu: Emulator) -> None:
    """200 rules a group (AuthorizeSecurityGroup: "the total of inbound and outbound
    rules cannot exceed 200"); the 201st is 403 AuthorizationLimitExceed."""
    group = security_group(emu, emu.vpc["vpc_id"])
    for start in range(0, 200, 100):
        api(emu, "AuthorizeSecurityGroup", SecurityGroupId=group, **{
            f"Permissions__{n + 1}__{k}": v for n in range(100) for k, v in (
                ("IpProtocol", "TCP"), ("PortRange", f"{start + n + 1}/{start + n + 1}"),
                ("SourceCidrIp", "10.0.0.0/8"))})
    assert _rule(emu, group, PortRange="60000/60000") == (403, "AuthorizationLimitExceed")
