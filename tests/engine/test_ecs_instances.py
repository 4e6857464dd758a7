"""Instances the panel buys (steps/ecs.py): a generated key pair imported, one RunInstances per
node through the ledger (its ClientToken recorded first, adopted by tag after a lost answer),
a stock error that fails before anything is bought with Alibaba's code, RequestId and what the
zone sells instead, Running waited for, a Node per instance; destroy releases exactly those.

The engine runs in this process; the steps talk to the emulator (sandbox/aliyun, ECS actions
of ecs_instances.py / ecs_catalogue.py / ecs_keypairs.py) through the SDK.
"""

from __future__ import annotations

import dataclasses
import html
import re
import time
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from clusters.adapters import cloud
from clusters.adapters.instance_order import ECS_SECURITY_GROUP_KIND
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Cluster, LogLine, ResourceState, Run, RunKind, StepStatus
from clusters.steps.ecs import KEY_PAIR_KIND, NODE_TAG, key_pair_name, md5_fingerprint
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, time_passes
from tests.support.factories import make_cluster
from tests.support.runs import step

# Not inside one test transaction: a step call that outlives the heartbeat interval (three
# RunInstances under load) renews its lease from another thread, which must be able to write.
pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"
TYPE = "ecs.g7.large"  # 2 vCPU, 8 GiB in the emulator's catalogue
BUY = [StepSpec("keypair", "Key pair", "ecs.keypair"),
       StepSpec("group", "Security group", "ecs.security_group", ["keypair"]),
       StepSpec("check", "DryRun", "ecs.check_order", ["group"]),
       StepSpec("buy", "Instances", "ecs.run_instances", ["check"])]


@pytest.fixture
def cluster(emu: Emulator, settings: Any) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    # The panel inside the VPC: instances without bandwidth are reached at their private
    # addresses (a panel outside needs a public one: check_order refuses the order).
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{emu.vswitch['cidr'].rsplit('.', 1)[0]}.250/32"]
    emu.control.clear_faults()
    emu.control.clear_calls()
    emu.control.request("POST", "ecs/stock", {"zone_id": emu.vswitch["zone_id"],
                                              "instance_type": TYPE,
                                              "status_category": "WithStock"})
    return make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"],
                        vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"],
                        instance_order={"servers": 2, "agents": 1, "image_id": IMAGE,
                                        "instance_type": TYPE, "system_disk_gb": 40})


def run_plan(engine: InProcessEngine, cluster: Cluster, specs: list[StepSpec],
             seconds: float = 30.0) -> Run:
    """Run the steps until none is left to deliver; a Wait is waited for in real time (the
    emulator's instances boot on its own clock)."""
    run = engine.act(create_run, cluster, RunKind.TEST, specs)
    settle(engine, seconds)
    return run


def settle(engine: InProcessEngine, seconds: float = 30.0) -> None:
    engine.settle(seconds, pause=0.2)


def tagged_instances(emu: Emulator, cluster: Cluster) -> list[dict[str, Any]]:
    tag = {"Key": cloud.TAG_KEY, "Value": str(cluster.code)}
    return [r for r in emu.control.resources()
            if r["type"] == "ecs_instance" and tag in r["tags"] and r["state"] != "Deleted"]


def calls(emu: Emulator, action: str) -> list[dict[str, Any]]:
    return [c for c in emu.control.calls() if c["action"] == action]


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_the_order_is_bought_once_each_node_with_its_recorded_token_and_gets_a_node(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    run = run_plan(engine, cluster, BUY)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    bought = tagged_instances(emu, cluster)
    assert len(bought) == 3
    assert sorted(dict((t["Key"], t["Value"]) for t in b["tags"])[NODE_TAG]
                  for b in bought) == ["a1", "s1", "s2"]
    runs = [c for c in calls(emu, "RunInstances") if not c["params"].get("DryRun")]
    rows = {r.kind: r for r in cluster.resources.filter(kind__startswith="ecs_instance_")}
    assert sorted(c["params"]["ClientToken"] for c in runs) == sorted(
        r.client_token for r in rows.values())
    assert all(c["params"]["InstanceType"] == TYPE and c["params"]["Amount"] == "1"
               and c["params"]["KeyPairName"] == key_pair_name(cluster) for c in runs)
    # The order's disk is the one bought: category, size and the ESSD's level (PL1), the
    # one DescribePrice priced and the review names.
    assert all((c["params"]["SystemDisk.Category"], c["params"]["SystemDisk.Size"],
                c["params"]["SystemDisk.PerformanceLevel"]) == ("cloud_essd", "40", "PL1")
               for c in runs), runs[0]["params"]
    # One DryRun of the whole order first.
    (dry,) = [c for c in calls(emu, "RunInstances") if c["params"].get("DryRun")]
    assert dry["params"]["Amount"] == "3" and dry["time"] < runs[0]["time"]
    # Every instance is a Node: private address, root, the generated key; no host key yet.
    cluster.refresh_from_db()
    nodes = sorted(cluster.nodes.all(), key=lambda n: (n.role, n.name))
    assert [n.role for n in nodes] == ["agent", "server", "server"]
    assert {n.ecs_instance_id for n in nodes} == {b["id"] for b in bought}
    assert {n.private_ip for n in nodes} == {b["addresses"][0] for b in bought}
    assert all(n.ssh_private_key == cluster.generated_ssh_key and not n.host_key
               for n in nodes)
    # A second run buys nothing more.
    emu.control.clear_calls()
    again = run_plan(engine, cluster, BUY)
    assert step(again, "buy").status == StepStatus.SUCCEEDED
    assert calls(emu, "RunInstances") == [] and len(tagged_instances(emu, cluster)) == 3
    assert cluster.nodes.count() == 3


def test_the_generated_key_is_encrypted_at_rest_and_its_public_half_imported(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    run = run_plan(engine, cluster, BUY[:1])
    assert step(run, "keypair").status == StepStatus.SUCCEEDED
    cluster.refresh_from_db()
    assert cluster.generated_ssh_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # ECDSA, not Ed25519: ImportKeyPair takes rsa/dsa/ecdsa public keys only.
    assert cluster.generated_ssh_public_key.startswith("ecdsa-sha2-nistp256 ")
    with connection.cursor() as cursor:
        cursor.execute("SELECT generated_ssh_key FROM clusters_cluster WHERE id = %s",
                       [cluster.pk])
        (raw,) = cursor.fetchone()
    assert "PRIVATE KEY" not in raw and raw
    (imported,) = calls(emu, "ImportKeyPair")
    assert imported["params"]["PublicKeyBody"] == cluster.generated_ssh_public_key
    assert "PRIVATE" not in str(imported["params"])
    row = cluster.resources.get(kind=KEY_PAIR_KIND)
    assert row.attributes["fingerprint"] == md5_fingerprint(cluster.generated_ssh_public_key)
    assert not any("PRIVATE KEY" in line for line in log_of(run))


def test_a_sold_out_type_fails_before_anything_is_bought_with_code_request_id_and_a_suggestion(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    emu.control.request("POST", "ecs/stock", {"zone_id": cluster.zone, "instance_type": TYPE,
                                              "status_category": "WithoutStock"})
    run = run_plan(engine, cluster, BUY)
    failed = step(run, "check")
    assert failed.status == StepStatus.FAILED
    assert "OperationDenied.NoStock" in failed.error
    assert re.search(r"RequestId [0-9A-F-]{36}", failed.error), failed.error
    assert f"ECS has no stock of {TYPE} in {cluster.zone}" in failed.error
    assert "nothing was bought" in failed.error
    # The order's type is fixed once the cluster exists (nothing edits instance_order): the
    # advice is what Retry really does, or a new cluster with another type.
    assert "Choose one" not in failed.error
    assert (f"A cluster's instance type is fixed at its creation: press Retry once the zone "
            f"has stock of {TYPE} again, or destroy this cluster and create it again with one "
            "of these types.") in failed.error
    # What the zone sells with the same 2 vCPU and 8 GiB.
    assert "ecs.g8i.large (2 vCPU, 8 GiB)" in failed.error
    assert TYPE + " (" not in failed.error
    assert tagged_instances(emu, cluster) == []
    assert [c for c in calls(emu, "RunInstances") if not c["params"].get("DryRun")] == []
    assert not cluster.resources.filter(kind__startswith="ecs_instance_").exists()
    # The owner's page says the same: code, RequestId and what to buy instead.
    browser = Client()
    browser.force_login(cluster.owner)
    page = html.unescape(browser.get(reverse("clusters:run-timeline",
                                             args=[cluster.code, run.pk])).content.decode())
    request_id = re.search(r"RequestId ([0-9A-F-]{36})", failed.error)
    assert request_id and request_id.group(1) in page
    assert "OperationDenied.NoStock" in page and "ecs.g8i.large (2 vCPU, 8 GiB)" in page


def test_a_zone_sold_out_of_everything_is_advised_another_zone(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    types = list(emu.control.request("GET", "ecs/prices")["instance_hourly"])
    try:
        for type_id in types:
            emu.control.set_ecs_stock(cluster.zone, type_id, "WithoutStock")
        failed = step(run_plan(engine, cluster, BUY), "check")
    finally:
        for type_id in types:
            emu.control.set_ecs_stock(cluster.zone, type_id, "WithStock")
    assert failed.status == StepStatus.FAILED and "OperationDenied.NoStock" in failed.error
    assert f"zone {cluster.zone} sells no instance type now" in failed.error
    assert ("or destroy this cluster and create it again in another zone.") in failed.error
    assert "one of these types" not in failed.error


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_a_later_slot_refused_says_what_was_bought_and_kept_and_what_retry_buys(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The DryRun passed for the whole order, then the account's quota (or the zone's stock)
    ran out after the servers were bought: the message names what was bought and is kept
    (billed), what was not, and that Retry buys only that; Retry then does exactly that."""
    run_plan(engine, cluster, BUY[:3])  # key pair, group, the DryRun of all three
    present = sum(r["type"] == "ecs_instance" for r in emu.control.resources())
    buy_only = [StepSpec("buy", "Instances", "ecs.run_instances")]
    emu.control.set_ecs_quota(emu.region_id, present + 2)  # room for s1 and s2 only
    try:
        first = step(run_plan(engine, cluster, buy_only), "buy")
        ids = {slot: cluster.resources.get(kind=f"ecs_instance_{slot}").provider_id
               for slot in ("s1", "s2")}
        assert first.status == StepStatus.FAILED and "QuotaExceed.ElasticQuota" in first.error
        assert "nothing was bought" not in first.error
        assert (f"s1 ({ids['s1']}), s2 ({ids['s2']}) were bought and are kept (billed from "
                "their creation); a1 was not bought") in first.error, first.error
        assert "does not allow 1 more instance (" in first.error
        assert "1 more instances" not in first.error
        assert ("Retry buys only a1, of the order's type ecs.g7.large, and keeps what was "
                "bought; destroying the cluster instead releases them.") in first.error
        # Quota raised, but the zone sold out meanwhile: the refusal says the same of stock.
        emu.control.set_ecs_quota(emu.region_id, None)
        emu.control.set_ecs_stock(cluster.zone, TYPE, "WithoutStock")
        second = step(run_plan(engine, cluster, buy_only), "buy")
        assert second.status == StepStatus.FAILED and "OperationDenied.NoStock" in second.error
        assert re.search(r"RequestId [0-9A-F-]{36}", second.error), second.error
        assert "nothing was bought" not in second.error
        assert f"s1 ({ids['s1']}), s2 ({ids['s2']}) were bought and are kept" in second.error
        assert "a1 was not bought" in second.error and "ecs.g8i.large (2 vCPU" in second.error
        assert (f"Press Retry once the zone has stock of {TYPE} again. Retry buys only "
                "a1") in second.error
        assert "Choose one" not in second.error
        assert len(tagged_instances(emu, cluster)) == 2
        # With stock back, Retry buys a1 alone and keeps the two.
        emu.control.set_ecs_stock(cluster.zone, TYPE, "WithStock")
        emu.control.clear_calls()
        third = step(run_plan(engine, cluster, buy_only), "buy")
        assert third.status == StepStatus.SUCCEEDED, third.error
        (bought,) = [c for c in calls(emu, "RunInstances") if not c["params"].get("DryRun")]
        assert bought["params"]["InstanceName"].endswith("-a1")
        assert len(tagged_instances(emu, cluster)) == 3
        assert {i: cluster.resources.get(kind=f"ecs_instance_{i}").provider_id
                for i in ("s1", "s2")} == ids
    finally:
        emu.control.set_ecs_quota(emu.region_id, None)
        emu.control.set_ecs_stock(cluster.zone, TYPE, "WithStock")


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2, PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_buy_is_adopted_by_the_nodes_tag_never_bought_twice(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The first node's RunInstances buys and its answer is lost; Alibaba forgets the token
    too: the retry finds the instance by the cluster's tag and the node's slot."""
    run_plan(engine, cluster, BUY[:3])
    emu.control.add_fault(action="RunInstances", lose_answer=True, count=1)
    buy = engine.act(create_run, cluster, RunKind.TEST,
                     [StepSpec("buy", "Instances", "ecs.run_instances")])
    engine.deliver(engine.take()[0])  # the step is claimed and sent
    engine.deliver(engine.take()[0])  # its first attempt: s1 bought, the answer lost
    assert step(buy, "buy").status == StepStatus.WAITING
    emu.control.forget_client_tokens()
    settle(engine, 45)
    assert step(buy, "buy").status == StepStatus.SUCCEEDED, step(buy, "buy").error
    assert len(tagged_instances(emu, cluster)) == 3
    lines = log_of(buy)
    assert any(line.startswith("Adopted i-") and "found by tag" in line for line in lines)
    assert cluster.nodes.count() == 3


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_destroy_releases_exactly_what_the_panel_bought_and_its_key_pair(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    base = emu.vswitch["cidr"].rsplit(".", 1)[0]
    theirs = emu.register_instance("theirs", f"{base}.88", tags={cloud.TAG_KEY: str(cluster.code)})
    run_plan(engine, cluster, BUY)
    bought = {b["id"] for b in tagged_instances(emu, cluster)} - {theirs}
    assert len(bought) == 3
    gone = run_plan(engine, cluster, [
        StepSpec("instances", "Release", "ecs.delete_instances"),
        StepSpec("group", "Group", "ecs.delete_security_group", ["instances"]),
        StepSpec("keypair", "Key pair", "ecs.delete_keypair", ["instances"])], 45)
    assert step(gone, "instances").status == StepStatus.SUCCEEDED, step(gone, "instances").error
    assert step(gone, "group").status == StepStatus.SUCCEEDED, step(gone, "group").error
    assert step(gone, "keypair").status == StepStatus.SUCCEEDED
    assert [b["id"] for b in tagged_instances(emu, cluster)] == [theirs]  # never theirs
    assert set(step(gone, "instances").result["deleted"]) == bought
    (deleted,) = calls(emu, "DeleteKeyPairs")
    assert key_pair_name(cluster) in deleted["params"]["KeyPairNames"]
    assert all(r.state == ResourceState.DELETED for r in cluster.resources.all())


def test_keep_the_instances_releases_none_and_keeps_their_group_and_key_pair(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    from clusters.operations.destroy import destroy_plan  # noqa: PLC0415

    with override_settings(PANEL_CLOUD_POLL_SECONDS=0.2):
        run_plan(engine, cluster, BUY)
    emu.control.clear_calls()
    plan = [dataclasses.replace(spec, depends_on=[d for d in spec.depends_on
                                                  if d.startswith("ecs_")])
            for spec in destroy_plan(cluster, keep_instances=True)
            if spec.key.startswith("ecs_")]
    kept = run_plan(engine, cluster, plan)
    assert [step(kept, s.key).status for s in plan] == [StepStatus.SKIPPED] * 3
    assert calls(emu, "DeleteInstances") == calls(emu, "DeleteSecurityGroup") == []
    assert calls(emu, "DeleteKeyPairs") == []
    assert len(tagged_instances(emu, cluster)) == 3


def test_destroy_plans_the_release_after_k3s_is_off_and_the_group_after_the_instances(
        cluster: Cluster) -> None:
    from clusters.operations.destroy import destroy_plan  # noqa: PLC0415

    plan = {spec.key: spec for spec in destroy_plan(cluster)}
    assert plan["ecs_instances_delete"].handler == "ecs.delete_instances"
    assert plan["ecs_instances_delete"].depends_on == ["uninstall"]
    assert set(plan["ecs_group_delete"].depends_on) == {"ecs_instances_delete", "slb_delete"}
    assert plan["ecs_keypair_delete"].depends_on == ["ecs_instances_delete"]
    assert {"ecs_group_delete", "ecs_keypair_delete"} <= set(plan["finish"].depends_on)
    on_own_hosts = make_cluster(region=cluster.region)
    assert not any(key.startswith("ecs_") for key in
                   (spec.key for spec in destroy_plan(on_own_hosts)))


def test_the_create_plan_buys_first_and_installs_k3s_on_the_order_s_slots(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The plan is made before RunInstances answered: install steps name their node by slot,
    and find it through the slot's ledger row once bought."""
    from clusters.adapters.instance_order import node_of_slot  # noqa: PLC0415
    from clusters.operations.create import create_plan  # noqa: PLC0415

    plan = create_plan(cluster)
    keys = [spec.key for spec in plan]
    assert keys[:4] == ["ecs_keypair", "ecs_group", "ecs_check", "ecs_buy"]
    by_key = {spec.key: spec for spec in plan}
    assert by_key["preflight_cloud"].depends_on == ["ecs_buy"]
    assert [(k, by_key[k].handler, by_key[k].args) for k in keys if k.startswith(
        ("server_", "agent_"))] == [
        ("server_s1", "k3s.install_server", {"slot": "s1"}),
        ("server_s2", "k3s.install_server", {"slot": "s2"}),
        ("agent_a1", "k3s.install_agent", {"slot": "a1"})]
    with override_settings(PANEL_CLOUD_POLL_SECONDS=0.2):
        run_plan(engine, cluster, BUY)
    bought = {b["id"] for b in tagged_instances(emu, cluster)}
    nodes = {slot: node_of_slot(cluster, slot) for slot in ("s1", "s2", "a1")}
    assert {n.ecs_instance_id for n in nodes.values()} == bought
    assert [nodes[s].role for s in ("s1", "s2", "a1")] == ["server", "server", "agent"]


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2, PANEL_RETRY_BASE_SECONDS=0.1)
def test_add_node_buys_new_slots_in_the_clusters_group_with_its_key_once_each(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """Add instances (operations.nodes.add_instances_plan): a DryRun of the new nodes only,
    one RunInstances per node with the cluster's own security group and key pair; a lost
    answer is adopted by the new slot's tag, a second run buys nothing; the add-node
    preflight then checks only the new instances, named by slot."""
    from clusters.adapters.instance_order import next_slots  # noqa: PLC0415
    from clusters.operations.nodes import add_instances_plan  # noqa: PLC0415

    Cluster.objects.filter(pk=cluster.pk).update(k3s_version="v1.32.5+k3s1")
    cluster.refresh_from_db()
    run_plan(engine, cluster, BUY)
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    first = {b["id"] for b in tagged_instances(emu, cluster)}
    emu.control.clear_calls()
    slots = next_slots(cluster, 1, 1)
    assert slots == [("s3", "server"), ("a2", "agent")]
    plan = add_instances_plan(cluster, slots)
    # The DryRun's answer is lost first (a transient error: retried, it buys nothing)...
    emu.control.add_fault(action="RunInstances", lose_answer=True, count=1)
    run = engine.act(create_run, cluster, RunKind.TEST, plan[:3])
    deadline = time.monotonic() + 30
    while step(run, "ecs_check").status != StepStatus.SUCCEEDED:
        assert step(run, "ecs_check").status != StepStatus.FAILED, step(run, "ecs_check").error
        assert time.monotonic() < deadline, "the DryRun was not retried"
        message = engine.queue.pop(0)
        time_passes(message.countdown)
        engine.deliver(message)
    dry = [c for c in calls(emu, "RunInstances") if c["params"].get("DryRun")]
    assert len(dry) == 2 and {c["params"]["Amount"] for c in dry} == {"2"}
    # ...then s3's RunInstances answer, and Alibaba forgets the token: found by its slot tag.
    emu.control.add_fault(action="RunInstances", lose_answer=True, count=1)
    while step(run, "ecs_buy").status not in (StepStatus.WAITING, StepStatus.FAILED):
        message = engine.queue.pop(0)
        time_passes(message.countdown)
        engine.deliver(message)
    emu.control.forget_client_tokens()
    settle(engine, 60)
    assert step(run, "ecs_buy").status == StepStatus.SUCCEEDED, step(run, "ecs_buy").error
    new = {b["id"]: b for b in tagged_instances(emu, cluster) if b["id"] not in first}
    assert sorted(dict((t["Key"], t["Value"]) for t in b["tags"])[NODE_TAG]
                  for b in new.values()) == ["a2", "s3"]
    bought = [c for c in calls(emu, "RunInstances") if not c["params"].get("DryRun")]
    assert all(c["params"]["SecurityGroupId"] == group
               and c["params"]["KeyPairName"] == key_pair_name(cluster) for c in bought)
    assert any(line.startswith("Adopted i-") for line in log_of(run))
    added = cluster.nodes.filter(ecs_instance_id__in=new)
    assert sorted(added.values_list("role", flat=True)) == ["agent", "server"]
    assert step(run, "preflight_cloud").status == StepStatus.SUCCEEDED, (
        step(run, "preflight_cloud").error)
    # Retry / a crash after the buy: the same plan buys nothing more.
    emu.control.clear_calls()
    again = run_plan(engine, cluster, plan[:2])
    assert step(again, "ecs_buy").status == StepStatus.SUCCEEDED
    assert [c for c in calls(emu, "RunInstances") if not c["params"].get("DryRun")] == []
    assert len(tagged_instances(emu, cluster)) == 5 and cluster.nodes.count() == 5


def test_an_existing_key_pair_is_used_only_while_it_matches_the_private_key_held(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The owner's key pair (the wizard checked the pasted key against it): the step uses it
    and imports nothing; once the pair is replaced under the same name, nothing is bought."""
    from clusters.steps.ecs import generate_key_pair  # noqa: PLC0415

    api = cloud.cloud_for(cluster)
    name = f"ops-{str(cluster.code)[:8]}"
    private, public = generate_key_pair("ops")
    api.import_key_pair(name, public)
    Cluster.objects.filter(pk=cluster.pk).update(
        instance_order={**cluster.instance_order, "key_pair": name}, generated_ssh_key=private)
    cluster.refresh_from_db()
    emu.control.clear_calls()
    used = run_plan(engine, cluster, BUY[:1])
    assert step(used, "keypair").status == StepStatus.SUCCEEDED, step(used, "keypair").error
    assert step(used, "keypair").result == {"key_pair": name, "generated": False}
    assert calls(emu, "ImportKeyPair") == []
    api.delete_key_pairs([name])
    api.import_key_pair(name, generate_key_pair("intruder")[1])
    replaced = run_plan(engine, cluster, BUY)
    assert step(replaced, "keypair").status == StepStatus.FAILED
    assert f"Key pair {name} now has fingerprint" in step(replaced, "keypair").error
    assert "it was replaced. Nothing was bought" in step(replaced, "keypair").error
    assert calls(emu, "RunInstances") == []


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_the_group_waits_while_released_instances_are_still_in_it(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """Releasing is asynchronous ("operations of releasing ECS instances and ENIs are
    asynchronous", DeleteSecurityGroup's page): right after DeleteInstances the group
    answers DependencyViolation; the step waits while anything is in it instead of failing."""
    from clusters.core.errors import StepError  # noqa: PLC0415

    run_plan(engine, cluster, BUY)
    api = cloud.cloud_for(cluster)
    bought = [b["id"] for b in tagged_instances(emu, cluster)]
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    api.delete_instances(bought, client_token=f"t-{cluster.code.hex}")
    with pytest.raises(StepError) as caught:
        api.delete_security_group(group)
    assert caught.value.code == "DependencyViolation" and caught.value.request_id
    # One of the owner's hosts still in the group: the step waits for it to leave.
    base = emu.vswitch["cidr"].rsplit(".", 1)[0]
    theirs = emu.register_instance("theirs-member", f"{base}.89")
    api.join_security_group(theirs, group)
    run = engine.act(create_run, cluster, RunKind.TEST,
                     [StepSpec("group", "Group", "ecs.delete_security_group")])
    while engine.queue and engine.queue[0].countdown <= 0:  # up to the step's first Wait
        engine.deliver(engine.queue.pop(0))
    waiting = step(run, "group")
    assert waiting.status == StepStatus.WAITING, waiting.error
    assert "still has members" in waiting.wait_reason
    api.leave_security_group(theirs, group)
    settle(engine)
    assert step(run, "group").status == StepStatus.SUCCEEDED, step(run, "group").error
    answers = [c["code"] for c in calls(emu, "DeleteSecurityGroup")]
    assert "DependencyViolation" in answers and answers[-1] == "", answers
    assert [b["id"] for b in tagged_instances(emu, cluster)] == []


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_a_long_cluster_name_still_makes_valid_distinct_host_names(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    """Cluster names allow 63 characters and "--" (interface/forms/common.py CLUSTER_NAME);
    a Linux HostName is 2-64 characters without consecutive hyphens (V2
    RunInstancesRequest.host_name), which the emulator enforces: the panel derives one."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    # The panel inside the VPC: no bandwidth is ordered, so a panel outside would be refused.
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{emu.vswitch['cidr'].rsplit('.', 1)[0]}.250/32"]
    emu.control.request("POST", "ecs/stock", {"zone_id": emu.vswitch["zone_id"],
                                              "instance_type": TYPE,
                                              "status_category": "WithStock"})
    name = ("a" + "--b" * 20 + "c" * 63)[:63]
    long = make_cluster(name=name, region=emu.region_id, zone=emu.vswitch["zone_id"],
                        vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"],
                        instance_order={"servers": 2, "agents": 0, "image_id": IMAGE,
                                        "instance_type": TYPE, "system_disk_gb": 40})
    run = run_plan(engine, long, BUY)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    found = cloud.cloud_for(long).describe_instances_by_ids(
        b["id"] for b in tagged_instances(emu, long))
    hosts = sorted(i.hostname for i in found)
    assert len(hosts) == 2 and len(set(hosts)) == 2, hosts
    assert all(len(h) <= 64 and "--" not in h for h in hosts), hosts
    assert [h[-3:] for h in hosts] == ["-s1", "-s2"]  # the slot kept: the hosts told apart
    assert sorted(i.name for i in found) == [f"k3s-{name}-s1", f"k3s-{name}-s2"]
    # Several at once: the three-digit UniqueSuffix still fits (DryRunOperation: all valid).
    from clusters.adapters.aliyun import InstanceOrder  # noqa: PLC0415
    from clusters.core.errors import StepError  # noqa: PLC0415

    group = long.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    order = InstanceOrder(IMAGE, TYPE, emu.vswitch["vswitch_id"], group, 2,
                          f"k3s-{name}-a1")
    with pytest.raises(StepError) as caught:
        cloud.cloud_for(long).run_instances(order, client_token=f"d-{long.code.hex}",
                                            tags={}, dry_run=True)
    assert caught.value.code == "DryRunOperation", caught.value


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_removing_a_bought_node_releases_its_instance_only_or_keeps_it_when_asked(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """Remove node (operations.nodes.remove_node_plan), once K3s is off the host and its node
    deleted: an instance the panel bought is released through its ledger row
    (DeleteInstances with the ClientToken recorded in it first), waited for until ECS lists
    it no more; the cluster's other instances stay. With "keep the instance" it stays, the
    ledger says kept, and destroy later releases neither it nor the group it is still in."""
    from clusters.operations.destroy import destroy_plan  # noqa: PLC0415
    from clusters.operations.nodes import remove_node_plan  # noqa: PLC0415

    run_plan(engine, cluster, BUY)
    agent = cluster.nodes.get(role="agent")
    first, second = cluster.nodes.filter(role="server").order_by("pk")

    def instance_steps(plan: list[StepSpec]) -> list[StepSpec]:
        return [dataclasses.replace(spec, depends_on=[]) for spec in plan
                if spec.key.startswith("ecs_")]

    emu.control.clear_calls()
    gone = run_plan(engine, cluster, instance_steps(remove_node_plan(cluster, agent)), 45)
    released = step(gone, "ecs_instance_delete")
    assert released.status == StepStatus.SUCCEEDED, released.error
    assert sorted(b["id"] for b in tagged_instances(emu, cluster)) == sorted(
        [first.ecs_instance_id, second.ecs_instance_id])
    row = cluster.resources.get(provider_id=agent.ecs_instance_id)
    (deleted,) = calls(emu, "DeleteInstances")
    assert deleted["params"]["ClientToken"] == row.attributes["delete_token"]
    sent = [v for k, v in deleted["params"].items() if k.startswith("InstanceId")]
    assert sent == [agent.ecs_instance_id]  # that node's only
    assert row.state == ResourceState.DELETED and not row.attributes.get("kept")
    # Run again (a Retry, a crash after the call): nothing more is released.
    again = run_plan(engine, cluster, [StepSpec("ecs_instance_delete", "Release",
                                                "ecs.delete_instances",
                                                args={"node_id": agent.pk})])
    assert step(again, "ecs_instance_delete").status == StepStatus.SKIPPED
    assert len(calls(emu, "DeleteInstances")) == 1

    plan = remove_node_plan(cluster, second, keep_instance=True)
    kept = run_plan(engine, cluster, instance_steps(plan))
    assert step(kept, "ecs_instance_delete").status == StepStatus.SKIPPED
    assert second.ecs_instance_id in {b["id"] for b in tagged_instances(emu, cluster)}
    row = cluster.resources.get(provider_id=second.ecs_instance_id)
    assert row.state == ResourceState.DELETED and row.attributes["kept"] is True
    # It stays in the nodes' group (its only one): the ledger and the log say so.
    group = cluster.resources.get(kind="ecs_security_group").provider_id
    assert row.attributes["kept_in_group"] == group
    assert f"it stays in the cluster's security group {group} until you move it" in step(
        kept, "ecs_instance_delete").wait_reason
    assert any(line.startswith(f"Kept instance {second.ecs_instance_id}: it stays in the "
                               f"cluster's security group {group}") for line in log_of(kept))
    assert len(calls(emu, "DeleteInstances")) == 1

    destroyed = run_plan(engine, cluster, instance_steps(destroy_plan(cluster)), 45)
    assert step(destroyed, "ecs_instances_delete").status == StepStatus.SUCCEEDED
    assert [b["id"] for b in tagged_instances(emu, cluster)] == [second.ecs_instance_id]
    group = step(destroyed, "ecs_group_delete")
    assert group.status == StepStatus.SKIPPED, group.error
    assert f"kept with instance {second.ecs_instance_id}" in group.wait_reason
    assert calls(emu, "DeleteSecurityGroup") == []
    # Its key pair stays too: the kept instance was bought with it and logs in with it.
    pair = step(destroyed, "ecs_keypair_delete")
    assert pair.status == StepStatus.SKIPPED, pair.error
    assert f"kept with instance {second.ecs_instance_id}" in pair.wait_reason
    assert calls(emu, "DeleteKeyPairs") == [] and key_pair_name(cluster) in _key_pairs(emu)
    assert any(line.startswith("Key pair kept: instance") for line in log_of(destroyed))
    # A network the panel created stays with the kept instance too (it holds an address).
    Cluster.objects.filter(pk=cluster.pk).update(network_order={"vpc_cidr": "10.0.0.0/16"})
    cluster.refresh_from_db()
    network = {s.key: s.args for s in destroy_plan(cluster)}
    assert network["vswitch_delete"]["keep_instances"] is True
    assert network["vpc_delete"]["keep_instances"] is True


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_an_add_node_refusal_says_what_add_instances_can_do_and_what_releases_a_node(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """An add-node run (operations.nodes.add_instances_plan) buys the cluster's own type only
    (AddInstancesForm has no type): a sold-out zone is advised Retry, later, or a host of
    another type added with Add a node; an instance bought before the quota ran out is
    released by removing its node (remove_node_plan), not only by destroying the cluster."""
    from clusters.adapters.instance_order import next_slots  # noqa: PLC0415
    from clusters.operations.nodes import add_instances_plan  # noqa: PLC0415

    run_plan(engine, cluster, BUY)
    slots = next_slots(cluster, 0, 2)
    assert slots == [("a2", "agent"), ("a3", "agent")]
    emu.control.set_ecs_stock(cluster.zone, TYPE, "WithoutStock")
    try:
        check = step(run_plan(engine, cluster, add_instances_plan(cluster, slots)[:1]),
                     "ecs_check")
    finally:
        emu.control.set_ecs_stock(cluster.zone, TYPE, "WithStock")
    assert check.status == StepStatus.FAILED and "OperationDenied.NoStock" in check.error
    assert "nothing was bought" in check.error and "Choose one" not in check.error
    assert (f"Add new instances buys only the cluster's type {TYPE}: press Retry once the "
            f"zone has stock of {TYPE} again, or add the nodes later, or create an instance "
            "of another type yourself and add it as a host with Add a node.") in check.error
    assert "destroy this cluster" not in check.error
    present = sum(r["type"] == "ecs_instance" for r in emu.control.resources())
    emu.control.set_ecs_quota(emu.region_id, present + 1)  # room for a2 only
    try:
        buy = step(run_plan(engine, cluster, [StepSpec(
            "buy", "Instances", "ecs.run_instances",
            args={"slots": [list(pair) for pair in slots]})]), "buy")
    finally:
        emu.control.set_ecs_quota(emu.region_id, None)
    a2 = cluster.resources.get(kind="ecs_instance_a2").provider_id
    assert buy.status == StepStatus.FAILED and "QuotaExceed" in buy.error, buy.error
    assert (f"a2 ({a2}) was bought and is kept (billed from its creation); a3 was not "
            "bought") in buy.error
    assert "does not allow 1 more instance (" in buy.error
    assert ("Retry buys only a3, of the order's type ecs.g7.large, and keeps what was bought; "
            "removing the node instead releases it.") in buy.error
    assert "destroying the cluster" not in buy.error


# --- the key pair is the panel's only while it has the panel's fingerprint ------------------

def _key_pairs(emu: Emulator) -> dict[str, str]:
    """Name -> fingerprint of every key pair of the region, as DescribeKeyPairs lists them."""
    from aliyunsdkecs.request.v20140526.DescribeKeyPairsRequest import (  # noqa: PLC0415
        DescribeKeyPairsRequest,
    )

    from tests.support.factories import TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET  # noqa: PLC0415

    request = DescribeKeyPairsRequest()
    request.set_PageSize(50)
    body = emu.call(request, emu.client(access_key_id=TEST_ACCESS_KEY_ID,
                                        access_key_secret=TEST_ACCESS_KEY_SECRET))
    return {k["KeyPairName"]: k["KeyPairFingerPrint"] for k in body["KeyPairs"]["KeyPair"]}


def test_the_key_pair_name_holds_the_cluster_s_whole_code(cluster: Cluster) -> None:
    name = key_pair_name(cluster)
    assert name.startswith(f"k3s-{cluster.code.hex}-") and len(name) <= 128
    other = make_cluster(name=cluster.name, region=cluster.region)
    assert key_pair_name(other) != name  # two clusters of one name never share a pair


def test_destroy_leaves_a_same_named_key_pair_the_panel_did_not_import(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """ImportKeyPair refused (the name was taken: KeyPair.AlreadyExist), and the pair of
    that name is someone else's: destroy compares DescribeKeyPairs' fingerprint with the
    one the ledger recorded for the panel's key, and leaves theirs."""
    from clusters.steps.ecs import generate_key_pair  # noqa: PLC0415

    emu.control.add_fault(action="ImportKeyPair", code="KeyPair.AlreadyExist", http_status=400,
                          message="The key pair already exist.", count=1)
    made = run_plan(engine, cluster, BUY[:1])
    failed = step(made, "keypair")
    assert failed.status == StepStatus.FAILED and "it is not the panel's" in failed.error
    name = key_pair_name(cluster)
    row = cluster.resources.get(kind=KEY_PAIR_KIND)
    cluster.refresh_from_db()
    assert row.provider_id == name
    assert row.attributes["fingerprint"] == md5_fingerprint(cluster.generated_ssh_public_key)
    # The one who took the name imports their own key under it.
    _, theirs = generate_key_pair("someone-else")
    their_fingerprint = cloud.cloud_for(cluster).import_key_pair(name, theirs)
    emu.control.clear_calls()
    gone = run_plan(engine, cluster, [StepSpec("keypair", "Key pair", "ecs.delete_keypair")])
    assert step(gone, "keypair").status == StepStatus.SUCCEEDED, step(gone, "keypair").error
    assert calls(emu, "DeleteKeyPairs") == []
    assert _key_pairs(emu)[name] == their_fingerprint
    assert step(gone, "keypair").result == {"deleted": [], "left": [name]}
    assert any(line.startswith(f"Left key pair {name}: its fingerprint is {their_fingerprint}")
               for line in log_of(gone))


def test_destroy_deletes_the_panel_s_own_pair_by_its_fingerprint(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    made = run_plan(engine, cluster, BUY[:1])
    assert step(made, "keypair").status == StepStatus.SUCCEEDED, step(made, "keypair").error
    name = key_pair_name(cluster)
    assert name in _key_pairs(emu)
    gone = run_plan(engine, cluster, [StepSpec("keypair", "Key pair", "ecs.delete_keypair")])
    assert step(gone, "keypair").result == {"deleted": [name], "left": []}
    assert name not in _key_pairs(emu)


# --- a public address when bandwidth was ordered ---------------------------------------------

@pytest.mark.parametrize("panel_inside", [False, True])
@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_bought_with_bandwidth_a_node_records_its_public_address_and_ssh_picks_the_reachable_one(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster, settings: Any,
        panel_inside: bool) -> None:
    """RunInstances with InternetMaxBandwidthOut > 0 assigns a public address (V2
    RunInstancesRequest.internet_max_bandwidth_out; the emulator allocates it from its
    public range): DescribeInstances lists it, the Node records it. SSH goes there when the
    panel comes from outside the VPC (PANEL_SSH_SOURCE_CIDRS outside the VPC's block), else
    to the private address: the group admits the panel's SSH only from those sources."""
    from clusters.adapters import nodes as node_adapter  # noqa: PLC0415

    if not panel_inside:
        settings.PANEL_SSH_SOURCE_CIDRS = ["203.0.113.9/32"]
    Cluster.objects.filter(pk=cluster.pk).update(instance_order={
        **cluster.instance_order, "servers": 1, "agents": 0, "public_bandwidth_mbps": 5})
    cluster.refresh_from_db()
    run = run_plan(engine, cluster, BUY)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    (bought,) = tagged_instances(emu, cluster)
    private, public = bought["addresses"]
    (node,) = cluster.nodes.all()
    assert (node.private_ip, node.public_ip) == (private, public)
    assert node_adapter.target_for(node).host == (private if panel_inside else public)
    assert any(f"(public {public})" in line for line in log_of(run))


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_bought_without_bandwidth_a_node_has_no_public_address(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(instance_order={
        **cluster.instance_order, "servers": 1, "agents": 0, "public_bandwidth_mbps": 0})
    cluster.refresh_from_db()
    run = run_plan(engine, cluster, BUY)
    assert step(run, "buy").status == StepStatus.SUCCEEDED, step(run, "buy").error
    (node,) = cluster.nodes.all()
    assert node.public_ip is None and node.ssh_address == node.private_ip


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_a_kept_instance_added_back_by_address_is_never_taken_out_of_the_group(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """A bought agent removed with "keep the instance" stays in the nodes' group; added back
    by address, the join step finds it a member already, which the panel did not make: no
    ledger row, so removing it again and destroying never send LeaveSecurityGroup (of its
    only group, ECS answers InvalidOperation.InstanceSecurityGroupLimit: the removal and
    the destroy would fail)."""
    from clusters.models import NodeStatus  # noqa: PLC0415
    from clusters.operations.destroy import destroy_plan  # noqa: PLC0415
    from clusters.operations.nodes import add_nodes_plan, remove_node_plan  # noqa: PLC0415

    run_plan(engine, cluster, BUY)
    agent = cluster.nodes.get(role="agent")

    def ecs_steps(plan: list[StepSpec]) -> list[StepSpec]:
        return [dataclasses.replace(spec, depends_on=[d for d in spec.depends_on
                                                      if d.startswith("ecs_")])
                for spec in plan if spec.key.startswith("ecs_")]

    kept = run_plan(engine, cluster, ecs_steps(remove_node_plan(cluster, agent,
                                                                keep_instance=True)))
    assert step(kept, "ecs_instance_delete").status == StepStatus.SKIPPED
    # Added back by address: the same Node row, pending, its instance found by preflight.
    type(agent).objects.filter(pk=agent.pk).update(status=NodeStatus.PENDING)
    emu.control.clear_calls()
    joined = run_plan(engine, cluster, ecs_steps(add_nodes_plan(cluster, [agent])))
    assert step(joined, "ecs_join").status == StepStatus.SUCCEEDED, step(joined, "ecs_join").error
    assert calls(emu, "JoinSecurityGroup") == []
    assert not cluster.resources.filter(kind__startswith="ecs_join_").exists()
    assert any("Already in sg-" in line and agent.ecs_instance_id in line
               for line in log_of(joined))
    # Removed again, then the cluster destroyed: nothing fails, nothing leaves the group.
    again = run_plan(engine, cluster, ecs_steps(remove_node_plan(cluster, agent)))
    assert all(s.status != StepStatus.FAILED for s in again.steps.all())
    type(agent).objects.filter(pk=agent.pk).update(status=NodeStatus.REMOVED)
    gone = run_plan(engine, cluster, ecs_steps(destroy_plan(cluster)), 45)
    assert [(s.key, s.error) for s in gone.steps.all() if s.status == StepStatus.FAILED] == []
    assert calls(emu, "LeaveSecurityGroup") == []
    assert agent.ecs_instance_id in {b["id"] for b in tagged_instances(emu, cluster)}


@override_settings(PANEL_CLOUD_POLL_SECONDS=0.2)
def test_removing_a_node_whose_instance_the_owner_released_by_hand_reaches_its_ledger(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The owner deleted a bought node's instance in the ECS console: the removal's
    uninstall finds it no longer listed (DescribeInstances) and is skipped, "instance
    released", instead of failing after its retries on a host that cannot answer; the
    instance step then closes its ledger row."""
    import socket  # noqa: PLC0415

    from clusters.operations.nodes import remove_node_plan  # noqa: PLC0415

    run_plan(engine, cluster, BUY)
    agent = cluster.nodes.get(role="agent")
    api = cloud.cloud_for(cluster)
    api.delete_instances([agent.ecs_instance_id], client_token="by-hand-in-the-console")
    deadline = time.monotonic() + 30
    while api.describe_instances_by_ids([agent.ecs_instance_id]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    # Were SSH tried, it would be refused at once, on loopback (a closed port); the host
    # was reached before (a pinned key), so an unreachable host is not "never reached".
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    type(agent).objects.filter(pk=agent.pk).update(public_ip="127.0.0.1", ssh_port=closed,
                                                    ssh_private_only=False, host_key=(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPinnedPinnedPinnedPinnedPinnedPinnedPinned"))
    keys = {"uninstall", "ecs_instance_delete"}
    plan = [dataclasses.replace(spec, depends_on=[d for d in spec.depends_on if d in keys])
            for spec in remove_node_plan(cluster, agent) if spec.key in keys]
    removal = run_plan(engine, cluster, plan, 45)
    uninstall = step(removal, "uninstall")
    assert uninstall.status == StepStatus.SKIPPED, uninstall.error
    assert "instance released" in uninstall.wait_reason
    released = step(removal, "ecs_instance_delete")
    assert released.status == StepStatus.SUCCEEDED, released.error
    assert cluster.resources.get(provider_id=agent.ecs_instance_id).state == ResourceState.DELETED

def test_a_panel_outside_the_vpc_is_refused_instances_without_a_public_address(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster, settings: Any) -> None:
    """Without bandwidth RunInstances assigns no public address (V2 RunInstancesRequest.
    InternetMaxBandwidthOut), and a panel outside the VPC has no route to a private one: the
    order is refused before anything is bought, with what to do instead."""
    settings.PANEL_SSH_SOURCE_CIDRS = ["203.0.113.9/32"]
    run = run_plan(engine, cluster, BUY)
    assert step(run, "check").status == StepStatus.FAILED
    error = step(run, "check").error
    assert "Order public bandwidth" in error and "run the panel inside the VPC" in error
    assert not tagged_instances(emu, cluster)
    assert not [c for c in emu.control.calls() if c["action"] == "RunInstances"]
