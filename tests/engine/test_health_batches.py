"""The beat's health round in batches: clusters grouped by cloud account and region, one
listing per group answering for every cluster in it, each cluster still checked (and
judged) in its own task. Celery really publishes (the spec tier's in-memory transport,
tests/support/engine_specs.py); the cloud is the emulator, driven through the official SDK.

What a user sees is the cluster's stored verdict (`health`, `health_reasons`), which the
dashboard and the cluster page show: the tests read those rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from clusters.engine.pipeline import StepSpec
from clusters.models import (
    CloudAccount,
    CloudResource,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    Health,
    ResourceState,
)
from clusters.operations import health
from panel.celery import health_queue
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import ADVANCE, InProcessEngine, in_process_engine, start_run
from tests.support.factories import TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, make_cluster
from tests.support.kube_api import admin_kubeconfig

BATCH = "clusters.refresh_health_batch"
CHECK = "clusters.refresh_health"
# Nothing listens here: the API check fails at once (connection refused), the cloud and
# datastore checks still run, which is what these tests are about.
NO_API = "https://127.0.0.1:1"


@pytest.fixture
def engine(db: Any) -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(Path(tmp_path_factory.mktemp("health-batches"))) as emu:
        emu.control.add_account(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, root=True)
        yield emu


@pytest.fixture
def cloud(settings: Any, emulator: Emulator) -> Emulator:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emulator.endpoint
    emulator.control.clear_faults()
    emulator.control.clear_calls()
    return emulator


def in_account(account: CloudAccount | None = None, region: str = "cn-hangzhou",
               **fields: Any) -> Cluster:
    """A live cluster; `account`: share that cloud account (make_cluster makes a new one)."""
    cluster = make_cluster(region=region, **{"status": ClusterStatus.READY, **fields})
    if account is not None:
        own = cluster.cloud_account
        Cluster.objects.filter(pk=cluster.pk).update(cloud_account=account)
        own.delete()
        cluster.refresh_from_db()
    return cluster


def on_rds(account: CloudAccount | None, instance_id: str, region: str = "cn-hangzhou") \
        -> Cluster:
    """A live cluster on a panel-bought RDS instance, with a kubeconfig (so it is checked)."""
    cluster = in_account(account, region, datastore_kind=DatastoreKind.RDS,
                         kubeconfig=admin_kubeconfig(NO_API))
    CloudResource.objects.create(cluster=cluster, kind="rds_instance", provider_id=instance_id,
                                 client_token=uuid.uuid4().hex, region=region,
                                 state=ResourceState.PRESENT)
    return cluster


def batches_sent(engine: InProcessEngine) -> list[list[int]]:
    return [sorted(sent.args[0]) for sent in engine.take() if sent.task == BATCH]


def run_round(engine: InProcessEngine) -> None:
    """The beat's round, its batches, and every cluster's check, each delivered once."""
    engine.act(health.refresh_all_health)
    batches = [sent for sent in engine.take() if sent.task == BATCH]
    checks = []
    for batch in batches:
        engine.deliver(batch)
        checks += [sent for sent in engine.take() if sent.task == CHECK]
    for check in checks:
        engine.deliver(check)


def calls(emulator: Emulator, action: str) -> list[dict[str, Any]]:
    return [c for c in emulator.control.calls() if c["action"] == action]


def text_reasons(cluster: Cluster) -> list[str]:
    cluster.refresh_from_db()
    return [r if isinstance(r, str) else r.get("message", "") for r in cluster.health_reasons]


# ---- grouping -----------------------------------------------------------------------------


def test_a_round_batches_by_account_and_region_and_never_mixes_accounts(
        engine: InProcessEngine) -> None:
    first = in_account()
    account_a = first.cloud_account
    a_hangzhou = [first.pk, in_account(account_a).pk, in_account(account_a).pk]
    a_shanghai = [in_account(account_a, "cn-shanghai").pk]
    second = in_account()
    b_hangzhou = [second.pk, in_account(second.cloud_account).pk]
    in_account(account_a, status=ClusterStatus.DRAFT)  # not live: never checked

    assert engine.act(health.refresh_all_health) == 6
    assert sorted(batches_sent(engine)) == sorted([sorted(a_hangzhou), a_shanghai,
                                                   sorted(b_hangzhou)])
    accounts = {pk: account for pk, account in Cluster.objects.values_list("pk",
                                                                          "cloud_account_id")}
    for batch in health.batches(list(accounts)):
        assert len({accounts[pk] for pk in batch}) <= 1


def test_an_account_and_region_is_one_batch_beyond_a_listing_page(
        engine: InProcessEngine) -> None:
    """The listings are of the whole region: 101 clusters (more than one DescribeDBInstances
    page) are still one batch, so the region is listed once per round, not once per 100."""
    first = in_account()
    for _ in range(100):
        in_account(first.cloud_account)
    assert engine.act(health.refresh_all_health) == 101
    assert [len(batch) for batch in batches_sent(engine)] == [101]
    # Every one of them is held: the next round queues nothing while they wait.
    assert engine.act(health.refresh_all_health) == 0


def test_a_batch_takes_the_never_checked_then_the_longest_unchecked_clusters_first(
        engine: InProcessEngine) -> None:
    """Fairness within an account and region: a cluster whose verdict is oldest is checked
    first, so one that a short round left out is not left out again."""
    fresh = in_account()
    account = fresh.cloud_account
    stale, never = in_account(account), in_account(account)
    now = timezone.now()
    Cluster.objects.filter(pk=fresh.pk).update(health_checked_at=now)
    Cluster.objects.filter(pk=stale.pk).update(health_checked_at=now - timedelta(hours=1))
    engine.act(health.refresh_all_health)
    (batch,) = engine.take()
    assert list(batch.args[0]) == [never.pk, stale.pk, fresh.pk]


def test_batches_and_checks_go_to_the_health_queue_and_steps_to_their_own(
        engine: InProcessEngine) -> None:
    """A backlog on the health queue cannot delay a step: the step's message is on the
    default queue, which the step workers consume, and the health queue is another one."""
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    for _ in range(3):
        in_account()
    engine.act(health.refresh_all_health)
    queued_batches = engine.take()
    assert {(s.task, s.queue) for s in queued_batches} == {(BATCH, health_queue(default))}
    for batch in queued_batches:
        engine.deliver(batch)
    checks = engine.take()
    assert {(s.task, s.queue) for s in checks} == {(CHECK, health_queue(default))}
    # A run started behind that backlog: its step goes to the default queue and runs when
    # delivered, with every health message still undelivered.
    run = start_run(engine, StepSpec("a", "A", "test.work"))
    (advance,) = engine.take()
    assert (advance.task, advance.queue) == (ADVANCE, default)
    engine.deliver(advance)
    engine.deliver_all()
    run.refresh_from_db()
    assert run.status == "succeeded"


def test_a_batch_lets_go_of_a_cluster_that_is_no_longer_live(engine: InProcessEngine) -> None:
    cluster = in_account()
    engine.act(health.refresh_all_health)
    (batch,) = engine.take()
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYING)
    engine.deliver(batch)
    assert [s for s in engine.take() if s.task == CHECK] == []
    assert Cluster.objects.get(pk=cluster.pk).health_check_until is None


# ---- one listing for many clusters, and what it says reaches each -------------------------


def test_one_listing_answers_for_every_cluster_of_the_batch(
        engine: InProcessEngine, cloud: Emulator) -> None:
    ids = cloud.control.add_api_only_rds(3, cloud.vswitch["vswitch_id"])
    first = on_rds(None, ids[0])
    clusters = [first, *(on_rds(first.cloud_account, i) for i in ids[1:])]
    run_round(engine)
    # The first round reads each instance's storage once (the listing has none).
    assert len(calls(cloud, "DescribeDBInstances")) == 1
    assert len(calls(cloud, "DescribeDBInstanceAttribute")) == 3
    cloud.control.clear_calls()
    Cluster.objects.update(health_check_until=None)
    run_round(engine)
    assert len(calls(cloud, "DescribeDBInstances")) == 1
    assert calls(cloud, "DescribeDBInstanceAttribute") == []
    assert len(calls(cloud, "DescribeResourceUsage")) == 3  # no batched form: one each
    for cluster in clusters:
        reasons = " | ".join(text_reasons(cluster))
        assert "no longer exists" not in reasons and "DescribeDBInstances" not in reasons
        assert cluster.health == Health.DOWN  # the API is unreachable: said, and only that
        assert cluster.health_checked_at is not None


def test_a_failed_listing_reaches_every_cluster_with_its_code_and_request_id(
        engine: InProcessEngine, cloud: Emulator) -> None:
    ids = cloud.control.add_api_only_rds(2, cloud.vswitch["vswitch_id"])
    first = on_rds(None, ids[0])
    second = on_rds(first.cloud_account, ids[1])
    cloud.control.add_fault(action="DescribeDBInstances", code="Throttling.User",
                            http_status=400, count=1)
    run_round(engine)
    for cluster in (first, second):
        (named,) = [r for r in text_reasons(cluster) if "DescribeDBInstances" in r]
        assert "Throttling.User" in named and "RequestId" in named, named
        assert "checked on its own" in named
    # ... and each was then asked about alone, so its verdict is still its own.
    asked = sorted(c["params"]["DBInstanceId"] for c in calls(cloud, "DescribeDBInstanceAttribute"))
    assert asked == sorted(ids)
    for cluster in (first, second):
        assert not any("no longer exists" in r for r in text_reasons(cluster))


def test_one_clusters_missing_instance_never_hides_another_clusters_health(
        engine: InProcessEngine, cloud: Emulator) -> None:
    (alive,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"])
    good = on_rds(None, alive)
    gone = on_rds(good.cloud_account, "rm-" + uuid.uuid4().hex[:20])
    run_round(engine)
    assert any("no longer exists" in r for r in text_reasons(gone))
    assert not any("no longer exists" in r for r in text_reasons(good))
    # The instance the listing did not show was asked about on its own (the judge of
    # "no longer exists"); the listed one was not.
    asked = {c["params"]["DBInstanceId"] for c in calls(cloud, "DescribeDBInstanceAttribute")}
    assert gone.resources.get().provider_id in asked
