"""An NLB's security groups: LoadBalancerJoin/LeaveSecurityGroup as the API reference has
them (async job, at most four, same VPC), and the listener's real TCP proxy enforcing the
joined groups' ingress rules. As Alibaba's NLB guide says, an NLB in no group, or in a
group without a Drop rule, accepts every source: an allow-list is Accept rules for the
allowed CIDRs above a Drop rule for everyone else.

In loopback mode a client binds the source address it connects from (test_slb_acl.py).
"""

from __future__ import annotations

from typing import Any

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526 import (
    AuthorizeSecurityGroupRequest,
    CreateSecurityGroupRequest,
    DeleteSecurityGroupRequest,
    RevokeSecurityGroupRequest,
)

from sandbox.aliyun.testing import Emulator
from tests.emulator.echo import EchoServer
from tests.emulator.test_slb_acl import answer_from
from tests.support.emulator_calls import call, host_ip
from tests.support.nlb_calls import (
    add_servers,
    create_group,
    create_listener,
    create_nlb,
    job_done,
    nlb,
    nlb_error,
    wait_for,
    zone_addresses,
)

PORT = 16444


def security_group(emu: Emulator, vpc_id: str | None = None) -> str:
    return str(call(emu, CreateSecurityGroupRequest.CreateSecurityGroupRequest(),
                    VpcId=vpc_id or emu.vpc["vpc_id"], SecurityGroupName="nlb-api")
               ["SecurityGroupId"])


def _permissions(rules: list[tuple[str, str, int]]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for n, (cidr, policy, priority) in enumerate(rules, start=1):
        flat.update({f"Permissions.{n}.IpProtocol": "tcp",
                     f"Permissions.{n}.PortRange": "6443/6443",
                     f"Permissions.{n}.SourceCidrIp": cidr, f"Permissions.{n}.Policy": policy,
                     f"Permissions.{n}.Priority": str(priority)})
    return flat


def authorize(emu: Emulator, group: str, *rules: tuple[str, str, int]) -> None:
    request = AuthorizeSecurityGroupRequest.AuthorizeSecurityGroupRequest()
    for key, value in _permissions(list(rules)).items():
        request.add_query_param(key, value)
    call(emu, request, SecurityGroupId=group)


def revoke(emu: Emulator, group: str, *rules: tuple[str, str, int]) -> None:
    request = RevokeSecurityGroupRequest.RevokeSecurityGroupRequest()
    for key, value in _permissions(list(rules)).items():
        request.add_query_param(key, value)
    call(emu, request, SecurityGroupId=group)


def join(emu: Emulator, lb_id: str, *groups: str) -> str:
    return str(nlb(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id, **{
        f"SecurityGroupIds.{n}": g for n, g in enumerate(groups, start=1)})["JobId"])


def leave(emu: Emulator, lb_id: str, *groups: str) -> str:
    return str(nlb(emu, "LoadBalancerLeaveSecurityGroup", LoadBalancerId=lb_id, **{
        f"SecurityGroupIds.{n}": g for n, g in enumerate(groups, start=1)})["JobId"])


def settle(emu: Emulator, job: str, what: str) -> None:
    wait_for(lambda: job_done(emu, job), what=what)


def joined(emu: Emulator, lb_id: str) -> list[str]:
    return list(nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)["SecurityGroupIds"])


def test_join_and_leave_are_jobs_with_the_documented_limits(emu: Emulator) -> None:
    lb_id = create_nlb(emu)
    groups = [security_group(emu) for _ in range(5)]
    assert nlb_error(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id) \
        == "MissingParam.SecurityGroupIds"
    assert nlb_error(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id,
                     **{"SecurityGroupIds.1": "sg-nowhere"}) == "ResourceNotFound.securityGroup"
    assert nlb_error(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id, DryRun=True,
                     **{"SecurityGroupIds.1": groups[0]}) == "DryRunOperation"
    job = join(emu, lb_id, groups[0])
    # While the job runs only queries are allowed.
    assert nlb_error(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id,
                     **{"SecurityGroupIds.1": groups[1]}) == "Conflict.Lock"
    assert joined(emu, lb_id) == []
    wait_for(lambda: job_done(emu, job), what="joined")
    assert joined(emu, lb_id) == [groups[0]]
    settle(emu, join(emu, lb_id, *groups[1:4]), "four joined")
    assert joined(emu, lb_id) == groups[:4]
    assert nlb_error(emu, "LoadBalancerJoinSecurityGroup", LoadBalancerId=lb_id,
                     **{"SecurityGroupIds.1": groups[4]}) \
        == "QuotaExceeded.SecurityGroupsPerLoadBalancer"
    # ECS keeps a group an NLB has joined.
    error = _ecs_error(emu, DeleteSecurityGroupRequest.DeleteSecurityGroupRequest(),
                       SecurityGroupId=groups[0])
    assert error == "DependencyViolation"
    assert nlb_error(emu, "LoadBalancerLeaveSecurityGroup", LoadBalancerId=lb_id,
                     **{"SecurityGroupIds.1": groups[4]}) == "ResourceNotFound.securityGroup"
    settle(emu, leave(emu, lb_id, *groups[:4]), "left")
    assert joined(emu, lb_id) == []
    call(emu, DeleteSecurityGroupRequest.DeleteSecurityGroupRequest(), SecurityGroupId=groups[0])


def _ecs_error(emu: Emulator, request: Any, **setters: Any) -> str:
    try:
        call(emu, request, **setters)
    except ServerException as exc:
        return str(exc.get_error_code())
    raise AssertionError("not refused")


def test_the_proxy_enforces_the_joined_groups_rules_live(emu: Emulator) -> None:
    backend_ip, allowed, other = host_ip(emu, 81), host_ip(emu, 82), host_ip(emu, 83)
    with EchoServer(backend_ip, PORT):
        instance = emu.register_instance("nlb-sg", backend_ip)
        lb_id = create_nlb(emu)
        group = create_group(emu)
        add_servers(emu, group, [(instance, PORT)])
        create_listener(emu, lb_id, group)
        address = zone_addresses(emu, lb_id)[0]
        hello = f"{backend_ip}:hi".encode()
        wait_for(lambda: answer_from(other, address) == hello, what="forwarding")
        sg = security_group(emu)
        # A group with only Accept rules still lets everyone in (the NLB guide).
        authorize(emu, sg, (f"{allowed}/32", "accept", 1))
        settle(emu, join(emu, lb_id, sg), "joined")
        assert answer_from(other, address) == hello
        # A Drop rule for everyone else makes it an allow-list, at once.
        authorize(emu, sg, ("0.0.0.0/0", "drop", 100))
        assert answer_from(allowed, address) == hello
        for zone_address in zone_addresses(emu, lb_id):
            assert answer_from(other, zone_address) == b""
        authorize(emu, sg, (f"{other}/32", "accept", 1))
        assert answer_from(other, address) == hello
        revoke(emu, sg, (f"{other}/32", "accept", 1))
        assert answer_from(other, address) == b""
        # Leaving the group: no filter any more.
        settle(emu, leave(emu, lb_id, sg), "left")
        assert answer_from(other, address) == hello
