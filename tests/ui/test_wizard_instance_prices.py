"""The review page lists every ECS instance the panel will buy with its price (ECS DescribePrice
against the emulator, through the official SDK), says why when a price is unknown (Alibaba's
code and RequestId, never a zero), and checks a saved order again: an order made for another
zone or vSwitch, or a type the zone no longer sells, sends the person back to the hosts page
instead of failing in the create run."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import WizardState
from clusters.models import Cluster
from sandbox.aliyun.testing import Emulator
from tests.ui.test_wizard import monthly_prices, total_of
from tests.ui.test_wizard_instances import HOSTS, order_post, wizard_at_hosts

REVIEW = reverse("clusters:wizard-step", args=["review"])
IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("instance-prices")) as emu:
        yield emu


@pytest.fixture
def at_review(world: Emulator, settings: Any, user: Any, owner_client: Client) -> Client:
    """A wizard whose hosts are an order of 2 servers and 1 agent with a 5 Mbit/s public
    address, at the review page."""
    world.control.clear_faults()
    client = wizard_at_hosts(world, settings, user, owner_client)
    saved = client.post(HOSTS, order_post(public_bandwidth_mbps=5))
    assert saved.status_code == 302, saved.content.decode()[:2000]
    session = client.session
    WizardState(session).put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                                      "install_source": "official"})
    session.save()
    return client


def instance_rows(page: str) -> list[str]:
    return re.findall(r'<tr class="price-line[a-z -]*billed-instance">(.*?)</tr>', page, re.S)


def expected_hourly(world: Emulator) -> float:
    """One ecs.g7.large with a 40 GiB ESSD (PL1) system disk, PayByTraffic bandwidth (nothing
    by the hour), from the emulator's own table."""
    table = world.control.request("GET", "ecs/prices")
    return round(table["instance_hourly"]["ecs.g7.large"]
                 + table["disk_gib_hourly"]["cloud_essd:PL1"] * 40, 4)


def test_the_review_lists_every_instance_with_its_hourly_and_monthly_price(
        at_review: Client, world: Emulator) -> None:
    world.control.clear_calls()
    review = html.unescape(at_review.get(REVIEW).content.decode())
    rows = instance_rows(review)
    assert [re.search(r"<strong>(.*?)</strong>", row).group(1) for row in rows] == [  # type: ignore[union-attr]
        "ECS instance s1 (Server, pay-as-you-go)", "ECS instance s2 (Server, pay-as-you-go)",
        "ECS instance a1 (Agent, pay-as-you-go)"]
    hourly = expected_hourly(world)
    monthly = f"{hourly * 730:.2f}"
    for row in rows:
        assert f'data-monthly="{monthly}"' in row and f"{monthly} CNY" in row
        assert f"{hourly:g} CNY per hour" in row
        assert "plus the Internet data out, billed by usage" in row
    # The CLB's line first, then one line per instance; the total adds them all.
    prices = monthly_prices(review)
    assert prices[1:] == [monthly] * 3
    assert total_of(review) == f"{float(prices[0]) + 3 * float(monthly):.2f} CNY"
    assert "Each of the 3 ECS instances is billed from its creation" in review
    # One DescribePrice for the order's configuration, as RunInstances will be sent.
    (asked,) = [c for c in world.control.calls()
                if c["action"] == "DescribePrice" and c["product"] == "Ecs"]
    params = asked["params"]
    assert (params["InstanceType"], params["ImageId"], params["ZoneId"]) == (
        "ecs.g7.large", IMAGE, world.vswitch["zone_id"])
    assert (params["SystemDisk.Category"], params["SystemDisk.Size"]) == ("cloud_essd", "40")
    assert (params["InternetChargeType"], params["InternetMaxBandwidthOut"]) == (
        "PayByTraffic", "5")
    assert (params["PriceUnit"], params["Period"], params["Amount"]) == ("Hour", "1", "1")
    zh = html.unescape(at_review.get(REVIEW, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
                       .content.decode())
    assert "这 3 台 ECS 实例均从创建起计费" in zh and "另加公网出流量费用" in zh


def test_an_unknown_instance_price_says_why_with_code_and_request_id_never_zero(
        at_review: Client, world: Emulator, user: Any) -> None:
    world.control.add_fault(action="DescribePrice", product="Ecs", code="ServiceUnavailable",
                            count=1)
    try:
        review = html.unescape(at_review.get(REVIEW).content.decode())
    finally:
        world.control.clear_faults()
    (failed,) = [c for c in world.control.calls()
                 if c["action"] == "DescribePrice" and c["product"] == "Ecs"][-1:]
    assert failed["code"] == "ServiceUnavailable"
    rows = instance_rows(review)
    assert len(rows) == 3
    for row in rows:
        assert "price-missing" in row and "Unknown" in row
        assert "code ServiceUnavailable" in row and f"RequestId {failed['request_id']}" in row
    assert "0.00 CNY" not in review
    assert len(monthly_prices(review)) == 1  # the CLB's only
    assert "(without the items whose price is unknown)" in review
    # An unknown price does not stop Create.
    created = at_review.post(REVIEW, {"billing_ack": "on"})
    cluster = Cluster.objects.get(owner=user, name="picked")
    assert created["Location"] == reverse("clusters:cluster", args=[cluster.code])


def test_an_order_made_for_another_zone_sends_the_review_back_to_the_hosts_page(
        at_review: Client, world: Emulator) -> None:
    session = at_review.session
    state = WizardState(session)
    other = world.vpc["vswitches"][1]
    # The network page changed after the order was saved (it keeps the hosts' answers).
    state.put("network", {**state.get("network"), "zone": other["zone_id"],
                          "vswitch": other["vswitch_id"], "vswitch_cidr": other["cidr"]})
    session.save()
    response = at_review.get(REVIEW)
    assert response.status_code == 302 and response["Location"] == HOSTS
    page = html.unescape(at_review.get(HOSTS).content.decode())
    assert (f"The instances were ordered for zone {world.vswitch['zone_id']}, vSwitch "
            f"{world.vswitch['vswitch_id']}, but the network page now says zone "
            f"{other['zone_id']}, vSwitch {other['vswitch_id']}") in page
    assert at_review.post(REVIEW, {"billing_ack": "on"})["Location"] == HOSTS
    assert not Cluster.objects.exists()
    # Saving the order again for the new zone lets the review through.
    assert at_review.post(HOSTS, order_post(public_bandwidth_mbps=5)).status_code == 302
    assert at_review.get(REVIEW).status_code == 200


def test_a_type_the_zone_no_longer_sells_sends_the_review_back_to_choose_another(
        at_review: Client, world: Emulator) -> None:
    zone = world.vswitch["zone_id"]
    world.control.set_ecs_stock(zone, "ecs.g7.large", "WithoutStock")
    try:
        response = at_review.get(REVIEW)
        assert response.status_code == 302 and response["Location"] == HOSTS
        page = html.unescape(at_review.get(HOSTS).content.decode())
        assert (f"Zone {zone} no longer sells ecs.g7.large (DescribeAvailableResource: "
                "WithoutStock): choose another instance type below.") in page
        assert at_review.post(REVIEW, {"billing_ack": "on"})["Location"] == HOSTS
        assert not Cluster.objects.exists()
    finally:
        world.control.set_ecs_stock(zone, "ecs.g7.large", "WithStock")
    assert at_review.get(REVIEW).status_code == 200
