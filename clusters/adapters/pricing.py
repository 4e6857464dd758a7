"""What a new cluster will cost per month at the pay-as-you-go rate, asked of the cloud.

Why a module: the review page shows the price before anything is bought, and the rules (which
items are billed, which price API answers for each, how an hour becomes a month, that a price
that could not be fetched is unknown and never zero) belong in one place that knows nothing
of HTTP. RDS quotes its own price (DescribePrice); CLB has no price call of its own, so its
list price comes from BSS GetPayAsYouGoPrice (help doc-detail/91488, "SLB PayAsYouGo"); each
ECS instance the panel buys is priced by ECS DescribePrice (type, image, system disk, public
bandwidth, zone), one line per instance so the review lists every instance that is billed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from django.utils.translation import gettext_lazy as _

from clusters.adapters.aliyun import HourlyPrice, PriceModule
from clusters.core.errors import StepError

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)

# A month is 730 hours (8760 / 12), the convention of Alibaba Cloud's price calculator.
HOURS_PER_MONTH = 730
SLB_PRODUCT_CODE = "slb"
# BSS module codes for a pay-by-LCU CLB (doc-detail/91488 lists InstanceRent and
# InternetTrafficOut for slb; LCU and data transfer are billed by usage and not included).
SLB_INSTANCE_FEE = PriceModule("InstanceRent", "InstanceRent:1", "Hour")
SLB_TRAFFIC_OUT = PriceModule("InternetTrafficOut", "InternetTrafficOut:1", "Usage")


class PriceApi(Protocol):
    def describe_rds_price(self, *, engine_version: str, instance_class: str,
                           storage_gb: int, zone_id: str = "",
                           engine: str = "MySQL") -> HourlyPrice: ...

    def get_pay_as_you_go_price(self, product_code: str,
                                modules: list[PriceModule]) -> dict[str, HourlyPrice]: ...

    def describe_instance_price(self, *, instance_type: str, image_id: str, zone_id: str,
                                system_disk_category: str, system_disk_gb: int,
                                public_bandwidth_mbps: int = 0) -> HourlyPrice: ...


@dataclass(frozen=True)
class PriceLine:
    """One billed item's price; `hourly` None means unknown, and `problem` says why."""

    what: Any
    hourly: float | None = None
    currency: str = ""
    problem: str = ""
    usage_note: Any = ""

    @property
    def known(self) -> bool:
        return self.hourly is not None

    @property
    def monthly(self) -> float | None:
        return None if self.hourly is None else round(self.hourly * HOURS_PER_MONTH, 2)


@dataclass(frozen=True)
class Quote:
    lines: tuple[PriceLine, ...]

    @property
    def complete(self) -> bool:
        return all(line.known for line in self.lines)

    @property
    def currency(self) -> str:
        return next((line.currency for line in self.lines if line.currency), "")

    @property
    def monthly_total(self) -> float | None:
        """Sum of the known lines; None when nothing is known (never a made-up zero)."""
        known = [line.monthly for line in self.lines if line.monthly is not None]
        return round(sum(known), 2) if known else None


def _unknown(what: Any, exc: StepError) -> PriceLine:
    return PriceLine(what, problem=str(exc))


def rds_price(api: PriceApi, *, engine_version: str, instance_class: str, storage_gb: int,
              zone_id: str, engine: str = "MySQL") -> PriceLine:
    what = _("RDS PostgreSQL instance") if engine == "PostgreSQL" else _("RDS MySQL instance")
    try:
        price = api.describe_rds_price(engine_version=engine_version,
                                       instance_class=instance_class, storage_gb=storage_gb,
                                       zone_id=zone_id, engine=engine)
    except StepError as exc:
        return _unknown(what, exc)
    return PriceLine(what, price.amount, price.currency)


def slb_price(api: PriceApi, *, internet: bool) -> PriceLine:
    """The pay-by-LCU CLB's fixed hourly part (instance fee); usage-billed parts are named."""
    what = _("CLB instance (pay-by-LCU)")
    modules = [SLB_INSTANCE_FEE, *([SLB_TRAFFIC_OUT] if internet else [])]
    try:
        prices = api.get_pay_as_you_go_price(SLB_PRODUCT_CODE, modules)
    except StepError as exc:
        return _unknown(what, exc)
    fee = prices.get(SLB_INSTANCE_FEE.code)
    if fee is None:
        return PriceLine(what, problem=str(_("the answer has no %(module)s price")
                                           % {"module": SLB_INSTANCE_FEE.code}))
    # Lazy, or formatted now: either renders in the page's language.
    note: StrOrPromise = _("plus the LCUs used, billed by usage")
    traffic = prices.get(SLB_TRAFFIC_OUT.code)
    if internet and traffic is not None:
        note = _("plus the LCUs used and %(price)s %(currency)s per GB of Internet data out, "
                 "billed by usage") % {"price": f"{traffic.amount:g}",
                                       "currency": traffic.currency}
    return PriceLine(what, fee.amount, fee.currency, usage_note=note)


def nlb_price() -> PriceLine:
    """An NLB is billed by usage: an hourly instance fee and NLCUs (Alibaba's NLB billing
    page). Its list price is not asked of BSS (no module codes for NLB are documented for
    GetPayAsYouGoPrice), so it shows as unknown with that reason, never as zero."""
    return PriceLine(_("NLB instance"), problem=str(_(
        "an NLB is billed per hour of instance and per NLCU used; see Alibaba Cloud's NLB "
        "pricing page for your region")))


def instance_prices(api: PriceApi, order: Mapping[str, Any], slots: Sequence[Any],
                    zone_id: str) -> list[PriceLine]:
    """One line per instance the order buys (`slots`: each line's `what`, in order), each with
    the price of one such instance. Every instance of an order is configured alike, so
    DescribePrice is asked once; when it fails, every instance's price is unknown with
    Alibaba's code and RequestId (never zero)."""
    if not slots:
        return []
    try:
        price = api.describe_instance_price(
            instance_type=str(order.get("instance_type", "")),
            image_id=str(order.get("image_id", "")), zone_id=zone_id,
            system_disk_category=str(order.get("system_disk_category") or "cloud_essd"),
            system_disk_gb=int(order.get("system_disk_gb") or 40),
            public_bandwidth_mbps=int(order.get("public_bandwidth_mbps") or 0))
    except StepError as exc:
        return [_unknown(what, exc) for what in slots]
    note: StrOrPromise = (_("plus the Internet data out, billed by usage")
                          if int(order.get("public_bandwidth_mbps") or 0) else "")
    return [PriceLine(what, price.amount, price.currency, usage_note=note) for what in slots]


def quote_new_cluster(api: PriceApi, *, rds: dict[str, Any] | None, zone_id: str,
                      internet_slb: bool, nlb: bool = False,
                      order: Mapping[str, Any] | None = None,
                      instances: Sequence[Any] = ()) -> Quote:
    """Every billed item of a new cluster: the RDS instance (unless bring-your-own), the CLB
    or NLB, then each ECS instance of the order (`instances`: one `what` per instance)."""
    lines = []
    if rds is not None:
        lines.append(rds_price(api, engine_version=str(rds["engine_version"]),
                               instance_class=str(rds["instance_class"]),
                               storage_gb=int(rds["storage_gb"]), zone_id=zone_id,
                               engine=str(rds.get("engine", "MySQL"))))
    lines.append(nlb_price() if nlb else slb_price(api, internet=internet_slb))
    if order:
        lines += instance_prices(api, order, instances, zone_id)
    return Quote(tuple(lines))
