"""The wizard's load balancer choice: an NLB needs a vSwitch in two zones (asked for, and
explained), a one-zone region gets the reason and keeps its CLB, an Internet NLB takes the
allow-list (none open until the user lists who may connect), and the review names what is
billed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.adapters.aliyun import Vpc, VSwitch
from clusters.adapters.wizard_checks import NetworkChoices
from clusters.interface.forms import NetworkStepForm
from clusters.interface.wizard import WizardState, build_cluster
from clusters.models import CloudAccount, Cluster, LoadBalancerKind
from clusters.operations.create import create_plan
from clusters.operations.destroy import destroy_plan
from clusters.operations.nodes import add_nodes_plan
from sandbox.aliyun.testing import Emulator
from tests.ui.test_wizard import field_errors

pytestmark = pytest.mark.django_db


def step_url(step: str) -> str:
    return reverse("clusters:wizard-step", args=[step])


def two_zone_answer(cloud: Emulator, **extra: str) -> dict[str, str]:
    first, second = cloud.vpc["vswitches"][0], cloud.vpc["vswitches"][1]
    assert first["zone_id"] != second["zone_id"]  # the loopback seed has two zones
    return {"zone": first["zone_id"], "vpc": cloud.vpc["vpc_id"],
            "vswitch": first["vswitch_id"], "slb_address_type": "intranet",
            "load_balancer_kind": "nlb", "nlb_zone2": second["zone_id"],
            "nlb_vswitch2": second["vswitch_id"], **extra}


def test_an_nlb_asks_for_a_vswitch_in_a_second_zone_and_says_why(
        at_datastore: Client, cloud: Emulator) -> None:
    page = at_datastore.get(step_url("network")).content.decode()
    assert 'name="load_balancer_kind"' in page and 'name="nlb_vswitch2"' in page
    assert "Why a second zone" in page
    second = cloud.vpc["vswitches"][1]
    assert second["vswitch_id"] in page  # the live list of the region's vSwitches

    answer = two_zone_answer(cloud)
    same_zone = at_datastore.post(step_url("network"), {**answer, "nlb_zone2": answer["zone"]})
    assert "other than the first" in " ".join(field_errors(same_zone, "nlb_zone2"))
    no_vswitch = at_datastore.post(step_url("network"), {**answer, "nlb_vswitch2": ""})
    assert "Choose a vSwitch in the second zone" in " ".join(
        field_errors(no_vswitch, "nlb_vswitch2"))
    wrong_zone = at_datastore.post(step_url("network"), {**answer,
                                                         "nlb_vswitch2": answer["vswitch"]})
    assert "not in the second zone" in " ".join(field_errors(wrong_zone, "nlb_vswitch2"))
    # An Internet NLB: nobody may connect until the user lists who may.
    unlisted = at_datastore.post(step_url("network"), {**answer, "slb_address_type": "internet"})
    assert "needs at least one allowed source" in " ".join(
        field_errors(unlisted, "api_allowed_cidrs"))
    internet = at_datastore.post(step_url("network"), {
        **answer, "slb_address_type": "internet", "api_allowed_cidrs": "203.0.113.0/24"})
    assert internet["Location"] == step_url("datastore")
    saved = WizardState(at_datastore.session).get("network")
    assert (saved["slb_address_type"], saved["api_allowed_cidrs"], saved["load_balancer_kind"]
            ) == ("internet", ["203.0.113.0/24"], "nlb")

    good = at_datastore.post(step_url("network"), answer)
    assert good["Location"] == step_url("datastore")
    saved = WizardState(at_datastore.session).get("network")
    assert saved["load_balancer_kind"] == "nlb"
    assert saved["nlb_zones"] == [
        {"zone": answer["zone"], "vswitch_id": answer["vswitch"]},
        {"zone": answer["nlb_zone2"], "vswitch_id": answer["nlb_vswitch2"]}]


def test_a_clb_is_still_the_default_and_needs_no_second_zone(
        at_datastore: Client, cloud: Emulator) -> None:
    vswitch = cloud.vswitch
    response = at_datastore.post(step_url("network"), {
        "zone": vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
        "vswitch": vswitch["vswitch_id"], "slb_address_type": "intranet"})
    assert response["Location"] == step_url("datastore")
    saved = WizardState(at_datastore.session).get("network")
    assert saved["load_balancer_kind"] == "clb" and saved["nlb_zones"] == []


def one_zone_form(kind: str) -> NetworkStepForm:
    network = NetworkChoices(["cn-solo-a"], [Vpc("vpc-1", "10.0.0.0/16")],
                             [VSwitch("vsw-1", "vpc-1", "cn-solo-a", "10.0.1.0/24")])
    return NetworkStepForm({"zone": "cn-solo-a", "vpc": "vpc-1", "vswitch": "vsw-1",
                            "slb_address_type": "intranet", "load_balancer_kind": kind},
                           network=network)


def test_a_region_with_one_zone_says_why_an_nlb_cannot_be_and_a_clb_still_works() -> None:
    nlb = one_zone_form("nlb")
    assert not nlb.is_valid()
    assert "only one zone" in " ".join(nlb.errors["load_balancer_kind"])
    assert "two zones" in " ".join(nlb.errors["load_balancer_kind"])
    assert not nlb.nlb_possible
    clb = one_zone_form("clb")
    assert clb.is_valid(), clb.errors
    assert clb.cleaned_data["nlb_zones"] == []


@pytest.fixture
def nlb_review(cloud: Emulator, user: Any, owner_client: Client) -> Client:
    account = CloudAccount.objects.create(owner=user, name="emu",
                                          access_key_id=cloud.access_key_id,
                                          access_key_secret=cloud.access_key_secret)
    first, second = cloud.vpc["vswitches"][0], cloud.vpc["vswitches"][1]
    base = first["cidr"].rsplit(".", 1)[0]
    session = owner_client.session
    state = WizardState(session)
    state.put("account", {"name": "nlb-one", "cloud_account": account.pk,
                          "region": cloud.region_id})
    state.put("network", {
        "zone": first["zone_id"], "vpc": cloud.vpc["vpc_id"], "vswitch": first["vswitch_id"],
        "slb_address_type": "intranet", "vpc_cidr": cloud.vpc["cidr"],
        "vswitch_cidr": first["cidr"], "load_balancer_kind": "nlb",
        "nlb_zones": [{"zone": first["zone_id"], "vswitch_id": first["vswitch_id"]},
                      {"zone": second["zone_id"], "vswitch_id": second["vswitch_id"]}]})
    state.put("datastore", {"kind": "external", "external_dsn": "mysql://k:p@tcp(10.0.1.9:3306)/k"})
    state.put("hosts", {"hosts": [
        {"role": role, "private_ip": f"{base}.{21 + i}", "ssh_port": 22, "ssh_user": "root",
         "auth": "password", "password": "s3cret-pass"}
        for i, role in enumerate(("server", "server", "agent"))], "warnings": []})
    state.put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                      "install_source": "official"})
    session.save()
    return owner_client


def test_the_review_shows_the_nlb_and_what_it_bills(nlb_review: Client, cloud: Emulator
                                                     ) -> None:
    review = nlb_review.get(step_url("review")).content.decode()
    assert "NLB instance (pay-as-you-go: instance fee and NLCUs)" in review
    assert "billed per hour of instance and per NLCU" in review  # unknown, never a zero
    second = cloud.vpc["vswitches"][1]
    assert second["vswitch_id"] in review and "NLB in two zones" in review


def test_an_nlb_cluster_is_built_and_planned_with_the_nlb_steps(nlb_review: Client,
                                                                 user: Any) -> None:
    cluster = build_cluster(WizardState(nlb_review.session), user)
    assert cluster.load_balancer_kind == LoadBalancerKind.NLB
    assert len(cluster.nlb_zones) == 2
    handlers = {spec.key: spec.handler for spec in create_plan(cluster)}
    assert handlers["slb_create"] == "nlb.create"
    assert handlers["slb_listener"] == "nlb.listener"
    assert "slb_acl" not in handlers
    assert {s.key: s.handler for s in destroy_plan(cluster)}["slb_delete"] == "destroy.nlb"
    added = {s.key: s.handler for s in add_nodes_plan(cluster, list(cluster.nodes.servers()))}
    assert added["slb_listener"] == "nlb.listener"
    # The NLB's DNS name and every zone address go into tls-san; kubectl uses the name.
    Cluster.objects.filter(pk=cluster.pk).update(
        api_dns_name="nlb-x.cn-hangzhou.nlb.aliyuncsslb.com",
        api_addresses=["10.0.1.50", "10.0.2.50"])
    cluster.refresh_from_db()
    assert cluster.api_host == "nlb-x.cn-hangzhou.nlb.aliyuncsslb.com"
    assert cluster.api_tls_sans == ["nlb-x.cn-hangzhou.nlb.aliyuncsslb.com", "10.0.1.50",
                                    "10.0.2.50"]


@pytest.fixture
def nlb_sold_in(cloud: Emulator) -> Any:
    """Reseed the region so NLB is sold in some of its zones only (NLB DescribeZones lists
    fewer zones than ECS's in some regions); the region is put back after the test."""
    (region,) = cloud.seed_document["regions"]
    third = f"{cloud.region_id}-j"

    def sold_in(*zones: str) -> None:
        cloud.control.seed({"regions": [{**region, "zones": [*region["zones"], third],
                                         "nlb_zones": list(zones)}]})

    yield sold_in
    cloud.control.seed({"regions": [region]})


def test_a_zone_without_nlb_is_refused_before_anything_is_bought(
        at_datastore: Client, cloud: Emulator, nlb_sold_in: Any) -> None:
    """The wizard asks NLB's own DescribeZones (nlb20220430), not ECS's: a ZoneMapping in a
    zone without NLB would fail at CreateLoadBalancer (UnauthorizedZone), after the
    instances are bought. Both zones are checked, for an existing VPC and a created one."""
    answer = two_zone_answer(cloud)
    first, second, third = answer["zone"], answer["nlb_zone2"], f"{cloud.region_id}-j"
    nlb_sold_in(first, third)
    page = at_datastore.get(step_url("network")).content.decode()
    assert f"{second} (no NLB)" in page
    refused = at_datastore.post(step_url("network"), answer)
    assert f"NLB is not sold in zone {second}" in " ".join(field_errors(refused, "nlb_zone2"))
    created = {"zone": first, "create_network": "on", "new_vpc_cidr": "10.40.0.0/16",
               "new_vswitch_cidr": "10.40.1.0/24", "slb_address_type": "intranet",
               "load_balancer_kind": "nlb", "nlb_zone2": second,
               "new_vswitch2_cidr": "10.40.2.0/24"}
    refused = at_datastore.post(step_url("network"), created)
    assert f"NLB is not sold in zone {second}" in " ".join(field_errors(refused, "nlb_zone2"))
    assert at_datastore.post(step_url("network"), {**created, "nlb_zone2": third}
                             )["Location"] == step_url("datastore")

    nlb_sold_in(second, third)  # the first zone is the one without NLB now
    refused = at_datastore.post(step_url("network"), answer)
    assert f"NLB is not sold in zone {first}" in " ".join(field_errors(refused, "zone"))
    refused = at_datastore.post(step_url("network"), created)
    assert f"NLB is not sold in zone {first}" in " ".join(field_errors(refused, "zone"))
    # And a CLB in that zone is still fine.
    clb = at_datastore.post(step_url("network"), {**answer, "load_balancer_kind": "clb"})
    assert clb["Location"] == step_url("datastore")

    nlb_sold_in(third)  # one zone only: no NLB in this region, said as such
    refused = at_datastore.post(step_url("network"), answer)
    assert "fewer than two zones" in " ".join(field_errors(refused, "load_balancer_kind"))


def test_allow_list_sources_the_nodes_will_not_admit_are_warned_of(
        at_datastore: Client, cloud: Emulator) -> None:
    """Through a CLB the client's own address reaches the nodes: a private block can never
    be an Internet-facing API's client, and a public block is not admitted to an intranet
    API's nodes (k3s/firewall.allowlist_skipped). The wizard says so instead of dropping
    them silently; the answer is still saved."""
    vswitch = cloud.vswitch
    base = {"zone": vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
            "vswitch": vswitch["vswitch_id"], "load_balancer_kind": "clb"}
    internet = at_datastore.post(step_url("network"), {
        **base, "slb_address_type": "internet",
        "api_allowed_cidrs": "203.0.113.0/24\n10.99.0.0/16"}, follow=True)
    page = internet.content.decode()
    assert "10.99.0.0/16 is a private block" in page
    assert "203.0.113.0/24 is a" not in page
    assert WizardState(at_datastore.session).get("network")["api_allowed_cidrs"] == [
        "203.0.113.0/24", "10.99.0.0/16"]
    intranet = at_datastore.post(step_url("network"), {
        **base, "slb_address_type": "intranet",
        "api_allowed_cidrs": "8.8.8.0/24\n10.99.0.0/16"}, follow=True)
    page = intranet.content.decode()
    assert "8.8.8.0/24 is a public block" in page and "10.99.0.0/16 is a" not in page
