"""ECS calls of the hosts the panel buys: what the zone sells, key pairs, RunInstances, release.

Why a module of its own: these spend money (RunInstances) or hand out access (ImportKeyPair);
the read-only lookups of the wizard and preflight stay in ecs_vpc.py. Parameter names and
answer shapes follow the V2 models (alibabacloud_ecs20140526: RunInstancesRequest,
DescribeAvailableResourceResponseBody, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aliyunsdkecs.request.v20140526.DeleteInstancesRequest import DeleteInstancesRequest
from aliyunsdkecs.request.v20140526.DeleteKeyPairsRequest import DeleteKeyPairsRequest
from aliyunsdkecs.request.v20140526.DescribeAvailableResourceRequest import (
    DescribeAvailableResourceRequest,
)
from aliyunsdkecs.request.v20140526.DescribeImagesRequest import DescribeImagesRequest
from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import DescribeInstancesRequest
from aliyunsdkecs.request.v20140526.DescribeInstanceTypesRequest import (
    DescribeInstanceTypesRequest,
)
from aliyunsdkecs.request.v20140526.DescribeKeyPairsRequest import DescribeKeyPairsRequest
from aliyunsdkecs.request.v20140526.ImportKeyPairRequest import ImportKeyPairRequest
from aliyunsdkecs.request.v20140526.ModifySecurityGroupPolicyRequest import (
    ModifySecurityGroupPolicyRequest,
)
from aliyunsdkecs.request.v20140526.RunInstancesRequest import RunInstancesRequest

from clusters.adapters.aliyun.client import (
    AliyunClient,
    check_client_token,
    pages,
    tag_list,
    token_pages,
)
from clusters.adapters.aliyun.ecs_price import PUBLIC_BANDWIDTH_CHARGE, system_disk_level
from clusters.adapters.aliyun.models import Instance, items

# DescribeAvailableResource's StatusCategory: WithStock and ClosedWithStock (low supply)
# can be bought; WithoutStock and ClosedWithoutStock cannot (V2 model
# DescribeAvailableResourceResponseBody...SupportedResource.status_category).
BUYABLE = ("WithStock", "ClosedWithStock")
IDS_BATCH = 100  # DescribeInstances InstanceIds / DeleteInstances InstanceId.N: at most 100
# A Linux HostName: 2-64 characters, segments (between periods) of letters, digits and
# hyphens, no leading/trailing or consecutive periods or hyphens (V2 RunInstancesRequest
# host_name). UniqueSuffix appends 001-999 when more than one is bought (unique_suffix).
HOST_NAME_MAX = 64
_UNIQUE_SUFFIX_DIGITS = 3
_NOT_IN_HOST_NAME = re.compile(r"[^A-Za-z0-9-]+")


def host_name(name: str, amount: int = 1) -> str:
    """A valid Linux HostName made from an instance name ("k3s-<cluster>-<slot>"): other
    characters become hyphens, runs of hyphens one, and a name too long is cut in its
    middle so the last part (the slot, what tells a cluster's hosts apart) stays whole,
    leaving room for the three-digit suffix when several are bought at once."""
    text = _NOT_IN_HOST_NAME.sub("-", name)
    text = re.sub(r"-{2,}", "-", text).strip("-") or "host"
    limit = HOST_NAME_MAX - (_UNIQUE_SUFFIX_DIGITS if amount > 1 else 0)
    if len(text) > limit:
        head, _, tail = text.rpartition("-")
        if not head or len(tail) > limit - 2:
            text = text[:limit].rstrip("-")
        else:
            text = f"{head[:limit - len(tail) - 1].rstrip('-')}-{tail}"
    return text if len(text) >= 2 else f"{text}0"


@dataclass(frozen=True)
class TypeOffer:
    """One instance type as a zone sells it now."""

    instance_type: str
    status_category: str  # WithStock / ClosedWithStock / WithoutStock / ClosedWithoutStock
    cores: int = 0
    memory_gib: float = 0.0

    @property
    def buyable(self) -> bool:
        return self.status_category in BUYABLE


@dataclass(frozen=True)
class InstanceOrder:
    """What RunInstances is asked for (pay-as-you-go, in one vSwitch and security group)."""

    image_id: str
    instance_type: str
    vswitch_id: str
    security_group_id: str
    amount: int
    name: str                 # InstanceName (HostName: host_name(name), a unique suffix)
    key_pair_name: str = ""
    system_disk_category: str = "cloud_essd"
    system_disk_gb: int = 40
    public_bandwidth_mbps: int = 0  # 0: no public address


@dataclass(frozen=True)
class PublicImage:
    image_id: str
    os_name: str   # OSNameEn ("Ubuntu  24.04 64 bit"), spaces collapsed
    family: str    # "acs:ubuntu_24_04_x64"


class EcsBuyApi:
    client: AliyunClient

    def describe_public_linux_images(self) -> list[PublicImage]:
        """DescribeImages of Alibaba's own (system) Linux images, every page."""
        def make(page: int) -> DescribeImagesRequest:
            request = DescribeImagesRequest()
            request.set_ImageOwnerAlias("system")
            request.set_OSType("linux")
            request.set_PageSize(100)
            request.set_PageNumber(page)
            return request

        return [PublicImage(str(i.get("ImageId", "")),
                            " ".join(str(i.get("OSNameEn") or i.get("OSName") or "").split()),
                            str(i.get("ImageFamily") or ""))
                for i in pages(self.client, make, ("Images", "Image"))]

    def available_instance_types(self, zone_id: str, *, with_sizes: bool = True
                                 ) -> list[TypeOffer]:
        """DescribeAvailableResource (InstanceType, pay-as-you-go) in one zone, every type
        with its stock; cores and memory from DescribeInstanceTypes, unless `with_sizes` is
        False (a stock check only, as the review's: one call instead of one per ten types)."""
        request = DescribeAvailableResourceRequest()
        request.set_ZoneId(zone_id)
        request.set_DestinationResource("InstanceType")
        request.set_InstanceChargeType("PostPaid")
        request.set_ResourceType("instance")
        body = self.client.call(request)
        offers: dict[str, str] = {}
        for zone in items(body, "AvailableZones", "AvailableZone"):
            if zone.get("ZoneId") != zone_id:
                continue
            for resource in items(zone, "AvailableResources", "AvailableResource"):
                for supported in items(resource, "SupportedResources", "SupportedResource"):
                    offers[str(supported.get("Value", ""))] = str(
                        supported.get("StatusCategory", ""))
        sizes = self.instance_type_sizes(list(offers)) if with_sizes else {}
        return [TypeOffer(type_id, category, *sizes.get(type_id, (0, 0.0)))
                for type_id, category in sorted(offers.items())]

    def instance_type_sizes(self, type_ids: list[str]) -> dict[str, tuple[int, float]]:
        """DescribeInstanceTypes: {type: (cores, memory GiB)}."""
        sizes: dict[str, tuple[int, float]] = {}
        for start in range(0, len(type_ids), 10):  # InstanceTypes.N: at most 10 a call
            request = DescribeInstanceTypesRequest()
            request.set_InstanceTypess(type_ids[start:start + 10])
            body = self.client.call(request)
            for entry in items(body, "InstanceTypes", "InstanceType"):
                sizes[str(entry.get("InstanceTypeId", ""))] = (
                    int(entry.get("CpuCoreCount") or 0), float(entry.get("MemorySize") or 0))
        return sizes

    def key_pair_fingerprint(self, name: str) -> str | None:
        """DescribeKeyPairs by name: its fingerprint, None when there is none."""
        request = DescribeKeyPairsRequest()
        request.set_KeyPairName(name)
        body = self.client.call(request)
        found = [k for k in items(body, "KeyPairs", "KeyPair") if k.get("KeyPairName") == name]
        return str(found[0].get("KeyPairFingerPrint", "")) if found else None

    def key_pairs(self) -> list[tuple[str, str]]:
        """Every key pair of the region (DescribeKeyPairs, 50 a page): (name, fingerprint),
        by name."""
        found: list[tuple[str, str]] = []
        page = 1
        while True:
            request = DescribeKeyPairsRequest()
            request.set_PageSize(50)
            request.set_PageNumber(page)
            body = self.client.call(request)
            batch = items(body, "KeyPairs", "KeyPair")
            found += [(str(k.get("KeyPairName", "")), str(k.get("KeyPairFingerPrint", "")))
                      for k in batch]
            if not batch or len(found) >= int(body.get("TotalCount") or 0):
                return sorted(found)
            page += 1

    def import_key_pair(self, name: str, public_key: str) -> str:
        """ImportKeyPair of an OpenSSH public key: its fingerprint."""
        request = ImportKeyPairRequest()
        request.set_KeyPairName(name)
        request.set_PublicKeyBody(public_key)
        return str(self.client.call(request).get("KeyPairFingerPrint", ""))

    def delete_key_pairs(self, names: list[str]) -> None:
        """DeleteKeyPairs (a JSON array; names that do not exist are skipped)."""
        request = DeleteKeyPairsRequest()
        request.set_KeyPairNames(json.dumps(names))
        self.client.call(request)

    def run_instances(self, order: InstanceOrder, *, client_token: str,
                      tags: Mapping[str, str], dry_run: bool = False) -> list[str]:
        """RunInstances (pay-as-you-go): the new instances' ids. `dry_run`: Alibaba checks
        the request, stock and quota and answers DryRunOperation (raised) when all pass."""
        check_client_token(client_token)
        request = RunInstancesRequest()
        request.set_ImageId(order.image_id)
        request.set_InstanceType(order.instance_type)
        request.set_VSwitchId(order.vswitch_id)
        request.set_SecurityGroupId(order.security_group_id)
        request.set_Amount(order.amount)
        request.set_MinAmount(order.amount)  # all or nothing: never a part of the order
        request.set_InstanceName(order.name)
        request.set_HostName(host_name(order.name, order.amount))
        request.set_UniqueSuffix(True)
        request.set_InstanceChargeType("PostPaid")
        # The flat setters: the SDK's set_SystemDisk struct sends none of Category, Size or
        # PerformanceLevel (only StorageClusterId, ProvisionedIops, Encrypted...), so the
        # instance got Alibaba's default disk, not the one DescribePrice priced.
        request.set_SystemDiskCategory(order.system_disk_category)
        request.set_SystemDiskSize(str(order.system_disk_gb))
        if system_disk_level(order.system_disk_category):  # as DescribePrice prices it
            request.set_SystemDiskPerformanceLevel(system_disk_level(order.system_disk_category))
        if order.key_pair_name:
            request.set_KeyPairName(order.key_pair_name)
        if order.public_bandwidth_mbps:
            request.set_InternetMaxBandwidthOut(order.public_bandwidth_mbps)
            request.set_InternetChargeType(PUBLIC_BANDWIDTH_CHARGE)  # as DescribePrice
        request.set_Tags(tag_list(tags))
        request.set_ClientToken(client_token)
        if dry_run:
            request.set_DryRun(True)
        body = self.client.call(request)
        return [str(i) for i in items(body, "InstanceIdSets", "InstanceIdSet")]

    def describe_instances_by_ids(self, ids: Iterable[str]) -> list[Instance]:
        wanted = list(dict.fromkeys(ids))
        found: list[Instance] = []
        for start in range(0, len(wanted), IDS_BATCH):
            request = DescribeInstancesRequest()
            request.set_InstanceIds(json.dumps(wanted[start:start + IDS_BATCH]))
            request.set_MaxResults(IDS_BATCH)
            body = self.client.call(request)
            found += [Instance.from_api(e) for e in items(body, "Instances", "Instance")]
        return found

    def find_instances_by_tag(self, key: str, value: str) -> list[Instance]:
        """DescribeInstances filtered by Tag.1, every page (MaxResults/NextToken)."""
        def make(token: str) -> DescribeInstancesRequest:
            request = DescribeInstancesRequest()
            request.set_Tags([{"Key": key, "Value": value}])
            request.set_MaxResults(IDS_BATCH)
            if token:
                request.set_NextToken(token)
            return request

        return [Instance.from_api(e)
                for e in token_pages(self.client, make, ("Instances", "Instance"))]

    def delete_instances(self, ids: list[str], *, client_token: str) -> None:
        """DeleteInstances, Force (a Running instance is stopped and released)."""
        for start in range(0, len(ids), IDS_BATCH):
            request = DeleteInstancesRequest()
            request.set_InstanceIds(ids[start:start + IDS_BATCH])
            request.set_Force(True)
            token = client_token if start == 0 else f"{client_token[:58]}-{start}"
            check_client_token(token)
            request.set_ClientToken(token)
            self.client.call(request)

    def drop_inner_access(self, group_id: str, *, client_token: str) -> None:
        """ModifySecurityGroupPolicy InnerAccessPolicy=Drop: members of a basic group no
        longer reach each other on every port by default ("Basic security groups allow
        inbound internal traffic from instances in the same group", help.aliyun.com/en/ecs/
        user-guide/security-group-rules); only the group's own rules admit them."""
        request = ModifySecurityGroupPolicyRequest()
        request.set_SecurityGroupId(group_id)
        request.set_InnerAccessPolicy("Drop")
        request.set_ClientToken(client_token)
        self.client.call(request)
