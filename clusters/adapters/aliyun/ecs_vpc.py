"""ECS and VPC lookups the wizard and preflight need (read-only)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdkecs.request.v20140526.DescribeZonesRequest import DescribeZonesRequest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest

from clusters.adapters.aliyun.client import AliyunClient, pages, token_pages
from clusters.adapters.aliyun.models import Instance, Region, Vpc, VSwitch, Zone, items

VPC_PAGE_SIZE = 50  # the VPC API's maximum
ECS_BATCH = 100     # DescribeInstances accepts at most 100 IPs per call
# DescribeInstances' MaxResults: 10 to 100 (below 10 Alibaba answers 10, above 100 it answers
# 100; V2 model alibabacloud_ecs20140526 DescribeInstancesRequest.max_results).
INSTANCE_PAGE_SIZE = 100


class EcsVpcApi:
    client: AliyunClient

    def describe_regions(self) -> list[Region]:
        body = self.client.call(DescribeRegionsRequest())
        return [Region(r["RegionId"], r.get("LocalName", ""))
                for r in items(body, "Regions", "Region")]

    def describe_zones(self) -> list[Zone]:
        request = DescribeZonesRequest()
        body = self.client.call(request)
        return [Zone(z["ZoneId"], z.get("LocalName", "")) for z in items(body, "Zones", "Zone")]

    def describe_vpcs(self) -> list[Vpc]:
        def make(page: int) -> DescribeVpcsRequest:
            request = DescribeVpcsRequest()
            request.set_PageSize(VPC_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [Vpc(v["VpcId"], v.get("CidrBlock", ""), v.get("VpcName", ""), v.get("Status", ""))
                for v in pages(self.client, make, ("Vpcs", "Vpc"))]

    def describe_vswitches(self, vpc_id: str | None = None,
                           zone_id: str | None = None) -> list[VSwitch]:
        def make(page: int) -> DescribeVSwitchesRequest:
            request = DescribeVSwitchesRequest()
            if vpc_id:
                request.set_VpcId(vpc_id)
            if zone_id:
                request.set_ZoneId(zone_id)
            request.set_PageSize(VPC_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [VSwitch(s["VSwitchId"], s.get("VpcId", ""), s.get("ZoneId", ""),
                        s.get("CidrBlock", ""), s.get("VSwitchName", ""), s.get("Status", ""),
                        int(s.get("AvailableIpAddressCount") or 0))
                for s in pages(self.client, make, ("VSwitches", "VSwitch"))]

    def describe_instances_by_private_ips(self, ips: Iterable[str],
                                          vpc_id: str | None = None) -> list[Instance]:
        """ECS instances owning these private IPs (unknown IPs are simply absent)."""
        wanted = list(dict.fromkeys(ips))
        found: list[Instance] = []
        for start in range(0, len(wanted), ECS_BATCH):
            batch = wanted[start:start + ECS_BATCH]

            def make(page: int, batch: list[str] = batch) -> DescribeInstancesRequest:
                request = DescribeInstancesRequest()
                request.set_InstanceNetworkType("vpc")  # PrivateIpAddresses needs it
                request.set_PrivateIpAddresses(json.dumps(batch))  # a JSON array, not a repr
                if vpc_id:
                    request.set_VpcId(vpc_id)
                request.set_PageSize(ECS_BATCH)
                request.set_PageNumber(page)
                return request

            found += [Instance.from_api(e)
                      for e in pages(self.client, make, ("Instances", "Instance"))]
        return found

    def describe_vpc_instances(self, vpc_id: str,
                               page_size: int = INSTANCE_PAGE_SIZE) -> list[Instance]:
        """Every ECS instance of one VPC, whatever its status, for the hosts page to list.

        Paged with MaxResults/NextToken: PageNumber/PageSize "is about to be deprecated. Use
        NextToken and MaxResults" (V2 model DescribeInstancesRequest.page_number). The last
        page answers an empty NextToken; a bounded number of pages, like `pages`."""
        def make(token: str) -> DescribeInstancesRequest:
            request = DescribeInstancesRequest()
            request.set_VpcId(vpc_id)
            request.set_InstanceNetworkType("vpc")
            request.set_MaxResults(page_size)
            if token:
                request.set_NextToken(token)
            return request

        return [Instance.from_api(e)
                for e in token_pages(self.client, make, ("Instances", "Instance"))]
