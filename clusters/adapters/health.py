"""How a cluster is doing: API through the SLB, nodes Ready, SLB backends, RDS status, and
the datastore (kine's compaction and size, the database's storage and connections).

Why one function: the create run's last step, the periodic beat check and the "refresh
health" buttons must all judge the same way. It sits with the adapters because it is only a
reading of the world through them; starting a check (the Celery tasks, the beat's sweep of
live clusters) is the operation in clusters/operations/health.py.

Batched reads (`prefetch`): with hundreds of clusters in one account and region, asking RDS
about each instance (DescribeDBInstanceAttribute) and the NLB about each server group every
minute is one call per cluster where one page answers for a hundred. The beat's round
groups clusters by account and region, reads the region's RDS instances
(DescribeDBInstances, 100 a page) and NLB servers (ListServerGroupServers without a group,
100 a page) once, and hands each cluster what the listing said about its own resources;
`assess` then uses it instead of asking again. What has no batched form stays per cluster:
a CLB's DescribeHealthStatus (one LoadBalancerId), an NLB listener's GetListenerHealthStatus
(one ListenerId), DescribeResourceUsage (one DBInstanceId), the API and the datastore.
A resource the listing does not show (deleted, or outside what the RAM policy lists) is
asked about on its own, so the per-resource call stays the judge of "no longer exists".

A listing that fails is told apart by why. Busy or throttled (TransientError, e.g.
Throttling.User) raises `ListingUnavailable` at once: the batch is queued again after
LISTING_RETRY_SECONDS (clusters/operations/health.py; a countdown, not a sleep, so the
health worker's slot checks other clusters meanwhile) and, still failing then, queues no
checks (its clusters keep their previous verdict, marked "not refreshed" with the code and
RequestId), because falling back to one call per cluster is N calls exactly when the API
asks for fewer. Refused (PermanentError,
e.g. a RAM policy without the List/Describe action) cannot get better by asking again, so
each cluster is checked on its own as before, with one reason (code + params, translated
on the page like the datastore's findings). An NLB listing cut off at MAX_PAGES is not
complete: no group is judged from it (each is asked on its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_noop

from clusters.adapters import (
    api_balancer,
    cloud,
    clusterconfig,
    datastore_health,
    datastore_tls,
    etcd_members,
    nodes,
    ssh,
)
from clusters.adapters.aliyun import AliyunCloud, NlbServer, RdsInstance
from clusters.adapters.aliyun.nlb import RegionServers
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.datastore_health import KineMeasurement, StorageUsage
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.k3s import etcd
from clusters.k3s.etcd import Quorum
from clusters.k3s.versions import kine_max_idle_connections
from clusters.models import (
    CloudResource,
    Cluster,
    DatastoreKind,
    Health,
    LoadBalancerKind,
    Node,
    NodeRole,
    NodeStatus,
    ResourceState,
)

log = logging.getLogger(__name__)

# The node states a health check may change: a node being installed, removed or that failed
# belongs to the run doing that; its row is that run's to write.
LIVE_NODE_STATUSES = (NodeStatus.READY, NodeStatus.NOT_READY)

# One health check per cluster per minute: the datastore measurement must stay quick.
DATASTORE_TIMEOUT = 10
SNAPSHOT_SETTLE = timedelta(minutes=2)


@dataclass
class Assessment:
    health: str = Health.HEALTHY
    # A plain English string, or a datastore finding's dict (clusters.adapters.datastore_health
    # Finding.as_reason: translated on the page by clusters.web.display.health_reason).
    reasons: list[str | dict[str, Any]] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    # Node pk -> Ready as the Kubernetes API says, for the nodes the page shows as live: a
    # check that finds a node NotReady must not leave the Nodes table saying Ready.
    node_ready: dict[int, bool] = field(default_factory=dict)
    # Embedded etcd only: every member as its server answered (etcd_members.MemberState).
    etcd_members: list[dict[str, Any]] | None = None

    def worse(self, health: str, reason: str | dict[str, Any]) -> None:
        order: list[str] = [Health.HEALTHY, Health.DEGRADED, Health.DOWN]
        if order.index(health) > order.index(self.health):
            self.health = health
        self.reasons.append(reason)

    def note(self, reason: dict[str, Any]) -> None:
        """A reason shown without changing the verdict (a metric that could not be read)."""
        self.reasons.append(reason)

    def note_text(self, reason: str) -> None:
        """A plain reason shown without changing the verdict (a batched read that failed)."""
        self.reasons.append(reason)


def reason_message(reason: str | dict[str, Any]) -> str:
    """The English text of a stored reason (for logs)."""
    return reason.get("message", str(reason)) if isinstance(reason, dict) else str(reason)


# How long the DBInstanceStorage one DescribeDBInstanceAttribute read is used with a batched
# status: the listing has no storage figure (V2 DescribeDBInstancesResponseBody items carry
# no DBInstanceStorage). A storage change passes through a status other than Running
# (DBInstanceClassChanging): any non-Running status, from the listing or the attribute
# read, invalidates the figure (the re-read is kept, marked not settled), so the first
# Running round after the change reads the attribute again and uses the new figure. The
# figure is kept on the instance's ledger row (`attributes`), keyed by the instance id it
# was read for, so every worker process shares it and a restart loses nothing; only live
# clusters are checked, and nothing else writes that row once the create bought it.
STORAGE_REREAD_SECONDS = 3600.0
# attributes key: {"id": DBInstanceId, "gb": int, "at": epoch seconds, "running": bool}
STORAGE_SEEN = "health_storage_seen"

# A busy or throttled listing's batch is queued once more, due after this long (Alibaba's
# throttling is per second: Throttling.User "Request was denied due to user flow control");
# still throttled then, the batch backs off to the next round rather than asking once per
# cluster.
LISTING_RETRY_SECONDS = 1.0

# Reasons about the batched cloud reads, stored as code + params (the English message for
# logs) and translated on the page like the datastore's and etcd's reasons.
CLOUD_CHECK = "cloud"
NOT_REFRESHED = "not_refreshed"
CLOUD_MESSAGES = {
    "listing_refused": gettext_noop(
        "%(action)s for %(region)s was refused (code %(code)s, RequestId %(request_id)s): "
        "this cluster's resources were read on their own. Allow %(action)s in the cloud "
        "account's RAM policy so one listing answers for every cluster of the region."),
    "batch_failed": gettext_noop(
        "The batched cloud reads could not start (%(detail)s): this cluster was checked "
        "on its own."),
    NOT_REFRESHED: gettext_noop(
        "Not refreshed: %(action)s for %(region)s was busy or throttled (code %(code)s, "
        "RequestId %(request_id)s) after a retry. The verdict shown is from the previous "
        "check; the next round tries again."),
}


def cloud_reason(reason_code: str, /, **params: Any) -> dict[str, Any]:
    """The stored form of a batched-read reason (English message plus what translates it)."""
    return {"check": CLOUD_CHECK, "code": reason_code, "params": params,
            "message": CLOUD_MESSAGES[reason_code] % params}


def _listing_reason(reason_code: str, action: str, region: str,
                    exc: StepError) -> dict[str, Any]:
    return cloud_reason(reason_code, action=action, region=region, code=exc.code or "-",
                        request_id=exc.request_id or "-")


class ListingUnavailable(StepError):
    """A region listing busy or throttled: the batch is asked again later, or backs off."""

    def __init__(self, reason: dict[str, Any]) -> None:
        super().__init__(reason["message"])
        self.reason = reason


_Listed = TypeVar("_Listed")


def _listing(call: Callable[[], _Listed], action: str, region: str) -> _Listed:
    """`call()`; ListingUnavailable when it is busy or throttled (the caller decides when to
    ask again: never a sleep inside the health task). A refusal (PermanentError) goes to the
    caller."""
    try:
        return call()
    except TransientError as exc:
        log.info("%s for %s busy: %s", action, region, exc)
        raise ListingUnavailable(_listing_reason(NOT_REFRESHED, action, region, exc)) from exc


@dataclass
class Prefetched:
    """What one account and region's batched listings said about one cluster's resources.

    It travels in the cluster's check message (clusters/operations/health.py), so it is
    plain JSON: statuses and ids, never a secret. `rds_status` None: the listing did not
    show the instance (or there was none to read); `*_error`: why the listing was refused,
    a reason as stored on the cluster (`cloud_reason`)."""

    rds_status: str | None = None
    rds_error: str | dict[str, Any] = ""
    nlb_servers: list[list[Any]] | None = None
    nlb_error: str | dict[str, Any] = ""

    def as_json(self) -> dict[str, Any]:
        return {"rds_status": self.rds_status, "rds_error": self.rds_error,
                "nlb_servers": self.nlb_servers, "nlb_error": self.nlb_error}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Prefetched | None:
        if not value:
            return None
        servers = value.get("nlb_servers")
        return cls(rds_status=value.get("rds_status"), rds_error=value.get("rds_error") or "",
                   nlb_servers=[list(s) for s in servers] if servers is not None else None,
                   nlb_error=value.get("nlb_error") or "")

    def servers(self) -> list[NlbServer] | None:
        if self.nlb_servers is None:
            return None
        return [NlbServer(str(i), str(ip), int(port), str(status))
                for i, ip, port, status in self.nlb_servers]


def rds_instance_id(cluster: Cluster) -> str:
    """The cluster's panel-bought RDS instance ("" for bring-your-own or none yet)."""
    if cluster.datastore_kind != DatastoreKind.RDS:
        return ""
    return api_balancer.ledger_id(cluster, "rds_instance")


def prefetch(api: AliyunCloud, clusters: Iterable[Cluster]) -> dict[int, Prefetched]:
    """One account and region's batched reads, fanned out by cluster: one DescribeDBInstances
    listing for every RDS instance and one ListServerGroupServers listing for every NLB
    server group. The caller groups clusters so that `api` is their account's client in
    their region: a listing never answers for another account.

    Raises ListingUnavailable when a listing is busy or throttled (the caller asks again
    later or backs off); a refused listing is each cluster's own call, with the reason."""
    wanted = list(clusters)
    rds = {c.pk: rds_instance_id(c) for c in wanted}
    groups = {c.pk: api_balancer.ledger_id(c, api_balancer.NLB_GROUP_KIND) for c in wanted
              if c.load_balancer_kind == LoadBalancerKind.NLB}
    statuses: dict[str, str] = {}
    rds_error: str | dict[str, Any] = ""
    if any(rds.values()):
        try:
            statuses = {i.instance_id: i.status for i in _listing(
                api.list_rds, "RDS DescribeDBInstances", api.region)}
        except ListingUnavailable:
            raise
        except StepError as exc:
            rds_error = _listing_reason("listing_refused", "RDS DescribeDBInstances",
                                        api.region, exc)
    listing = RegionServers({}, True)
    nlb_error: str | dict[str, Any] = ""
    if any(groups.values()):
        try:
            listing = _listing(api.list_region_servers, "NLB ListServerGroupServers",
                               api.region)
        except ListingUnavailable:
            raise
        except StepError as exc:
            nlb_error = _listing_reason("listing_refused", "NLB ListServerGroupServers",
                                        api.region, exc)
        if not listing.complete:
            log.warning("NLB ListServerGroupServers for %s stopped at its page limit: "
                        "every server group is asked on its own", api.region)
    fanned = {}
    for cluster in wanted:
        group = groups.get(cluster.pk, "")
        listed = group_servers(listing, group) if group and not nlb_error else None
        fanned[cluster.pk] = Prefetched(
            rds_status=statuses.get(rds[cluster.pk]) if rds[cluster.pk] else None,
            rds_error=rds_error if rds[cluster.pk] else "",
            nlb_servers=([[s.server_id, s.server_ip, s.port, s.status] for s in listed]
                         if listed is not None else None),
            nlb_error=nlb_error if group else "")
    return fanned


def group_servers(listing: RegionServers, group: str) -> list[NlbServer] | None:
    """The group's servers as the region listing showed them, or None: ask the group on its
    own. A group the listing shows no server of (deleted, emptied) is asked about alone
    (ListServerGroupServers with its id is the judge, as DescribeDBInstanceAttribute is for
    RDS); so is every group of a listing cut off at its page limit, where any group may
    have servers on the pages never read."""
    if not listing.complete:
        return None
    return listing.groups.get(group)


def assess(cluster: Cluster, prefetched: Prefetched | None = None) -> Assessment:
    result = Assessment()
    _check_api(cluster, result)
    # One client for the whole check: building one (the SDK's endpoint tables) costs more
    # CPU than the call it makes.
    api = cloud.cloud_for(cluster)
    rds_instance = _check_cloud(cluster, result, prefetched, api)
    if cluster.datastore_kind == DatastoreKind.ETCD:
        _check_etcd(cluster, result)
    else:
        _check_datastore(cluster, result, rds_instance, api)
    return result


def _check_etcd(cluster: Cluster, result: Assessment) -> None:
    """Every etcd member (healthy, leader) as etcd lists them, read from one server
    (etcd_members.read_members), and the quorum its voters make: fewer than a majority
    healthy is DOWN (etcd accepts no writes), exactly a majority is DEGRADED (one more
    failure and it is down). Learners do not vote and do not count. Snapshots are listed
    again only when one may have been taken (snapshots_due)."""
    members = etcd_members.read_members(cluster)
    result.etcd_members = [member.as_dict() for member in members]
    voting = [member for member in members if member.voter]
    quorum = Quorum(len(voting), sum(member.healthy for member in voting))
    for member in members:
        if not member.healthy and member.listed:
            result.worse(Health.DEGRADED, etcd_members.reason(
                "member_unhealthy", node=member.name, detail=member.error or "-",
                detail_code=member.code, detail_params=member.params))
    params = {"healthy": quorum.healthy, "members": quorum.members, "needed": quorum.needed}
    if quorum.lost:
        result.worse(Health.DOWN, etcd_members.reason("quorum_lost", **params))
    elif quorum.at_risk:
        result.worse(Health.DEGRADED, etcd_members.reason("quorum_at_risk", **params))
    elif members and not any(member.leader for member in members):
        result.worse(Health.DEGRADED, etcd_members.reason("no_leader"))
    leader = next((member.name for member in members if member.leader), "none")
    result.facts.append(f"etcd: {quorum.healthy}/{quorum.members} voting members healthy, "
                        f"leader {leader}")
    if not quorum.lost and snapshots_due(cluster, timezone.now()):
        _count, problems = etcd_members.refresh_snapshots(cluster, only={
            member.node for member in members if member.healthy})
        result.facts.extend(f"etcd snapshots not listed on {p}" for p in problems)


def snapshots_due(cluster: Cluster, now: datetime) -> bool:
    """Whether the health check lists the snapshots again: never listed; or K3s's schedule
    had a run time since the last listing and PANEL_ETCD_SNAPSHOT_LIST_MINUTES have passed;
    or PANEL_ETCD_SNAPSHOT_LIST_MAX_HOURS have (a server whose clock runs on another zone
    than the one the schedule is read in). The pre-upgrade snapshot and the owner's Refresh
    snapshots list them on their own."""
    listed = cluster.etcd_snapshots_listed_at
    if listed is None:
        return True
    age = (now - listed).total_seconds()
    if age >= settings.PANEL_ETCD_SNAPSHOT_LIST_MAX_HOURS * 3600:
        return True
    if age < settings.PANEL_ETCD_SNAPSHOT_LIST_MINUTES * 60:
        return False
    cron = cluster.etcd_snapshot_cron or etcd.DEFAULT_SNAPSHOT_CRON
    # A run time at least SNAPSHOT_SETTLE ago: K3s has had time to write the file.
    return etcd.cron_problem(cron) is None and etcd.schedule_fired(
        cron, listed, now - SNAPSHOT_SETTLE)


def _check_api(cluster: Cluster, result: Assessment) -> None:
    try:
        client = clusterconfig.api_client(cluster, timeout=5)
        readyz = client.readyz()
        states = {state.name: state for state in client.nodes()}
    except StepError as exc:
        result.worse(Health.DOWN, f"API through the SLB: {exc}")
        return
    if readyz != "ok":
        result.worse(Health.DOWN, f"API /readyz through the SLB: {readyz}")
    result.facts.append(f"API {client.server}: {readyz}")
    servers_ready = 0
    for node in cluster.nodes.present():
        state = states.get(node.name)
        if node.status in LIVE_NODE_STATUSES:
            result.node_ready[node.pk] = state is not None and state.ready
        if state is None or not state.ready:
            result.worse(Health.DEGRADED, f"node {node.name or node.private_ip} is not Ready")
        elif node.role == NodeRole.SERVER:
            servers_ready += 1
    if servers_ready == 0:
        result.worse(Health.DOWN, "no server node is Ready")
    result.facts.append(f"{sum(s.ready for s in states.values())}/{len(states)} nodes Ready")


def _check_cloud(cluster: Cluster, result: Assessment, prefetched: Prefetched | None,
                 api: AliyunCloud) -> RdsInstance | None:
    """SLB backends and the RDS instance's status; returns the instance as described, so the
    datastore check reads its storage without asking RDS again. `prefetched`: what the
    round's batched listings said (see `prefetch`)."""
    instance = None
    try:
        balancer = api_balancer.for_cluster(cluster, api)
        ident = balancer.ident
        if ident:
            # A CLB's DescribeHealthStatus or an NLB's GetListenerHealthStatus.
            servers = prefetched.servers() if prefetched else None
            if prefetched and prefetched.nlb_error:
                _note(result, prefetched.nlb_error)
            statuses = (balancer.health(servers=servers)
                        if isinstance(balancer, api_balancer.NlbBalancer) else balancer.health())
            ips = dict(cluster.nodes.values_list("ecs_instance_id", "private_ip"))
            bad = [ips.get(i) or i for i, healthy in sorted(statuses.items()) if not healthy]
            if bad:
                result.worse(Health.DEGRADED,
                             f"{balancer.what} backends unhealthy: {', '.join(bad)}")
            result.facts.append(f"{balancer.what} {ident}: "
                                f"{len(statuses) - len(bad)}/{len(statuses)} backends normal")
        rds = cluster.resources.filter(kind="rds_instance", state=ResourceState.PRESENT).first()
        if cluster.datastore_kind == DatastoreKind.RDS and rds:
            instance = _describe_rds(api, rds, prefetched, result)
            if instance is None:
                result.worse(Health.DOWN, f"RDS {rds.provider_id} no longer exists")
            elif not instance.running:
                result.worse(Health.DEGRADED, f"RDS {rds.provider_id} is {instance.status}")
            else:
                result.facts.append(f"RDS {rds.provider_id}: Running")
    except StepError as exc:
        result.worse(Health.DEGRADED, f"cloud check failed: {exc}")
    return instance


def _note(result: Assessment, reason: str | dict[str, Any]) -> None:
    if isinstance(reason, dict):
        result.note(reason)
    else:  # a message queued before reasons became code + params
        result.note_text(f"{reason}; checked on its own")


def _describe_rds(api: AliyunCloud, row: CloudResource, prefetched: Prefetched | None,
                  result: Assessment) -> RdsInstance | None:
    """The instance with its status and storage: from the round's listing when it showed the
    instance Running and its storage was read, while Running, for this instance id within
    STORAGE_REREAD_SECONDS; otherwise from DescribeDBInstanceAttribute, whose figure is
    kept for the next rounds (marked not settled while the instance is not Running)."""
    instance_id = row.provider_id
    seen = row.attributes.get(STORAGE_SEEN)
    fresh = (isinstance(seen, dict) and seen.get("id") == instance_id
             and seen.get("running") is True and int(seen.get("gb") or 0) > 0
             and timezone.now().timestamp() - float(seen.get("at") or 0) < STORAGE_REREAD_SECONDS)
    if prefetched and prefetched.rds_error:
        _note(result, prefetched.rds_error)
    elif prefetched and prefetched.rds_status == "Running" and fresh:
        return RdsInstance(instance_id, "Running", storage_gb=int(seen["gb"]))
    instance = api.describe_rds(instance_id)
    attributes = dict(row.attributes)
    if instance is None or instance.storage_gb <= 0:
        attributes.pop(STORAGE_SEEN, None)
    elif not (fresh and instance.running and int(seen["gb"]) == instance.storage_gb):
        attributes[STORAGE_SEEN] = {"id": instance_id, "gb": instance.storage_gb,
                                    "at": timezone.now().timestamp(),
                                    "running": instance.running}
    if attributes != row.attributes:
        CloudResource.objects.filter(pk=row.pk).update(attributes=attributes)
    return instance


def limits() -> datastore_health.Limits:
    return datastore_health.Limits(
        compaction_gap=settings.PANEL_KINE_COMPACTION_GAP_LIMIT,
        kine_rows=settings.PANEL_KINE_ROWS_LIMIT,
        storage_percent=settings.PANEL_DATASTORE_STORAGE_PERCENT,
        connections_percent=settings.PANEL_DATASTORE_CONNECTIONS_PERCENT)


def _check_datastore(cluster: Cluster, result: Assessment,
                     rds_instance: RdsInstance | None, api: AliyunCloud) -> None:
    """kine's table and the database's connections, read through an SSH tunnel from a server
    (the RDS whitelist admits the hosts, not the panel: the datastore proof's own path), and
    for RDS the storage from DescribeResourceUsage. A metric that cannot be read is shown as
    not measured; it never fails the whole check."""
    servers = list(cluster.nodes.live().servers()
                   .order_by("pk"))
    findings: list[datastore_health.Finding] = []
    measured = _measure_kine(cluster, [s for s in servers if s.host_key], findings)
    storage = _rds_storage(cluster, rds_instance, findings, api)
    findings += datastore_health.evaluate(measured, limits=limits(), servers=len(servers),
                                          idle_per_server=kine_pool(cluster.k3s_version),
                                          storage=storage)
    result.facts.extend(datastore_health.facts(measured, storage))
    for finding in findings:
        if finding.degraded:
            result.worse(Health.DEGRADED, finding.as_reason())
        else:
            result.note(finding.as_reason())


def kine_pool(version: str) -> int:
    """kine's idle pool per server for the cluster's K3s version; a channel or unknown version
    counts as the newest kine (the larger pool: a warning too many beats one too few)."""
    try:
        return kine_max_idle_connections(version)
    except PermanentError:
        return kine_max_idle_connections("v99.0.0+k3s1")


def _measure_kine(cluster: Cluster, servers: list, findings: list) -> KineMeasurement | None:
    engine = engine_for(cluster)
    try:
        endpoint = engine.parse(clusterconfig.recorded_datastore_endpoint(cluster))
    except StepError as exc:
        findings.append(datastore_health.unknown("datastore", str(exc)))
        return None
    problems = []
    for server in servers:  # the first server that answers; one tunnel, a few queries
        try:
            ca_pem = datastore_tls.datastore_ca(cluster)
            with ssh.connect(nodes.target_for(server), pinned_fingerprint=server.host_key,
                             timeout=DATASTORE_TIMEOUT) as session:
                return engine.measure(endpoint, session, timeout=DATASTORE_TIMEOUT,
                                      ca_pem=ca_pem, rows_cap=settings.PANEL_KINE_ROWS_LIMIT)
        except StepError as exc:
            problems.append(f"from {server.private_ip}: {exc}")
    findings.append(datastore_health.unknown(
        "datastore", "; ".join(problems) or "no server host with a pinned SSH key"))
    return None


def _rds_storage(cluster: Cluster, instance: RdsInstance | None,
                 findings: list, api: AliyunCloud) -> StorageUsage | None:
    """DescribeResourceUsage against the storage the cloud check's DescribeDBInstanceAttribute
    reported (None: bring-your-own, or RDS could not be described)."""
    if cluster.datastore_kind != DatastoreKind.RDS:
        return None
    if instance is None:
        findings.append(datastore_health.unknown(datastore_health.STORAGE,
                                                 "RDS could not be described"))
        return None
    try:
        usage = api.describe_resource_usage(instance.instance_id)
    except StepError as exc:
        findings.append(datastore_health.unknown(datastore_health.STORAGE, str(exc)))
        return None
    if instance.storage_gb <= 0 or usage.disk_used < 0:
        findings.append(datastore_health.unknown(datastore_health.STORAGE,
                                                 "RDS reported no storage figures"))
        return None
    return StorageUsage(usage.disk_used, instance.storage_gb * datastore_health.GIB)


def refresh(cluster: Cluster, prefetched: Prefetched | None = None) -> Assessment:
    """Assess and store the verdict on the cluster, and each live node's Ready as the API
    said (only where it still holds the state the check read: a run that took the node over
    meanwhile keeps its own)."""
    assessment = assess(cluster, prefetched)
    Cluster.objects.filter(pk=cluster.pk).update(
        health=assessment.health, health_reasons=assessment.reasons,
        health_checked_at=timezone.now(),
        **({"etcd_members": assessment.etcd_members}
           if assessment.etcd_members is not None else {}))
    for ready in (True, False):
        pks = [pk for pk, is_ready in assessment.node_ready.items() if is_ready is ready]
        if pks:
            Node.objects.filter(pk__in=pks, status__in=LIVE_NODE_STATUSES).update(
                status=NodeStatus.READY if ready else NodeStatus.NOT_READY)
    return assessment
