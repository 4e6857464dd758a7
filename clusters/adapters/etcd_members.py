"""K3s's embedded etcd as the panel reads it over SSH: every member's health, the leader,
and the snapshots `k3s etcd-snapshot` keeps.

Why one server per check: on a real K3s, etcd's 2379 speaks gRPC only and its JSON gateway
is on https://127.0.0.1:2382, local to each server (pkg/etcd/etcd.go listenClientHTTPURLs;
etcd-io/etcd#15402). So one SSH session to one server reads etcd's own member list and
status there (who is a member, who is a learner, who leads: the panel's rows may say
otherwise, e.g. a server stuck in REMOVING is still a member) and asks every member's
kube-apiserver for /readyz?verbose (https://<node-ip>:6443, K3s's admin client certificate
on the server), whose `etcd` check is a read through that member's own etcd (false without
a leader or quorum), in parallel, each curl bounded. Only when that server cannot list the
members is the next one asked (at most ASK_AT_MOST). A member that does not answer is
counted as unhealthy: that is what it is to etcd's quorum. Nothing here writes to the
cluster. A single server's own member (during an install or an upgrade) is still read on
that server through its metrics listener http://127.0.0.1:2381 (pkg/etcd/etcd.go
metricsURL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from clusters.adapters import nodes, ssh
from clusters.core.errors import StepError
from clusters.k3s import etcd
from clusters.models import Cluster, EtcdSnapshot, Node

MEMBER_TIMEOUT = 8
ASK_AT_MOST = 3
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
# Why one member is not healthy (MemberState.code + params), translated where shown
# (member_error); `detail` is what SSH, curl or etcd said, verbatim.
MEMBER_ERRORS = {
    "not_reachable": gettext_noop("not reachable: %(detail)s"),
    "no_answer": gettext_noop("etcd does not answer on %(where)s (K3s stopped, or the host "
                              "down?): %(detail)s"),
    "unhealthy": gettext_noop("etcd reports itself unhealthy: %(detail)s"),
    "learner": gettext_noop("a learner: not yet promoted to a voting member"),
    "not_started": gettext_noop("added to etcd but not started yet"),
    "not_listed": gettext_noop("not in etcd's member list"),
    "unlisted": gettext_noop("no server listed the etcd members: %(detail)s"),
}


def reason(code: str, **params: Any) -> dict[str, Any]:
    """The stored form of an etcd health reason (English message plus what translates it)."""
    return {"check": CHECK, "code": code, "params": params,
            "message": MESSAGES[code] % params}


@dataclass(frozen=True)
class MemberState:
    """One etcd member (or a panel server etcd does not list), JSON-able for
    Cluster.etcd_members."""

    node: str  # the server's private IP (its peer URL's host)
    name: str  # the Node name (etcd's member name when no panel server matches)
    healthy: bool
    leader: bool
    error: str = ""  # English, for logs; the page shows `code` translated
    code: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    member: str = ""  # etcd's member name, <node name>-<8 hex>
    learner: bool = False
    listed: bool = True  # in etcd's member list

    @property
    def voter(self) -> bool:
        return self.listed and not self.learner

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _problem(code: str, **params: Any) -> tuple[str, str, dict[str, Any]]:
    return MEMBER_ERRORS[code] % params, code, params


def member_error(member: dict[str, Any]) -> str:
    """A stored member's problem in the active language (older rows: the English text)."""
    code, params = member.get("code"), member.get("params")
    if code in MEMBER_ERRORS and isinstance(params, dict):
        try:
            return gettext(MEMBER_ERRORS[code]) % params
        except (KeyError, TypeError, ValueError):
            pass
    return str(member.get("error") or "")


def voters(members: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The stored members that vote (listed by etcd, not learners)."""
    return [m for m in members if isinstance(m, dict) and m.get("listed", True)
            and not m.get("learner")]


def _session(server: Node) -> ssh.SSHSession:
    return ssh.connect(nodes.target_for(server), pinned_fingerprint=server.host_key or None,
                       timeout=MEMBER_TIMEOUT, io_timeout=MEMBER_TIMEOUT)


def member_state(server: Node) -> MemberState:
    """Ask one server's own etcd (over SSH, curl to 127.0.0.1:2381) whether it is healthy
    and whether it leads: for the step that just (re)started that server."""
    label = server.name or server.private_ip
    try:
        with _session(server) as session:
            health = session.run(etcd.health_command(), timeout=MEMBER_TIMEOUT)
            metrics = session.run(etcd.metrics_command(), timeout=MEMBER_TIMEOUT)
    except StepError as exc:
        text, code, params = _problem("not_reachable", detail=str(exc)[:300])
        return MemberState(server.private_ip, label, False, False, text, code, params)
    if not health.ok and not health.stdout.strip():
        text, code, params = _problem("no_answer", where="127.0.0.1:2381",
                                      detail=health.stderr.strip()[-200:] or "-")
        return MemberState(server.private_ip, label, False, False, text, code, params)
    healthy, said = etcd.parse_health(health.stdout)
    leader = metrics.ok and etcd.parse_leader_metrics(metrics.stdout)[0]
    if healthy:
        return MemberState(server.private_ip, label, True, leader)
    text, code, params = _problem("unhealthy", detail=said or "-")
    return MemberState(server.private_ip, label, False, leader, text, code, params)


def _ask_order(cluster: Cluster, servers: list[Node]) -> list[Node]:
    """Servers last seen healthy first (the leader first of all), then the others."""
    seen = {m.get("node"): m for m in (cluster.etcd_members or []) if isinstance(m, dict)}

    def rank(server: Node) -> tuple[int, int]:
        member = seen.get(server.private_ip) or {}
        return (0 if member.get("leader") else 1 if member.get("healthy") else 2, server.pk)
    return sorted(servers, key=rank)


def _states(members: list[etcd.Member], answers: dict[int, etcd.MemberAnswer],
            leader: str, servers: list[Node]) -> list[MemberState]:
    by_ip = {s.private_ip: s for s in servers}
    found = []
    for index, member in enumerate(members):
        address = member.address
        server = by_ip.get(address)
        label = (server.name or server.private_ip) if server else (member.name or address)
        answer = answers.get(index)
        healthy = bool(answer and answer.healthy)
        if not member.client_urls:
            text, code, params = _problem("not_started")
        elif answer is None or not answer.answered:
            text, code, params = _problem(
                "no_answer", where=etcd.readyz_url(address),
                detail=(answer.detail if answer else "") or "-")
        elif not answer.healthy:
            text, code, params = _problem("unhealthy", detail=answer.detail or "-")
        elif member.learner:
            text, code, params = _problem("learner")
        else:
            text, code, params = "", "", {}
        leads = bool(leader) and member.member_id == leader
        found.append(MemberState(address, label, healthy, leads,
                                 text, code, params, member=member.name,
                                 learner=member.learner))
    listed = {m.address for m in members}
    for server in servers:
        if server.is_live and server.private_ip not in listed:
            text, code, params = _problem("not_listed")
            found.append(MemberState(server.private_ip, server.name or server.private_ip,
                                     False, False, text, code, params, listed=False))
    return found


def read_members(cluster: Cluster) -> list[MemberState]:
    """Every etcd member as etcd lists it, each one's health and who leads: one SSH session
    to one server (the next only if that one cannot list the members; ASK_AT_MOST)."""
    servers = list(cluster.nodes.present().servers().order_by("pk"))
    if not servers:
        return []
    problems = []
    for server in _ask_order(cluster, servers)[:ASK_AT_MOST]:
        try:
            with _session(server) as session:
                listed = session.run(etcd.member_list_command(), sudo=True,
                                     timeout=MEMBER_TIMEOUT)
                try:
                    members = etcd.parse_db_info(listed.stdout)
                except ValueError:
                    problems.append(f"{server.private_ip}: etcd did not list its members "
                                    f"({(listed.stdout or listed.stderr).strip()[:200] or '-'})")
                    continue
                # A member with no client URL has not started: nobody to ask.
                addresses = [m.address if m.client_urls else "" for m in members]
                answers = session.run(etcd.member_health_script(addresses), sudo=True,
                                      timeout=etcd.MEMBER_CURL_SECONDS * 2 + MEMBER_TIMEOUT)
        except StepError as exc:
            problems.append(f"{server.private_ip}: {exc}")
            continue
        health, leader = etcd.parse_member_health(answers.stdout)
        return _states(members, health, leader, servers)
    text, code, params = _problem("unlisted", detail="; ".join(problems)[:600])
    return [MemberState(s.private_ip, s.name or s.private_ip, False, False, text, code, params)
            for s in servers if s.is_live]


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


def removal_check(members: list[MemberState], address: str) -> etcd.RemovalCheck:
    """The quorum rule (clusters.k3s.etcd.removal_check) for the server at `address` leaving,
    on etcd's member list as read_members answered it."""
    voting = [m for m in members if m.voter]
    leaving = next((m for m in voting if m.node == address), None)
    return etcd.removal_check(len(voting), sum(m.healthy for m in voting),
                              leaving_is_voter=leaving is not None,
                              leaving_is_healthy=bool(leaving and leaving.healthy))


def summary(members: list[MemberState]) -> str:
    """One line for a step's log: each member, healthy or why not."""
    return "; ".join(f"{m.name} ({m.node}) " + ("healthy" if m.healthy else m.error or "down")
                     + (" [learner]" if m.learner else "") + (" [leader]" if m.leader else "")
                     for m in members) or "no member"


# --- snapshots ------------------------------------------------------------------------------


def owner_of(item: etcd.SnapshotFile, listed_on: Node) -> str:
    """Whose snapshot a listed file is: `k3s etcd-snapshot ls` lists the server's own
    snapshot directory and S3 (pkg/etcd/snapshot.go listLocalSnapshots, and S3's when
    configured), so a file:// entry belongs to the server that listed it; an S3 one to
    no server ("")."""
    if item.location.startswith("file://") or "://" not in item.location:
        return listed_on.name or listed_on.private_ip
    return ""


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
    """Store what `ls` listed on `server`, writing only rows that are new or changed; rows
    of that server it no longer lists go (K3s's retention pruned them). Returns how many
    are listed."""
    wanted: dict[tuple[str, str], dict[str, Any]] = {}
    for item in files:
        wanted[(owner_of(item, server), item.name)] = {
            "location": item.location[:1000], "size": item.size, "taken_at": item.created}
    owners = {owner for owner, _name in wanted} | {server.name or server.private_ip}
    for row in EtcdSnapshot.objects.filter(cluster=cluster, node__in=owners):
        values = wanted.pop((row.node, row.name), None)
        if values is None:
            row.delete()
            continue
        values["taken_at"] = values["taken_at"] or row.taken_at
        if any(getattr(row, key) != value for key, value in values.items()):
            EtcdSnapshot.objects.filter(pk=row.pk).update(**values)
    for (owner, name), values in wanted.items():
        EtcdSnapshot.objects.create(cluster=cluster, node=owner, name=name, **{
            **values, "taken_at": values["taken_at"] or timezone.now()})
    return len(files)


def refresh_snapshots(cluster: Cluster, only: set[str] | None = None,
                      ) -> tuple[int, list[str]]:
    """List the snapshots on every live server (or those of `only`, by private IP); (files
    listed, problems). Records when they were listed (Cluster.etcd_snapshots_listed_at)."""
    problems, total = [], 0
    for server in cluster.nodes.live().servers().order_by("pk"):
        if only is not None and server.private_ip not in only:
            continue
        try:
            total += record_snapshots(cluster, server, list_snapshots(server))
        except StepError as exc:
            problems.append(f"{server.private_ip}: {exc}")
    Cluster.objects.filter(pk=cluster.pk).update(etcd_snapshots_listed_at=timezone.now())
    return total, problems


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
