"""RDS 2014-08-15 DescribePrice: pay-as-you-go MySQL prices from a seeded price list.

The request follows the V2 model alibabacloud-rds20140815 DescribePriceRequest (Engine,
EngineVersion, DBInstanceClass, DBInstanceStorage and Quantity required; CommodityCode,
PayType, UsedTime/TimeType, ZoneId, DBInstanceStorageType, OrderType optional) and the answer
its DescribePriceResponseBody (PriceInfo.{Currency, OriginalPrice, DiscountPrice, TradePrice}).

The seeded list (CNY per hour, China site, the same in every region) is plausible, of our
choosing, not Alibaba's quote: a class price plus storage by the GB. A pay-as-you-go code
(bards, bards_intl, rords…) is quoted per hour; a subscription code needs TimeType and is
quoted for UsedTime of them (730 hours a month, 8760 a year). An unknown class answers 404
`InvalidDBInstanceClass.NotFound` "Specified DB instance class is not found." (the code RDS
documents for a class that does not exist or is discontinued).
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds.catalogue import class_prices
from sandbox.aliyun.rds.product import PRODUCT

CURRENCY = "CNY"
STORAGE_PRICES = {  # CNY per GB and hour, by DBInstanceStorageType
    "cloud_essd": 0.0014, "general_essd": 0.0014, "cloud_essd2": 0.0027,
    "cloud_essd3": 0.0055, "cloud_ssd": 0.0011, "local_ssd": 0.0011,
}
DEFAULT_STORAGE_TYPE = "cloud_essd"
PAY_AS_YOU_GO_CODES = ("bards", "bards_intl", "rords", "rords_intl")
SUBSCRIPTION_CODES = ("rds", "rds_intl", "rds_rordspre_public_cn", "rds_rordspre_public_intl")
HOURS = {"Month": 730, "Year": 8760}

CLASS_NOT_FOUND = errors.ApiError(404, "InvalidDBInstanceClass.NotFound",
                                  "Specified DB instance class is not found.")


def price_list(state: State) -> dict[str, Any]:
    return {"currency": CURRENCY, "classes": class_prices(state),
            "storage_per_gb": STORAGE_PRICES, "default_storage_type": DEFAULT_STORAGE_TYPE}


def hourly_price(state: State, instance_class: str, storage_gb: int,
                 storage_type: str | None) -> float:
    """The class's hourly price (from the RDS catalogue, one list for sale and price) plus
    storage by the GB."""
    prices = class_prices(state)
    if instance_class not in prices:
        raise CLASS_NOT_FOUND
    per_gb = STORAGE_PRICES.get(storage_type or DEFAULT_STORAGE_TYPE)
    if per_gb is None:
        raise errors.invalid_parameter("DBInstanceStorageType")
    return round(prices[instance_class] + per_gb * storage_gb, 4)


@PRODUCT.action("DescribePrice", (
    Param("RegionId"), Param("Engine", required=True,
                             enum=("MySQL", "SQLServer", "PostgreSQL", "MariaDB")),
    Param("EngineVersion", required=True), Param("DBInstanceClass", required=True),
    Param("DBInstanceStorage", "integer", required=True, minimum=5, maximum=64000),
    Param("Quantity", "integer", required=True, minimum=0, maximum=30),
    Param("CommodityCode", enum=PAY_AS_YOU_GO_CODES + SUBSCRIPTION_CODES, default="rds"),
    Param("PayType", enum=("Prepaid", "Postpaid")), Param("ZoneId"),
    Param("DBInstanceStorageType", enum=tuple(STORAGE_PRICES)),
    Param("UsedTime", "integer", minimum=1, default=1), Param("TimeType", enum=tuple(HOURS)),
    Param("OrderType", enum=("BUY", "RENEW", "UPGRADE", "DOWNGRADE"), default="BUY"),
    Param("InstanceUsedType", "integer", enum=("0", "3")), Param("DBInstanceId"),
    Param("ClientToken"),
))
def describe_price(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    code = params["CommodityCode"]
    if code in SUBSCRIPTION_CODES and not params["TimeType"]:
        raise errors.missing_named("TimeType")
    hourly = hourly_price(state, params["DBInstanceClass"], params["DBInstanceStorage"],
                          params["DBInstanceStorageType"])
    units = 1 if code in PAY_AS_YOU_GO_CODES else HOURS[params["TimeType"]] * params["UsedTime"]
    amount = round(hourly * units * params["Quantity"], 4)
    return {
        "PriceInfo": {
            "Currency": CURRENCY, "OriginalPrice": amount, "DiscountPrice": 0.0,
            "TradePrice": amount, "RuleIds": {"RuleId": []}, "Coupons": {"Coupon": []},
            "ActivityInfo": {"CheckErrMsg": "", "ErrorCode": "", "Success": "true"},
        },
        "Rules": {"Rule": []}, "ShowDiscount": False,
    }
