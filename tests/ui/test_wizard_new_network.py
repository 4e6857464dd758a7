"""The wizard's "create a VPC and vSwitch for this cluster": the blocks are checked as
Alibaba Cloud checks them (V2 model alibabacloud_vpc20160428, clusters/core/network_blocks.py)
before anything is sent, an NLB gets a second vSwitch the panel creates in a second zone, the
hosts are then the instances the panel buys, the review says what is created, and the create and
destroy plans carry the network steps."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.core.network_blocks import BlockError, check
from clusters.interface.wizard import WizardState, build_cluster
from clusters.operations.create import create_plan
from sandbox.aliyun.testing import Emulator
from tests.ui.test_wizard import field_errors

pytestmark = pytest.mark.django_db

ORDER = {"servers": 2, "agents": 1, "image_id": "ubuntu_22_04_x64_20G_alibase_20240101.vhd",
         "instance_type": "ecs.g7.large", "system_disk_category": "cloud_essd",
         "system_disk_gb": 40, "public_bandwidth_mbps": 0, "key_pair": ""}


def step_url(step: str) -> str:
    return reverse("clusters:wizard-step", args=[step])


def answer(cloud: Emulator, **extra: str) -> dict[str, str]:
    return {"zone": cloud.vswitch["zone_id"], "create_network": "on",
            "new_vpc_cidr": "10.40.0.0/16", "new_vswitch_cidr": "10.40.1.0/24",
            "slb_address_type": "intranet", "load_balancer_kind": "clb", **extra}


def test_the_page_offers_to_create_the_network(at_datastore: Client, cloud: Emulator) -> None:
    page = at_datastore.get(step_url("network")).content.decode()
    for name in ("create_network", "new_vpc_cidr", "new_vswitch_cidr"):
        assert f'name="{name}"' in page
    assert "Create a VPC and vSwitch for this cluster" in page


@pytest.mark.parametrize(("extra", "field", "says"), [
    ({"new_vpc_cidr": "10.0.0.0/8"}, "new_vpc_cidr", "mask of 16 to 28 bits"),
    ({"new_vpc_cidr": "100.64.0.0/16", "new_vswitch_cidr": "100.64.1.0/24"}, "new_vpc_cidr",
     "reserves"),
    ({"new_vswitch_cidr": "10.41.0.0/24"}, "new_vswitch_cidr",
     "is not inside the VPC's block 10.40.0.0/16"),
    ({"new_vswitch_cidr": "10.40.1.1/24"}, "new_vswitch_cidr", "host bits clear"),
    ({"load_balancer_kind": "nlb"}, "nlb_zone2", "the panel creates the NLB's second vSwitch"),
    ({"load_balancer_kind": "nlb", "nlb_zone2": "SECOND", "new_vswitch2_cidr": "10.40.1.128/25"},
     "new_vswitch2_cidr", "overlaps the first vSwitch's 10.40.1.0/24"),
    ({"load_balancer_kind": "nlb", "nlb_zone2": "SECOND", "new_vswitch2_cidr": "10.41.2.0/24"},
     "new_vswitch2_cidr", "is not inside the VPC's block 10.40.0.0/16"),
])
def test_a_block_alibaba_would_refuse_is_refused_on_the_page(
        at_datastore: Client, cloud: Emulator, extra: dict[str, str], field: str,
        says: str) -> None:
    before = WizardState(at_datastore.session).get("network")
    if extra.get("nlb_zone2") == "SECOND":
        extra = {**extra, "nlb_zone2": _second_zone(cloud)}
    response = at_datastore.post(step_url("network"), answer(cloud, **extra))
    assert response.status_code == 200
    assert any(says in error for error in field_errors(response, field)), field_errors(
        response, field)
    assert WizardState(at_datastore.session).get("network") == before  # nothing kept


def _second_zone(cloud: Emulator) -> str:
    zones = cloud.seed_document["regions"][0]["zones"]
    return next(zone for zone in zones if zone != cloud.vswitch["zone_id"])


def test_an_nlb_in_a_created_vpc_orders_a_second_vswitch_in_the_second_zone(
        at_datastore: Client, cloud: Emulator, user: Any) -> None:
    """An NLB needs a vSwitch in two zones (V2 alibabacloud_nlb20220430 CreateLoadBalancer
    ZoneMappings): the order names the second zone and block, the review says the panel
    creates both, and the plan creates the second before anything else is bought."""
    second = _second_zone(cloud)
    page = at_datastore.get(step_url("network")).content.decode()
    assert 'name="new_vswitch2_cidr"' in page
    response = at_datastore.post(step_url("network"), answer(
        cloud, load_balancer_kind="nlb", nlb_zone2=second, new_vswitch2_cidr="10.40.2.0/24"))
    assert response["Location"] == step_url("datastore"), field_errors(response, "__all__")
    saved = WizardState(at_datastore.session).get("network")
    assert saved["load_balancer_kind"] == "nlb" and saved["nlb_zones"] == []
    assert saved["network_order"] == {"vpc_cidr": "10.40.0.0/16", "vswitch_cidr": "10.40.1.0/24",
                                      "zone2": second, "vswitch2_cidr": "10.40.2.0/24"}
    from clusters.interface.wizard import billed_resources  # noqa: PLC0415

    session = at_datastore.session
    state = WizardState(session)
    state.put("datastore", {"kind": "external",
                            "external_dsn": "mysql://k3s:pw@tcp(db:3306)/k3s"})
    state.put("hosts", {"hosts": [], "order": ORDER, "warnings": []})
    state.put("k3s", {"install_source": "official", "k3s_version": "v1.32.5+k3s1",
                      "k3s_channel": ""})
    session.save()
    (nlb,) = billed_resources(state)
    assert f"{cloud.vswitch['zone_id']} 10.40.1.0/24" in nlb.detail
    assert f"{second} 10.40.2.0/24" in nlb.detail
    review = html.unescape(at_datastore.get(step_url("review")).content.decode())
    assert 'id="second-vswitch"' in review
    assert f"a second vSwitch 10.40.2.0/24 in {second}" in review
    assert "the two vSwitches the panel creates" in review
    cluster = build_cluster(state, user)
    assert cluster.load_balancer_kind == "nlb" and cluster.nlb_zones == []
    keys = [spec.key for spec in create_plan(cluster)]
    assert keys[:4] == ["vpc_create", "vswitch_create", "vswitch2_create", "ecs_keypair"]


def test_without_creating_a_vpc_must_be_chosen(at_datastore: Client, cloud: Emulator) -> None:
    response = at_datastore.post(step_url("network"), {
        "zone": cloud.vswitch["zone_id"], "slb_address_type": "intranet"})
    assert "Choose a VPC, or let the panel create one." in field_errors(response, "vpc")


def test_a_created_network_then_instances_bought_in_it_make_the_plan(
        at_datastore: Client, cloud: Emulator, user: Any) -> None:
    response = at_datastore.post(step_url("network"), answer(cloud))
    assert response["Location"] == step_url("datastore")
    saved = WizardState(at_datastore.session).get("network")
    assert saved["network_order"] == {"vpc_cidr": "10.40.0.0/16",
                                      "vswitch_cidr": "10.40.1.0/24"}
    assert (saved["vpc"], saved["vswitch"], saved["vpc_cidr"]) == ("", "", "10.40.0.0/16")
    session = at_datastore.session
    state = WizardState(session)
    state.put("datastore", {"kind": "external",
                            "external_dsn": "mysql://k3s:pw@tcp(db:3306)/k3s"})
    session.save()
    hosts = at_datastore.get(step_url("hosts")).content.decode()
    assert 'id="new-vpc-hosts"' in hosts and 'id="vpc-instances"' not in hosts
    typed = at_datastore.post(step_url("hosts"), {"action": "next"}, follow=True)
    assert "it has no hosts yet: create the instances" in typed.content.decode()
    assert WizardState(at_datastore.session).get("hosts") == {}
    state = WizardState(at_datastore.session)
    state.put("hosts", {"hosts": [], "order": ORDER, "warnings": []})
    state.put("k3s", {"install_source": "official", "k3s_version": "v1.30.4+k3s1"})
    cluster = build_cluster(state, user)
    assert cluster.network_order == saved["network_order"] and cluster.vpc_id == ""
    keys = [spec.key for spec in create_plan(cluster)]
    assert keys[:3] == ["vpc_create", "vswitch_create", "ecs_keypair"]


def test_the_blocks_are_normalised_and_checked() -> None:
    assert check(" 10.40.0.0/16", "10.40.1.0/24 ") == ("10.40.0.0/16", "10.40.1.0/24")
    with pytest.raises(BlockError, match="mask of 16 to 29 bits") as refused:
        check("10.0.0.0/16", "10.0.0.0/30")
    assert refused.value.which == "vswitch"


def test_the_review_sends_typed_hosts_in_a_new_vpc_back_to_the_hosts_page(
        at_datastore: Client, cloud: Emulator) -> None:
    assert at_datastore.post(step_url("network"), answer(cloud))["Location"] == step_url(
        "datastore")
    session = at_datastore.session
    state = WizardState(session)
    state.put("datastore", {"kind": "external",
                            "external_dsn": "mysql://k3s:pw@tcp(db:3306)/k3s"})
    state.put("hosts", {"hosts": [{"role": "server", "private_ip": "10.40.1.5"}],
                        "warnings": []})
    state.put("k3s", {"install_source": "official", "k3s_version": "v1.30.4+k3s1"})
    session.save()
    review = at_datastore.get(step_url("review"), follow=True)
    assert review.redirect_chain[-1][0] == step_url("hosts")
    assert "it has no hosts yet: create the instances" in review.content.decode()
