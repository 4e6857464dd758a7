"""A worker killed with SIGKILL mid-create: the run resumes and buys nothing twice."""

from __future__ import annotations

import pytest

from clusters import operations
from clusters.models import CloudResource, LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

CRASHY = {"PANEL_STEP_LEASE_SECONDS": "4", "PANEL_SWEEP_INTERVAL_SECONDS": "1"}


def test_kill_during_rds_creation_and_during_install(world, start_worker):
    env = {**world_env(world), **CRASHY}
    first = start_worker(concurrency=2, beat=True, **env)
    cluster = make_world_cluster(world, servers=2, agents=0)
    run = operations.start_create(cluster)

    runs.wait_until(lambda: CloudResource.objects.filter(
        cluster=cluster, kind="rds_instance").exclude(provider_id="").exists(),
        60, "the RDS instance to be bought")
    first.kill_hard()

    second = start_worker(concurrency=2, beat=True, **env)
    installing = LogLine.objects.filter(
        step__run=run, step__key__startswith="server_", step__status=StepStatus.RUNNING,
        text__contains="config.yaml (0600)")
    interrupted = ""

    def install_under_way() -> bool:
        nonlocal interrupted
        interrupted = installing.values_list("step__key", flat=True).first() or ""
        return bool(interrupted)

    runs.wait_until(install_under_way, 120, "a K3s install to be under way")
    second.kill_hard()  # within ~0.1 s of seeing it: the install takes seconds

    start_worker(concurrency=2, beat=True, **env)
    run = runs.wait_finished(run, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert run.steps.get(key=interrupted).tries >= 2
    assert LogLine.objects.filter(step__key=interrupted, step__run=run,
                                  text__contains="Attempt 2.").exists()
    resources = world.emulator.control.resources()
    assert len([r for r in resources if r["type"] == "rds_instance"]) == 1
    assert len([r for r in resources if r["type"] == "slb_load_balancer"]) == 1
    assert CloudResource.objects.filter(cluster=cluster).count() == 2
