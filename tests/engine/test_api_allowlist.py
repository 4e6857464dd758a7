"""The API's allow-list (slb.acl, slb.listener, destroy.slb) against a real emulator.

The engine runs in this process (tests/support/engine_specs.py); the steps call the emulator
through the SDK. CreateAccessControlList takes no ClientToken, so an ACL whose create answer
was lost must be found again by the cluster's tag, never bought twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from clusters.adapters import cloud
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Cluster, LogLine, ResourceState, Run, RunKind, StepStatus
from clusters.operations.create import create_plan
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, time_passes
from tests.support.factories import make_cluster
from tests.support.runs import step

pytestmark = pytest.mark.django_db


def internet_cluster(emu: Emulator, settings: Any, cidrs: list[str]) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    emu.control.clear_faults()
    return make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"],
                        vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"],
                        slb_address_type="internet", api_allowed_cidrs=cidrs)


def run_steps(engine: InProcessEngine, cluster: Cluster, *handlers: str) -> Run:
    specs, previous = [], []
    for index, handler in enumerate(handlers):
        specs.append(StepSpec(f"s{index}", handler, handler, previous))
        previous = [f"s{index}"]
    run = engine.act(create_run, cluster, RunKind.TEST, specs)
    for _ in range(50):
        messages = engine.take()
        if not messages:
            break
        for message in messages:
            if message.countdown > 0:
                time_passes(message.countdown)
            engine.deliver(message)
    return run


def acls_of(emu: Emulator, cluster: Cluster) -> dict[str, list[str]]:
    """The emulator's inventory of this cluster's ACLs: id -> entries."""
    tag = {"Key": cloud.TAG_KEY, "Value": str(cluster.code)}
    return {r["id"]: r["entries"] for r in emu.control.resources()
            if r["type"] == "slb_acl" and tag in r["tags"]}


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_acl_create_is_adopted_by_tag_and_holds_exactly_the_allow_list(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    cluster = internet_cluster(emu, settings, ["203.0.113.0/24"])
    emu.control.add_fault(action="CreateAccessControlList", lose_answer=True, count=1)
    run = run_steps(engine, cluster, "slb.acl")
    assert step(run, "s0").status == StepStatus.SUCCEEDED, log_of(run)
    (acl_id,) = acls_of(emu, cluster)  # bought once, although its answer was lost
    assert acls_of(emu, cluster)[acl_id] == ["203.0.113.0/24"]
    row = cluster.resources.get(kind="slb_acl")
    assert (row.provider_id, row.state) == (acl_id, ResourceState.PRESENT)
    assert any(line.startswith(f"Adopted {acl_id} found by tag") for line in log_of(run))

    # The list changed: the new entry goes in before the old one goes out, same ACL.
    Cluster.objects.filter(pk=cluster.pk).update(api_allowed_cidrs=["198.51.100.7/32"])
    again = run_steps(engine, Cluster.objects.get(pk=cluster.pk), "slb.acl")
    assert step(again, "s0").status == StepStatus.SUCCEEDED
    assert acls_of(emu, cluster) == {acl_id: ["198.51.100.7/32"]}
    lines = log_of(again)
    assert lines.index(f"Allowed 198.51.100.7/32 in {acl_id}") < lines.index(
        f"Removed 203.0.113.0/24 from {acl_id}")


def test_an_internet_api_without_an_allow_list_is_never_opened(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    """A CLB whitelist with no entries forwards everyone, so none is made."""
    cluster = internet_cluster(emu, settings, [])
    run = run_steps(engine, cluster, "slb.acl")
    failed = step(run, "s0")
    assert failed.status == StepStatus.FAILED
    assert "open to the whole Internet" in failed.error
    assert acls_of(emu, cluster) == {}


def test_the_listener_is_born_behind_the_whitelist_and_destroy_deletes_both(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    cluster = internet_cluster(emu, settings, ["203.0.113.0/24"])
    run = run_steps(engine, cluster, "slb.create", "slb.acl")
    assert step(run, "s1").status == StepStatus.SUCCEEDED, log_of(run)
    (acl_id,) = acls_of(emu, cluster)
    api = cloud.cloud_for(cluster)
    balancer = cluster.resources.get(kind="slb").provider_id
    api.create_tcp_listener(balancer, whitelist_acl_id=acl_id)  # what slb.listener sends
    listener = api.describe_tcp_listener(balancer)
    assert listener is not None
    assert (listener.acl_status, listener.acl_type, listener.acl_id) == ("on", "white", acl_id)

    destroyed = run_steps(engine, cluster, "destroy.slb")
    assert step(destroyed, "s0").status == StepStatus.SUCCEEDED, log_of(destroyed)
    assert acls_of(emu, cluster) == {}
    assert api.describe_acl(acl_id) is None
    assert set(cluster.resources.values_list("state", flat=True)) == {ResourceState.DELETED}
    assert f"Deleted access control list {acl_id} (the API's allow-list)" in log_of(destroyed)


def test_the_create_plan_puts_the_allow_list_before_the_listener(db: Any) -> None:
    guarded = make_cluster(nodes=2, slb_address_type="internet",
                           api_allowed_cidrs=["203.0.113.0/24"])
    specs = {spec.key: spec for spec in create_plan(guarded)}
    assert specs["slb_acl"].handler == "slb.acl"
    assert list(specs["slb_acl"].depends_on) == ["slb_create"]
    assert "slb_acl" in specs["slb_listener"].depends_on
    plain = make_cluster(nodes=2)
    assert "slb_acl" not in {spec.key for spec in create_plan(plain)}
