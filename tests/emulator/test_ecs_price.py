"""ECS DescribePrice (sandbox/aliyun/ecs_price.py) through the official SDK's own request class
(aliyunsdkecs DescribePriceRequest): the stand-in's table, and the refusals the DescribePrice
API reference's error table documents (an unknown type, a type the zone no longer sells, a
disk smaller than the image, a PriceUnit or Period out of range...)."""

from __future__ import annotations

from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkecs.request.v20140526.DescribePriceRequest import DescribePriceRequest

from sandbox.aliyun.testing import Emulator
from tests.emulator.shapes import assert_shape
from tests.support.emulator_calls import call

UBUNTU = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"  # 20 GiB
ALINUX = "aliyun_3_x64_20G_alibase_20250629.vhd"  # 40 GiB


def price(emu: Emulator, **setters: Any) -> dict[str, Any]:
    values = {"InstanceType": "ecs.g7.large", "ImageId": UBUNTU,
              "SystemDiskCategory": "cloud_essd", "SystemDiskSize": 40, **setters}
    return call(emu, DescribePriceRequest(), **{k: v for k, v in values.items()
                                                if v is not None})


def refusal(emu: Emulator, **setters: Any) -> tuple[int, str]:
    with pytest.raises(ServerException) as caught:
        price(emu, **setters)
    return caught.value.get_http_status(), caught.value.get_error_code()


def test_an_hourly_price_is_the_type_plus_the_disk_plus_fixed_bandwidth(emu: Emulator) -> None:
    table = emu.control.request("GET", "ecs/prices")
    body = price(emu, ZoneId=emu.vswitch["zone_id"])
    assert_shape(body, {"RequestId": str, "PriceInfo.Price.Currency": str,
                        "PriceInfo.Price.TradePrice": float,
                        "PriceInfo.Price.OriginalPrice": float,
                        "PriceInfo.Price.DiscountPrice": float,
                        "PriceInfo.Price.DetailInfos.DetailInfo[].Resource": str})
    hourly = round(table["instance_hourly"]["ecs.g7.large"]
                   + table["disk_gib_hourly"]["cloud_essd:PL1"] * 40, 4)
    assert body["PriceInfo"]["Price"]["TradePrice"] == pytest.approx(hourly)
    assert body["PriceInfo"]["Price"]["Currency"] == "CNY"
    # PayByTraffic (the default) costs nothing by the hour; fixed bandwidth does.
    by_traffic = price(emu, InternetMaxBandwidthOut=10)["PriceInfo"]["Price"]["TradePrice"]
    assert by_traffic == pytest.approx(hourly)
    fixed = price(emu, InternetMaxBandwidthOut=10, InternetChargeType="PayByBandwidth")
    band = table["bandwidth_mbps_hourly"]
    assert fixed["PriceInfo"]["Price"]["TradePrice"] == pytest.approx(
        hourly + 5 * band["first_5"] + 5 * band["above_5"])
    # Amount multiplies; a bigger type costs more.
    assert price(emu, Amount=3)["PriceInfo"]["Price"]["TradePrice"] == pytest.approx(
        3 * hourly)
    assert price(emu, InstanceType="ecs.g7.2xlarge")["PriceInfo"]["Price"]["TradePrice"] > (
        hourly)


def test_a_year_is_a_subscription_price_with_its_rule(emu: Emulator) -> None:
    year = price(emu, PriceUnit="Year", Period=1)["PriceInfo"]
    assert year["Price"]["DiscountPrice"] > 0
    assert year["Price"]["TradePrice"] == pytest.approx(
        year["Price"]["OriginalPrice"] - year["Price"]["DiscountPrice"])
    assert [rule["RuleId"] for rule in year["Rules"]["Rule"]] == [587]
    assert price(emu)["PriceInfo"]["Rules"]["Rule"] == []


def test_refusals_carry_the_codes_the_reference_documents(emu: Emulator) -> None:
    assert refusal(emu, InstanceType="ecs.madeup.huge") == (
        400, "InvalidInstanceType.ValueNotSupported")
    assert refusal(emu, InstanceType=None) == (404, "InvalidInstanceType.Missing")
    assert refusal(emu, ImageId="no_such_image.vhd") == (404, "InvalidImageId.NotFound")
    assert refusal(emu, ImageId=ALINUX, SystemDiskSize=30) == (
        400, "InvalidSystemDiskSize.LessThanImageSize")
    assert refusal(emu, SystemDiskSize=5000) == (400, "InvalidSystemDiskSize.ValueNotSupported")
    assert refusal(emu, SystemDiskCategory="cloud_floppy") == (
        400, "InvalidSystemDiskCategory.ValueNotSupported")
    assert refusal(emu, InternetMaxBandwidthOut=101) == (
        400, "InvalidInternetMaxBandwidthOut.ValueNotSupported")
    assert refusal(emu, InternetChargeType="PayByMood") == (
        400, "InvalidInternetChargeType.ValueNotSupported")
    assert refusal(emu, PriceUnit="Decade") == (400, "InvalidPriceUnit.ValueNotSupported")
    assert refusal(emu, PriceUnit="Hour", Period=2) == (400, "InvalidPeriod")
    assert refusal(emu, PriceUnit="Month", Period=10) == (400, "InvalidPeriod")
    assert refusal(emu, Amount=1001) == (403, "InvalidAmount.Malformed")
    assert refusal(emu, ResourceType="nonsense") == (400, "InvalidResourceType.ValueNotSupported")
    assert refusal(emu, ZoneId="cn-nowhere-z") == (404, "InvalidZoneId.NotFound")


def test_a_type_the_zone_no_longer_sells_is_offline_there_a_sold_out_one_is_still_priced(
        emu: Emulator) -> None:
    zone = emu.vswitch["zone_id"]
    try:
        emu.control.set_ecs_stock(zone, "ecs.c7.large", "WithoutStock")
        assert price(emu, InstanceType="ecs.c7.large", ZoneId=zone)[
            "PriceInfo"]["Price"]["TradePrice"] > 0
        emu.control.set_ecs_stock(zone, "ecs.c7.large", "ClosedWithoutStock")
        assert refusal(emu, InstanceType="ecs.c7.large", ZoneId=zone) == (
            403, "InstanceType.Offline")
        # Without a zone, the region's list price.
        assert price(emu, InstanceType="ecs.c7.large")["PriceInfo"]["Price"]["TradePrice"] > 0
    finally:
        emu.control.set_ecs_stock(zone, "ecs.c7.large", "WithStock")
