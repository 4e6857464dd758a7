"""Clusters on PostgreSQL. RDS: bought, the account made the database's owner, kine's pgsql
DDL proven through the tunnel, K3s (the stand-in's kine on PostgreSQL) up; destroy leaves no
RDS behind. One's own: the same checks, nothing bought. Both clusters run at once in one world
(one world and the waits of one create fewer)."""

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


def hand_made_postgresql(world) -> tuple[AliyunCloud, str, str]:
    """A PostgreSQL of one's own, made by hand on RDS (no panel tag): the API, its instance
    id and the DSN as the user writes it (password percent-encoded)."""
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
    return api, instance, dsn


def test_rds_postgresql_and_own_postgresql_side_by_side(world, start_worker):
    """Two clusters at once in one cloud (their own hosts: 0-1 and 2), as two users would:
    one on a bought RDS PostgreSQL, one on a PostgreSQL of one's own (the same proof, no RDS
    step, destroy leaves it alone). Neither's destroy touches the other's database."""
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0,
                                 datastore_engine=DatastoreEngine.POSTGRESQL,
                                 rds_engine_version="16.0", rds_instance_class="pg.n2.2c.2m")
    run = operations.start_create(cluster)
    api, instance, dsn = hand_made_postgresql(world)
    own = make_world_cluster(world, servers=1, agents=0, first_host=2,
                             datastore_kind=DatastoreKind.EXTERNAL,
                             datastore_engine=DatastoreEngine.POSTGRESQL, external_dsn=dsn)
    own_run = operations.start_create(own)

    # --- RDS PostgreSQL: bought, the account the database's owner, kine's DDL proven ------
    run = runs.wait_finished(run, timeout=600)
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
    (bought,) = [r for r in cloud_left(world, cluster) if r["type"] == "rds_instance"]
    assert bought["state"] == "Running" and bought["engine_version"] == "16.0"

    # --- one's own PostgreSQL: the same checks, nothing bought -----------------------------
    run = runs.wait_finished(own_run, timeout=600)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert not run.steps.filter(key__startswith="rds_").exists(), "no RDS step for own PG"
    assert not CloudResource.objects.filter(cluster=own).filter(kind="rds_instance").exists()
    lines = "\n".join(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert "accepted K3s's schema" in lines and OWN_PASSWORD not in lines

    # --- destroy: the bought RDS goes, one's own stays ------------------------------------
    own_destroyed = operations.start_destroy(own, confirm_name=own.name)
    destroyed = runs.wait_finished(operations.start_destroy(cluster, confirm_name=cluster.name),
                                   timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in destroyed.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert [r for r in cloud_left(world, cluster) if r["type"] == "rds_instance"] == []
    assert not CloudResource.objects.filter(cluster=cluster, kind="rds_instance").exclude(
        state=ResourceState.DELETED).exists()
    destroyed = runs.wait_finished(own_destroyed, timeout=300)
    assert destroyed.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in destroyed.steps.exclude(status=StepStatus.SUCCEEDED)]
    assert api.describe_rds(instance) is not None, "destroy never touches one's own database"
