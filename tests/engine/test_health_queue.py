"""The periodic health checks cannot flood the engine's queue: they run on a queue of their
own, a cluster whose check is still queued or running is skipped, and a queued check expires
with the interval. Celery really publishes (to the in-memory transport of the spec tier,
tests/support/engine_specs.py); a test delivers a message by calling its task."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, ClusterStatus
from clusters.operations import health
from panel.celery import app as panel_app
from panel.celery import health_queue
from tests.support.engine_specs import (
    ADVANCE,
    InProcessEngine,
    start_run,
)
from tests.support.factories import make_cluster

CHECK = "clusters.refresh_health"
BATCH = "clusters.refresh_health_batch"
ROUND = "clusters.refresh_all_health"


def live_cluster() -> Cluster:
    return make_cluster(status=ClusterStatus.READY)


def checks(engine: InProcessEngine) -> list[int]:
    """The clusters the rounds queued checks for since the last look (in batches by account
    and region: tests/engine/test_health_batches.py)."""
    return sorted(pk for sent in engine.take() if sent.task == BATCH for pk in sent.args[0])


def health_time_passes(seconds: float) -> None:
    Cluster.objects.filter(health_check_until__isnull=False).update(
        health_check_until=F("health_check_until") - timedelta(seconds=seconds))


def test_health_checks_run_on_a_queue_of_their_own_and_expire_with_the_interval(
        engine: InProcessEngine) -> None:
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    ready, updating = live_cluster(), make_cluster(status=ClusterStatus.UPDATING)
    make_cluster(status=ClusterStatus.DRAFT)
    start_run(engine, StepSpec("a", "A", "test.work"))
    health.refresh_all_health.delay()
    advance, round_ = engine.take()
    assert (advance.task, advance.queue) == (ADVANCE, default)
    assert (round_.task, round_.queue) == (ROUND, health_queue(default))
    assert health_queue(default) != default

    assert engine.act(health.refresh_all_health) == 2
    batches = engine.take()
    assert sorted(pk for message in batches for pk in message.args[0]) == sorted(
        [ready.pk, updating.pk])
    for message in batches:
        engine.deliver(message)
    sent = engine.take()
    assert sorted(message.args[0] for message in sent) == sorted([ready.pk, updating.pk])
    interval = settings.PANEL_HEALTH_INTERVAL_SECONDS
    for message in [*batches, *sent]:
        assert message.task in (BATCH, CHECK)
        assert message.queue == health_queue(default)
        assert message.expires is not None
        left = (message.expires - timezone.now()).total_seconds()
        assert interval - 5 < left <= interval


def test_the_beat_round_expires_with_the_interval_and_goes_to_the_health_queue() -> None:
    entry = panel_app.conf.beat_schedule["refresh cluster health"]
    assert entry["task"] == ROUND
    assert entry["options"]["expires"] == settings.PANEL_HEALTH_INTERVAL_SECONDS
    route = panel_app.amqp.router.route({}, ROUND)
    assert route["queue"].name == health_queue(panel_app.conf.task_default_queue)


def test_a_cluster_whose_check_is_still_queued_is_skipped(engine: InProcessEngine) -> None:
    cluster = live_cluster()
    engine.act(health.refresh_all_health)
    assert checks(engine) == [cluster.pk]
    for _ in range(3):  # a worker that cannot keep up: the next rounds add nothing
        assert engine.act(health.refresh_all_health) == 0
    assert checks(engine) == []


def test_a_queued_check_that_never_ran_is_replaced_once_the_interval_is_over(
        engine: InProcessEngine) -> None:
    """Its message expired with the interval (Celery drops it), so the cluster is free again."""
    cluster = live_cluster()
    engine.act(health.refresh_all_health)
    engine.take()
    health_time_passes(settings.PANEL_HEALTH_INTERVAL_SECONDS - 5)
    engine.act(health.refresh_all_health)
    assert checks(engine) == []
    health_time_passes(6)
    engine.act(health.refresh_all_health)
    assert checks(engine) == [cluster.pk]


def test_a_cluster_whose_check_is_running_is_skipped_even_past_the_interval(
        engine: InProcessEngine) -> None:
    cluster, other = live_cluster(), live_cluster()
    with health.checking(cluster.pk):  # what the task holds while the check runs
        health_time_passes(3 * settings.PANEL_HEALTH_INTERVAL_SECONDS)  # a slow one
        engine.act(health.refresh_all_health)
        assert checks(engine) == [other.pk]
    engine.act(health.refresh_all_health)
    assert checks(engine) == [cluster.pk]


def test_a_finished_check_frees_its_cluster_for_the_next_round(engine: InProcessEngine) -> None:
    cluster = live_cluster()
    engine.act(health.refresh_all_health)
    (batch,) = engine.take()
    engine.deliver(batch)
    (message,) = engine.take()
    engine.deliver(message)  # no kubeconfig yet: the verdict is "unknown", quickly
    assert Cluster.objects.get(pk=cluster.pk).health_check_until is None
    engine.act(health.refresh_all_health)
    assert checks(engine) == [cluster.pk]


def test_a_check_holds_its_cluster_no_longer_than_celery_lets_it_run() -> None:
    """A worker that died mid-check frees the cluster when the check would have been killed."""
    task = health.refresh_health
    assert task.soft_time_limit == health.CHECK_SOFT_LIMIT_SECONDS
    assert task.time_limit == health.CHECK_HARD_LIMIT_SECONDS
    assert health.CHECK_HARD_LIMIT_SECONDS > health.CHECK_SOFT_LIMIT_SECONDS
