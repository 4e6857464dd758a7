"""K3s's embedded etcd as the panel reads it over SSH on each server: member health, the
leader, and the snapshots `k3s etcd-snapshot` keeps.

Why over SSH and on each server: etcd's client port (2379) wants K3s's etcd client
certificate, but K3s binds etcd's metrics listener to http://127.0.0.1:2381 (pkg/etcd/etcd.go
metricsURL), where etcd itself serves `/health` (false without a leader or quorum: etcd's
health handler makes a linearizable read) and `/metrics` (`etcd_server_is_leader`). A server
whose host does not answer SSH is counted as an unhealthy member: that is what it is to
etcd's quorum. Nothing here writes to the cluster.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_noop

from clusters.adapters import nodes, ssh
from clusters.core.errors import StepError
from clusters.k3s import etcd
from clusters.models import Cluster, EtcdSnapshot, Node

MEMBER_TIMEOUT = 8
CHECK = "etcd"
# Health reasons about etcd, stored as code + params and translated on the page
# (clusters.web.display.health_reason), like the datastore's findings.
MESSAGES = {
    "quorum_lost": gettext_noop(
        "etcd quorum lost: %(healthy)d of %(members)d members healthy, %(needed)d needed. "
        "The API accepts no writes until enough servers are back."),
    "quorum_at_risk": gettext_noop(
        "etcd quorum at risk: %(healthy)d of %(members)d members healthy, exactly the "
        "%(needed)d needed; one more failure stops the API."),
    "member_unhealthy": gettext_noop("etcd member on %(node)s is unhealthy: %(detail)s"),
    "no_leader": gettext_noop("etcd has no leader although a majority of members is healthy"),
}


def reason(code: str, **params: Any) -> dict[str, Any]:
    """The stored form of an etcd health reason (English message plus what translates it)."""
    return {"check": CHECK, "code": code, "params": params,
            "message": MESSAGES[code] % params}


@dataclass(frozen=True)
class MemberState:
    """One server's etcd member as its host reported it (JSON-able for Cluster.etcd_members)."""

    node: str  # the server's private IP
    name: str  # the Node name
    healthy: bool
    leader: bool
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _session(server: Node) -> ssh.SSHSession:
    return ssh.connect(nodes.target_for(server), pinned_fingerprint=server.host_key or None,
                       timeout=MEMBER_TIMEOUT, io_timeout=MEMBER_TIMEOUT)


def member_state(server: Node) -> MemberState:
    """Ask the server's own etcd (over SSH, curl to 127.0.0.1:2381) whether it is healthy
    and whether it leads."""
    label = server.name or server.private_ip
    try:
        with _session(server) as session:
            health = session.run(etcd.health_command(), timeout=MEMBER_TIMEOUT)
            metrics = session.run(etcd.metrics_command(), timeout=MEMBER_TIMEOUT)
    except StepError as exc:
        return MemberState(server.private_ip, label, False, False, f"not reachable: {exc}")
    if not health.ok and not health.stdout.strip():
        return MemberState(server.private_ip, label, False, False,
                           "etcd does not answer on 127.0.0.1:2381 (K3s stopped?)")
    healthy, reason = etcd.parse_health(health.stdout)
    leader = metrics.ok and etcd.parse_leader_metrics(metrics.stdout)[0]
    return MemberState(server.private_ip, label, healthy, leader,
                       "" if healthy else (reason or "etcd reports itself unhealthy"))


def read_members(cluster: Cluster) -> list[MemberState]:
    """Every live server's member, asked in parallel (each bounded by MEMBER_TIMEOUT)."""
    servers = list(cluster.nodes.live().servers().order_by("pk"))
    return nodes.for_each_node(servers, member_state) if servers else []


def member_list(server: Node, password: str) -> list[etcd.Member]:
    """The etcd member list as K3s on `server` reports it (/db/info)."""
    with _session(server) as session:
        result = session.run(etcd.db_info_command(), sudo=True, timeout=30,
                             stdin=etcd.db_info_credentials(password))
    try:
        return etcd.parse_db_info(result.stdout)
    except ValueError:
        raise StepError(f"K3s on {server.private_ip} did not list the etcd members "
                        f"(/db/info): {result.stdout.strip()[:200] or 'no answer'}") from None


# --- snapshots ------------------------------------------------------------------------------


def _owner(name: str, servers: list[Node], listed_on: Node) -> str:
    """The server a snapshot file lives on: K3s names snapshots after their node
    (`<name>-<node>-<timestamp>`), so the server whose node name is in it; else the one that
    listed it."""
    for server in servers:
        if server.name and f"-{server.name}-" in f"-{name}-":
            return server.name
    return listed_on.name or listed_on.private_ip


def list_snapshots(server: Node) -> list[etcd.SnapshotFile]:
    """`k3s etcd-snapshot ls` on one server (it needs root: it reads K3s's token)."""
    with _session(server) as session:
        result = session.run(etcd.snapshot_list_command(), sudo=True, timeout=60)
    if not result.ok:
        raise StepError(f"k3s etcd-snapshot ls on {server.private_ip} failed: "
                        f"{(result.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
    return etcd.parse_snapshot_list(result.stdout)


def record_snapshots(cluster: Cluster, server: Node,
                     files: list[etcd.SnapshotFile]) -> int:
    """Store what `ls` listed on `server`: rows it no longer lists for that server go (K3s's
    retention pruned them). Returns how many are recorded."""
    servers = list(cluster.nodes.live().servers())
    seen: set[tuple[str, str]] = set()
    for item in files:
        owner = _owner(item.name, servers, server)
        seen.add((owner, item.name))
        EtcdSnapshot.objects.update_or_create(
            cluster=cluster, node=owner, name=item.name,
            defaults={"location": item.location[:1000], "size": item.size,
                      "taken_at": item.created or timezone.now()})
    listed_owners = {owner for owner, _name in seen} | {server.name or server.private_ip}
    for row in EtcdSnapshot.objects.filter(cluster=cluster, node__in=listed_owners):
        if (row.node, row.name) not in seen:
            row.delete()
    return len(seen)


def refresh_snapshots(cluster: Cluster, only: set[str] | None = None,
                      ) -> tuple[int, list[str]]:
    """List the snapshots on every live server (or those of `only`, by private IP); (rows
    recorded, problems)."""
    problems, total = [], 0
    for server in cluster.nodes.live().servers().order_by("pk"):
        if only is not None and server.private_ip not in only:
            continue
        try:
            total += record_snapshots(cluster, server, list_snapshots(server))
        except StepError as exc:
            problems.append(f"{server.private_ip}: {exc}")
    return total, problems


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
