"""Checking a cluster's health as an operation: for one cluster on request, or for every
live cluster on the beat. The judgment itself is clusters.adapters.health.refresh (the create
run's last step uses the same one).

Why the checks are kept on a short leash: every live cluster is checked every
PANEL_HEALTH_INTERVAL_SECONDS, and a check of an unreachable cluster is slow (it waits out its
timeouts). Those checks used to share the only queue with provisioning steps, with nothing to
stop a cluster being queued again while its last check had not even started, so a few hundred
unreachable clusters kept every worker busy and provisioning starved. Now:

* the checks run on a queue of their own (panel/celery.py `health_queue`), which a worker of
  its own consumes;
* a cluster whose check is still queued or running is skipped (`Cluster.health_check_until`);
* a queued check expires with the interval: by then the next round queues a fresh one.

Why rounds go in batches: with hundreds of live clusters in one account and region, one
cloud call per cluster for what a listing answers a hundred at a time is most of the round's
calls (and of Alibaba's API rate limits). The beat's round groups the clusters that need a
check by cloud account and region (one group, up to BATCH_SIZE) and queues one `batch` task
per group: it reads the group's listings once (clusters.adapters.health.prefetch) and queues
each cluster's own check with what the listings said about it. Each cluster keeps its own
task, so one unreachable cluster's timeouts never delay another's verdict. A listing that
was refused (RAM) reaches every cluster it was for, each then checked on its own; one busy
or throttled sends its batch again, due LISTING_RETRY_SECONDS later (a countdown: the health
worker's slot is not held by a sleep meanwhile), and still throttled then, queues no checks
at all (each cluster keeps its verdict, marked "not refreshed", and goes first next round):
one call per cluster is the last thing a throttled API needs. Groups never mix accounts: a
listing is made with one account's keys and answers only for it.

Why the order is kept end to end: `batches` puts the never-checked, then the longest
unchecked clusters first, and the checks are queued (and so run) in that order, so a round
that the interval cuts short leaves out the most recently checked clusters, and those it
left out go first in the next round.

Why the "check in flight" marker is a column and not a Redis key: the database is where the
verdict goes anyway and its clock is the one the engine trusts (a conditional UPDATE against
`Now()` needs no second store); the broker is not ours to keep state in, and the cache is
per-process (Django's local memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db.models import F, Q
from django.db.models.functions import Now
from django.utils.translation import gettext as _

from clusters.adapters import cloud, etcd_members
from clusters.adapters.health import (
    CLOUD_CHECK,
    LISTING_RETRY_SECONDS,
    NOT_REFRESHED,
    ListingUnavailable,
    Prefetched,
    cloud_reason,
    prefetch,
    refresh,
)
from clusters.core.errors import StepError
from clusters.models import Cluster, ClusterStatus, DatastoreKind, Health

log = logging.getLogger(__name__)

LIVE_STATUSES = (ClusterStatus.READY, ClusterStatus.UPDATING)

#: A running check is stopped (SoftTimeLimitExceeded) after this long, and killed 30 s later
#: (Celery's hard limit). Its cluster is held for the hard limit, so a check that is still
#: running is never queued again, and one whose worker died is queued again after it.
CHECK_SOFT_LIMIT_SECONDS = 240
CHECK_HARD_LIMIT_SECONDS = CHECK_SOFT_LIMIT_SECONDS + 30
#: Clusters per batch. The listings are of the whole region (DescribeDBInstances pages of
#: 100, PageSize 1-100), so a batch is an account and region's clusters in one: smaller
#: batches would each list the region again. The cap only bounds one message's size and
#: the batch task's fan-out.
BATCH_SIZE = 2000
#: A batch only lists (a few bounded cloud calls): stopped well before the interval ends.
BATCH_SOFT_LIMIT_SECONDS = 50


def _not_in_flight() -> Q:
    """No check of the cluster is queued or running (by the database's clock)."""
    return Q(health_check_until__isnull=True) | Q(health_check_until__lt=Now())


@contextmanager
def checking(cluster_id: int) -> Iterator[None]:
    """Hold the cluster while its check runs, so the beat does not queue another meanwhile."""
    Cluster.objects.filter(pk=cluster_id).update(
        health_check_until=Now() + timedelta(seconds=CHECK_HARD_LIMIT_SECONDS))
    try:
        yield
    finally:
        Cluster.objects.filter(pk=cluster_id).update(health_check_until=None)


def refresh_by_id(cluster_id: int, prefetched: dict[str, Any] | None = None) -> str:
    with checking(cluster_id):
        cluster = Cluster.objects.select_related("cloud_account").filter(pk=cluster_id).first()
        if cluster is None or not cluster.kubeconfig:
            return Health.UNKNOWN
        return refresh(cluster, Prefetched.from_json(prefetched)).health


def batches(cluster_ids: list[int] | None = None) -> list[list[int]]:
    """Live clusters with no check in flight, by (cloud account, region), BATCH_SIZE at most
    each, oldest verdict first within a group (so a round cut short by the interval reaches
    the ones it skipped next time)."""
    candidates = Cluster.objects.filter(_not_in_flight(), status__in=LIVE_STATUSES)
    if cluster_ids is not None:
        candidates = candidates.filter(pk__in=cluster_ids)
    grouped: dict[tuple[int, str], list[int]] = {}
    rows = candidates.order_by("cloud_account_id", "region",
                               F("health_checked_at").asc(nulls_first=True), "pk") \
        .values_list("pk", "cloud_account_id", "region")
    for pk, account_id, region in rows:
        grouped.setdefault((account_id, region), []).append(pk)
    return [ids[start:start + BATCH_SIZE] for ids in grouped.values()
            for start in range(0, len(ids), BATCH_SIZE)]


def queue_refresh_for_live_clusters(task: Any) -> int:
    """Queue one batch per account and region (BATCH_SIZE clusters at most) for the live
    clusters that have no check in flight; returns how many clusters were queued. Each
    cluster is held from now on: a queued batch expires with the interval, and so does its
    hold on its clusters."""
    interval = settings.PANEL_HEALTH_INTERVAL_SECONDS
    queued = 0
    for batch in batches():
        held = [pk for pk in batch if _hold(pk, interval)]
        if held:
            task.apply_async((held,), expires=interval)
            queued += len(held)
    return queued


def _hold(cluster_id: int, interval: float) -> bool:
    """Mark the cluster's check as queued, unless one is queued or running already."""
    # Conditional: a check that started since the caller looked keeps its cluster.
    return bool(Cluster.objects.filter(_not_in_flight(), pk=cluster_id).update(
        health_check_until=Now() + timedelta(seconds=interval)))


def check_batch(cluster_ids: list[int], check: Any, again: Any = None,
                retried: bool = False) -> int:
    """One batch: the account and region's listings once, then each cluster's own check
    queued with what they said about it (`check`: the per-cluster task), in the batch's
    order (oldest verdict first, see `batches`). A cluster that left the live states
    meanwhile is let go. A listing busy or throttled sends the group once more through
    `again` (the batch task, called with `retried`), due after LISTING_RETRY_SECONDS, its
    clusters still held; `retried` (or no `again`): their verdicts are marked "not
    refreshed" instead. Returns how many checks were queued."""
    interval = settings.PANEL_HEALTH_INTERVAL_SECONDS
    found = {c.pk: c for c in Cluster.objects.select_related("cloud_account")
             .filter(pk__in=cluster_ids, status__in=LIVE_STATUSES)}
    clusters = [found[pk] for pk in dict.fromkeys(cluster_ids) if pk in found]
    gone = set(cluster_ids) - set(found)
    if gone:
        Cluster.objects.filter(pk__in=gone).update(health_check_until=None)
    by_place: dict[tuple[int, str], list[Cluster]] = {}
    for cluster in clusters:  # one group already; said again so a listing never mixes
        by_place.setdefault((cluster.cloud_account_id, cluster.region), []).append(cluster)
    queued = 0
    for group in by_place.values():
        try:
            api = cloud.cloud_for(group[0])
            fanned = prefetch(api, group)
        except ListingUnavailable as exc:  # busy or throttled: later, or back off
            ids = [c.pk for c in group]
            if again is not None and not retried:
                log.info("health batch of %d clusters: asked again in %.0f s: %s", len(group),
                         LISTING_RETRY_SECONDS, exc)
                Cluster.objects.filter(pk__in=ids).update(
                    health_check_until=Now() + timedelta(seconds=interval))
                again.apply_async((ids, True), countdown=LISTING_RETRY_SECONDS,
                                  expires=interval)
                continue
            log.warning("health batch of %d clusters not refreshed: %s", len(group), exc)
            _not_refreshed(group, exc.reason)
            continue
        except StepError as exc:  # no client at all (credentials): each checks on its own
            fanned = {c.pk: Prefetched(rds_error=cloud_reason("batch_failed", detail=str(exc)))
                      for c in group}
        except Exception:  # a defect here must not cost the clusters their checks
            log.exception("health batch of %d clusters: the batched reads failed",
                          len(group))
            fanned = {c.pk: Prefetched() for c in group}
        # Held again for a whole interval from now: a batch that waited in the queue must
        # not let the next round queue its clusters a second time before their checks ran.
        Cluster.objects.filter(pk__in=[c.pk for c in group]).update(
            health_check_until=Now() + timedelta(seconds=interval))
        for cluster in group:
            check.apply_async((cluster.pk, fanned[cluster.pk].as_json()), expires=interval)
            queued += 1
    return queued


def _not_refreshed(group: list[Cluster], reason: dict[str, Any]) -> None:
    """Keep each cluster's verdict and its time (so it goes first next round), with `reason`
    added in place of an earlier "not refreshed", and let the cluster go."""
    for cluster in group:
        reasons = [r for r in cluster.health_reasons or []
                   if not (isinstance(r, dict) and r.get("check") == CLOUD_CHECK
                           and r.get("code") == NOT_REFRESHED)]
        Cluster.objects.filter(pk=cluster.pk).update(health_reasons=[*reasons, reason],
                                                     health_check_until=None)


def _queue_one(task: Any, cluster_id: int, interval: float) -> bool:
    """Hold the cluster and queue its check, unless a check is already queued or running."""
    held = _hold(cluster_id, interval)
    if held:
        task.apply_async((cluster_id,), expires=interval)
    return held


def request_health_check(cluster: Cluster) -> bool:
    """An operator's "check it now" (the admin's action): one check of `cluster`, queued like
    the beat's, so it neither doubles a check in flight nor outlives the interval. True when
    queued, False when a check of it was queued or running already."""
    return _queue_one(refresh_health, cluster.pk, settings.PANEL_HEALTH_INTERVAL_SECONDS)


def snapshot_refresh_refusal(cluster: Cluster) -> str:
    """Why the owner's "Refresh snapshots" is not offered now ('' when it is): embedded etcd
    only, and only while K3s runs (not destroyed, not while it is being destroyed)."""
    if cluster.datastore_kind != DatastoreKind.ETCD:
        return _("Only an embedded-etcd cluster has etcd snapshots.")
    if cluster.status not in LIVE_STATUSES:
        return _("The snapshots can be listed only while the cluster runs; this one is "
                 "%(status)s.") % {"status": cluster.get_status_display()}
    return ""


def request_snapshot_refresh(cluster: Cluster) -> None:
    """The owner's "Refresh snapshots": `k3s etcd-snapshot ls` on the healthy servers, in the
    health worker (never in the web request). The caller audits it."""
    refresh_etcd_snapshots.apply_async((cluster.pk,),
                                       expires=settings.PANEL_HEALTH_INTERVAL_SECONDS)


# --- Celery entry points (registered by ClustersConfig.ready; the names must never change:
# the beat schedule and the router in panel/celery.py and queued messages name them) ----------


@shared_task(name="clusters.refresh_health", soft_time_limit=CHECK_SOFT_LIMIT_SECONDS,
             time_limit=CHECK_HARD_LIMIT_SECONDS)
def refresh_health(cluster_id: int, prefetched: dict[str, Any] | None = None) -> str:
    return refresh_by_id(cluster_id, prefetched)


@shared_task(name="clusters.refresh_health_batch", soft_time_limit=BATCH_SOFT_LIMIT_SECONDS,
             time_limit=BATCH_SOFT_LIMIT_SECONDS + 10)
def refresh_health_batch(cluster_ids: list[int], retried: bool = False) -> int:
    return check_batch(cluster_ids, refresh_health, again=refresh_health_batch, retried=retried)


@shared_task(name="clusters.refresh_all_health")
def refresh_all_health() -> int:
    return queue_refresh_for_live_clusters(refresh_health_batch)


@shared_task(name="clusters.refresh_etcd_snapshots", soft_time_limit=CHECK_SOFT_LIMIT_SECONDS,
             time_limit=CHECK_HARD_LIMIT_SECONDS)
def refresh_etcd_snapshots(cluster_id: int) -> int:
    """List the snapshots on the servers the last health check saw healthy (every live
    server when it saw none)."""
    cluster = Cluster.objects.filter(pk=cluster_id, status__in=LIVE_STATUSES).first()
    if cluster is None or cluster.datastore_kind != DatastoreKind.ETCD:
        return 0
    healthy = {m.get("node") for m in etcd_members.voters(list(cluster.etcd_members or []))
               if m.get("healthy")}
    total, problems = etcd_members.refresh_snapshots(cluster, only={str(h) for h in healthy}
                                                     or None)
    for problem in problems:
        log.warning("etcd snapshots of cluster %s not listed on %s", cluster.pk, problem)
    return total
