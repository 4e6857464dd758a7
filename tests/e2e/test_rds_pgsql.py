"""Clusters on PostgreSQL. RDS: bought, the account made the database's owner, kine's pgsql
DDL proven through the tunnel, K3s (the stand-in's kine on PostgreSQL) up; destroy leaves no
RDS behind. One's own: the same checks, nothing bought."""

from __future__ import annotations

import time

import pytest

from clusters import operations
from clusters.adapters.aliyun import AliyunCloud, RdsSpec
from clusters.k3s.pgdsn import build_pg_endpoint
from clusters.models import (
    CloudResource,
    DatastoreEngine,
    DatastoreKind,
    LogLine,
    ResourceState,
    RunStatus,
    StepStatus,
)
from tests.e2e.day2 import cloud_left
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]
OWN_PASSWORD = "Own%Pg@Pass#42"  # percent-encoded in the DSN, as kine's URL parser needs


def test_a_cluster_on_rds_postgresql_comes_up_and_destroy_leaves_no_rds(world, start_worker):
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0,
                                 datastore_engine=DatastoreEngine.POSTGRESQL,
                                 rds_engine_version="16.0", rds_instance_class="pg.n2.2c.2m")

    run = runs.wait_finished(operations.start_create(cluster), timeout=600)
    failed = [(s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert run.status == RunStatus.SUCCEEDED, failed
    lines = "\n".join(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert run.steps.get(key="rds_create").title == "Create the RDS PostgreSQL instance"
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


def test_own_postgresql_gets_the_same_checks_and_nothing_is_bought(world, start_worker):
    """A PostgreSQL of one's own (made by hand, here on RDS): the DSN as the user wrote it
    (password percent-encoded), the same proof, no RDS step; destroy leaves it alone."""
    api = AliyunCloud(world.access_key_id, world.access_key_secret, world.region, world.endpoint)
    created = api.create_rds(RdsSpec("17.0", "pg.n2.2c.2m", 20, world.vpc_id, world.vswitch_id,
                                     world.zone, engine="PostgreSQL"), client_token="pg-hand-1")
    instance = created.instance_id
    deadline = time.monotonic() + 60
    while not api.describe_rds(instance).running:  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the hand-made instance never ran"
        time.sleep(0.3)
    api.modify_security_ips(instance, [host.ip for host in world.lab.hosts])
    api.create_account(instance, "k3s", OWN_PASSWORD)
    api.create_database(instance, "k3s", "UTF8,C,C")
    while not (api.describe_account(instance, "k3s").available  # type: ignore[union-attr]
               and api.describe_database(instance, "k3s").running):  # type: ignore[union-attr]
        time.sleep(0.3)
    api.grant_privilege(instance, "k3s", "k3s", "DBOwner")
    dsn = build_pg_endpoint("k3s", OWN_PASSWORD, created.connection_string, created.port,
                            database="k3s", params={"sslmode": "prefer"})
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=1, agents=0, first_host=2,
                                 datastore_kind=DatastoreKind.EXTERNAL,
                                 datastore_engine=DatastoreEngine.POSTGRESQL, external_dsn=dsn)

    run = runs.wait_finished(operations.start_create(cluster), timeout=600)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert not run.steps.filter(key__startswith="rds_").exists(), "no RDS step for own PG"
    assert not CloudResource.objects.filter(cluster=cluster).filter(kind="rds_instance").exists()
    lines = "\n".join(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert "accepted K3s's schema" in lines and OWN_PASSWORD not in lines
    destroyed = runs.wait_finished(operations.start_destroy(cluster, confirm_name=cluster.name),
                                   timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED
    assert api.describe_rds(instance) is not None, "destroy never touches one's own database"
