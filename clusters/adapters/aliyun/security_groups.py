"""ECS security groups the panel owns: the one an NLB joins to carry the API's allow-list.

Why ECS calls in the load balancer's story: an NLB filters its clients with the ingress
rules of the ECS security groups joined to it (LoadBalancerJoinSecurityGroup, nlb.py), not
with a CLB access control list. The group is created in the cluster's VPC (an NLB joins
groups of its own VPC only), tagged with the cluster (found again after a lost answer),
with the caller's ClientToken.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from aliyunsdkecs.request.v20140526.AuthorizeSecurityGroupRequest import (
    AuthorizeSecurityGroupRequest,
)
from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import CreateSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DeleteSecurityGroupRequest import DeleteSecurityGroupRequest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupAttributeRequest import (
    DescribeSecurityGroupAttributeRequest,
)
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import (
    DescribeSecurityGroupsRequest,
)
from aliyunsdkecs.request.v20140526.JoinSecurityGroupRequest import JoinSecurityGroupRequest
from aliyunsdkecs.request.v20140526.LeaveSecurityGroupRequest import LeaveSecurityGroupRequest
from aliyunsdkecs.request.v20140526.RevokeSecurityGroupRequest import RevokeSecurityGroupRequest

from clusters.adapters.aliyun.client import AliyunClient, check_client_token, pages, tag_list
from clusters.adapters.aliyun.errors import CloudNotFound
from clusters.adapters.aliyun.models import items
from clusters.core.errors import StepError

GROUP_PAGE_SIZE = 50   # DescribeSecurityGroups: PageSize at most 50
RULE_BATCH = 100       # AuthorizeSecurityGroup / RevokeSecurityGroup: Permissions.N, N ≤ 100


@dataclass(frozen=True)
class IngressRule:
    """One inbound rule, as the panel writes them: a protocol and port range, from a CIDR
    block or from the members of a security group (`source_group_id`; then NicType must be
    intranet: V2 model AuthorizeSecurityGroupRequestPermissions.source_group_id)."""

    source_cidr: str
    port_range: str        # "6443/6443"
    policy: str = "Accept"  # Accept / Drop
    priority: int = 1       # 1 (first) .. 100
    protocol: str = "TCP"
    source_group_id: str = ""
    # What DescribeSecurityGroupAttribute answers as the rule's Description: not part of the
    # rule (ECS tells rules apart without it), so neither compared, hashed nor in the repr
    # (the rules' ClientToken is derived from the repr, steps/ecs.py).
    description: str = field(default="", compare=False, repr=False)

    def permission(self, description: str = "") -> dict[str, str]:
        found = {"IpProtocol": self.protocol, "PortRange": self.port_range,
                 "Policy": self.policy, "Priority": str(self.priority), "NicType": "intranet"}
        if self.source_group_id:
            found["SourceGroupId"] = self.source_group_id
        else:
            found["SourceCidrIp"] = self.source_cidr
        if description:
            found["Description"] = description
        return found


@dataclass(frozen=True)
class SecurityGroup:
    """A group as DescribeSecurityGroups lists it (the panel tells its groups apart by name)."""

    security_group_id: str
    name: str = ""
    vpc_id: str = ""


class SecurityGroupApi:
    client: AliyunClient

    def create_security_group(self, *, name: str, vpc_id: str, description: str,
                              client_token: str,
                              tags: Mapping[str, str] | None = None) -> str:
        """CreateSecurityGroup (basic, in `vpc_id`): its id."""
        check_client_token(client_token)
        request = CreateSecurityGroupRequest()
        request.set_VpcId(vpc_id)
        request.set_SecurityGroupName(name)
        request.set_Description(description)
        request.set_SecurityGroupType("normal")
        request.set_ClientToken(client_token)
        if tags:
            request.set_Tags(tag_list(tags))
        return str(self.client.call(request).get("SecurityGroupId", ""))

    def find_security_groups_by_tag(self, key: str, value: str) -> list[str]:
        """DescribeSecurityGroups filtered by Tag.1 (every page): the ids."""
        return [g.security_group_id for g in self.security_groups_by_tag(key, value)]

    def security_groups_by_tag(self, key: str, value: str) -> list[SecurityGroup]:
        """DescribeSecurityGroups filtered by Tag.1 (every page), with their names."""
        def make(page: int) -> DescribeSecurityGroupsRequest:
            request = DescribeSecurityGroupsRequest()
            request.set_Tags([{"Key": key, "Value": value}])
            request.set_PageSize(GROUP_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [SecurityGroup(str(g.get("SecurityGroupId", "")),
                              str(g.get("SecurityGroupName", "")), str(g.get("VpcId", "")))
                for g in pages(self.client, make, ("SecurityGroups", "SecurityGroup"))]

    def ingress_rules(self, group_id: str) -> list[IngressRule] | None:
        """DescribeSecurityGroupAttribute (ingress) as rules; None once the group is gone.

        One page holds them all: MaxResults defaults to 500 (V2 model), and the panel's
        basic group holds at most 200 rules (allowlist.NLB_MAX_ENTRIES + the Drop rule)."""
        request = DescribeSecurityGroupAttributeRequest()
        request.set_SecurityGroupId(group_id)
        request.set_Direction("ingress")
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        return [IngressRule(str(p.get("SourceCidrIp", "")), str(p.get("PortRange", "")),
                            str(p.get("Policy", "Accept")).capitalize(),
                            int(p.get("Priority") or 1), str(p.get("IpProtocol", "")).upper(),
                            str(p.get("SourceGroupId") or ""), str(p.get("Description") or ""))
                for p in items(body, "Permissions", "Permission")
                if str(p.get("Direction") or "ingress") == "ingress"]

    def authorize_ingress(self, group_id: str, rules: Iterable[IngressRule],
                          description: str = "", *, client_token: str = "",
                          descriptions: Mapping[IngressRule, str] | None = None) -> None:
        """AuthorizeSecurityGroup (an identical rule is accepted and not added twice).

        `client_token` (recorded by the caller first) is sent with each batch, suffixed by its
        number when there are several; `descriptions` name single rules."""
        chosen = [r.permission((descriptions or {}).get(r, description)) for r in rules]
        batches = range(0, len(chosen), RULE_BATCH)
        for number, start in enumerate(batches):
            request = AuthorizeSecurityGroupRequest()
            request.set_SecurityGroupId(group_id)
            request.set_Permissions(chosen[start:start + RULE_BATCH])
            if client_token:
                token = client_token if len(batches) == 1 else \
                    f"{client_token[:60]}-{number}"
                check_client_token(token)
                request.set_ClientToken(token)
            self.client.call(request)

    def revoke_ingress(self, group_id: str, rules: Iterable[IngressRule]) -> None:
        """RevokeSecurityGroup of exactly these rules."""
        chosen = [r.permission() for r in rules]
        for start in range(0, len(chosen), RULE_BATCH):
            request = RevokeSecurityGroupRequest()
            request.set_SecurityGroupId(group_id)
            request.set_Permissions(chosen[start:start + RULE_BATCH])
            self.client.call(request)

    def delete_security_group(self, group_id: str) -> bool:
        """DeleteSecurityGroup; False when it was already gone. DependencyViolation while an
        NLB still holds it (its leave job settling) is left to the caller to retry."""
        request = DeleteSecurityGroupRequest()
        request.set_SecurityGroupId(group_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True

    def join_security_group(self, instance_id: str, group_id: str) -> bool:
        """JoinSecurityGroup (no ClientToken in the API: the caller checks membership
        first); False when the instance was in the group already. Mixing a basic and an
        advanced group on one instance (InvalidOperation.MultiGroupType) or another VPC's
        group (InvalidInstanceId.Mismatch) is refused, raised with its code and RequestId."""
        request = JoinSecurityGroupRequest()
        request.set_InstanceId(instance_id)
        request.set_SecurityGroupId(group_id)
        try:
            self.client.call(request)
        except StepError as exc:
            if exc.code == "InvalidInstanceId.AlreadyExists":
                return False
            raise
        return True

    def leave_security_group(self, instance_id: str, group_id: str) -> bool:
        """LeaveSecurityGroup; False when the instance (or its membership) is gone already:
        since July 8, 2024 leaving a group the instance is not in answers 400
        InvalidSecurityGroupAssociation.NotFound (LeaveSecurityGroup's page), a not-found
        (errors.NOT_FOUND_CODES) like the instance's or the group's own."""
        request = LeaveSecurityGroupRequest()
        request.set_InstanceId(instance_id)
        request.set_SecurityGroupId(group_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True
