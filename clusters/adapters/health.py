"""How a cluster is doing: API through the SLB, nodes Ready, SLB backends, RDS status, and
the datastore (kine's compaction and size, the database's storage and connections).

Why one function: the create run's last step, the periodic beat check and the "refresh
health" buttons must all judge the same way. It sits with the adapters because it is only a
reading of the world through them; starting a check (the Celery tasks, the beat's sweep of
live clusters) is the operation in clusters/operations/health.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

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
from clusters.adapters.aliyun import RdsInstance
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.datastore_health import KineMeasurement, StorageUsage
from clusters.core.errors import PermanentError, StepError
from clusters.k3s.etcd import Quorum
from clusters.k3s.versions import kine_max_idle_connections
from clusters.models import (
    Cluster,
    DatastoreKind,
    Health,
    Node,
    NodeRole,
    NodeStatus,
    ResourceState,
)

# The node states a health check may change: a node being installed, removed or that failed
# belongs to the run doing that; its row is that run's to write.
LIVE_NODE_STATUSES = (NodeStatus.READY, NodeStatus.NOT_READY)

# One health check per cluster per minute: the datastore measurement must stay quick.
DATASTORE_TIMEOUT = 10


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


def reason_message(reason: str | dict[str, Any]) -> str:
    """The English text of a stored reason (for logs)."""
    return reason.get("message", str(reason)) if isinstance(reason, dict) else str(reason)


def assess(cluster: Cluster) -> Assessment:
    result = Assessment()
    _check_api(cluster, result)
    rds_instance = _check_cloud(cluster, result)
    if cluster.datastore_kind == DatastoreKind.ETCD:
        _check_etcd(cluster, result)
    else:
        _check_datastore(cluster, result, rds_instance)
    return result


def _check_etcd(cluster: Cluster, result: Assessment) -> None:
    """Each server's etcd member (healthy, leader) and the quorum they make: fewer than a
    majority healthy is DOWN (etcd accepts no writes), exactly a majority is DEGRADED (one
    more failure and it is down). Snapshots are listed again from the servers that answer."""
    members = etcd_members.read_members(cluster)
    result.etcd_members = [member.as_dict() for member in members]
    quorum = Quorum(len(members), sum(member.healthy for member in members))
    for member in members:
        if not member.healthy:
            result.worse(Health.DEGRADED, etcd_members.reason(
                "member_unhealthy", node=member.name, detail=member.error or "-"))
    params = {"healthy": quorum.healthy, "members": quorum.members, "needed": quorum.needed}
    if quorum.lost:
        result.worse(Health.DOWN, etcd_members.reason("quorum_lost", **params))
    elif quorum.at_risk:
        result.worse(Health.DEGRADED, etcd_members.reason("quorum_at_risk", **params))
    elif members and not any(member.leader for member in members):
        result.worse(Health.DEGRADED, etcd_members.reason("no_leader"))
    leader = next((member.name for member in members if member.leader), "none")
    result.facts.append(f"etcd: {quorum.healthy}/{quorum.members} members healthy, "
                        f"leader {leader}")
    if not quorum.lost:
        _count, problems = etcd_members.refresh_snapshots(cluster, only={
            member.node for member in members if member.healthy})
        result.facts.extend(f"etcd snapshots not listed on {p}" for p in problems)


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


def _check_cloud(cluster: Cluster, result: Assessment) -> RdsInstance | None:
    """SLB backends and the RDS instance's status; returns the instance as described, so the
    datastore check reads its storage without asking RDS again."""
    api = cloud.cloud_for(cluster)
    instance = None
    try:
        balancer = api_balancer.for_cluster(cluster, api)
        if balancer.ident:
            # A CLB's DescribeHealthStatus or an NLB's GetListenerHealthStatus.
            statuses = balancer.health()
            ips = dict(cluster.nodes.values_list("ecs_instance_id", "private_ip"))
            bad = [ips.get(i) or i for i, healthy in sorted(statuses.items()) if not healthy]
            if bad:
                result.worse(Health.DEGRADED,
                             f"{balancer.what} backends unhealthy: {', '.join(bad)}")
            result.facts.append(f"{balancer.what} {balancer.ident}: "
                                f"{len(statuses) - len(bad)}/{len(statuses)} backends normal")
        rds = cluster.resources.filter(kind="rds_instance", state=ResourceState.PRESENT).first()
        if cluster.datastore_kind == DatastoreKind.RDS and rds:
            instance = api.describe_rds(rds.provider_id)
            if instance is None:
                result.worse(Health.DOWN, f"RDS {rds.provider_id} no longer exists")
            elif not instance.running:
                result.worse(Health.DEGRADED, f"RDS {rds.provider_id} is {instance.status}")
            else:
                result.facts.append(f"RDS {rds.provider_id}: Running")
    except StepError as exc:
        result.worse(Health.DEGRADED, f"cloud check failed: {exc}")
    return instance


def limits() -> datastore_health.Limits:
    return datastore_health.Limits(
        compaction_gap=settings.PANEL_KINE_COMPACTION_GAP_LIMIT,
        kine_rows=settings.PANEL_KINE_ROWS_LIMIT,
        storage_percent=settings.PANEL_DATASTORE_STORAGE_PERCENT,
        connections_percent=settings.PANEL_DATASTORE_CONNECTIONS_PERCENT)


def _check_datastore(cluster: Cluster, result: Assessment,
                     rds_instance: RdsInstance | None) -> None:
    """kine's table and the database's connections, read through an SSH tunnel from a server
    (the RDS whitelist admits the hosts, not the panel: the datastore proof's own path), and
    for RDS the storage from DescribeResourceUsage. A metric that cannot be read is shown as
    not measured; it never fails the whole check."""
    servers = list(cluster.nodes.live().servers()
                   .order_by("pk"))
    findings: list[datastore_health.Finding] = []
    measured = _measure_kine(cluster, [s for s in servers if s.host_key], findings)
    storage = _rds_storage(cluster, rds_instance, findings)
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
                 findings: list) -> StorageUsage | None:
    """DescribeResourceUsage against the storage the cloud check's DescribeDBInstanceAttribute
    reported (None: bring-your-own, or RDS could not be described)."""
    if cluster.datastore_kind != DatastoreKind.RDS:
        return None
    if instance is None:
        findings.append(datastore_health.unknown(datastore_health.STORAGE,
                                                 "RDS could not be described"))
        return None
    try:
        usage = cloud.cloud_for(cluster).describe_resource_usage(instance.instance_id)
    except StepError as exc:
        findings.append(datastore_health.unknown(datastore_health.STORAGE, str(exc)))
        return None
    if instance.storage_gb <= 0 or usage.disk_used < 0:
        findings.append(datastore_health.unknown(datastore_health.STORAGE,
                                                 "RDS reported no storage figures"))
        return None
    return StorageUsage(usage.disk_used, instance.storage_gb * datastore_health.GIB)


def refresh(cluster: Cluster) -> Assessment:
    """Assess and store the verdict on the cluster, and each live node's Ready as the API
    said (only where it still holds the state the check read: a run that took the node over
    meanwhile keeps its own)."""
    assessment = assess(cluster)
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
