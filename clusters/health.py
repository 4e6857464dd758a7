"""How a cluster is doing: API through the SLB, nodes Ready, SLB backends, RDS status.

Why one function: the create run's last step, the periodic beat check and the "refresh
health" buttons must all judge the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from clusters import cloud, clusterconfig
from clusters.errors import StepError
from clusters.models import Cluster, DatastoreKind, Health, NodeRole, ResourceState


@dataclass
class Assessment:
    health: str = Health.HEALTHY
    reasons: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)

    def worse(self, health: str, reason: str) -> None:
        order = [Health.HEALTHY, Health.DEGRADED, Health.DOWN]
        if order.index(health) > order.index(self.health):
            self.health = health
        self.reasons.append(reason)


def assess(cluster: Cluster) -> Assessment:
    result = Assessment()
    _check_api(cluster, result)
    _check_cloud(cluster, result)
    return result


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
    for node in cluster.nodes.exclude(status="removed"):
        state = states.get(node.name)
        if state is None or not state.ready:
            result.worse(Health.DEGRADED, f"node {node.name or node.private_ip} is not Ready")
        elif node.role == NodeRole.SERVER:
            servers_ready += 1
    if servers_ready == 0:
        result.worse(Health.DOWN, "no server node is Ready")
    result.facts.append(f"{sum(s.ready for s in states.values())}/{len(states)} nodes Ready")


def _check_cloud(cluster: Cluster, result: Assessment) -> None:
    api = cloud.cloud_for(cluster)
    try:
        slb = cluster.resources.filter(kind="slb", state=ResourceState.PRESENT).first()
        if slb:
            statuses = api.describe_health_status(slb.provider_id)
            bad = [entry.server_ip or entry.server_id for entry in statuses
                   if entry.status != "normal"]
            if bad:
                result.worse(Health.DEGRADED, f"SLB backends unhealthy: {', '.join(bad)}")
            result.facts.append(f"SLB {slb.provider_id}: {len(statuses) - len(bad)}/"
                                f"{len(statuses)} backends normal")
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


def refresh(cluster: Cluster) -> Assessment:
    """Assess and store the verdict on the cluster."""
    assessment = assess(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(
        health=assessment.health, health_reasons=assessment.reasons,
        health_checked_at=timezone.now())
    return assessment


def refresh_by_id(cluster_id: int) -> str:
    cluster = Cluster.objects.select_related("cloud_account").filter(pk=cluster_id).first()
    if cluster is None or not cluster.kubeconfig:
        return Health.UNKNOWN
    return refresh(cluster).health


LIVE_STATUSES = ("ready", "updating")


def queue_refresh_for_live_clusters(task: Any) -> int:
    """Queue one health check per live cluster (each in its own task: one slow cluster must
    not delay the verdict of the others)."""
    ids = list(Cluster.objects.filter(status__in=LIVE_STATUSES).values_list("pk", flat=True))
    for cluster_id in ids:
        task.delay(cluster_id)
    return len(ids)
