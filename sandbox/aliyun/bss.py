"""BSS OpenAPI 2017-12-14, GetPayAsYouGoPrice only: list prices from a seeded price list.

Why: the panel shows what a cluster will cost before anything is bought; CLB has no price call
of its own, Alibaba documents BSS GetPayAsYouGoPrice for it ("SLB PayAsYouGo", help
doc-detail/91488: ProductCode slb, ModuleList.N.ModuleCode/Config/PriceType). The answer's
shape follows the V2 model alibabacloud-bssopenapi20171214 GetPayAsYouGoPriceResponseBody.

The seeded list (CNY, China site, the same in every region) is plausible, not a quote:
- InstanceRent 0.147 CNY/hour: the CLB instance fee, "实例单价为 0.147元/小时" (help
  "按量付费", pay-as-you-go-billing-for-clb, 2026). Using the documented module code
  InstanceRent for today's instance fee is an inference: the BSS page predates the
  December 2024 renaming of the old instance fee to the public IP retention fee.
- InternetTrafficOut 0.8 CNY/GB (Usage) and the legacy LoadBalancerSpec hourly prices are
  plausible values of our choosing, not published ones.
Refusals (chosen, BSS documents none for these cases): an unknown ProductCode, module code or
Config value answers 400 `InvalidParameter` naming what was not found.
"""

from __future__ import annotations

import sys
from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import Product, control_route, register_product
from sandbox.aliyun.gateway.state import State

BSS = register_product(Product("BssOpenApi", "2017-12-14", "business.aliyuncs.com",
                                   ram_namespace="bssapi"))

CURRENCY = "CNY"
# {product: {module code: {config value: (price per unit, unit)}}}; "*" = any value.
PRICE_LIST: dict[str, dict[str, dict[str, tuple[float, str]]]] = {
    "slb": {
        "InstanceRent": {"1": (0.147, "Hour")},
        "InternetTrafficOut": {"1": (0.8, "Usage")},
        "LoadBalancerSpec": {
            "slb.s1.small": (0.1, "Hour"), "slb.s2.small": (0.4, "Hour"),
            "slb.s2.medium": (0.8, "Hour"), "slb.s3.small": (1.2, "Hour"),
            "slb.s3.medium": (2.0, "Hour"), "slb.s3.large": (3.2, "Hour"),
        },
    },
}


def _invalid(what: str) -> errors.ApiError:
    return errors.ApiError(400, "InvalidParameter", f"The specified {what} is not valid.")


def price_of(product: str, code: str, config: str) -> float:
    """The seeded price of one module configured as `config` ("Code:value[,Other:value]")."""
    modules = PRICE_LIST.get(product)
    if modules is None:
        raise _invalid("ProductCode")
    values = modules.get(code)
    if values is None:
        raise _invalid(f"ModuleCode {code}")
    pairs = dict(part.split(":", 1) for part in config.split(",") if ":" in part)
    value = pairs.get(code)
    if value not in values:
        raise _invalid(f"Config {config}")
    return values[value][0]


@BSS.action("GetPayAsYouGoPrice", (
    Param("ProductCode", required=True), Param("SubscriptionType", required=True,
                                               enum=("PayAsYouGo",)),
    Param("Region"), Param("ProductType"), Param("OwnerId", "integer"),
))
def get_pay_as_you_go_price(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    modules = params.repeat_list("ModuleList", ("ModuleCode", "Config", "PriceType"))
    if not modules:
        raise errors.missing_parameter("ModuleList")
    details = []
    for module in modules:
        if not module.get("ModuleCode") or not module.get("Config"):
            raise errors.missing_parameter("ModuleList.N.ModuleCode")
        price = price_of(params["ProductCode"], module["ModuleCode"], module["Config"])
        details.append({"ModuleCode": module["ModuleCode"], "OriginalCost": price,
                        "CostAfterDiscount": price, "InvoiceDiscount": 0.0, "UnitPrice": price})
    return {
        "Code": "Success", "Message": "Successful!", "Success": True,
        "Data": {"Currency": CURRENCY, "ModuleDetails": {"ModuleDetail": details},
                 "PromotionDetails": {"PromotionDetail": []}},
    }


@control_route("GET", "prices")
def seeded_prices(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """The seeded price lists (BSS and RDS DescribePrice), so tests can compare with them."""
    rds_price = sys.modules.get("sandbox.aliyun.rds.price")  # absent when RDS is not loaded
    return 200, {"currency": CURRENCY, "bss": PRICE_LIST,
                 "rds": rds_price.price_list(cloud.state) if rds_price else None}
