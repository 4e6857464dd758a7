"""The step graphs of a K3s upgrade and of a kubeconfig renewal.

Why this order: the datastore backup comes before anything changes; servers go strictly one
at a time (each out of the SLB, upgraded, healthy and back before the next leaves), so the API
always has a server; agents follow servers, as the Kubernetes version skew policy wants
kubelets never newer than the API servers.
"""

from __future__ import annotations

from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, DatastoreKind, NodeRole, NodeStatus

RDS_BACKUP_TITLE = "Back up the RDS datastore (CreateBackup) and wait until it has finished"
EXTERNAL_BACKUP_TITLE = "Warn that your own MySQL is not backed up automatically"
KUBECONFIG_TITLES = (
    "Fetch the kubeconfig from a server",
    "Restart K3s on that server if the certificate expires within 30 days",
    "Fetch the renewed kubeconfig",
)


def upgrade_plan(cluster: Cluster, version: str) -> list[StepSpec]:
    """Backup, then every server in turn, then every agent in turn."""
    live = cluster.nodes.exclude(status__in=[NodeStatus.REMOVED, NodeStatus.REMOVING])
    # A server a stopped upgrade left failed (out of the SLB) goes first: while it is out, the
    # others are the only ones serving and must not leave before it is back.
    servers = sorted(live.filter(role=NodeRole.SERVER),
                     key=lambda node: (node.status != NodeStatus.FAILED, node.pk))
    agents = list(live.filter(role=NodeRole.AGENT).order_by("pk"))
    title = RDS_BACKUP_TITLE if cluster.datastore_kind == DatastoreKind.RDS \
        else EXTERNAL_BACKUP_TITLE
    specs = [StepSpec("backup", title, "upgrade.backup", retry_budget=10)]
    previous = "backup"
    for index, server in enumerate(servers):
        key = f"server_{server.pk}"
        specs.append(StepSpec(key, f"Upgrade K3s server {index + 1} ({server.private_ip}) to "
                              f"{version}", "upgrade.server", [previous],
                              {"node_id": server.pk, "version": version}))
        previous = key
    for agent in agents:
        key = f"agent_{agent.pk}"
        specs.append(StepSpec(key, f"Upgrade K3s agent ({agent.private_ip}) to {version}",
                              "upgrade.agent", [previous],
                              {"node_id": agent.pk, "version": version}))
        previous = key
    return specs


def kubeconfig_renewal_plan(cluster: Cluster) -> list[StepSpec]:
    fetch, restart, refetch = KUBECONFIG_TITLES
    return [
        StepSpec("fetch", fetch, "k3s.kubeconfig"),
        StepSpec("restart_if_expiring", restart, "kubeconfig.restart_if_expiring", ["fetch"]),
        StepSpec("refetch", refetch, "kubeconfig.refetch", ["restart_if_expiring"]),
    ]
