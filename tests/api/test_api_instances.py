"""The API's create with instances the panel buys (`instances` instead of `hosts`): checked by
the wizard's own "create instances" form against what the emulator's zone sells now, with the
same messages by field (`instances.<field>`); the schema documents it; a shown spec is fed
back as it was given, the private key of an existing key pair never shown."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.core.management import call_command

from clusters.adapters.cloud import cloud_for_account
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudAccount,
    CloudResource,
    Cluster,
    ClusterStatus,
    Node,
    Run,
    RunKind,
)
from clusters.operations.create import create_plan
from clusters.steps.ecs import generate_key_pair
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.api.test_api import spec
from tests.support.api import bearer, issue, post_json
from tests.support.factories import make_cluster, make_user

pytestmark = pytest.mark.django_db

ORDER = {"servers": 3, "agents": 1, "instance_type": "ecs.g7.large",
         "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd", "system_disk_gb": 60}


@pytest.fixture
def account(cloud: Emulator) -> CloudAccount:
    return CloudAccount.objects.create(owner=make_user("ops"), name="main",
                                       access_key_id=cloud.access_key_id,
                                       access_key_secret=cloud.access_key_secret,
                                       default_region=cloud.vpc["region_id"])


def instances_spec(cloud: Emulator, account: CloudAccount, artifacts: ArtifactServer,
                   **order: Any) -> dict[str, Any]:
    return spec(cloud, account, artifacts, hosts=[], instances={**ORDER, **order},
                datastore={"kind": "etcd"})


def test_create_buys_the_instances_the_spec_orders(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    body = instances_spec(cloud, account, artifacts)
    dry = post_json(api, "/api/v1/clusters/?dry_run=1", body)
    assert dry.status_code == 200 and dry.json()["valid"] is True, dry.json()
    whats = [item["what"] for item in dry.json()["billed"]["items"]]
    assert [w for w in whats if w.startswith("ECS instance")] == [
        "ECS instance s1 (Server, pay-as-you-go)", "ECS instance s2 (Server, pay-as-you-go)",
        "ECS instance s3 (Server, pay-as-you-go)", "ECS instance a1 (Agent, pay-as-you-go)"]
    # Each instance priced by ECS DescribePrice, as the review page shows it; so the total.
    billed = dry.json()["billed"]
    instances = [i for i in billed["items"] if i["what"].startswith("ECS instance")]
    assert all(i["monthly"] > 0 and not i["problem"] for i in instances), billed
    assert billed["monthly_total"] == pytest.approx(sum(i["monthly"] for i in billed["items"]),
                                                    abs=0.01)
    assert billed["monthly_total_incomplete"] is False
    created = post_json(api, "/api/v1/clusters/", body)
    assert created.status_code == 202, created.json()
    cluster = Cluster.objects.get(owner=account.owner)
    assert cluster.instance_order == {
        **ORDER, "system_disk_category": "cloud_essd", "public_bandwidth_mbps": 0,
        "key_pair": ""}
    assert cluster.nodes.count() == 0
    assert [s.key for s in create_plan(cluster)][:4] == [
        "ecs_keypair", "ecs_group", "ecs_check", "ecs_buy"]
    shown = api.get(f"/api/v1/clusters/{cluster.code}/").json()["spec"]
    assert shown["hosts"] == [] and shown["instances"]["servers"] == 3
    shown["name"] = "api-copy"
    again = post_json(api, "/api/v1/clusters/?dry_run=1", shown)
    assert again.status_code == 200, again.json()


def test_a_total_with_unknown_prices_is_the_known_sum_flagged_as_the_review_page_says(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    """One rule for both front doors (pricing.Quote.known_total / incomplete): the review
    page shows the known sum "(without the items whose price is unknown)"; the dry run
    answers the same sum with monthly_total_incomplete true, whether the unknown line is the
    instances' (DescribePrice failed) or an NLB's (no list price)."""
    api = bearer(issue(account.owner))
    cloud.control.add_fault(action="DescribePrice", product="Ecs", code="ServiceUnavailable",
                            count=1)
    try:
        billed = post_json(api, "/api/v1/clusters/?dry_run=1",
                           instances_spec(cloud, account, artifacts)).json()["billed"]
    finally:
        cloud.control.clear_faults()
    (clb,) = [i for i in billed["items"] if i["what"].startswith("CLB")]
    instances = [i for i in billed["items"] if i["what"].startswith("ECS instance")]
    assert len(instances) == 4 and all(i["monthly"] is None for i in instances)
    assert "code ServiceUnavailable" in instances[0]["problem"]
    assert billed["monthly_total"] == pytest.approx(clb["monthly"], abs=0.01)
    assert billed["monthly_total_incomplete"] is True
    # An NLB has no list price: the instances' sum, flagged the same way.
    first, second = cloud.vpc["vswitches"][0], cloud.vpc["vswitches"][1]
    body = instances_spec(cloud, account, artifacts)
    body["network"] = {"zone": first["zone_id"], "vpc": cloud.vpc["vpc_id"],
                       "vswitch": first["vswitch_id"], "load_balancer_kind": "nlb",
                       "nlb_zone2": second["zone_id"], "nlb_vswitch2": second["vswitch_id"]}
    dry = post_json(api, "/api/v1/clusters/?dry_run=1", body)
    assert dry.status_code == 200, dry.json()
    billed = dry.json()["billed"]
    (nlb,) = [i for i in billed["items"] if i["what"].startswith("NLB")]
    assert nlb["monthly"] is None and nlb["problem"]
    assert billed["monthly_total"] == pytest.approx(
        sum(i["monthly"] for i in billed["items"] if i["monthly"] is not None), abs=0.01)
    assert billed["monthly_total"] > 0 and billed["monthly_total_incomplete"] is True


def test_create_refuses_an_order_as_the_wizard_does_by_field(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    fields = post_json(api, "/api/v1/clusters/", instances_spec(
        cloud, account, artifacts, instance_type="ecs.nope.large", servers=2,
        system_disk_gb=10)).json()["fields"]
    assert "not one of the available choices" in fields["instances.instance_type"][0]
    assert fields["instances.servers"] and fields["instances.system_disk_gb"]
    both = spec(cloud, account, artifacts, instances=ORDER)
    fields = post_json(api, "/api/v1/clusters/", both).json()["fields"]
    assert fields == {"instances": [
        "Give either hosts or instances for the panel to buy, not both."]}
    assert not Cluster.objects.exists()


def test_an_existing_key_pair_takes_its_own_private_key_never_shown_back(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    private, public = generate_key_pair("ops")
    cloud_for_account(account, cloud.vpc["region_id"]).import_key_pair("api-ops", public)
    other, _ = generate_key_pair("other")
    fields = post_json(api, "/api/v1/clusters/", instances_spec(
        cloud, account, artifacts, key_pair="api-ops",
        key_pair_private_key=other)).json()["fields"]
    assert "but key pair api-ops has" in fields["instances.key_pair_private_key"][0]
    created = post_json(api, "/api/v1/clusters/", instances_spec(
        cloud, account, artifacts, key_pair="api-ops", key_pair_private_key=private))
    assert created.status_code == 202, created.json()
    cluster = Cluster.objects.get(owner=account.owner)
    assert cluster.instance_order["key_pair"] == "api-ops"
    assert cluster.generated_ssh_key.strip() == private.strip()
    shown = api.get(f"/api/v1/clusters/{cluster.code}/").content.decode()
    assert private.splitlines()[1] not in shown and "key_pair_private_key" not in shown
    cloud_for_account(account, cloud.vpc["region_id"]).delete_key_pairs(["api-ops"])


def test_the_schema_documents_the_order(tmp_path: Any) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    order = schema["components"]["schemas"]["InstancesSpecRequest"]["properties"]
    assert {"servers", "agents", "instance_type", "image_id", "system_disk_gb",
            "public_bandwidth_mbps", "key_pair", "key_pair_private_key"} <= set(order)
    assert "never shown again" in order["key_pair_private_key"]["description"]
    assert "InstancesSpecRequest" in str(schema["components"]["schemas"]["ClusterSpecRequest"])


def bought_cluster(owner: Any) -> Cluster:
    """A ready cluster whose first instances the panel bought: its order, group, key pair."""
    cluster = make_cluster(owner=owner, nodes=1, status=ClusterStatus.READY,
                           k3s_version="v1.32.5+k3s1",
                           instance_order={"servers": 1, "agents": 0,
                                           "instance_type": "ecs.g7.large",
                                           "image_id": ORDER["image_id"], "system_disk_gb": 40})
    for kind, provider_id in (("ecs_security_group", "sg-nodes"), ("ecs_key_pair", "k3s-kp"),
                              ("ecs_instance_s1", "i-first")):
        CloudResource.objects.create(cluster=cluster, kind=kind, provider_id=provider_id,
                                     client_token=f"{cluster.code.hex}-{kind}",
                                     region=cluster.region)
    return cluster


def test_add_instances_takes_the_pages_form_and_starts_the_pages_operation() -> None:
    """POST …/nodes/instances/: the page's "Add instances" (AddInstancesForm, then
    start_add_instances): the billing confirmed, at least one node, only on a cluster that
    bought its first instances; 202 with the run and what it bills, audited; read-only
    tokens refused."""
    user = make_user()
    api = bearer(issue(user))
    on_own_hosts = make_cluster(owner=user, nodes=2, status=ClusterStatus.READY)
    refused = post_json(api, f"/api/v1/clusters/{on_own_hosts.code}/nodes/instances/",
                        {"agents": 1, "confirm_billing": True})
    assert refused.status_code == 409
    assert refused.json() == {"detail": "This cluster runs on hosts its owner already had: "
                              "add a node by its address instead.", "code": "refused"}
    cluster = bought_cluster(user)
    url = f"/api/v1/clusters/{cluster.code}/nodes/instances/"
    unconfirmed = post_json(api, url, {"agents": 2})
    assert unconfirmed.status_code == 400 and unconfirmed.json()["code"] == "invalid"
    assert set(unconfirmed.json()["fields"]) == {"confirm_billing"}
    nothing = post_json(api, url, {"confirm_billing": True}).json()
    assert nothing["fields"] == {"non_field_errors": ["Add at least one server or agent."]}
    reader = post_json(bearer(issue(user, "ro", scope="read")), url,
                       {"agents": 2, "confirm_billing": True})
    assert reader.status_code == 403 and reader.json()["code"] == "permission_denied"
    assert not Run.objects.exists()

    started = post_json(api, url, {"agents": 2, "confirm_billing": True})
    assert started.status_code == 202, started.json()
    body = started.json()
    run = Run.objects.get()
    assert (body["run"]["id"], body["run"]["kind"]) == (run.pk, RunKind.ADD_NODE)
    assert started["Location"] == body["run_url"]
    assert body["billed"].startswith("2 ECS instances ecs.g7.large")
    assert run.params["slots"] == ["a1", "a2"]
    assert [s.key for s in run.steps.order_by("position")][:2] == ["ecs_check", "ecs_buy"]
    event = AuditEvent.objects.get(action=AuditAction.NODE_ADD)
    assert (event.details["servers"], event.details["agents"]) == (0, 2)
    busy = post_json(api, url, {"agents": 1, "confirm_billing": True})
    assert busy.status_code == 409 and busy.json()["code"] == "refused"


def test_removing_a_bought_node_through_the_api_can_keep_its_instance() -> None:
    user = make_user()
    cluster = bought_cluster(user)
    agent = Node.objects.create(cluster=cluster, role="agent", private_ip="10.0.3.3",
                                ecs_instance_id="i-agent", ssh_password="pw")
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_a1", provider_id="i-agent",
                                 client_token=f"{cluster.code.hex}-a1", region=cluster.region)
    answer = post_json(bearer(issue(user)),
                       f"/api/v1/clusters/{cluster.code}/nodes/{agent.pk}/remove/",
                       {"keep_instance": True})
    assert answer.status_code == 202, answer.json()
    run = Run.objects.get()
    assert run.steps.get(key="ecs_instance_delete").args == {"node_id": agent.pk,
                                                             "keep_instances": True}
    assert AuditEvent.objects.get(action=AuditAction.NODE_REMOVE).details["keep_instance"]


def test_the_schema_documents_buying_nodes_and_keeping_a_removed_nodes_instance(
        tmp_path: Any) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    path = schema["paths"]["/api/v1/clusters/{code}/nodes/instances/"]["post"]
    assert "buying ECS instances" in path["summary"]
    fields = schema["components"]["schemas"]["AddInstancesRequest"]["properties"]
    assert {"servers", "agents", "confirm_billing"} <= set(fields)
    assert "billed" in fields["confirm_billing"]["description"]
    keep = schema["components"]["schemas"]["NodeRemoveRequest"]["properties"]["keep_instance"]
    assert "released" in keep["description"]


def test_keep_flags_are_booleans_and_keep_instance_needs_a_bought_node() -> None:
    """"false" means false, null is a field error (not "release"), and keeping the instance
    of a host the panel did not buy is refused by field, never silently ignored; the same
    for destroy's keep_instances and keep_database."""
    user = make_user()
    api = bearer(issue(user))
    cluster = bought_cluster(user)
    agent = Node.objects.create(cluster=cluster, role="agent", private_ip="10.0.3.3",
                                ecs_instance_id="i-agent", ssh_password="pw")
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_a1", provider_id="i-agent",
                                 client_token=f"{cluster.code.hex}-a1", region=cluster.region)
    own = Node.objects.create(cluster=cluster, role="agent", private_ip="10.0.3.4",
                              ssh_password="pw")
    url = f"/api/v1/clusters/{cluster.code}/nodes/{{}}/remove/"
    null = post_json(api, url.format(agent.pk), {"keep_instance": None})
    assert null.status_code == 400 and set(null.json()["fields"]) == {"keep_instance"}
    theirs = post_json(api, url.format(own.pk), {"keep_instance": True})
    assert theirs.status_code == 400, theirs.json()
    assert theirs.json()["fields"]["keep_instance"] == [
        "10.0.3.4 is not an instance the panel bought: it is never released, so there is "
        "nothing to keep."]
    assert not Run.objects.exists()
    released = post_json(api, url.format(agent.pk), {"keep_instance": "false"})
    assert released.status_code == 202, released.json()
    assert Run.objects.get().steps.get(key="ecs_instance_delete").args["keep_instances"] is False
    Run.objects.all().delete()
    Node.objects.filter(pk=agent.pk).update(status="ready")
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    destroy = f"/api/v1/clusters/{cluster.code}/destroy/"
    for flag in ("keep_instances", "keep_database"):
        bad = post_json(api, destroy, {"confirm_name": cluster.name, flag: None})
        assert bad.status_code == 400 and set(bad.json()["fields"]) == {flag}, bad.json()
    assert not Run.objects.exists()
    gone = post_json(api, destroy, {"confirm_name": cluster.name, "keep_instances": "false",
                                    "keep_database": "false"})
    assert gone.status_code == 202, gone.json()
    assert Run.objects.get().params == {"keep_database": False}
