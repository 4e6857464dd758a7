"""RDS DescribePrice (API 2014-08-15): what a pay-as-you-go MySQL instance costs per hour.

A module of its own, not a part of rds.py, so the price call can change without touching the
provisioning calls (which other work edits); `AliyunCloud` mixes both in.
"""

from __future__ import annotations

from aliyunsdkrds.request.v20140815.DescribePriceRequest import DescribePriceRequest

from clusters.adapters.aliyun.client import AliyunClient
from clusters.adapters.aliyun.models import HourlyPrice
from clusters.core.errors import PermanentError

# CommodityCode of a pay-as-you-go primary instance on the China site ("bards"; the
# international site's is "bards_intl"): alibabacloud-rds20140815 DescribePriceRequest.
PAY_AS_YOU_GO_COMMODITY = "bards"


class RdsPriceApi:
    client: AliyunClient

    def describe_rds_price(self, *, engine_version: str, instance_class: str, storage_gb: int,
                           zone_id: str = "", storage_type: str = "",
                           commodity_code: str = PAY_AS_YOU_GO_COMMODITY,
                           engine: str = "MySQL") -> HourlyPrice:
        """RDS DescribePrice for one pay-as-you-go `engine` instance: its price per hour.

        Why hourly: a pay-as-you-go instance is billed by the hour and DescribePrice quotes one
        unit of it (UsedTime 1, Quantity 1); TimeType applies only to subscription codes (V2
        model DescribePriceRequest). The answer's PriceInfo carries TradePrice (after
        discounts), OriginalPrice and Currency (V2 DescribePriceResponseBodyPriceInfo).
        """
        request = DescribePriceRequest()
        request.set_CommodityCode(commodity_code)
        request.set_Engine(engine)
        request.set_EngineVersion(engine_version)
        request.set_DBInstanceClass(instance_class)
        request.set_DBInstanceStorage(int(storage_gb))
        request.set_PayType("Postpaid")
        request.set_UsedTime(1)
        request.set_Quantity(1)
        request.set_OrderType("BUY")
        request.set_InstanceUsedType(0)
        if zone_id:
            request.set_ZoneId(zone_id)
        if storage_type:
            request.set_DBInstanceStorageType(storage_type)
        body = self.client.call(request)
        info = body.get("PriceInfo") or {}
        request_id = str(body.get("RequestId", ""))
        if info.get("TradePrice") is None:
            raise PermanentError("Rds DescribePrice answered without PriceInfo.TradePrice.",
                                 request_id=request_id)
        original = info.get("OriginalPrice")
        return HourlyPrice(float(info["TradePrice"]), str(info.get("Currency") or ""),
                           float(original) if original is not None else None, request_id)
