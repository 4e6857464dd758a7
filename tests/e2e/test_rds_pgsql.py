"""A cluster on RDS PostgreSQL: bought, account made the database's owner, kine's pgsql DDL
proven through the tunnel, K3s (the stand-in's kine on PostgreSQL) up; destroy leaves no
RDS behind."""

from __future__ import annotations

import pytest

from clusters import operations
from clusters.models import (
    CloudResource,
    DatastoreEngine,
    LogLine,
    ResourceState,
    RunStatus,
    StepStatus,
)
from tests.e2e.day2 import cloud_left
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


def test_a_cluster_on_rds_postgresql_comes_up_and_destroy_leaves_no_rds(world, start_worker):
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0,
                                 datastore_engine=DatastoreEngine.POSTGRESQL,
                                 rds_engine_version="16.0", rds_instance_class="pg.n2.2c.2m")

    run = runs.wait_finished(operations.start_create(cluster), timeout=600)
    failed = [(s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert run.status == RunStatus.SUCCEEDED, failed
    lines = "\n".join(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert "Created RDS PostgreSQL 16.0 instance" in lines
    assert "Created database k3s (UTF8,C,en_US.utf8)" in lines
    assert "Granted DBOwner on k3s to" in lines
    assert 'kine\'s PostgreSQL DDL' in lines and 'text COLLATE "C"' in lines
    assert "PostgreSQL 15" in lines and "accepted K3s's schema" in lines
    cluster.refresh_from_db()
    password = cluster.datastore_password
    assert password and password not in lines
    (instance,) = [r for r in cloud_left(world, cluster) if r["type"] == "rds_instance"]
    assert instance["state"] == "Running" and instance["engine_version"] == "16.0"

    destroyed = runs.wait_finished(operations.start_destroy(cluster, confirm_name=cluster.name),
                                   timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in destroyed.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert [r for r in cloud_left(world, cluster) if r["type"] == "rds_instance"] == []
    assert not CloudResource.objects.filter(cluster=cluster, kind="rds_instance").exclude(
        state=ResourceState.DELETED).exists()
