"""The beat's health round in batches: clusters grouped by cloud account and region, one
listing per group answering for every cluster in it, each cluster still checked (and
judged) in its own task. Celery really publishes (the spec tier's in-memory transport,
tests/support/engine_specs.py); the cloud is the emulator, driven through the official SDK.

What a user sees is the cluster's stored verdict (`health`, `health_reasons`), which the
dashboard and the cluster page show: the tests read those rows."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext

from clusters.adapters import api_balancer
from clusters.adapters import cloud as cloud_clients
from clusters.adapters import health as judge
from clusters.adapters.aliyun import AliyunCloud
from clusters.engine.pipeline import StepSpec
from clusters.models import (
    CloudAccount,
    CloudResource,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    Health,
    LoadBalancerKind,
    ResourceState,
)
from clusters.operations import health
from panel.celery import health_queue
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import ADVANCE, InProcessEngine, start_run
from tests.support.factories import TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, make_cluster
from tests.support.kube_api import admin_kubeconfig

BATCH = "clusters.refresh_health_batch"
CHECK = "clusters.refresh_health"
# Nothing listens here: the API check fails at once (connection refused), the cloud and
# datastore checks still run, which is what these tests are about.
NO_API = "https://127.0.0.1:1"
_HOSTS = itertools.count(20)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    # A fast clock: an NLB server group's create job (3 s) is done before its servers join.
    with Emulator(Path(tmp_path_factory.mktemp("health-batches")), time_scale=0.01) as emu:
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


def checkable(account: CloudAccount | None = None, **fields: Any) -> Cluster:
    """A live cluster whose check runs to a verdict (a kubeconfig; nothing in the cloud)."""
    return in_account(account, kubeconfig=admin_kubeconfig(NO_API), **fields)


def round_checks(engine: InProcessEngine) -> list[Any]:
    """The beat's round and its batches delivered (a batch sent again after a throttled
    listing too, when due): the checks they queued, in queue order."""
    engine.act(health.refresh_all_health)
    batches = [sent for sent in engine.take() if sent.task == BATCH]
    checks = []
    while batches:
        engine.deliver(batches.pop(0))
        for sent in engine.take():
            if sent.task == CHECK:
                checks.append(sent)
            elif sent.task == BATCH:
                batches.append(sent)
    return checks


def run_round(engine: InProcessEngine) -> list[Any]:
    """The beat's round, its batches, and every cluster's check, each delivered once; then
    the interval passes (every hold has run out, as by the next round)."""
    checks = round_checks(engine)
    for check in checks:
        engine.deliver(check)
    Cluster.objects.update(health_check_until=None)
    return checks


def cloud_reasons(cluster: Cluster, code: str) -> list[dict[str, Any]]:
    cluster.refresh_from_db()
    return [r for r in cluster.health_reasons if isinstance(r, dict)
            and r.get("check") == judge.CLOUD_CHECK and r.get("code") == code]


def calls(emulator: Emulator, action: str) -> list[dict[str, Any]]:
    return [c for c in emulator.control.calls() if c["action"] == action]


def assessment_facts(cluster: Cluster) -> list[str]:
    """What the cluster page lists under the verdict: the check's facts, read again."""
    cluster.refresh_from_db()
    return judge.assess(cluster).facts


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

    # Before the round holds them: every batch is one account's and one region's.
    places = {pk: (account, region) for pk, account, region in
              Cluster.objects.values_list("pk", "cloud_account_id", "region")}
    planned = health.batches()
    assert sorted(map(sorted, planned)) == sorted([sorted(a_hangzhou), a_shanghai,
                                                   sorted(b_hangzhou)])
    for batch in planned:
        assert len({places[pk] for pk in batch}) == 1, batch
    assert engine.act(health.refresh_all_health) == 6
    assert sorted(batches_sent(engine)) == sorted([sorted(a_hangzhou), a_shanghai,
                                                   sorted(b_hangzhou)])


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
        engine: InProcessEngine, cloud: Emulator) -> None:
    """Fairness within an account and region: a cluster whose verdict is oldest is checked
    first, so one that a short round left out is not left out again. The order is the
    checks' own (the queue runs them in it), not only the batch message's."""
    fresh = checkable()
    account = fresh.cloud_account
    stale, never = checkable(account), checkable(account)
    now = timezone.now()
    Cluster.objects.filter(pk=fresh.pk).update(health_checked_at=now)
    Cluster.objects.filter(pk=stale.pk).update(health_checked_at=now - timedelta(hours=1))
    engine.act(health.refresh_all_health)
    (batch,) = engine.take()
    assert list(batch.args[0]) == [never.pk, stale.pk, fresh.pk]
    engine.deliver(batch)
    assert [sent.args[0] for sent in engine.take() if sent.task == CHECK] == [
        never.pk, stale.pk, fresh.pk]


def test_the_clusters_a_short_round_left_out_go_first_in_the_next(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """A cycle that cannot finish: only the first two checks run before the interval ends
    (the rest expire). The next round's checks start with the two it left out, whatever
    their primary keys, so no cluster is left out round after round."""
    first = checkable()
    clusters = [first, *(checkable(first.cloud_account) for _ in range(3))]
    # The lowest primary keys were checked most recently: pk order is the wrong order.
    now = timezone.now()
    for age, cluster in enumerate(clusters):
        Cluster.objects.filter(pk=cluster.pk).update(
            health_checked_at=now - timedelta(minutes=10 * (age + 1)))
    checks = round_checks(engine)
    order = [sent.args[0] for sent in checks]
    assert order == [c.pk for c in reversed(clusters)]
    for check in checks[:2]:
        engine.deliver(check)
    Cluster.objects.update(health_check_until=None)  # the interval passed: holds ran out
    left_out = order[2:]
    assert [sent.args[0] for sent in round_checks(engine)][:2] == left_out


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


def test_a_throttled_listing_backs_off_and_keeps_every_verdict_marked_not_refreshed(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """Throttling.User on the listing, again on its retry: no cluster falls back to a call of
    its own (that would be N calls exactly when the API asks for fewer). Each keeps its
    verdict and its time, marked "not refreshed" with the code and RequestId, and the next
    round checks it."""
    ids = cloud.control.add_api_only_rds(2, cloud.vswitch["vswitch_id"])
    first = on_rds(None, ids[0])
    clusters = [first, on_rds(first.cloud_account, ids[1])]
    checked_at = timezone.now() - timedelta(minutes=1)
    Cluster.objects.update(health=Health.HEALTHY, health_checked_at=checked_at,
                           health_reasons=["earlier finding"])
    cloud.control.add_fault(action="DescribeDBInstances", code="Throttling.User",
                            http_status=400, count=2)
    assert round_checks(engine) == []
    assert len(calls(cloud, "DescribeDBInstances")) == 2  # the listing and its one retry
    assert calls(cloud, "DescribeDBInstanceAttribute") == []
    for cluster in clusters:
        (mark,) = cloud_reasons(cluster, judge.NOT_REFRESHED)
        assert cluster.health == Health.HEALTHY and cluster.health_checked_at == checked_at
        assert "earlier finding" in cluster.health_reasons
        assert mark["params"]["code"] == "Throttling.User"
        assert mark["params"]["request_id"] not in ("", "-")
        assert cluster.health_check_until is None  # the next round takes it
    # A second throttled round: still one mark, not two.
    cloud.control.add_fault(action="DescribeDBInstances", code="Throttling.User",
                            http_status=400, count=2)
    assert round_checks(engine) == []
    assert all(len(cloud_reasons(c, judge.NOT_REFRESHED)) == 1 for c in clusters)
    run_round(engine)  # the listing answers again: a real verdict, the mark gone
    for cluster in clusters:
        assert cloud_reasons(cluster, judge.NOT_REFRESHED) == []
        assert cluster.health == Health.DOWN and cluster.health_checked_at > checked_at


def test_a_throttled_listing_is_asked_again_by_a_later_message_not_a_sleep(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """The health worker's slot is not held while the listing cools down: the batch ends at
    once, having asked once, and sends itself again due LISTING_RETRY_SECONDS later, its
    clusters still held (a beat round in between queues no second check of them). The
    retried batch, throttled again, gives up for this round (no third listing)."""
    ids = cloud.control.add_api_only_rds(2, cloud.vswitch["vswitch_id"])
    first = on_rds(None, ids[0])
    clusters = [first, on_rds(first.cloud_account, ids[1])]
    cloud.control.add_fault(action="DescribeDBInstances", code="Throttling.User",
                            http_status=400, count=2)
    engine.act(health.refresh_all_health)
    (batch,) = [sent for sent in engine.take() if sent.task == BATCH]
    began = time.monotonic()
    engine.deliver(batch)
    assert time.monotonic() - began < judge.LISTING_RETRY_SECONDS  # no sleep in the task
    assert len(calls(cloud, "DescribeDBInstances")) == 1
    (again,) = engine.take()
    assert again.task == BATCH and sorted(again.args[0]) == sorted(c.pk for c in clusters)
    assert again.args[1] is True  # the retry: it does not send itself a third time
    assert 0 < again.countdown <= judge.LISTING_RETRY_SECONDS
    assert again.queue == health_queue(settings.CELERY_TASK_DEFAULT_QUEUE)
    for cluster in clusters:
        assert cloud_reasons(cluster, judge.NOT_REFRESHED) == []  # not given up yet
        assert cluster.health_check_until is not None
    engine.act(health.refresh_all_health)  # the next round, before the retry ran
    assert batches_sent(engine) == []
    engine.deliver(again)
    assert len(calls(cloud, "DescribeDBInstances")) == 2
    assert [sent for sent in engine.take() if sent.task in (BATCH, CHECK)] == []
    for cluster in clusters:
        (mark,) = cloud_reasons(cluster, judge.NOT_REFRESHED)
        assert mark["params"]["code"] == "Throttling.User"
        assert cluster.health_check_until is None  # the next round takes it


def test_a_listing_throttled_once_answers_on_its_retry(
        engine: InProcessEngine, cloud: Emulator) -> None:
    (instance,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"])
    cluster = on_rds(None, instance)
    cloud.control.add_fault(action="DescribeDBInstances", code="Throttling.User",
                            http_status=400, count=1)
    assert len(run_round(engine)) == 1
    assert len(calls(cloud, "DescribeDBInstances")) == 2
    cluster.refresh_from_db()
    assert cluster.health_checked_at is not None
    assert cloud_reasons(cluster, judge.NOT_REFRESHED) == []
    assert cloud_reasons(cluster, "listing_refused") == []


def test_a_refused_listing_checks_each_cluster_alone_with_one_translated_reason(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """A RAM policy that denies DescribeDBInstances cannot get better by asking again: each
    cluster is asked about on its own (its storage figure was kept, so only the refused
    listing makes it ask), with one reason, stored as a code and its params so the page
    shows it in the reader's language."""
    ids = cloud.control.add_api_only_rds(2, cloud.vswitch["vswitch_id"])
    first = on_rds(None, ids[0])
    clusters = [first, on_rds(first.cloud_account, ids[1])]
    run_round(engine)  # reads and keeps each instance's storage
    cloud.control.clear_calls()
    cloud.control.add_fault(action="DescribeDBInstances", code="Forbidden.RAM",
                            http_status=403, count=1)
    run_round(engine)
    asked = sorted(c["params"]["DBInstanceId"] for c in calls(cloud, "DescribeDBInstanceAttribute"))
    assert asked == sorted(ids)
    for cluster in clusters:
        (reason,) = [r for r in cloud_reasons(cluster, "listing_refused")]
        assert [r for r in text_reasons(cluster) if "DescribeDBInstances" in r] == [
            reason["message"]]
        assert reason["params"]["code"] == "Forbidden.RAM"
        assert reason["params"]["request_id"] not in ("", "-")
        assert not any("no longer exists" in r for r in text_reasons(cluster))
        with translation.override("zh-hans"):
            shown = gettext(judge.CLOUD_MESSAGES[reason["code"]]) % reason["params"]
        assert "Forbidden.RAM" in shown and "被拒绝" in shown, shown


def test_an_instance_the_listing_missed_is_asked_alone_and_not_reported_gone(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """An instance that exists but that the listing did not show (a page that shifted while
    it was read, an instance bought after it): its check asks DescribeDBInstanceAttribute,
    the judge of "no longer exists", and finds it Running. The check message is the one a
    batch sends for an instance its listing did not show."""
    (instance,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"])
    cluster = on_rds(None, instance)
    row = cluster.resources.get()
    row.attributes = {judge.STORAGE_SEEN: {"id": instance, "gb": 20, "running": True,
                                           "at": timezone.now().timestamp()}}
    row.save()
    missed = judge.prefetch(cloud_clients.cloud_for(cluster), [cluster])[cluster.pk]
    assert missed.rds_status == "Running"
    missed.rds_status = None  # what the listing says of an instance it did not show
    health.refresh_by_id(cluster.pk, missed.as_json())
    assert [c["params"]["DBInstanceId"] for c in calls(cloud, "DescribeDBInstanceAttribute")] \
        == [instance]
    cluster.refresh_from_db()
    assert not any("no longer exists" in r for r in text_reasons(cluster))
    assert any(f"RDS {instance}: Running" in fact for fact in assessment_facts(cluster))


def test_one_clusters_missing_instance_never_hides_another_clusters_health(
        engine: InProcessEngine, cloud: Emulator) -> None:
    (alive,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"])
    good = on_rds(None, alive)
    gone = on_rds(good.cloud_account, "rm-" + uuid.uuid4().hex[:20])
    run_round(engine)  # the first round reads every instance's storage
    cloud.control.clear_calls()
    run_round(engine)
    assert any("no longer exists" in r for r in text_reasons(gone))
    assert not any("no longer exists" in r for r in text_reasons(good))
    # The instance the listing did not show was asked about on its own (the judge of
    # "no longer exists"); the listed one, whose storage was kept, was not.
    asked = [c["params"]["DBInstanceId"] for c in calls(cloud, "DescribeDBInstanceAttribute")]
    assert asked == [gone.resources.get().provider_id]


# ---- the storage figure kept between rounds ------------------------------------------------


def kept_storage(cluster: Cluster) -> dict[str, Any]:
    return dict(cluster.resources.get(kind="rds_instance").attributes[judge.STORAGE_SEEN])


def attribute_reads(emulator: Emulator) -> int:
    count = len(calls(emulator, "DescribeDBInstanceAttribute"))
    emulator.control.clear_calls()
    return count


def test_a_storage_change_is_read_again_and_the_new_figure_kept(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """A storage change passes through DBInstanceClassChanging. The re-read then is kept,
    not settled, so the first Running round after it reads the attribute again and keeps
    the new figure; the old one is never used after the change."""
    (instance,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"], storage=20)
    cluster = on_rds(None, instance)
    run_round(engine)
    assert attribute_reads(cloud) == 1 and kept_storage(cluster)["gb"] == 20
    run_round(engine)
    assert attribute_reads(cloud) == 0  # Running in the listing, figure kept: not asked
    cloud.control.change_api_only_rds(instance, status="DBInstanceClassChanging", storage=40)
    run_round(engine)
    assert attribute_reads(cloud) == 1
    assert any("DBInstanceClassChanging" in r for r in text_reasons(cluster))
    assert kept_storage(cluster)["running"] is False
    cloud.control.change_api_only_rds(instance, status="Running")
    run_round(engine)
    assert attribute_reads(cloud) == 1
    assert kept_storage(cluster)["gb"] == 40 and kept_storage(cluster)["running"] is True
    run_round(engine)
    assert attribute_reads(cloud) == 0


def test_the_storage_figure_is_the_instances_own_and_read_again_hourly(
        engine: InProcessEngine, cloud: Emulator) -> None:
    (instance,) = cloud.control.add_api_only_rds(1, cloud.vswitch["vswitch_id"], storage=30)
    cluster = on_rds(None, instance)
    row = cluster.resources.get()
    # Kept for another instance (the ledger row now names a new one): not used.
    row.attributes = {judge.STORAGE_SEEN: {"id": "rm-other", "gb": 99, "running": True,
                                           "at": timezone.now().timestamp()}}
    row.save()
    run_round(engine)
    assert attribute_reads(cloud) == 1
    assert kept_storage(cluster) | {"at": 0} == {"id": instance, "gb": 30, "running": True,
                                                 "at": 0}
    # An hour later it is read again, whatever the listing says.
    row.refresh_from_db()
    seen = {**row.attributes[judge.STORAGE_SEEN],
            "at": timezone.now().timestamp() - judge.STORAGE_REREAD_SECONDS - 1}
    CloudResource.objects.filter(pk=row.pk).update(attributes={judge.STORAGE_SEEN: seen})
    run_round(engine)
    assert attribute_reads(cloud) == 1


# ---- NLB server groups: one region listing ---------------------------------------------


def nlb_group(emulator: Emulator, servers: int) -> tuple[str, list[str]]:
    """A server group in the emulator with `servers` ECS servers on 6443 (through the API)."""
    api = AliyunCloud(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, emulator.region_id,
                      emulator.endpoint)
    group, job = api.create_server_group(name=f"g{next(_HOSTS)}",
                                         vpc_id=emulator.vpc["vpc_id"], port=6443,
                                         client_token=uuid.uuid4().hex, preserve_client_ip=True)
    for _ in range(200):  # servers join a group only once its create job is done
        if api.job_status(job) == "Succeeded":
            break
        time.sleep(0.05)
    base = emulator.vswitch["cidr"].rsplit(".", 1)[0]
    members = {}
    for _ in range(servers):
        ip = f"{base}.{next(_HOSTS)}"
        members[emulator.register_instance(f"h{ip.replace('.', '-')}", ip)] = ip
    if members:
        api.add_servers(group, members, 6443, client_token=uuid.uuid4().hex)
    return group, list(members)


def on_nlb(account: CloudAccount | None, group: str) -> Cluster:
    cluster = in_account(account, kubeconfig=admin_kubeconfig(NO_API),
                         load_balancer_kind=LoadBalancerKind.NLB)
    CloudResource.objects.create(cluster=cluster, kind=api_balancer.NLB_GROUP_KIND,
                                 provider_id=group, client_token=uuid.uuid4().hex,
                                 region=cluster.region, state=ResourceState.PRESENT)
    return cluster


def group_calls(emulator: Emulator) -> list[str]:
    """ServerGroupId of each ListServerGroupServers ("" for the region listing)."""
    return [c["params"].get("ServerGroupId") or ""
            for c in calls(emulator, "ListServerGroupServers")]


def test_nlb_groups_are_read_from_one_region_listing(
        engine: InProcessEngine, cloud: Emulator) -> None:
    """Two clusters' groups answered by the region listing; a group it shows no server of
    (emptied) asked about on its own."""
    (one, one_servers), (two, _) = nlb_group(cloud, 1), nlb_group(cloud, 2)
    empty, _ = nlb_group(cloud, 0)
    first = on_nlb(None, one)
    clusters = [first, on_nlb(first.cloud_account, two), on_nlb(first.cloud_account, empty)]
    cloud.control.clear_calls()
    run_round(engine)
    assert sorted(group_calls(cloud)) == ["", empty]
    facts = [" ".join(assessment_facts(c)) for c in clusters]
    assert f"NLB {one}: 0/1 backends" in facts[0]  # no listener yet: none is in service
    assert f"NLB {two}: 0/2 backends" in facts[1]
    assert f"NLB {empty}: 0/0 backends" in facts[2]
    # What the listing said reached the cluster's stored verdict: its server, named.
    assert one_servers[0] in " ".join(text_reasons(first))


def test_a_refused_nlb_listing_asks_each_group_with_one_reason(
        engine: InProcessEngine, cloud: Emulator) -> None:
    (one, _), (two, _) = nlb_group(cloud, 1), nlb_group(cloud, 1)
    first = on_nlb(None, one)
    clusters = [first, on_nlb(first.cloud_account, two)]
    cloud.control.clear_calls()
    cloud.control.add_fault(action="ListServerGroupServers", code="Forbidden.RAM",
                            http_status=403, count=1)
    run_round(engine)
    assert sorted(group_calls(cloud)) == sorted(["", one, two])
    for cluster in clusters:
        (reason,) = cloud_reasons(cluster, "listing_refused")
        assert reason["params"]["action"] == "NLB ListServerGroupServers"
        assert reason["params"]["code"] == "Forbidden.RAM"


def test_an_nlb_listing_cut_off_at_its_page_limit_judges_no_group(cloud: Emulator) -> None:
    """ListServerGroupServers pages promise no order by group: stopped with a NextToken
    left, any group may have servers on the pages never read, so none is judged from it."""
    (one, one_servers), (two, _) = nlb_group(cloud, 2), nlb_group(cloud, 1)
    api = AliyunCloud(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, cloud.region_id,
                      cloud.endpoint)
    whole = api.list_region_servers(page_size=1)
    assert whole.complete
    assert sorted(s.server_id for s in judge.group_servers(whole, one) or []) == \
        sorted(one_servers)
    cut = api.list_region_servers(page_size=1, max_pages=2)
    assert not cut.complete
    assert judge.group_servers(cut, one) is None and judge.group_servers(cut, two) is None
