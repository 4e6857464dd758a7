"""The wizard's "create a VPC and vSwitch for this cluster": the blocks are checked as
Alibaba Cloud checks them (V2 model alibabacloud_vpc20160428, clusters/core/network_blocks.py)
before anything is sent, a CLB only (an NLB needs a second zone's vSwitch), the hosts are
then the instances the panel buys, the review says what is created, and the create and
destroy plans carry the network steps."""

from __future__ import annotations

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
    ({"load_balancer_kind": "nlb"}, "load_balancer_kind", "choose a CLB for a new VPC"),
])
def test_a_block_alibaba_would_refuse_is_refused_on_the_page(
        at_datastore: Client, cloud: Emulator, extra: dict[str, str], field: str,
        says: str) -> None:
    before = WizardState(at_datastore.session).get("network")
    response = at_datastore.post(step_url("network"), answer(cloud, **extra))
    assert response.status_code == 200
    assert any(says in error for error in field_errors(response, field)), field_errors(
        response, field)
    assert WizardState(at_datastore.session).get("network") == before  # nothing kept


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
