"""ECS DescribePrice (API 2014-05-26): what one pay-as-you-go instance of an order costs per hour.

A module of its own, beside ecs_buy.py (which spends money), so the price call changes without
touching the buying calls; `AliyunCloud` mixes it in. Parameter names and the answer's shape
follow the V2 models of alibabacloud_ecs20140526 (DescribePriceRequest:
ResourceType=instance with InstanceType, ImageId, SystemDisk.Category/Size,
InternetChargeType/InternetMaxBandwidthOut, PriceUnit Hour with Period 1, Amount, ZoneId;
DescribePriceResponseBody: PriceInfo.Price.{TradePrice, OriginalPrice, Currency}).
"""

from __future__ import annotations

from aliyunsdkecs.request.v20140526.DescribePriceRequest import DescribePriceRequest

from clusters.adapters.aliyun.client import AliyunClient
from clusters.adapters.aliyun.models import HourlyPrice
from clusters.core.errors import PermanentError

# What RunInstances is sent for a public address (ecs_buy.run_instances): the quote must
# price the same bandwidth billing, or it prices another instance.
PUBLIC_BANDWIDTH_CHARGE = "PayByTraffic"


class EcsPriceApi:
    client: AliyunClient

    def describe_instance_price(self, *, instance_type: str, image_id: str, zone_id: str,
                                system_disk_category: str, system_disk_gb: int,
                                public_bandwidth_mbps: int = 0) -> HourlyPrice:
        """DescribePrice of one pay-as-you-go instance configured as the order's: its price
        per hour.

        Why one instance (Amount 1): the review lists every instance it will buy on a line of
        its own, each with its price. Why PriceUnit Hour: a pay-as-you-go instance is billed
        by the hour, and "Hour (default)" with Period 1 is its price (V2 docstrings); the
        panel counts a month as 730 of them, as for RDS and the CLB. Bandwidth is priced as
        RunInstances is sent (PayByTraffic when there is a public address): its hourly part
        is what the quote says, traffic is billed by usage.
        """
        request = DescribePriceRequest()
        request.set_ResourceType("instance")
        request.set_InstanceType(instance_type)
        if image_id:
            request.set_ImageId(image_id)
        if zone_id:
            request.set_ZoneId(zone_id)
        request.set_SystemDiskCategory(system_disk_category)
        request.set_SystemDiskSize(int(system_disk_gb))
        if public_bandwidth_mbps:
            request.set_InternetChargeType(PUBLIC_BANDWIDTH_CHARGE)
            request.set_InternetMaxBandwidthOut(int(public_bandwidth_mbps))
        request.set_PriceUnit("Hour")
        request.set_Period(1)
        request.set_Amount(1)
        body = self.client.call(request)
        request_id = str(body.get("RequestId", ""))
        price = (body.get("PriceInfo") or {}).get("Price") or {}
        if price.get("TradePrice") is None:
            raise PermanentError("Ecs DescribePrice answered without PriceInfo.Price.TradePrice.",
                                 request_id=request_id)
        original = price.get("OriginalPrice")
        return HourlyPrice(float(price["TradePrice"]), str(price.get("Currency") or ""),
                           float(original) if original is not None else None, request_id)
