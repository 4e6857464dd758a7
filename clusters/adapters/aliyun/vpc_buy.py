"""VPC 2016-04-28 purchases: the VPC and vSwitch the panel creates for a cluster when the
region has none the person wants to use (CreateVpc, CreateVSwitch, DeleteVSwitch, DeleteVpc).

Parameters as the V2 model alibabacloud_vpc20160428 names them (CreateVpcRequest: CidrBlock,
VpcName, Description, ClientToken, Tag; CreateVSwitchRequest: VpcId, ZoneId, CidrBlock,
VSwitchName, ClientToken, Tag). Tags go in the create call itself, so a lost answer is found
again by the cluster's tag (DescribeVpcs / DescribeVSwitches take Tag.N.Key/Value).
"""

from __future__ import annotations

from collections.abc import Mapping

from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest
from aliyunsdkvpc.request.v20160428.DeleteVpcRequest import DeleteVpcRequest
from aliyunsdkvpc.request.v20160428.DeleteVSwitchRequest import DeleteVSwitchRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from clusters.adapters.aliyun.client import AliyunClient, check_client_token, pages, tag_list
from clusters.adapters.aliyun.errors import CloudNotFound
from clusters.adapters.aliyun.models import Vpc, VSwitch

PAGE_SIZE = 50  # the VPC API's maximum


class VpcBuyApi:
    client: AliyunClient

    def create_vpc(self, *, cidr: str, name: str, description: str, client_token: str,
                   tags: Mapping[str, str]) -> str:
        """CreateVpc: its id (the VPC is Pending until it turns Available)."""
        check_client_token(client_token)
        request = CreateVpcRequest()
        request.set_CidrBlock(cidr)
        request.set_VpcName(name)
        request.set_Description(description)
        request.set_ClientToken(client_token)
        request.set_Tags(tag_list(tags))
        return str(self.client.call(request).get("VpcId", ""))

    def create_vswitch(self, *, vpc_id: str, zone_id: str, cidr: str, name: str,
                       description: str, client_token: str, tags: Mapping[str, str]) -> str:
        """CreateVSwitch: its id (Pending until Available)."""
        check_client_token(client_token)
        request = CreateVSwitchRequest()
        request.set_VpcId(vpc_id)
        request.set_ZoneId(zone_id)
        request.set_CidrBlock(cidr)
        request.set_VSwitchName(name)
        request.set_Description(description)
        request.set_ClientToken(client_token)
        request.set_Tags(tag_list(tags))
        return str(self.client.call(request).get("VSwitchId", ""))

    def vpcs_by_tag(self, key: str, value: str) -> list[Vpc]:
        def make(page: int) -> DescribeVpcsRequest:
            request = DescribeVpcsRequest()
            request.set_Tags([{"Key": key, "Value": value}])
            request.set_PageSize(PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [Vpc(v["VpcId"], v.get("CidrBlock", ""), v.get("VpcName", ""), v.get("Status", ""))
                for v in pages(self.client, make, ("Vpcs", "Vpc"))]

    def vswitches_by_tag(self, key: str, value: str) -> list[VSwitch]:
        def make(page: int) -> DescribeVSwitchesRequest:
            request = DescribeVSwitchesRequest()
            request.set_Tags([{"Key": key, "Value": value}])
            request.set_PageSize(PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [VSwitch(s["VSwitchId"], s.get("VpcId", ""), s.get("ZoneId", ""),
                        s.get("CidrBlock", ""), s.get("VSwitchName", ""), s.get("Status", ""),
                        int(s.get("AvailableIpAddressCount") or 0))
                for s in pages(self.client, make, ("VSwitches", "VSwitch"))]

    def delete_vswitch(self, vswitch_id: str) -> bool:
        """DeleteVSwitch; False when it was already gone. DependencyViolation (instances or
        service addresses still in it) and IncorrectVSwitchStatus are the caller's to wait
        out (terraform-provider-alicloud resource_alicloud_vswitch.go retries both)."""
        request = DeleteVSwitchRequest()
        request.set_VSwitchId(vswitch_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True

    def delete_vpc(self, vpc_id: str) -> bool:
        """DeleteVpc; False when it was already gone. DependencyViolation.VSwitch /
        .SecurityGroup while something is still in it (terraform resource_alicloud_vpc.go
        retries them)."""
        request = DeleteVpcRequest()
        request.set_VpcId(vpc_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True
