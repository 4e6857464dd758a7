"""Bring your own MySQL: no RDS is bought, the checks still run, and their message helps."""

from __future__ import annotations

import time

import pytest

from clusters import operations
from clusters.adapters.aliyun import AliyunCloud, RdsSpec
from clusters.k3s.dsn import build_endpoint
from clusters.models import CloudResource, DatastoreKind, LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

OLD_K3S = "v1.23.8+k3s1"
PASSWORD = "Own-Mysql_Pass42"


def mysql_made_by_hand(world) -> tuple[AliyunCloud, str, str]:
    """What a user did in the console: an instance, the hosts whitelisted, account and db.

    Their account's 5.7 parameter template has innodb_large_prefix OFF (RDS's own is ON)."""
    world.emulator.control.set_rds_parameter_defaults("5.7", {"innodb_large_prefix": "OFF"})
    api = AliyunCloud(world.access_key_id, world.access_key_secret, world.region, world.endpoint)
    created = api.create_rds(RdsSpec("5.7", "mysql.n2.medium.2c", 20, world.vpc_id,
                                     world.vswitch_id, world.zone), client_token="by-hand-1")
    instance = created.instance_id
    deadline = time.monotonic() + 60
    while not api.describe_rds(instance).running:
        assert time.monotonic() < deadline, "the hand-made instance never ran"
        time.sleep(0.3)
    api.modify_security_ips(instance, [host.ip for host in world.lab.hosts])
    api.create_account(instance, "k3s", PASSWORD)
    api.create_database(instance, "k3s")
    while not (api.describe_account(instance, "k3s").available
               and api.describe_database(instance, "k3s").running):
        time.sleep(0.3)
    api.grant_privilege(instance, "k3s", "k3s", "ReadWrite")
    return api, instance, build_endpoint("k3s", PASSWORD, created.connection_string,
                                         created.port, database="k3s")


def test_own_mysql_with_large_prefix_off_fails_clearly_then_retry_succeeds(world, start_worker):
    api, instance, dsn = mysql_made_by_hand(world)
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0, k3s_version=OLD_K3S,
                                 datastore_kind=DatastoreKind.EXTERNAL, external_dsn=dsn)

    run = runs.wait_finished(operations.start_create(cluster), timeout=120)
    assert run.status == RunStatus.FAILED
    check = run.steps.get(key="datastore_check")
    assert check.status == StepStatus.FAILED
    assert "the datastore rejects K3s's schema: turn innodb_large_prefix ON" in check.error.replace(
        "The datastore", "the datastore")
    assert PASSWORD not in check.error
    assert not run.steps.filter(key__startswith="rds_").exists(), "no RDS step for own MySQL"
    assert not CloudResource.objects.filter(cluster=cluster).exists(), "nothing was bought"
    resources = world.emulator.control.resources()
    assert [r["id"] for r in resources if r["type"] == "rds_instance"] == [instance]
    assert not [r for r in resources if r["type"] == "slb_load_balancer"]

    # The user fixes the parameter in the console and presses Retry.
    api.modify_parameters(instance, {"innodb_large_prefix": "ON"})
    while api.describe_parameters(instance).running.get("innodb_large_prefix") != "ON":
        time.sleep(0.3)
    assert operations.retry(run)
    run = runs.wait_finished(run, timeout=240)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    resources = world.emulator.control.resources()
    assert len([r for r in resources if r["type"] == "rds_instance"]) == 1, "still only theirs"
    assert len([r for r in resources if r["type"] == "slb_load_balancer"]) == 1
    # The first health check read kine through a server's tunnel; no RDS storage for own MySQL.
    cluster.refresh_from_db()
    assert cluster.health == "healthy", cluster.health_reasons
    said = list(LogLine.objects.filter(step__run=run, step__key="health")
                .values_list("text", flat=True))
    (datastore,) = [text for text in said if text.startswith("Datastore: ")]
    assert "kine " in datastore and "connections" in datastore and "storage" not in datastore
