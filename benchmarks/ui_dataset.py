"""A panel database the size of a busy installation, filled fast (used by ui_latency.py).

Why a module of its own: the benchmark's numbers only mean something if the rows look like
the panel's own (the titles of clusters/operations/create.py, encrypted secrets, one create run per
cluster, logs concentrated on the steps that really talk: K3s installs and waits). Rows go in
through the ORM's bulk_create except the log lines, which go in with PostgreSQL COPY.
Import only after django.setup().
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.utils import timezone

from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudAccount,
    CloudResource,
    Cluster,
    ClusterStatus,
    Health,
    LogLine,
    Node,
    NodeRole,
    NodeStatus,
    ResourceState,
    Run,
    RunKind,
    RunStatus,
    Step,
    StepStatus,
)
from clusters.operations import create

REGIONS = [("cn-hangzhou", "cn-hangzhou-h"), ("cn-shanghai", "cn-shanghai-l"),
           ("cn-beijing", "cn-beijing-k"), ("cn-shenzhen", "cn-shenzhen-e")]
ENVIRONMENTS = ["prod", "staging", "dev", "test"]
K3S_VERSION = "v1.30.4+k3s1"
FAKE_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\n" + "b3BlbnNzaC1rZXktdjEAAAAA" * 16
            + "\n-----END OPENSSH PRIVATE KEY-----\n")
FAKE_KUBECONFIG = ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: "
                   + "LS0tLS1CRUdJTi" * 60 + "\n    server: https://172.16.0.10:6443\n"
                   "kind: Config\nusers:\n- name: default\n  user:\n    client-key-data: "
                   + "LS0tLS1CRUdJTi" * 60 + "\n")

# (share of clusters, cluster status, health, run status); the rest are drafts with no run.
STATUS_MIX = [
    (0.80, ClusterStatus.READY, Health.HEALTHY, RunStatus.SUCCEEDED),
    (0.05, ClusterStatus.READY, Health.DEGRADED, RunStatus.SUCCEEDED),
    (0.06, ClusterStatus.FAILED, Health.UNKNOWN, RunStatus.FAILED),
    (0.05, ClusterStatus.PROVISIONING, Health.UNKNOWN, RunStatus.RUNNING),
]
FAILURES = [
    "Error 1071: Specified key was too long; max key length is 767 bytes",
    "SSH to 10.0.3.12:22 failed: Authentication failed (publickey, password)",
    "Quota exceeded: the account may own at most 30 SLB instances (QuotaExceeded.SLB)",
]
# Lines that the talkative steps really print: the install script, then the journal.
LOG_MESSAGES = [
    "[INFO]  Finding release for channel stable",
    f"[INFO]  Using {K3S_VERSION} as release",
    "[INFO]  Downloading hash https://github.com/k3s-io/k3s/releases/download/"
    f"{K3S_VERSION}/sha256sum-amd64.txt",
    "[INFO]  Verifying binary download",
    "[INFO]  systemd: Starting k3s",
    "k3s: level=info msg=\"Waiting for API server to become available\"",
    "k3s: I0912 controller.go:615] quota admission added evaluator for: leases.coordination.k8s.io",
    "k3s: level=info msg=\"Connecting to proxy\" url=\"wss://172.16.0.10:6443/v1-k3s/connect\"",
    "k3s: level=info msg=\"Tunnel authorizer set Kubelet Port 10250\"",
    "k3s: E0912 reflector.go:147] failed to list *v1.Endpoints: the server is currently unable",
    "kine: level=info msg=\"Configuring mysql database connection pooling: maxIdleConns=2\"",
    "waiting for node to report Ready (kubectl get node -o wide)",
]


@dataclass
class Target:
    """The heaviest thing a user can open: a cluster whose active run has the biggest log."""

    cluster: Cluster
    run: Run
    step: Step
    last_seq: int


@dataclass
class Filled:
    clusters: int
    nodes: int
    runs: int
    steps: int
    log_lines: int
    resources: int
    audit_events: int
    target: Target


def _status_for(draw: float) -> tuple[str, str, str | None]:
    """Cluster status, health and create-run status for a uniform draw in [0, 1)."""
    edge = 0.0
    for share, status, health, run_status in STATUS_MIX:
        edge += share
        if draw < edge:
            return status, health, run_status
    return ClusterStatus.DRAFT, Health.UNKNOWN, None


def _make_clusters(owner: Any, account: CloudAccount, count: int, first: int,
                   rng: random.Random) -> list[tuple[Cluster, str | None]]:
    """Clusters in the user's order of creation; the last one is the busy one (newest)."""
    rows, run_states = [], []
    for index in range(count):
        number = first + index
        region, zone = REGIONS[number % len(REGIONS)]
        status, health, run_status = _status_for(rng.random())
        if index == 0:  # a user's oldest cluster is a healthy one, so filters always match
            status, health, run_status = (ClusterStatus.READY, Health.HEALTHY,
                                          RunStatus.SUCCEEDED)
        if index == count - 1:
            status, health, run_status = (ClusterStatus.PROVISIONING, Health.UNKNOWN,
                                          RunStatus.RUNNING)
        ready = status == ClusterStatus.READY
        rows.append(Cluster(
            owner=owner, cloud_account=account, region=region, zone=zone,
            name=f"{ENVIRONMENTS[(number - 1) % 4]}-{region[3:]}-{number:04d}-{owner.pk}",
            vpc_id=f"vpc-bp1{number:012d}", vswitch_id=f"vsw-bp1{number:012d}",
            k3s_channel="stable", k3s_version=K3S_VERSION if ready else "",
            k3s_token=f"K10{number:040d}::server:{number:032x}",
            datastore_password=f"Rds-{number:020d}",
            kubeconfig=FAKE_KUBECONFIG if ready else "",
            slb_address=f"172.16.{number // 250 % 250}.{number % 250 + 1}" if ready else None,
            status=status, health=health,
            health_checked_at=timezone.now() if ready else None,
            health_reasons=["rds_slow"] if health == Health.DEGRADED else [],
        ))
        run_states.append(run_status)
    Cluster.objects.bulk_create(rows, batch_size=500)
    return list(zip(rows, run_states, strict=True))


def _make_nodes(clusters: list[tuple[Cluster, str | None]], per_cluster: int) -> int:
    nodes = []
    for cluster, _ in clusters:
        servers = 3 if cluster.pk % 2 else 2
        ready = cluster.status == ClusterStatus.READY
        for index in range(per_cluster):
            role = NodeRole.SERVER if index < servers else NodeRole.AGENT
            nodes.append(Node(
                cluster=cluster, role=role, name=f"{cluster.name}-{role}-{index}",
                private_ip=f"10.{cluster.pk // 250 % 250}.{cluster.pk % 250}.{index + 10}",
                ssh_private_key=FAKE_KEY, host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI",
                status=NodeStatus.READY if ready else NodeStatus.PENDING,
                k3s_version=K3S_VERSION if ready else "",
            ))
    Node.objects.bulk_create(nodes, batch_size=2000)
    return len(nodes)


def _step_states(count: int, run_status: str, rng: random.Random,
                 busy: bool) -> list[tuple[str, str]]:
    """(status, error) per step position, as the engine leaves them for that run status."""
    if run_status == RunStatus.SUCCEEDED:
        return [(StepStatus.SUCCEEDED, "")] * count
    stop = count // 2 if busy else rng.randrange(1, count - 1)
    if run_status == RunStatus.FAILED:
        stopped = (StepStatus.FAILED, rng.choice(FAILURES))
    else:
        stopped = (StepStatus.RUNNING, "")
    return ([(StepStatus.SUCCEEDED, "")] * stop + [stopped]
            + [(StepStatus.PENDING, "")] * (count - stop - 1))


def _make_runs(owner: Any, clusters: list[tuple[Cluster, str | None]],
               rng: random.Random) -> tuple[list[Run], int]:
    pairs = [(cluster, state) for cluster, state in clusters if state is not None]
    runs = [Run(cluster=cluster, kind=RunKind.CREATE, status=state, created_by=owner,
                params={"source": "wizard"}) for cluster, state in pairs]
    Run.objects.bulk_create(runs, batch_size=1000)
    steps = []
    for (cluster, state), run in zip(pairs, runs, strict=True):
        specs = create.create_plan(cluster)
        busy = cluster is clusters[-1][0]
        for position, (spec, (status, error)) in enumerate(
                zip(specs, _step_states(len(specs), state, rng, busy), strict=True)):
            steps.append(Step(
                run=run, key=spec.key, title=spec.title, handler=spec.handler,
                position=position, depends_on=list(spec.depends_on), args=spec.args,
                retry_budget=spec.retry_budget, status=status, error=error,
                attempts=0 if status == StepStatus.PENDING else 1 + rng.randrange(3),
            ))
    Step.objects.bulk_create(steps, batch_size=2000)
    return runs, len(steps)


def _spread_times(first_cluster_id: int) -> None:
    """One cluster every 37 minutes back from now; runs and steps follow their cluster."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clusters_cluster SET created_at = now() - (m.top - id) * interval '37 min', "
            "updated_at = now() - (m.top - id) * interval '37 min' + interval '25 min' "
            "FROM (SELECT max(id) AS top FROM clusters_cluster) m WHERE id >= %s",
            [first_cluster_id])
        cursor.execute(
            "UPDATE clusters_run r SET created_at = c.created_at + interval '2 s', "
            "started_at = c.created_at + interval '3 s', finished_at = CASE WHEN r.status IN "
            "('succeeded', 'failed') THEN c.created_at + interval '21 min' END "
            "FROM clusters_cluster c WHERE c.id = r.cluster_id AND c.id >= %s",
            [first_cluster_id])
        cursor.execute(
            "UPDATE clusters_step s SET "
            "started_at = CASE WHEN s.status <> 'pending' THEN "
            "r.started_at + s.position * interval '80 s' END, "
            "finished_at = CASE WHEN s.status IN ('succeeded', 'failed') THEN "
            "r.started_at + s.position * interval '80 s' + interval '75 s' END "
            "FROM clusters_run r WHERE r.id = s.run_id AND r.cluster_id >= %s",
            [first_cluster_id])


def _split(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to weights that add up to exactly total."""
    if not weights:
        return []
    scale = total / sum(weights)
    counts = [int(weight * scale) for weight in weights]
    counts[0] += total - sum(counts)
    return counts


TALKATIVE = ("k3s.install_server", "k3s.install_agent", "preflight.hosts", "rds.create",
             "datastore.check")


def _line_counts(busy_run: Run, first_cluster_id: int, total: int, heavy_steps: int,
                 rng: random.Random) -> tuple[dict[int, int], Step]:
    """Most lines on a few hundred install steps; one running install with the biggest log."""
    started = list(Step.objects.filter(run__cluster_id__gte=first_cluster_id)
                   .exclude(status=StepStatus.PENDING)
                   .values_list("id", "run_id", "handler", "status"))
    busy = [row for row in started if row[1] == busy_run.pk]
    busy_running = next(row for row in busy if row[3] == StepStatus.RUNNING)
    busy_done = [row for row in busy if row is not busy_running]
    others = [row for row in started if row[1] != busy_run.pk]
    talkative = [row for row in others if row[2] in TALKATIVE]
    heavy = rng.sample(talkative, min(heavy_steps, len(talkative)))
    heavy_ids = {row[0] for row in heavy}
    light = [row for row in others if row[0] not in heavy_ids]

    counts: dict[int, int] = {busy_running[0]: int(total * 0.12)}
    budget = [int(total * 0.015), int(total * 0.78)]
    budget.append(total - counts[busy_running[0]] - sum(budget))
    groups = [busy_done, heavy, light]
    for group, lines in zip(groups, budget, strict=True):
        shares = [rng.uniform(0.2, 1.8) for _ in group]
        counts.update(zip((row[0] for row in group), _split(lines, shares), strict=True))
    return counts, Step.objects.get(pk=busy_running[0])


def _log_rows(counts: dict[int, int], started: dict[int, float]) -> Iterator[str]:
    """COPY text rows; the clock string is cached per second (formatting is the slow part)."""
    clock: dict[int, str] = {}
    streams = ("info", "info", "info", "stderr")
    for step_id, count in counts.items():
        base = int(started[step_id])
        for seq in range(1, count + 1):
            second = base + seq // 5
            stamp = clock.get(second)
            if stamp is None:
                stamp = clock[second] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
            message = LOG_MESSAGES[seq % len(LOG_MESSAGES)]
            yield (f"{step_id}\t{seq}\t{stamp}.{seq % 5 * 200:03d}+00\t{streams[seq % 4]}\t"
                   f"[{seq:>7}] {message}\t0\t0\t0\n")


def _copy_log_lines(counts: dict[int, int]) -> int:
    started = {pk: when.timestamp() for pk, when in
               Step.objects.filter(pk__in=list(counts)).values_list("id", "started_at")}
    chunk: list[str] = []
    with connection.cursor() as cursor, cursor.cursor.copy(
            "COPY clusters_logline (step_id, seq, time, stream, text, cut_chars, omitted_lines, "
            "omitted_bytes) FROM STDIN") as copy:
        for row in _log_rows(counts, started):
            chunk.append(row)
            if len(chunk) >= 20000:
                copy.write("".join(chunk))
                chunk = []
        copy.write("".join(chunk))
    return sum(counts.values())


def _make_ledger(runs: list[Run]) -> int:
    rows = []
    for run in runs:
        cluster = run.cluster
        for kind, prefix in (("rds", "rm-bp1"), ("slb", "lb-bp1")):
            rows.append(CloudResource(
                cluster=cluster, run=run, kind=kind, provider_id=f"{prefix}{cluster.pk:012d}",
                client_token=f"{kind}-{cluster.code}", region=cluster.region,
                state=ResourceState.PRESENT, attributes={"spec": "slb.s1.small"}))
    CloudResource.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def _make_audit(owner: Any, clusters: list[tuple[Cluster, str | None]]) -> int:
    rows = []
    for cluster, state in clusters:
        if state is None:
            continue
        actions = [AuditAction.CLUSTER_CREATE]
        if cluster.status == ClusterStatus.READY:
            actions += [AuditAction.KUBECONFIG_DOWNLOAD] * (cluster.pk % 3)
        rows += [AuditEvent(user=owner, username=owner.get_username(), action=action,
                            cluster=cluster, cluster_name=cluster.name, ip_address="10.8.0.7",
                            user_agent="Mozilla/5.0") for action in actions]
    AuditEvent.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


def fill(owner: Any, clusters: int, nodes_per_cluster: int, log_lines: int,  # noqa: PLR0917
         heavy_steps: int, seed: int = 7) -> Filled:
    """Add `clusters` clusters for owner with their nodes, runs, steps, ledger and logs."""
    rng = random.Random(seed)
    account, _ = CloudAccount.objects.get_or_create(
        owner=owner, name="production", defaults={
            "access_key_id": "LTAI5tBenchmarkKey", "access_key_secret": "bench-secret-value"})
    first = Cluster.objects.count() + 1
    made = _make_clusters(owner, account, clusters, first, rng)
    first_id = made[0][0].pk
    node_count = _make_nodes(made, nodes_per_cluster)
    runs, step_count = _make_runs(owner, made, rng)
    _spread_times(first_id)
    busy_run = runs[-1]
    counts, busy_step = _line_counts(busy_run, first_id, log_lines, heavy_steps, rng)
    lines = _copy_log_lines(counts)
    return Filled(
        clusters=len(made), nodes=node_count, runs=len(runs), steps=step_count,
        log_lines=lines, resources=_make_ledger(runs), audit_events=_make_audit(owner, made),
        target=Target(cluster=busy_run.cluster, run=busy_run, step=busy_step,
                      last_seq=counts[busy_step.pk]),
    )


def analyze() -> None:
    """What autovacuum does soon after a bulk load: fresh planner statistics."""
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def row_counts() -> dict[str, int]:
    models = {"clusters": Cluster, "nodes": Node, "runs": Run, "steps": Step,
              "log lines": LogLine, "ledger": CloudResource, "audit events": AuditEvent}
    return {label: model.objects.count() for label, model in models.items()}


def run_lines(run_id: int) -> int:
    return LogLine.objects.filter(step__run_id=run_id).count()
