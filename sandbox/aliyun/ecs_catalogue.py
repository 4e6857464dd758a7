"""ECS 2014-05-26: what a region sells: public images, instance types, and each zone's stock.

Why: the panel offers only what the zone really sells (DescribeAvailableResource), with
cores and memory (DescribeInstanceTypes), and the images of current Linux releases
(DescribeImages); RunInstances (ecs_instances.py) refuses anything else with Alibaba's codes.

Sources: the V2 models (alibabacloud_ecs20140526 7.11.8: parameter names, answer shapes);
DescribeAvailableResource's answer documentation (Alibaba SDK model docs, e.g.
aliyun/alibabacloud-php-sdk ecs DescribeAvailableResourceResponseBody: zone `Status`
Available|SoldOut, `StatusCategory` WithStock, ClosedWithStock (low supply), WithoutStock
(sold out, to be replenished), ClosedWithoutStock (sold out, not replenished)).
Image ids follow Alibaba's public naming (`ubuntu_24_04_x64_20G_alibase_<date>.vhd`,
family `acs:ubuntu_24_04_x64`, help.aliyun.com doc 108393 "Public images"); the dates are
ours. The lab host behind every image runs the machine's own Debian userland: only its
/etc/os-release (what the panel's preflight reads) is the image's.
"""

from __future__ import annotations

import copy
from typing import Any

from sandbox.aliyun.ecs import ECS
from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import control_route
from sandbox.aliyun.gateway.state import State

_UBUNTU = ('PRETTY_NAME="Ubuntu {full} LTS"\nNAME="Ubuntu"\nVERSION_ID="{short}"\n'
           'VERSION="{full} LTS ({name})"\nVERSION_CODENAME={code}\nID=ubuntu\nID_LIKE=debian\n'
           'HOME_URL="https://www.ubuntu.com/"\nUBUNTU_CODENAME={code}\n')

IMAGES: tuple[dict[str, Any], ...] = (
    {"ImageId": "ubuntu_24_04_x64_20G_alibase_20250722.vhd", "ImageFamily": "acs:ubuntu_24_04_x64",
     "OSName": "Ubuntu  24.04 64位", "OSNameEn": "Ubuntu  24.04 64 bit", "Platform": "Ubuntu",
     "ImageVersion": "24.04", "Size": 20, "CreationTime": "2025-07-22T03:12:41Z",
     "os_release": _UBUNTU.format(full="24.04.2", short="24.04", name="Noble Numbat",
                                  code="noble")},
    {"ImageId": "ubuntu_22_04_x64_20G_alibase_20250722.vhd", "ImageFamily": "acs:ubuntu_22_04_x64",
     "OSName": "Ubuntu  22.04 64位", "OSNameEn": "Ubuntu  22.04 64 bit", "Platform": "Ubuntu",
     "ImageVersion": "22.04", "Size": 20, "CreationTime": "2025-07-22T03:05:10Z",
     "os_release": _UBUNTU.format(full="22.04.5", short="22.04", name="Jammy Jellyfish",
                                  code="jammy")},
    {"ImageId": "debian_12_11_x64_20G_alibase_20250722.vhd", "ImageFamily": "acs:debian_12_x64",
     "OSName": "Debian  12.11 64位", "OSNameEn": "Debian  12.11 64 bit", "Platform": "Debian",
     "ImageVersion": "12.11", "Size": 20, "CreationTime": "2025-07-22T02:51:33Z",
     "os_release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                   'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\n'
                   'ID=debian\nHOME_URL="https://www.debian.org/"\n'},
    {"ImageId": "aliyun_3_x64_20G_alibase_20250629.vhd",
     "ImageFamily": "acs:alibaba_cloud_linux_3_2104_lts_x64",
     "OSName": "Alibaba Cloud Linux  3.2104 LTS 64位",
     "OSNameEn": "Alibaba Cloud Linux  3.2104 LTS 64 bit", "Platform": "Aliyun",
     "ImageVersion": "3.2104", "Size": 40, "CreationTime": "2025-06-29T08:20:17Z",
     "os_release": 'NAME="Alibaba Cloud Linux"\nVERSION="3 (Soaring Falcon)"\nID="alinux"\n'
                   'ID_LIKE="rhel fedora centos anolis"\nVERSION_ID="3"\n'
                   'PLATFORM_ID="platform:al8"\n'
                   'PRETTY_NAME="Alibaba Cloud Linux 3 (Soaring Falcon)"\n'
                   'HOME_URL="https://www.aliyun.com/"\n'},
)

# (id, family, cores, memory GiB): current families (g7/c7/r7, g8i, u1); g6/c6 as before.
_TYPES = (
    ("ecs.c7.large", "ecs.c7", 2, 4.0), ("ecs.c7.xlarge", "ecs.c7", 4, 8.0),
    ("ecs.g7.large", "ecs.g7", 2, 8.0), ("ecs.g7.xlarge", "ecs.g7", 4, 16.0),
    ("ecs.g7.2xlarge", "ecs.g7", 8, 32.0), ("ecs.r7.large", "ecs.r7", 2, 16.0),
    ("ecs.g8i.large", "ecs.g8i", 2, 8.0), ("ecs.g8i.xlarge", "ecs.g8i", 4, 16.0),
    ("ecs.u1-c1m2.large", "ecs.u1", 2, 4.0), ("ecs.u1-c1m4.xlarge", "ecs.u1", 4, 16.0),
    ("ecs.g6.large", "ecs.g6", 2, 8.0), ("ecs.c6.large", "ecs.c6", 2, 4.0),
)
INSTANCE_TYPES: dict[str, dict[str, Any]] = {
    type_id: {"InstanceTypeId": type_id, "InstanceTypeFamily": family, "CpuCoreCount": cores,
              "MemorySize": memory}
    for type_id, family, cores, memory in _TYPES
}

# System disk categories a zone sells, with the size bounds RunInstancesRequest.SystemDisk
# documents (V2: "Basic disk: 20 to 500 ... Other disk categories: 20 to 2048"; ESSD PL0 1 to
# 2048; the emulator sells PL1 ESSD: 20 to 2048).
SYSTEM_DISKS: dict[str, tuple[int, int]] = {
    "cloud_essd": (20, 2048), "cloud_efficiency": (20, 2048), "cloud_auto": (1, 2048),
}
# ESSD performance levels and their system disk sizes in GiB (V2 RunInstancesRequest
# SystemDisk.Size: "PL0: 1 to 2048, PL1: 20 to 2048, PL2: 461 to 2048, PL3: 1261 to 2048";
# SystemDisk.PerformanceLevel: PL0-PL3, "PL1 (default)").
ESSD_LEVELS: dict[str, tuple[int, int]] = {
    "PL0": (1, 2048), "PL1": (20, 2048), "PL2": (461, 2048), "PL3": (1261, 2048),
}
STOCK_CATEGORIES = ("WithStock", "ClosedWithStock", "WithoutStock", "ClosedWithoutStock")


def system_disk_level(category: str, level: str) -> tuple[str, int, int]:
    """(performance level or '', least GiB, most GiB) of a system disk of a known `category`.

    One rule for RunInstances (ecs_instances.py) and DescribePrice (ecs_price.py), so a
    configuration the quote accepts is one the purchase accepts, with the same code: a
    PerformanceLevel is for cloud_essd only, "PL1 (default)", one of PL0-PL3 (V2
    RunInstancesRequest / DescribePriceRequest SystemDisk.PerformanceLevel);
    `InvalidSystemDiskPerformanceLevel.ValueNotSupported` is chosen (README)."""
    if level and category != "cloud_essd":
        raise errors.ApiError(400, "InvalidSystemDiskPerformanceLevel.ValueNotSupported",
                              "The specified parameter SystemDisk.PerformanceLevel is only "
                              "valid for cloud_essd.")
    if category != "cloud_essd":
        low, high = SYSTEM_DISKS[category]
        return "", low, high
    level = level or "PL1"
    if level not in ESSD_LEVELS:
        raise errors.ApiError(400, "InvalidSystemDiskPerformanceLevel.ValueNotSupported",
                              f"The specified parameter SystemDisk.PerformanceLevel {level} "
                              f"is not valid: one of {', '.join(ESSD_LEVELS)}.")
    low, high = ESSD_LEVELS[level]
    return level, low, high


def image(image_id: str) -> dict[str, Any] | None:
    return next((i for i in IMAGES if i["ImageId"] == image_id), None)


def latest_of_family(family: str) -> dict[str, Any] | None:
    found = [i for i in IMAGES if i["ImageFamily"] == family]
    return max(found, key=lambda i: i["CreationTime"]) if found else None


def stock(state: State, zone_id: str, instance_type: str) -> str:
    """The StatusCategory of a type in a zone (WithStock unless the control API says)."""
    return str(state.table("ecs", "stock").get(f"{zone_id}/{instance_type}", "WithStock"))


def has_stock(category: str) -> bool:
    return category in ("WithStock", "ClosedWithStock")


@control_route("POST", "ecs/stock")
def set_stock(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """`{zone_id, instance_type, status_category}`: a zone sells out of a type (WithoutStock
    / ClosedWithoutStock) or gets it back (WithStock)."""
    zone, type_id = body.get("zone_id"), body.get("instance_type")
    category = body.get("status_category", "WithoutStock")
    if not zone or type_id not in INSTANCE_TYPES or category not in STOCK_CATEGORIES:
        raise ControlError(400, "need zone_id, a known instance_type and status_category "
                                f"in {STOCK_CATEGORIES}")
    with cloud.lock:
        cloud.state.table("ecs", "stock")[f"{zone}/{type_id}"] = category
        cloud.state.save()
    return 200, {"zone_id": zone, "instance_type": type_id, "status_category": category}


@control_route("POST", "ecs/quota")
def set_quota(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """`{region_id, instances}`: at most that many instances (not deleted) in the region;
    `instances: null` lifts the limit."""
    region, limit = body.get("region_id"), body.get("instances")
    if not region or not (limit is None or (isinstance(limit, int) and limit >= 0)):
        raise ControlError(400, "need region_id and instances (an integer >= 0, or null)")
    with cloud.lock:
        quotas = cloud.state.table("ecs", "quotas")
        if limit is None:
            quotas.pop(region, None)
        else:
            quotas[region] = limit
        cloud.state.save()
    return 200, {"region_id": region, "instances": limit}


def quota(state: State, region_id: str) -> int | None:
    found = state.table("ecs", "quotas").get(region_id)
    return None if found is None else int(found)


# ---- DescribeImages ------------------------------------------------------------------------
def _image_view(found: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in found.items() if k != "os_release"}
    return {
        **view, "ImageName": found["ImageId"].removesuffix(".vhd"),
        "Description": "", "ImageOwnerAlias": "system", "IsPublic": True,
        "IsSupportCloudinit": True, "IsSupportIoOptimized": True, "IsSubscribed": False,
        "IsCopied": False, "IsSelfShared": "", "OSType": "linux", "Architecture": "x86_64",
        "Status": "Available", "Progress": "100%", "Usage": "instance",
        "BootMode": "UEFI-Preferred",
        "LoginAsNonRootSupported": True, "ProductCode": "", "SupplierName": "",
        "ResourceGroupId": "", "LicenseType": "Auto", "ImageOwnerId": 0,
        "DiskDeviceMappings": {"DiskDeviceMapping": [
            {"Device": "/dev/xvda", "Size": str(found["Size"]), "Type": "system",
             "SnapshotId": "", "Format": "", "ImportOSSBucket": "", "ImportOSSObject": "",
             "Progress": "100%", "RemainTime": 0, "Encrypted": False}]},
        "Tags": {"Tag": []},
    }


@ECS.action("DescribeImages", (
    Param("RegionId", required=True), Param("ImageId"), Param("ImageName"),
    Param("ImageFamily"), Param("ImageOwnerAlias", enum=("system", "self", "others",
                                                         "marketplace")),
    Param("OSType", enum=("windows", "linux")), Param("Architecture"),
    Param("Status"), Param("Usage"), Param("InstanceType"), Param("IsPublic", "boolean"),
    Param("Usable", "boolean"), Param("ActionType"), Param("DryRun", "boolean"),
    *page_params(10, 100),
))
def describe_images(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """The region's public (system) images; `self`/`others`/`marketplace` own none here."""
    ctx.require_region()
    if params["DryRun"]:
        raise errors.ApiError(400, "DryRunOperation",
                              "Request validation has been passed with DryRun flag set.")
    wanted_ids = [i for i in (params["ImageId"] or "").split(",") if i]
    found = [
        i for i in IMAGES
        if params["ImageOwnerAlias"] in (None, "system")
        and (not wanted_ids or i["ImageId"] in wanted_ids)
        and (not params["ImageFamily"] or i["ImageFamily"] == params["ImageFamily"])
        and (not params["ImageName"] or i["ImageId"].removesuffix(".vhd") == params["ImageName"])
        and params["OSType"] in (None, "linux")
        and params["Architecture"] in (None, "x86_64")
        and (not params["InstanceType"] or params["InstanceType"] in INSTANCE_TYPES)
    ]
    found.sort(key=lambda i: i["CreationTime"], reverse=True)
    chosen = page(found, params["PageNumber"], params["PageSize"])
    return {
        "RegionId": ctx.region_id, "TotalCount": len(found), "PageNumber": params["PageNumber"],
        "PageSize": params["PageSize"], "Images": {"Image": [_image_view(i) for i in chosen]},
    }


# ---- DescribeInstanceTypes -----------------------------------------------------------------
def _type_view(found: dict[str, Any]) -> dict[str, Any]:
    cores = found["CpuCoreCount"]
    return {
        **found, "CpuArchitecture": "X86", "InstanceCategory": "General-purpose",
        "InstanceFamilyLevel": "EnterpriseLevel", "EniQuantity": 3,
        "EniPrivateIpAddressQuantity": 6, "EniIpv6AddressQuantity": 1,
        "InstanceBandwidthRx": 1024000 * cores, "InstanceBandwidthTx": 1024000 * cores,
        "InstancePpsRx": 450000 * cores, "InstancePpsTx": 450000 * cores,
        "GPUAmount": 0, "GPUSpec": "", "GPUMemorySize": 0.0, "LocalStorageCategory": "",
        "PhysicalProcessorModel": "Intel Xeon(Ice Lake) Platinum 8369B",
        "CpuSpeedFrequency": 2.7, "CpuTurboFrequency": 3.5, "NvmeSupport": "required",
    }


@ECS.action("DescribeInstanceTypes", (
    Param("InstanceTypeFamily"), Param("MinimumCpuCoreCount", "integer"),
    Param("MaximumCpuCoreCount", "integer"), Param("MinimumMemorySize", "float"),
    Param("MaximumMemorySize", "float"), Param("MaxResults", "integer", minimum=1,
                                                maximum=1600),
    Param("NextToken"),
))
def describe_instance_types(state: State, params: Params,
                            ctx: RequestContext) -> dict[str, Any]:
    """`InstanceTypes.N` filters by id (read from the query, as the V2 list is flattened)."""
    wanted = params.repeat_list("InstanceTypes")
    found = [
        t for t in INSTANCE_TYPES.values()
        if (not wanted or t["InstanceTypeId"] in wanted)
        and (not params["InstanceTypeFamily"]
             or t["InstanceTypeFamily"] == params["InstanceTypeFamily"])
        and (params["MinimumCpuCoreCount"] is None
             or t["CpuCoreCount"] >= params["MinimumCpuCoreCount"])
        and (params["MaximumCpuCoreCount"] is None
             or t["CpuCoreCount"] <= params["MaximumCpuCoreCount"])
        and (params["MinimumMemorySize"] is None
             or t["MemorySize"] >= params["MinimumMemorySize"])
        and (params["MaximumMemorySize"] is None
             or t["MemorySize"] <= params["MaximumMemorySize"])
    ]
    start = 0
    if params["NextToken"]:
        if not params["NextToken"].isdigit():
            raise errors.invalid_parameter("NextToken")
        start = int(params["NextToken"])
    size = params["MaxResults"] or 1600
    chosen = found[start:start + size]
    more = start + size < len(found)
    return {"NextToken": str(start + size) if more else "",
            "InstanceTypes": {"InstanceType": [_type_view(t) for t in chosen]}}


# ---- DescribeAvailableResource -------------------------------------------------------------
def _status(category: str) -> str:
    return "Available" if has_stock(category) else "SoldOut"


@ECS.action("DescribeAvailableResource", (
    Param("RegionId", required=True), Param("ZoneId"),
    Param("DestinationResource", required=True,
          enum=("Zone", "IoOptimized", "InstanceType", "Network", "ddh", "SystemDisk",
                "DataDisk")),
    Param("InstanceChargeType", enum=("PrePaid", "PostPaid")), Param("InstanceType"),
    Param("ResourceType", enum=("instance", "disk", "reservedinstance", "ddh")),
    Param("SystemDiskCategory"), Param("DataDiskCategory"), Param("NetworkCategory"),
    Param("IoOptimized"), Param("SpotStrategy"), Param("Cores", "integer"),
    Param("Memory", "float"),
))
def describe_available_resource(state: State, params: Params,
                                ctx: RequestContext) -> dict[str, Any]:
    """Per zone: the instance types on sale with their stock, or the system disk categories
    an instance type takes (DestinationResource=SystemDisk needs InstanceType, as the V2
    request documents)."""
    region = ctx.require_region()
    destination = params["DestinationResource"]
    if destination == "SystemDisk" and not params["InstanceType"]:
        raise errors.missing_parameter("InstanceType")
    if params["InstanceType"] and params["InstanceType"] not in INSTANCE_TYPES:
        return {"AvailableZones": {"AvailableZone": []}}
    zones = [z for z in region["zones"] if not params["ZoneId"] or z == params["ZoneId"]]
    answer = []
    for zone in zones:
        types = [
            t for t in INSTANCE_TYPES.values()
            if (not params["InstanceType"] or t["InstanceTypeId"] == params["InstanceType"])
            and (params["Cores"] is None or t["CpuCoreCount"] == params["Cores"])
            and (params["Memory"] is None or t["MemorySize"] == params["Memory"])
        ]
        categories = {t["InstanceTypeId"]: stock(state, zone, t["InstanceTypeId"]) for t in types}
        zone_category = ("WithStock" if any(has_stock(c) for c in categories.values())
                         else "WithoutStock")
        if destination == "InstanceType":
            supported = [{"Value": type_id, "Status": _status(category),
                          "StatusCategory": category}
                         for type_id, category in categories.items()]
            kind = "InstanceType"
        elif destination == "Zone":
            supported = [{"Value": zone, "Status": _status(zone_category),
                          "StatusCategory": zone_category}]
            kind = "Zone"
        elif destination == "SystemDisk":
            supported = [{"Value": category, "Status": "Available", "StatusCategory": "WithStock",
                          "Min": low, "Max": high, "Unit": "GiB"}
                         for category, (low, high) in SYSTEM_DISKS.items()
                         if not params["SystemDiskCategory"]
                         or category == params["SystemDiskCategory"]]
            kind = "SystemDisk"
        else:
            supported = []
            kind = destination
        if not supported:
            continue
        answer.append({
            "ZoneId": zone, "RegionId": ctx.region_id, "Status": _status(zone_category),
            "StatusCategory": zone_category,
            "AvailableResources": {"AvailableResource": [
                {"Type": kind, "SupportedResources": {"SupportedResource": copy.deepcopy(
                    supported)}}]},
        })
    return {"AvailableZones": {"AvailableZone": answer}}
