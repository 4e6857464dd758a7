"""A worker killed with SIGKILL while RunInstances is under way (the instance bought, its
answer not yet back): the run resumes on another worker, adopts the instance by the
cluster's tag and the node's slot, and exactly the requested number of instances exist at
the end (issue 15: "SIGKILL of the worker during RunInstances")."""

from __future__ import annotations

import pytest

from clusters import operations
from clusters.adapters import cloud
from clusters.models import (
    CloudAccount,
    Cluster,
    DatastoreKind,
    InstallSource,
    LogLine,
    RunStatus,
    StepStatus,
)
from tests.support import runs
from tests.support.factories import make_user
from tests.support.world_clusters import K3S_VERSION, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

CRASHY = {"PANEL_STEP_LEASE_SECONDS": "4", "PANEL_SWEEP_INTERVAL_SECONDS": "1"}
IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"
ANSWER_DELAY_SECONDS = 2.0  # RunInstances buys at once, then answers this much later


def bought_runs(world) -> list[dict]:
    return [c for c in world.emulator.control.calls() if c["action"] == "RunInstances"
            and str(c["params"].get("DryRun", "")).lower() != "true"]


@pytest.mark.world_hosts(1)
def test_sigkill_during_run_instances_leaves_exactly_the_ordered_instances(
        world, start_worker, settings):
    env = {**world_env(world), **CRASHY,
           "PANEL_SSH_SOURCE_CIDRS": f"{world.lab.gateway_ip}/32"}
    world.emulator.control.add_fault(action="RunInstances", delay=ANSWER_DELAY_SECONDS)
    first = start_worker(concurrency=2, beat=True, **env)
    owner = make_user()
    account = CloudAccount.objects.create(
        owner=owner, name="crash", access_key_id=world.access_key_id,
        access_key_secret=world.access_key_secret, default_region=world.region)
    cluster = Cluster.objects.create(
        owner=owner, cloud_account=account, name="crash", region=world.region,
        zone=world.zone, vpc_id=world.vpc_id, vswitch_id=world.vswitch_id,
        k3s_version=K3S_VERSION, install_source=InstallSource.CUSTOM,
        install_base_url=world.install_base_url, datastore_kind=DatastoreKind.RDS,
        rds_engine_version="8.0",
        instance_order={"servers": 2, "agents": 1, "instance_type": "ecs.g7.large",
                        "image_id": IMAGE, "system_disk_gb": 40})
    run = operations.start_create(cluster)
    runs.wait_until(lambda: bool(bought_runs(world)), 90, "the first RunInstances")
    first.kill_hard()  # within the answer's delay: bought, not yet in the ledger
    (sent,) = bought_runs(world)
    row = cluster.resources.get(client_token=sent["params"]["ClientToken"])
    assert row.provider_id == ""  # the answer never reached the ledger

    world.emulator.control.clear_faults()
    start_worker(concurrency=2, beat=True, **env)
    run = runs.wait_finished(run, timeout=360)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status__in=(StepStatus.SUCCEEDED,
                                                                StepStatus.SKIPPED))]
    tagged = cloud.cloud_for(cluster).find_instances_by_tag(cloud.TAG_KEY, str(cluster.code))
    assert len(tagged) == 3  # exactly the order: 2 servers and 1 agent
    assert {i.instance_id for i in tagged} == set(
        cluster.nodes.values_list("ecs_instance_id", flat=True))
    row.refresh_from_db()
    assert row.provider_id in {i.instance_id for i in tagged}
    assert LogLine.objects.filter(step__run=run, text__startswith=f"Adopted {row.provider_id}"
                                  ).exists()
