"""BSS OpenAPI (BssOpenApi 2017-12-14) GetPayAsYouGoPrice: list prices of products that have
no price call of their own, such as CLB.

Sent with aliyunsdkcore's CommonRequest (the legacy aliyun-python-sdk-bssopenapi package is
not a dependency). The request and answer follow the V2 models of
alibabacloud-bssopenapi20171214: ProductCode, SubscriptionType=PayAsYouGo, Region,
ModuleList.N.{ModuleCode,Config,PriceType}; Data.Currency and
Data.ModuleDetails.ModuleDetail[].{ModuleCode,OriginalCost,CostAfterDiscount,UnitPrice}.
"""

from __future__ import annotations

from collections.abc import Sequence

from aliyunsdkcore.request import CommonRequest

from clusters.adapters.aliyun.client import AliyunClient
from clusters.adapters.aliyun.models import HourlyPrice, PriceModule, items
from clusters.core.errors import PermanentError

BSS_PRODUCT = "BssOpenApi"
BSS_VERSION = "2017-12-14"


def bss_endpoint(region: str) -> str:
    """BSS is not regional: business.aliyuncs.com serves the China site, the international
    site's regions go to business.ap-southeast-1.aliyuncs.com (the V2 client's endpoint map)."""
    return "business.aliyuncs.com" if region.startswith("cn-") else (
        "business.ap-southeast-1.aliyuncs.com")


class BssApi:
    client: AliyunClient

    def get_pay_as_you_go_price(self, product_code: str,
                                modules: Sequence[PriceModule]) -> dict[str, HourlyPrice]:
        """GetPayAsYouGoPrice: {module code: its price} for one configuration of a product."""
        if not modules:
            raise PermanentError("GetPayAsYouGoPrice needs at least one pricing module.")
        request = CommonRequest(domain=bss_endpoint(self.client.region), version=BSS_VERSION,
                                action_name="GetPayAsYouGoPrice", product=BSS_PRODUCT)
        request.set_method("POST")
        request.set_accept_format("json")
        request.add_query_param("ProductCode", product_code)
        request.add_query_param("SubscriptionType", "PayAsYouGo")
        request.add_query_param("Region", self.client.region)
        for index, module in enumerate(modules, start=1):
            request.add_query_param(f"ModuleList.{index}.ModuleCode", module.code)
            request.add_query_param(f"ModuleList.{index}.Config", module.config)
            request.add_query_param(f"ModuleList.{index}.PriceType", module.price_type)
        body = self.client.call(request)
        request_id = str(body.get("RequestId", ""))
        if body.get("Success") is False:  # BSS may answer HTTP 200 with Success=false
            raise PermanentError(
                f"BssOpenApi GetPayAsYouGoPrice failed: {body.get('Message') or 'no message'}",
                code=str(body.get("Code", "")), request_id=request_id)
        data = body.get("Data") or {}
        currency = str(data.get("Currency") or "")
        prices = {}
        for detail in items(data, "ModuleDetails", "ModuleDetail"):
            cost = detail.get("CostAfterDiscount", detail.get("OriginalCost"))
            if cost is None:
                continue
            original = detail.get("OriginalCost")
            prices[str(detail.get("ModuleCode", ""))] = HourlyPrice(
                float(cost), currency, float(original) if original is not None else None,
                request_id)
        return prices
