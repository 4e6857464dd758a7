"""ECS 2014-05-26 DescribePrice (ResourceType=instance): what an instance configuration costs.

Why: the review page lists every instance the panel will buy with its price before anything
is bought, asked of ECS as a real panel would (DescribePrice), not of a table of the panel's.

Sources:
- Request and answer: the V2 models alibabacloud_ecs20140526 7.11.8 DescribePriceRequest
  (RegionId required; ResourceType default instance, which needs InstanceType; ImageId (a
  Linux image when absent); SystemDisk.Category default cloud_efficiency, PerformanceLevel
  PL0-PL3 "PL1 (default)", Size default max{20, image size}, per-category bounds as
  RunInstances'; InternetChargeType default PayByTraffic; InternetMaxBandwidthOut 0-100,
  default 0; Amount 1-1000, default 1; PriceUnit Hour (default) / Week / Month / Year with
  Period "Hour: 1, Week: 1 to 4, Month: 1 to 9, Year: 1 to 5"; ZoneId) and
  DescribePriceResponseBody (PriceInfo.Price.{Currency, OriginalPrice, DiscountPrice,
  TradePrice, DetailInfos.DetailInfo[].{Resource, OriginalPrice, DiscountPrice, TradePrice,
  SubRules.Rule[]}}, PriceInfo.Rules.Rule[].{RuleId, Description}). TradePrice "is the
  original price minus the discount"; DiscountPrice is the discount.
- Error codes and messages: the DescribePrice API reference's error table (Alibaba's ECS
  documentation, help.aliyun.com/zh/ecs/developer-reference/api-ecs-2014-05-26-describeprice,
  as mirrored in github.com/SkyeYXL/ecs cn.zh-CN/API参考/其他接口/DescribePrice.md):
  400 `InvalidInstanceType.ValueNotSupported` "The specified InstanceType does not exist
  or beyond the permitted range.", 404 `InvalidInstanceType.Missing`, 404
  `InvalidImageId.NotFound`, 400 `InvalidSystemDiskCategory.ValueNotSupported`, 400
  `InvalidSystemDiskSize.LessThanImageSize`, 400 `InvalidSystemDiskSize.ValueNotSupported`,
  400 `InvalidInternetChargeType.ValueNotSupported`, 400
  `InvalidInternetMaxBandwidthOut.ValueNotSupported`, 400 `InvalidPriceUnit.ValueNotSupported`,
  400 `InvalidPeriod`, 403 `InvalidAmount.Malformed`, 400
  `InvalidResourceType.ValueNotSupported`, 403 `OperationDenied` "The specified parameter
  InstanceNetworkType is not authorized.", 403 `InstanceType.Offline` ("实例规格已停售或者供货
  不足": discontinued or out of supply).
- Chosen (no source says which case answers which code): a type a zone no longer sells
  (stock ClosedWithoutStock, "sold out, not replenished": ecs_catalogue.py) answers
  `InstanceType.Offline` when ZoneId names that zone; a type only temporarily sold out
  (WithoutStock) is still quoted (a price is not stock: RunInstances refuses it). An unknown
  ZoneId answers 404 `InvalidZoneId.NotFound` (as RunInstances here). Only ResourceType
  instance is priced: the other documented types answer `InvalidResourceType.ValueNotSupported`
  naming the stand-in's limit. DetailInfo Resource names `instanceType`, `systemDisk`,
  `bandwidth`.

Prices: the stand-in's own table (CNY, China site, every region and zone alike), plausible,
not Alibaba's quote: a pay-as-you-go hourly price per instance type, ESSD and other disks by
the GiB-hour, fixed bandwidth (PayByBandwidth) by the Mbit/s-hour (dearer above 5 Mbit/s);
PayByTraffic bandwidth costs nothing by the hour (traffic is billed by the GB, 0.8 CNY: not
part of an hourly quote). Week, Month and Year are subscription prices: 168 h x 0.7, 730 h x
0.6, and a year of months with a 15% rule (RuleId 587, as the reference's example).
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun import ecs_catalogue as catalogue
from sandbox.aliyun.ecs import ECS
from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import control_route
from sandbox.aliyun.gateway.state import State

CURRENCY = "CNY"
# CNY per hour, pay-as-you-go: the stand-in's table (every type of ecs_catalogue.INSTANCE_TYPES).
INSTANCE_HOURLY: dict[str, float] = {
    "ecs.c7.large": 0.62, "ecs.c7.xlarge": 1.24,
    "ecs.g7.large": 0.78, "ecs.g7.xlarge": 1.56, "ecs.g7.2xlarge": 3.12,
    "ecs.r7.large": 1.02,
    "ecs.g8i.large": 0.81, "ecs.g8i.xlarge": 1.62,
    "ecs.u1-c1m2.large": 0.41, "ecs.u1-c1m4.xlarge": 1.15,
    "ecs.g6.large": 0.70, "ecs.c6.large": 0.55,
}
# CNY per GiB and hour, by system disk category (ESSD by performance level).
DISK_GIB_HOURLY: dict[str, float] = {"cloud_efficiency": 0.0005, "cloud_auto": 0.001}
ESSD_GIB_HOURLY: dict[str, float] = {"PL0": 0.0007, "PL1": 0.0014, "PL2": 0.0028,
                                     "PL3": 0.0056}
# PayByBandwidth, CNY per Mbit/s and hour: the first 5 Mbit/s, then each one above.
BANDWIDTH_HOURLY = (0.063, 0.25)
TRAFFIC_PER_GB = 0.8  # PayByTraffic: billed by usage, not in an hourly quote
PERIODS: dict[str, tuple[int, int]] = {"Hour": (1, 1), "Week": (1, 4), "Month": (1, 9),
                                       "Year": (1, 5)}
SUBSCRIPTION_HOURS = {"Week": 168 * 0.7, "Month": 730 * 0.6, "Year": 730 * 0.6 * 12}
YEAR_RULE = {"RuleId": 587, "Description": "买满1年,立享官网价格8.5折优惠"}
YEAR_DISCOUNT = 0.15
RESOURCE_TYPES = ("instance", "disk", "diskperformance", "bandwidth", "ddh",
                  "ElasticityAssurance", "CapacityReservation")


def price_list() -> dict[str, Any]:
    """The seeded table, for tests to compare with (GET /_emulator/ecs/prices)."""
    return {"currency": CURRENCY, "instance_hourly": INSTANCE_HOURLY,
            "disk_gib_hourly": {**DISK_GIB_HOURLY,
                                **{f"cloud_essd:{k}": v for k, v in ESSD_GIB_HOURLY.items()}},
            "bandwidth_mbps_hourly": {"first_5": BANDWIDTH_HOURLY[0],
                                      "above_5": BANDWIDTH_HOURLY[1]},
            "traffic_per_gb": TRAFFIC_PER_GB}


@control_route("GET", "ecs/prices")
def seeded_ecs_prices(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, price_list()


def _error(status: int, code: str, message: str) -> errors.ApiError:
    return errors.ApiError(status, code, message)


def _instance_type(state: State, params: Params, ctx: RequestContext) -> str:
    type_id = params["InstanceType"]
    if not type_id:
        raise _error(404, "InvalidInstanceType.Missing",
                     "The InstanceType parameter that is mandatory for processing the request "
                     "is not provided.")
    if type_id not in catalogue.INSTANCE_TYPES or type_id not in INSTANCE_HOURLY:
        raise _error(400, "InvalidInstanceType.ValueNotSupported",
                     "The specified InstanceType does not exist or beyond the permitted range.")
    zone = params["ZoneId"]
    if zone:
        if zone not in ctx.require_region()["zones"]:
            raise _error(404, "InvalidZoneId.NotFound", "The specified zone does not exist.")
        if catalogue.stock(state, zone, type_id) == "ClosedWithoutStock":
            raise _error(403, "InstanceType.Offline",
                         f"The specified InstanceType {type_id} is no longer sold in zone "
                         f"{zone}.")
    return type_id


def _system_disk(params: Params) -> tuple[str, str, int]:
    """(category, ESSD level or '', size GiB), checked as the reference's codes say."""
    raw = params.raw
    image_size = 20
    if params["ImageId"]:
        image = catalogue.image(params["ImageId"])
        if image is None:
            raise _error(404, "InvalidImageId.NotFound", "The specified ImageId does not exist.")
        image_size = int(image["Size"])
    category = raw.get("SystemDisk.Category") or "cloud_efficiency"
    if category not in catalogue.SYSTEM_DISKS:
        raise _error(400, "InvalidSystemDiskCategory.ValueNotSupported",
                     'The specified parameter "SystemDisk.Category" is not valid.')
    level = raw.get("SystemDisk.PerformanceLevel") or ""
    if category == "cloud_essd":
        level = level or "PL1"
        if level not in catalogue.ESSD_LEVELS:
            raise _error(400, "InvalidSystemDiskCategory.ValueNotSupported",
                         "The specified parameter SystemDisk.PerformanceLevel is not valid.")
        low, high = catalogue.ESSD_LEVELS[level]
    else:
        level = ""
        low, high = catalogue.SYSTEM_DISKS[category]
    text = raw.get("SystemDisk.Size") or str(max(20, image_size, low))
    if not text.isdigit() or not low <= int(text) <= high:
        raise _error(400, "InvalidSystemDiskSize.ValueNotSupported",
                     f"The specified parameter SystemDisk.Size is invalid: {low} to {high} GiB "
                     f"for {category} {level}".rstrip() + ".")
    if int(text) < image_size:
        raise _error(400, "InvalidSystemDiskSize.LessThanImageSize",
                     'The specified parameter "SystemDisk.Size" is less than the image size.')
    return category, level, int(text)


def _bandwidth_hourly(params: Params) -> float:
    charge = params["InternetChargeType"] or "PayByTraffic"
    if charge not in ("PayByTraffic", "PayByBandwidth"):
        raise _error(400, "InvalidInternetChargeType.ValueNotSupported",
                     "The specified InternetChargeType is not valid.")
    mbps = params["InternetMaxBandwidthOut"] or 0
    if not 0 <= mbps <= 100:
        raise _error(400, "InvalidInternetMaxBandwidthOut.ValueNotSupported",
                     "The specified parameter InternetMaxBandwidthOut is not valid.")
    if charge == "PayByTraffic" or not mbps:
        return 0.0
    first, above = BANDWIDTH_HOURLY
    return min(mbps, 5) * first + max(0, mbps - 5) * above


def _units(params: Params) -> tuple[str, float, float]:
    """(PriceUnit, hours the quote covers, discount share)."""
    unit = params["PriceUnit"] or "Hour"
    if unit not in PERIODS:
        raise _error(400, "InvalidPriceUnit.ValueNotSupported",
                     "The specified parameter PriceUnit is not valid.")
    period = 1 if params["Period"] is None else params["Period"]
    low, high = PERIODS[unit]
    if not low <= period <= high:
        raise _error(400, "InvalidPeriod", "The specified period is not valid.")
    hours = 1.0 if unit == "Hour" else SUBSCRIPTION_HOURS[unit] * period
    return unit, hours, YEAR_DISCOUNT if unit == "Year" else 0.0


def _detail(resource: str, original: float, discount_share: float,
            rules: list[dict[str, Any]]) -> dict[str, Any]:
    discount = round(original * discount_share, 4)
    return {"Resource": resource, "OriginalPrice": round(original, 4),
            "DiscountPrice": discount, "TradePrice": round(original - discount, 4),
            "SubRules": {"Rule": [dict(r) for r in rules]}}


@ECS.action("DescribePrice", (
    Param("RegionId", required=True), Param("ResourceType"), Param("InstanceType"),
    Param("ImageId"), Param("ZoneId"), Param("Amount", "integer"),
    Param("Period", "integer"), Param("PriceUnit"), Param("InternetChargeType"),
    Param("InternetMaxBandwidthOut", "integer"), Param("IoOptimized", enum=("none",
                                                                           "optimized")),
    Param("InstanceNetworkType"), Param("Platform", enum=("Windows", "Linux")),
    Param("SpotStrategy", enum=("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo")),
))
def describe_price(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """The price of `Amount` instances of one configuration for one PriceUnit x Period."""
    ctx.require_region()
    resource = params["ResourceType"] or "instance"
    if resource not in RESOURCE_TYPES:
        raise _error(400, "InvalidResourceType.ValueNotSupported",
                     "The specified parameter ResourceType is not valid.")
    if resource != "instance":
        raise _error(400, "InvalidResourceType.ValueNotSupported",
                     f"The emulator prices ResourceType instance only, not {resource}.")
    if (params["InstanceNetworkType"] or "vpc") != "vpc":
        raise _error(403, "OperationDenied",
                     "The specified parameter InstanceNetworkType is not authorized.")
    amount = 1 if params["Amount"] is None else params["Amount"]
    if not 1 <= amount <= 1000:
        raise _error(403, "InvalidAmount.Malformed",
                     "The specified parameter Amount is not valid.")
    type_id = _instance_type(state, params, ctx)
    category, level, size = _system_disk(params)
    bandwidth = _bandwidth_hourly(params)
    unit, hours, discount_share = _units(params)
    rules = [YEAR_RULE] if unit == "Year" else []
    disk_rate = ESSD_GIB_HOURLY[level] if category == "cloud_essd" else DISK_GIB_HOURLY[category]
    details = [
        _detail("instanceType", INSTANCE_HOURLY[type_id] * hours * amount, discount_share,
                rules),
        _detail("systemDisk", disk_rate * size * hours * amount, discount_share, rules),
        _detail("bandwidth", bandwidth * hours * amount, discount_share, rules),
    ]
    original = round(sum(d["OriginalPrice"] for d in details), 4)
    trade = round(sum(d["TradePrice"] for d in details), 4)
    return {"PriceInfo": {
        "Price": {"Currency": CURRENCY, "OriginalPrice": original,
                  "DiscountPrice": round(original - trade, 4), "TradePrice": trade,
                  "DetailInfos": {"DetailInfo": details}},
        "Rules": {"Rule": [dict(r) for r in rules]},
    }}
