"""The VPC and vSwitch the panel creates for a cluster (steps/network.py): bought once through
the ledger with the ClientToken recorded first, tagged, waited for until Available, named by
the cluster afterwards; at destroy deleted only if the panel created them, and only once
nothing is in them any more (DependencyViolation is waited out, as terraform-provider-alicloud
resource_alicloud_vpc.go / resource_alicloud_vswitch.go do).

The engine runs in this process; the steps talk to a real emulator through the SDK, and what
exists is read back from the emulator with plain SDK calls.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest
from aliyunsdkvpc.request.v20160428.DescribeVSwitchesRequest import DescribeVSwitchesRequest
from django.test import override_settings

from clusters.adapters import cloud
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Cluster, LogLine, ResourceState, Run, RunKind, StepStatus
from clusters.operations.create import create_plan
from clusters.operations.destroy import destroy_plan
from clusters.steps.network import VPC_KIND, VSWITCH_KIND
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, in_process_engine, time_passes
from tests.support.factories import (
    TEST_ACCESS_KEY_ID,
    TEST_ACCESS_KEY_SECRET,
    factories_emulator,
    make_cluster,
)
from tests.support.runs import step

pytestmark = pytest.mark.django_db

VPC_CIDR, VSWITCH_CIDR = "10.40.0.0/16", "10.40.1.0/24"
ORDER = {"servers": 2, "agents": 1, "image_id": "ubuntu_22_04_x64_20G_alibase_20240101.vhd",
         "instance_type": "ecs.g7.large", "system_disk_category": "cloud_essd",
         "system_disk_gb": 40, "public_bandwidth_mbps": 0, "key_pair": ""}


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with factories_emulator(Path(tmp_path_factory.mktemp("network"))) as emulator:
        yield emulator


@pytest.fixture
def engine(db: Any) -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven


@pytest.fixture
def cluster(emu: Emulator, settings: Any) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    emu.control.clear_faults()
    emu.control.clear_calls()
    return make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"], vpc_id="",
                        vswitch_id="", network_order={"vpc_cidr": VPC_CIDR,
                                                      "vswitch_cidr": VSWITCH_CIDR})


def sdk_client(emu: Emulator) -> Any:
    return emu.client(access_key_id=TEST_ACCESS_KEY_ID, access_key_secret=TEST_ACCESS_KEY_SECRET)


def tagged(emu: Emulator, cluster: Cluster) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The VPCs and vSwitches carrying the cluster's tag, as the VPC API lists them."""
    tag = [{"Key": cloud.TAG_KEY, "Value": str(cluster.code)}]
    vpcs = DescribeVpcsRequest()
    vpcs.set_Tags(tag)
    switches = DescribeVSwitchesRequest()
    switches.set_Tags(tag)
    return (emu.call(vpcs, sdk_client(emu))["Vpcs"]["Vpc"],
            emu.call(switches, sdk_client(emu))["VSwitches"]["VSwitch"])


def calls(emu: Emulator, action: str) -> list[dict[str, Any]]:
    return [c for c in emu.control.calls() if c["action"] == action]


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


HELD: list[Any] = []  # messages taken but not yet due (delivered by `settle`)


def start(engine: InProcessEngine, cluster: Cluster, specs: list[StepSpec]) -> Run:
    """Create the run and deliver what is due at once; what waits is held for `settle`."""
    HELD.clear()
    run = engine.act(create_run, cluster, RunKind.TEST, specs)
    due_now(engine)
    return run


def due_now(engine: InProcessEngine) -> None:
    for _ in range(50):
        messages = engine.take()
        HELD.extend(m for m in messages if m.countdown > 0)
        ready = [m for m in messages if m.countdown <= 0]
        if not ready:
            return
        for message in ready:
            engine.deliver(message)


def settle(engine: InProcessEngine, rounds: int = 60) -> None:
    """Deliver everything, letting (test-clock) time pass over every Wait."""
    for _ in range(rounds):
        messages = [*HELD, *engine.take()]
        HELD.clear()
        if not messages:
            return
        for message in messages:
            if message.countdown > 0:
                time_passes(message.countdown)
            engine.deliver(message)


NETWORK = [StepSpec("vpc", "VPC", "vpc.create"),
           StepSpec("vsw", "vSwitch", "vswitch.create", ["vpc"])]


def test_the_vpc_and_vswitch_are_bought_with_the_recorded_tokens_tagged_and_waited_for(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    run = start(engine, cluster, NETWORK)
    waiting = step(run, "vpc")
    assert waiting.status == StepStatus.WAITING
    assert "to be Available (Pending)" in waiting.wait_reason  # a new VPC is Pending first
    settle(engine)
    assert step(run, "vsw").status == StepStatus.SUCCEEDED, step(run, "vsw").error
    vpc_row = cluster.resources.get(kind=VPC_KIND)
    vsw_row = cluster.resources.get(kind=VSWITCH_KIND)
    (create_vpc,) = calls(emu, "CreateVpc")
    (create_vsw,) = calls(emu, "CreateVSwitch")
    assert create_vpc["params"]["ClientToken"] == vpc_row.client_token
    assert create_vpc["params"]["CidrBlock"] == VPC_CIDR
    assert create_vsw["params"]["ClientToken"] == vsw_row.client_token
    assert create_vsw["params"]["ZoneId"] == cluster.zone
    vpcs, switches = tagged(emu, cluster)
    assert [(v["VpcId"], v["CidrBlock"], v["Status"]) for v in vpcs] == [
        (vpc_row.provider_id, VPC_CIDR, "Available")]
    assert [(s["VSwitchId"], s["VpcId"], s["CidrBlock"]) for s in switches] == [
        (vsw_row.provider_id, vpc_row.provider_id, VSWITCH_CIDR)]
    cluster.refresh_from_db()
    assert (cluster.vpc_id, cluster.vswitch_id) == (vpc_row.provider_id, vsw_row.provider_id)
    assert vpc_row.state == vsw_row.state == ResourceState.PRESENT


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_create_vpc_answer_is_adopted_by_tag_never_bought_twice(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    emu.control.add_fault(action="CreateVpc", lose_answer=True, count=1)
    run = start(engine, cluster, NETWORK)
    emu.control.forget_client_tokens()  # even with the token forgotten: the tag finds it
    settle(engine)
    assert step(run, "vsw").status == StepStatus.SUCCEEDED, step(run, "vsw").error
    vpcs, _ = tagged(emu, cluster)
    assert len(vpcs) == 1
    assert len(calls(emu, "CreateVpc")) == 1
    assert cluster.resources.get(kind=VPC_KIND).provider_id == vpcs[0]["VpcId"]
    assert any(line.startswith(f"Adopted {vpcs[0]['VpcId']} found by tag")
               for line in log_of(run))


def test_a_bad_block_is_refused_with_alibabas_code_and_nothing_is_bought(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    cluster.network_order = {"vpc_cidr": VPC_CIDR, "vswitch_cidr": "10.41.0.0/24"}
    cluster.save()
    run = start(engine, cluster, NETWORK)
    settle(engine)
    failed = step(run, "vsw")
    assert failed.status == StepStatus.FAILED
    assert "InvalidParameter" in failed.error or "not valid in VPC" in failed.error
    assert tagged(emu, cluster)[1] == []


def test_destroy_waits_for_the_security_group_then_deletes_vswitch_and_vpc(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    start(engine, cluster, NETWORK)
    settle(engine)
    cluster.refresh_from_db()
    api = cloud.cloud_for(cluster)
    group = api.create_security_group(name="nodes", vpc_id=cluster.vpc_id, description="x",
                                      client_token=f"g-{cluster.code.hex}",
                                      tags=cloud.tags(cluster))
    run = start(engine, cluster, [StepSpec("vsw", "vSwitch", "vpc.delete_vswitch"),
                                  StepSpec("vpc", "VPC", "vpc.delete", ["vsw"])])
    settle(engine, rounds=3)
    for _ in range(100):  # the vSwitch step waits for its deletion to complete first
        waiting = step(run, "vpc")
        if "DependencyViolation.SecurityGroup" in waiting.wait_reason:
            break
        time.sleep(0.02)
        settle(engine, rounds=1)
    # One DeleteVSwitch, then waited for until gone: the VPC's delete never met it.
    assert len(calls(emu, "DeleteVSwitch")) == 1
    assert "DependencyViolation.VSwitch" not in [c["code"] for c in calls(emu, "DeleteVpc")]
    assert waiting.status == StepStatus.WAITING
    assert "DependencyViolation.SecurityGroup" in waiting.wait_reason
    assert tagged(emu, cluster)[1] == []  # the vSwitch went first
    api.delete_security_group(group)
    settle(engine)
    assert step(run, "vpc").status == StepStatus.SUCCEEDED, step(run, "vpc").error
    assert tagged(emu, cluster) == ([], [])  # the step waited for the deletions to complete
    assert not cluster.resources.filter(kind__in=(VPC_KIND, VSWITCH_KIND),
                                        deleted_at__isnull=True).exists()


def test_a_vpc_the_owner_chose_is_never_created_nor_deleted(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    emu.control.clear_calls()
    owned = make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"],
                         vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"])
    run = start(engine, owned, [*NETWORK, StepSpec("dvsw", "d", "vpc.delete_vswitch"),
                                StepSpec("dvpc", "d", "vpc.delete")])
    settle(engine)
    assert {step(run, key).status for key in ("vpc", "vsw", "dvsw", "dvpc")} == {
        StepStatus.SKIPPED}
    assert not any(calls(emu, action) for action in ("CreateVpc", "CreateVSwitch", "DeleteVpc",
                                                     "DeleteVSwitch"))


def test_the_plans_order_the_network_first_at_create_and_last_at_destroy(
        cluster: Cluster) -> None:
    cluster.instance_order = ORDER
    cluster.save()
    create = {spec.key: list(spec.depends_on) for spec in create_plan(cluster)}
    assert create["vpc_create"] == []
    assert create["vswitch_create"] == ["vpc_create"]
    assert create["ecs_keypair"] == ["vswitch_create"]  # then the group and the instances
    destroy = {spec.key: list(spec.depends_on) for spec in destroy_plan(cluster)}
    assert {"ecs_instances_delete", "ecs_group_delete", "slb_delete", "rds_delete"} <= set(
        destroy["vswitch_delete"])
    assert destroy["vpc_delete"] == ["vswitch_delete"]
    assert "vpc_delete" in destroy["finish"]


def test_a_sold_out_type_fails_before_the_network_is_created(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    cluster.instance_order = ORDER
    cluster.save()
    emu.control.request("POST", "ecs/stock", {"zone_id": cluster.zone,
                                              "instance_type": ORDER["instance_type"],
                                              "status_category": "WithoutStock"})
    try:
        run = start(engine, cluster, NETWORK)
        settle(engine)
    finally:
        emu.control.request("POST", "ecs/stock", {"zone_id": cluster.zone,
                                                  "instance_type": ORDER["instance_type"],
                                                  "status_category": "WithStock"})
    failed = step(run, "vpc")
    assert failed.status == StepStatus.FAILED
    assert f"ECS has no stock of {ORDER['instance_type']} in {cluster.zone}" in failed.error
    assert "sells now (DescribeAvailableResource): " in failed.error
    assert "ecs.g8i.large (2 vCPU, 8 GiB)" in failed.error
    assert calls(emu, "CreateVpc") == [] and tagged(emu, cluster) == ([], [])


def test_destroy_keeping_the_rds_keeps_the_network_it_sits_in(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """"Keep the RDS" on a network the panel created: the kept instance holds an address in
    the vSwitch, so the vSwitch and VPC stay (skipped, said why) instead of waiting on
    DependencyViolation until the step's deadline and never finishing the destroy."""
    start(engine, cluster, NETWORK)
    settle(engine)
    cluster.refresh_from_db()
    destroy = {spec.key: spec for spec in destroy_plan(cluster, keep_database=True)}
    assert destroy["vswitch_delete"].args["keep_database"] is True
    run = start(engine, cluster, [
        StepSpec("vsw", "vSwitch", "vpc.delete_vswitch", [], destroy["vswitch_delete"].args),
        StepSpec("vpc", "VPC", "vpc.delete", ["vsw"], destroy["vpc_delete"].args)])
    settle(engine)
    assert {step(run, key).status for key in ("vsw", "vpc")} == {StepStatus.SKIPPED}
    assert tagged(emu, cluster)[0] and tagged(emu, cluster)[1]  # both still there


def _nlb_inventory(emu: Emulator, cluster: Cluster) -> list[dict[str, Any]]:
    tag = {"Key": cloud.TAG_KEY, "Value": str(cluster.code)}
    return [r for r in emu.control.resources() if r["type"] == "nlb_load_balancer"
            and tag in r["tags"] and r["state"] != "Deleted"]


SETTLE_SECONDS = 180  # generous: the NLB's jobs take a few seconds of real time here


def _run_real_time(engine: InProcessEngine, cluster: Cluster, specs: list[StepSpec]) -> Run:
    """Run until nothing is left; a Wait lets a little real time pass too (the emulator's NLB
    jobs complete on its own clock)."""
    import time  # noqa: PLC0415

    run = engine.act(create_run, cluster, RunKind.TEST, specs)
    # A deadline, not a count of rounds: on a loaded machine each round takes longer, and
    # the emulator's jobs finish on its own clock whatever the rounds are.
    deadline = time.monotonic() + SETTLE_SECONDS
    while messages := engine.take():
        assert time.monotonic() < deadline, f"the run did not settle in {SETTLE_SECONDS} s"
        for message in messages:
            if message.countdown > 0:
                time.sleep(min(message.countdown, 0.05))
                time_passes(message.countdown)
            engine.deliver(message)
    return run


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_an_nlb_in_a_created_vpc_gets_a_second_vswitch_in_another_zone_and_both_go_at_destroy(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """CreateLoadBalancer (NLB) needs a vSwitch in each of two zones where the region has
    two (V2 alibabacloud_nlb20220430 CreateLoadBalancerRequest.zone_mappings; the emulator
    answers InvalidZones to one): the panel creates the second in the order's second zone,
    through the ledger with its ClientToken, the NLB is made across both, and destroy deletes
    the NLB, then both vSwitches, then the VPC."""
    zones = emu.seed_document["regions"][0]["zones"]
    second = next(zone for zone in zones if zone != cluster.zone)
    Cluster.objects.filter(pk=cluster.pk).update(
        load_balancer_kind="nlb", instance_order=ORDER,
        network_order={"vpc_cidr": VPC_CIDR, "vswitch_cidr": VSWITCH_CIDR, "zone2": second,
                       "vswitch2_cidr": "10.40.2.0/24"})
    cluster.refresh_from_db()
    plan = {spec.key: spec for spec in create_plan(cluster)}
    assert plan["vswitch2_create"].handler == "vswitch.create_second"
    assert plan["vswitch2_create"].depends_on == ["vswitch_create"]
    assert plan["ecs_keypair"].depends_on == ["vswitch2_create"]
    run = _run_real_time(engine, cluster, [*NETWORK,
                                           StepSpec("vsw2", "second", "vswitch.create_second",
                                                    ["vsw"]),
                                           StepSpec("nlb", "NLB", "nlb.create", ["vsw2"])])
    assert step(run, "nlb").status == StepStatus.SUCCEEDED, (step(run, "vsw2").error,
                                                             step(run, "nlb").error)
    cluster.refresh_from_db()
    row = cluster.resources.get(kind="vswitch_nlb")
    vswitches = {s["ZoneId"]: s for s in tagged(emu, cluster)[1]}
    assert set(vswitches) == {cluster.zone, second}
    assert vswitches[second]["VSwitchId"] == row.provider_id
    assert vswitches[second]["CidrBlock"] == "10.40.2.0/24"
    assert vswitches[cluster.zone]["VSwitchId"] == cluster.vswitch_id
    (create,) = [c for c in calls(emu, "CreateVSwitch") if c["params"]["ZoneId"] == second]
    assert create["params"]["ClientToken"] == row.client_token
    assert cluster.nlb_zones == [{"zone": cluster.zone, "vswitch_id": cluster.vswitch_id},
                                 {"zone": second, "vswitch_id": row.provider_id}]
    (nlb,) = _nlb_inventory(emu, cluster)
    assert sorted((z["zone_id"], z["vswitch_id"]) for z in nlb["zones"]) == sorted(
        [(cluster.zone, cluster.vswitch_id), (second, row.provider_id)])

    destroy = {spec.key: spec for spec in destroy_plan(cluster)}
    assert "slb_delete" in destroy["vswitch_delete"].depends_on
    gone = _run_real_time(engine, cluster, [
        StepSpec("nlb", "NLB", "destroy.nlb"),
        StepSpec("vsw", "vSwitches", "vpc.delete_vswitch", ["nlb"]),
        StepSpec("vpc", "VPC", "vpc.delete", ["vsw"])])
    assert step(gone, "vpc").status == StepStatus.SUCCEEDED, (step(gone, "vsw").error,
                                                              step(gone, "vpc").error)
    assert tagged(emu, cluster) == ([], [])
    assert _nlb_inventory(emu, cluster) == []
    assert sorted(step(gone, "vsw").result["deleted"]) == sorted(
        [cluster.vswitch_id, row.provider_id])
    assert not cluster.resources.filter(kind__in=("vpc", "vswitch", "vswitch_nlb"),
                                        deleted_at__isnull=True).exists()


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_keeping_the_instances_still_deletes_the_nlb_s_emptied_second_vswitch(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The kept instances (and a kept RDS) sit in the first vSwitch; the second held only the
    NLB, gone by then: it is deleted, the first vSwitch and the VPC stay with what is kept,
    and the step's title says vSwitches."""
    zones = emu.seed_document["regions"][0]["zones"]
    second = next(zone for zone in zones if zone != cluster.zone)
    Cluster.objects.filter(pk=cluster.pk).update(
        load_balancer_kind="nlb", instance_order=ORDER,
        network_order={"vpc_cidr": VPC_CIDR, "vswitch_cidr": VSWITCH_CIDR, "zone2": second,
                       "vswitch2_cidr": "10.40.2.0/24"})
    cluster.refresh_from_db()
    run = _run_real_time(engine, cluster, [*NETWORK,
                                           StepSpec("vsw2", "second", "vswitch.create_second",
                                                    ["vsw"]),
                                           StepSpec("nlb", "NLB", "nlb.create", ["vsw2"])])
    assert step(run, "nlb").status == StepStatus.SUCCEEDED, step(run, "nlb").error
    cluster.refresh_from_db()
    second_id = cluster.resources.get(kind="vswitch_nlb").provider_id
    destroy = {spec.key: spec for spec in destroy_plan(cluster, keep_instances=True)}
    assert destroy["vswitch_delete"].title.msgid == "Delete the vSwitches the panel created"
    gone = _run_real_time(engine, cluster, [
        StepSpec("nlb", "NLB", "destroy.nlb"),
        StepSpec("vsw", "vSwitches", "vpc.delete_vswitch", ["nlb"],
                 destroy["vswitch_delete"].args),
        StepSpec("vpc", "VPC", "vpc.delete", ["vsw"], destroy["vpc_delete"].args)])
    assert step(gone, "vsw").status == StepStatus.SUCCEEDED, step(gone, "vsw").error
    assert step(gone, "vpc").status == StepStatus.SKIPPED
    vpcs, vswitches = tagged(emu, cluster)
    assert [s["VSwitchId"] for s in vswitches] == [cluster.vswitch_id] and vpcs
    result = step(gone, "vsw").result  # besides the step's memo (what it asked, its deadline)
    assert (result["deleted"], result["kept"]) == ([second_id], [cluster.vswitch_id])
    assert cluster.resources.get(kind="vswitch_nlb").state == "deleted"
