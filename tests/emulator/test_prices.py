"""Prices: RDS DescribePrice and BSS GetPayAsYouGoPrice from the seeded price list, through
the official SDK (aliyunsdkrds's DescribePriceRequest; aliyunsdkcore's CommonRequest for BSS,
which has no legacy SDK package installed)."""

from __future__ import annotations

from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest
from aliyunsdkrds.request.v20140815.DescribePriceRequest import DescribePriceRequest

from sandbox.aliyun.testing import Emulator
from tests.emulator.shapes import assert_shape
from tests.support.emulator_calls import call


def rds_price(emu: Emulator, **setters: Any) -> dict[str, Any]:
    values = {"Engine": "MySQL", "EngineVersion": "8.0", "DBInstanceClass": "mysql.n2.medium.1",
              "DBInstanceStorage": 20, "Quantity": 1, "CommodityCode": "bards",
              "PayType": "Postpaid", **setters}
    return call(emu, DescribePriceRequest(), **values)


def bss_price(emu: Emulator, product: str, *modules: tuple[str, str, str]) -> dict[str, Any]:
    # business.aliyuncs.com in the real cloud; the emulator's address here.
    request = CommonRequest(domain=emu.endpoint, version="2017-12-14",
                            action_name="GetPayAsYouGoPrice", product="BssOpenApi")
    request.set_protocol_type("http")
    request.set_method("POST")
    request.set_accept_format("json")
    request.add_query_param("ProductCode", product)
    request.add_query_param("SubscriptionType", "PayAsYouGo")
    request.add_query_param("Region", emu.region_id)
    for index, (code, config, price_type) in enumerate(modules, start=1):
        request.add_query_param(f"ModuleList.{index}.ModuleCode", code)
        request.add_query_param(f"ModuleList.{index}.Config", config)
        request.add_query_param(f"ModuleList.{index}.PriceType", price_type)
    return emu.call(request)


def refusal(action: Any) -> tuple[int, str]:
    with pytest.raises(ServerException) as caught:
        action()
    return caught.value.get_http_status(), caught.value.get_error_code()


def test_rds_price_is_the_seeded_class_price_plus_storage(emu: Emulator) -> None:
    listed = emu.control.request("GET", "prices")["rds"]
    body = rds_price(emu, DBInstanceStorage=50)
    assert_shape(body, {"RequestId": str, "PriceInfo.Currency": str,
                        "PriceInfo.TradePrice": float, "PriceInfo.OriginalPrice": float,
                        "PriceInfo.DiscountPrice": float})
    expected = round(listed["classes"]["mysql.n2.medium.1"]
                     + listed["storage_per_gb"]["cloud_essd"] * 50, 4)
    assert (body["PriceInfo"]["TradePrice"], body["PriceInfo"]["Currency"]) == (expected, "CNY")
    bigger = rds_price(emu, DBInstanceStorage=50, DBInstanceClass="mysql.n4.medium.1")
    assert bigger["PriceInfo"]["TradePrice"] > expected
    # A subscription code is quoted for its period and needs TimeType.
    month = rds_price(emu, DBInstanceStorage=50, CommodityCode="rds", PayType="Prepaid",
                      TimeType="Month", UsedTime=1)
    assert month["PriceInfo"]["TradePrice"] == pytest.approx(expected * 730)
    assert refusal(lambda: rds_price(emu, CommodityCode="rds", PayType="Prepaid")) == (
        400, "MissingTimeType")


def test_rds_price_of_an_unknown_class_is_refused_as_rds_does(emu: Emulator) -> None:
    assert refusal(lambda: rds_price(emu, DBInstanceClass="mysql.madeup.colossal.99")) == (
        404, "InvalidDBInstanceClass.NotFound")
    assert refusal(lambda: call(emu, DescribePriceRequest(), Engine="MySQL",
                                EngineVersion="8.0", DBInstanceClass="mysql.n2.medium.1",
                                DBInstanceStorage=20))[1] == "MissingQuantity"


def test_bss_price_of_a_pay_by_lcu_clb(emu: Emulator) -> None:
    listed = emu.control.request("GET", "prices")["bss"]["slb"]
    body = bss_price(emu, "slb", ("InstanceRent", "InstanceRent:1", "Hour"),
                     ("InternetTrafficOut", "InternetTrafficOut:1", "Usage"))
    assert_shape(body, {"RequestId": str, "Success": bool, "Code": str, "Data.Currency": str,
                        "Data.ModuleDetails.ModuleDetail[].ModuleCode": str,
                        "Data.ModuleDetails.ModuleDetail[].CostAfterDiscount": float,
                        "Data.ModuleDetails.ModuleDetail[].OriginalCost": float,
                        "Data.ModuleDetails.ModuleDetail[].UnitPrice": float})
    details = {d["ModuleCode"]: d["CostAfterDiscount"]
               for d in body["Data"]["ModuleDetails"]["ModuleDetail"]}
    assert details == {"InstanceRent": listed["InstanceRent"]["1"][0],
                       "InternetTrafficOut": listed["InternetTrafficOut"]["1"][0]}
    assert body["Success"] is True and body["Data"]["Currency"] == "CNY"


def test_bss_refuses_what_is_not_on_the_price_list(emu: Emulator) -> None:
    instance = ("InstanceRent", "InstanceRent:1", "Hour")
    assert refusal(lambda: bss_price(emu, "nosuchproduct", instance)) == (
        400, "InvalidParameter")
    assert refusal(lambda: bss_price(emu, "slb", ("Lcu", "Lcu:1", "Usage")))[1] == (
        "InvalidParameter")
    assert refusal(lambda: bss_price(emu, "slb", ("LoadBalancerSpec",
                                                  "LoadBalancerSpec:slb.huge", "Hour")))[1] == (
        "InvalidParameter")
    assert refusal(lambda: bss_price(emu, "slb"))[1] == "MissingParameter"


def test_a_class_put_on_sale_has_a_price_and_one_taken_off_sale_has_none(emu: Emulator) -> None:
    """One list for what is sold and what it costs: DescribePrice follows the catalogue."""
    zone = emu.vswitch["zone_id"]
    emu.control.set_rds_classes(emu.region_id, zone, "8.0", [
        {"class": "mysql.n8.huge.2c", "cpu": 16, "memory_gb": 64, "hourly_cny": 9.5}])
    try:
        assert emu.control.request("GET", "prices")["rds"]["classes"]["mysql.n8.huge.2c"] == 9.5
        body = rds_price(emu, DBInstanceClass="mysql.n8.huge.2c", DBInstanceStorage=100)
        assert body["PriceInfo"]["TradePrice"] == round(9.5 + 0.0014 * 100, 4)
    finally:
        emu.control.set_rds_classes(emu.region_id, zone, "8.0", None)
    assert refusal(lambda: rds_price(emu, DBInstanceClass="mysql.n8.huge.2c")) == (
        404, "InvalidDBInstanceClass.NotFound")
