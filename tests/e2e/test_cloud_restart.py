"""The cloud API goes away and comes back mid-create (the emulator restarted on its state dir,
in the lab's cloud namespace): the run rides it out and buys nothing twice."""

from __future__ import annotations

import pytest

from clusters import operations
from clusters.models import CloudResource, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def test_a_create_survives_the_cloud_restarting_twice(world, start_worker):
    start_worker(concurrency=2, beat=True, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0)
    run = operations.start_create(cluster)

    bought = CloudResource.objects.filter(cluster=cluster).exclude(provider_id="")
    runs.wait_until(lambda: bought.filter(kind="rds_instance").exists(), 60,
                    "the RDS instance to be bought")
    world.restart_cloud()  # its address is in the namespace already: brought up again
    runs.wait_until(lambda: bought.filter(kind="slb").exists(), 120,
                    "the load balancer to be bought")
    world.restart_cloud()

    run = runs.wait_finished(run, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    resources = world.emulator.control.resources()
    assert len([r for r in resources if r["type"] == "rds_instance"]) == 1
    assert len([r for r in resources if r["type"] == "slb_load_balancer"]) == 1
