"""The soak: many clusters created at once while the world misbehaves, then the bill checked.

Why: each kind of trouble has its own test (a throttled cloud, one killed worker, a database
restart); what none of them shows is all of it at once, at a size where steps of different
runs queue behind each other. Here N clusters are created together while the cloud answers
a share of calls with transient faults, the one worker process is SIGKILLed on a fixed
period (a new one started at once, as a supervisor would) and the broker is stopped once.
It passes when every run ends succeeded and the cloud holds exactly one RDS instance and one
load balancer per cluster.

`benchmarks/soak.py` is the command line (`make soak`); `tests/engine/test_soak.py` runs it
tiny so the harness cannot rot. The caller owns the database (migrated), the world (one lab
host per cluster) and the broker (a `PrivateRedis`, which the soak stops and starts).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from django.db.models import Max, Sum

from clusters import operations
from clusters.adapters.cloud import TAG_KEY
from clusters.models import RUN_ACTIVE, CloudResource, Cluster, LogLine, Run, RunStatus, Step
from sandbox.aliyun.gateway.calllog import MAX_ENTRIES
from sandbox.world import World
from tests.support.services import PrivateRedis
from tests.support.worker import WorkerProcess
from tests.support.world_clusters import make_world_cluster, world_env

#: What the cloud answers a faulted call with: each is transient for the panel
#: (clusters/adapters/aliyun/errors.py), and none creates anything (the emulator decides a
#: fault before it dispatches the call). A dropped connection is an SDK.HttpError.
FAULTS: tuple[dict[str, Any], ...] = (
    {"code": "Throttling", "http_status": 400},
    {"code": "ServiceUnavailable", "http_status": 503},
    {"code": "InternalError", "http_status": 500},
    {"drop": True},
)
BOUGHT = ("rds_instance", "slb_load_balancer")
#: The calls that buy each kind: a second successful one with a new ClientToken is a second
#: purchase even if the panel released it again (then the inventory alone would not show it).
BUYING_ACTIONS = {"rds_instance": "CreateDBInstance", "slb_load_balancer": "CreateLoadBalancer"}


@dataclass(frozen=True)
class SoakPlan:
    clusters: int = 20
    fault_rate: float = 0.30  # of every cloud API call
    kill_every: float = 20.0  # seconds between SIGKILLs of the worker
    max_kills: int | None = None  # None: keep killing until every run has ended
    outage_at: float = 30.0  # seconds after the runs start
    outage_seconds: float = 20.0
    outage_loses_messages: bool = False  # a crash (SIGKILL, nothing saved) instead of a stop
    concurrency: int = 4
    timeout: float = 1800.0
    engine_env: dict[str, str] = field(default_factory=lambda: {
        # Short leases so a killed worker's steps come back within a kill period; sweeps
        # often, so lost countdowns and quiet runs are found quickly.
        "PANEL_STEP_LEASE_SECONDS": "8",
        "PANEL_SWEEP_INTERVAL_SECONDS": "2",
    })


@dataclass
class SoakReport:
    plan: SoakPlan
    runs_total: int = 0
    runs_succeeded: int = 0
    failed_runs: list[str] = field(default_factory=list)  # one line per run, its bad steps
    kills: int = 0
    worker_starts: int = 0
    outage_seconds: float = 0.0
    faults_injected: int = 0
    api_calls: int = 0
    wall_seconds: float = 0.0
    #: cluster name -> count of each BOUGHT kind the cloud holds with its tag
    inventory: dict[str, dict[str, int]] = field(default_factory=dict)
    untagged: list[str] = field(default_factory=list)  # bought, tagged for no cluster of ours
    #: kind -> distinct ClientTokens of its buying calls that succeeded (replays count once)
    purchases: dict[str, int] = field(default_factory=dict)
    ledger_rows: int = 0
    reclaims: int = 0
    max_reclaims_of_a_step: int = 0
    attempts: int = 0
    transient_retries: int = 0  # "Transient failure (n/budget)" lines in the steps' logs
    #: seconds from a step being ready (its dependencies done) to its first start
    ready_to_start: list[float] = field(default_factory=list)
    slowest_start: str = ""

    def duplicates(self) -> int:
        """Purchases beyond one of each kind per cluster (the thing the soak exists to catch)."""
        extra = sum(max(0, n - 1) for counts in self.inventory.values() for n in counts.values())
        bought_again = sum(max(0, n - self.runs_total) for n in self.purchases.values())
        return max(extra + len(self.untagged), bought_again)

    def violations(self) -> list[str]:
        """Why this soak did not pass (empty: it passed)."""
        found = []
        if self.runs_succeeded != self.runs_total or self.runs_total != self.plan.clusters:
            found.append(f"{self.runs_total - self.runs_succeeded} of {self.runs_total} runs "
                         f"did not succeed ({self.plan.clusters} clusters asked for)")
        for name, counts in sorted(self.inventory.items()):
            wrong = {kind: n for kind, n in counts.items() if n != 1}
            if wrong:
                found.append(f"cluster {name}: the cloud holds {wrong} (one of each expected)")
        if self.untagged:
            found.append(f"bought for no cluster of ours: {', '.join(self.untagged)}")
        for kind, count in sorted(self.purchases.items()):
            if count > self.runs_total:
                found.append(f"{BUYING_ACTIONS[kind]} succeeded with {count} ClientTokens for "
                             f"{self.runs_total} clusters")
        if self.plan.max_kills != 0 and self.kills == 0:
            found.append("the worker was never killed: the soak did not soak")
        if self.plan.outage_seconds and self.outage_seconds < self.plan.outage_seconds * 0.9:
            found.append(f"the broker was down {self.outage_seconds:.1f} s, not "
                         f"{self.plan.outage_seconds:.0f} s")
        if self.plan.fault_rate and not self.faults_injected:
            found.append("no fault was injected")
        return found

    def lines(self) -> list[str]:
        plan = self.plan
        per_cluster = Counter(tuple(sorted(c.items())) for c in self.inventory.values())
        shapes = "; ".join(f"{n} cluster(s) with {dict(shape)}" for shape, n in per_cluster.items())
        return [
            f"runs succeeded: {self.runs_succeeded}/{self.runs_total}",
            f"wall time: {self.wall_seconds:.1f} s (all {plan.clusters} created at once)",
            f"worker SIGKILLs: {self.kills} (every {plan.kill_every:.0f} s), "
            f"worker starts: {self.worker_starts}, concurrency {plan.concurrency}",
            f"broker outage: {self.outage_seconds:.1f} s "
            f"({'crash, messages lost' if plan.outage_loses_messages else 'stop, messages kept'})",
            f"faults injected: {self.faults_injected} of {self.api_calls} API calls "
            f"(asked {plan.fault_rate:.0%})",
            f"step attempts: {self.attempts}, transient retries: {self.transient_retries}, "
            f"reclaims after a kill: {self.reclaims} (most for one step: "
            f"{self.max_reclaims_of_a_step})",
            f"ready to started: median {median(self.ready_to_start or [0]):.1f} s, "
            f"max {max(self.ready_to_start or [0]):.1f} s ({self.slowest_start})",
            f"inventory per cluster: {shapes or 'nothing'}",
            "purchases (distinct ClientTokens answered 200): "
            + ", ".join(f"{BUYING_ACTIONS[k]} {n}" for k, n in sorted(self.purchases.items())),
            f"ledger rows: {self.ledger_rows}, duplicate purchases: {self.duplicates()}",
            *[f"failed run: {line}" for line in self.failed_runs],
        ]


def inject_faults(world: World, rate: float) -> None:
    """Every cloud API call fails with probability `rate`, spread evenly over FAULTS (the
    emulator tries its faults in order, so each gets 1 - (1 - rate)^(1/n))."""
    if not rate:
        return
    each = 1 - (1 - rate) ** (1 / len(FAULTS))
    for fault in FAULTS:
        world.emulator.control.add_fault(action="*", probability=each, **fault)


class Chaos(threading.Thread):
    """Kills the worker every `kill_every` seconds (starting a new one at once) and stops the
    broker once, for `outage_seconds`, while the runs go on."""

    def __init__(self, plan: SoakPlan, broker: PrivateRedis,
                 start_worker: Callable[[], WorkerProcess]) -> None:
        super().__init__(daemon=True, name="soak-chaos")
        self.plan = plan
        self.broker = broker
        self.start_worker = start_worker
        self.workers = [start_worker().wait_ready()]
        self.kills = 0
        self.outage_seconds = 0.0
        self.events: list[str] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._began = time.monotonic()

    def note(self, text: str) -> None:
        self.events.append(f"{time.monotonic() - self._began:7.1f}s {text}")

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by finish(); the soak must not hang on it
            self.error = exc

    def _run(self) -> None:
        plan = self.plan
        self._began = time.monotonic()
        next_kill = self._began + plan.kill_every
        outage_at = self._began + plan.outage_at if plan.outage_seconds else None
        down_since: float | None = None
        while not self._halt.wait(0.1):
            now = time.monotonic()
            if outage_at is not None and now >= outage_at:
                outage_at = None
                self.broker.stop(keep_data=not plan.outage_loses_messages)
                down_since = time.monotonic()
                self.note("broker stopped")
            if down_since is not None and now - down_since >= plan.outage_seconds:
                self.broker.start()
                self.outage_seconds = time.monotonic() - down_since
                down_since = None
                self.note(f"broker started again after {self.outage_seconds:.1f} s")
            if now >= next_kill and (plan.max_kills is None or self.kills < plan.max_kills):
                next_kill += plan.kill_every
                self.workers[-1].kill_hard()
                self.kills += 1
                self.note(f"worker {len(self.workers)} SIGKILLed")
                # Not waited for: while the broker is down it cannot become ready.
                self.workers.append(self.start_worker())
        if down_since is not None:  # the runs ended during the outage: bring it back
            self.broker.start()
            self.outage_seconds = time.monotonic() - down_since

    def finish(self) -> None:
        self._halt.set()
        try:
            self.join(60)
        finally:  # whatever happened, no worker outlives the soak
            for worker in self.workers:
                worker.stop()
        if self.error:
            raise RuntimeError("the soak's chaos thread failed") from self.error


def _tag_of(resource: dict[str, Any]) -> str:
    tags = resource.get("tags") or []
    if isinstance(tags, dict):
        return str(tags.get(TAG_KEY, ""))
    for tag in tags:
        if tag.get("Key", tag.get("key")) == TAG_KEY:
            return str(tag.get("Value", tag.get("value", "")))
    return ""


def _failed_run_line(run: Run) -> str:
    bad = run.steps.exclude(status__in=["succeeded", "skipped"]).order_by("position")
    parts = []
    for step in bad:
        last = LogLine.objects.filter(step=step).order_by("-pk").values_list("text", flat=True)
        tail = " | ".join(reversed([t[:160] for t in last[:3]]))
        parts.append(f"{step.key} {step.status} tries={step.tries} reclaims={step.reclaims} "
                     f"error={step.error[:300]!r} last_log={tail!r}")
    return f"run {run.pk} ({run.cluster.name}, {run.status}): " + "; ".join(parts)


def purchases(calls: list[dict[str, Any]]) -> dict[str, int]:
    """Per kind, the distinct ClientTokens its buying call succeeded with (a call without
    one counts alone)."""
    if len(calls) >= MAX_ENTRIES:
        raise RuntimeError(f"the emulator's call log is full ({MAX_ENTRIES} calls): purchases "
                           "cannot be counted; soak fewer clusters")
    tokens: dict[str, set[str]] = {kind: set() for kind in BUYING_ACTIONS}
    for index, call in enumerate(calls):
        for kind, action in BUYING_ACTIONS.items():
            if call["action"] == action and call["status"] == 200:
                tokens[kind].add(call["params"].get("ClientToken") or f"(none) {index}")
    return {kind: len(found) for kind, found in tokens.items()}


def ready_to_start(runs: list[Run]) -> tuple[list[float], str]:
    """How long each started step waited for a worker once it could run, and the worst."""
    delays, worst = [], (-1.0, "")
    for run in runs:
        steps = {step.key: step for step in run.steps.all()}
        for step in steps.values():
            if step.started_at is None:
                continue
            ready = max((steps[d].finished_at for d in step.depends_on
                         if steps[d].finished_at), default=run.created_at)
            delay = (step.started_at - ready).total_seconds()
            delays.append(delay)
            worst = max(worst, (delay, f"run {run.pk} {step.key}"))
    return delays, worst[1]


def measure(world: World, plan: SoakPlan, runs: list[Run], report: SoakReport) -> None:
    """Fill the report from the database and the cloud's own inventory."""
    runs = list(Run.objects.filter(pk__in=[r.pk for r in runs]).select_related("cluster"))
    report.runs_total = len(runs)
    report.runs_succeeded = sum(r.status == RunStatus.SUCCEEDED for r in runs)
    report.failed_runs = [_failed_run_line(r) for r in runs if r.status != RunStatus.SUCCEEDED]
    steps = Step.objects.filter(run__in=runs)
    totals = steps.aggregate(all_reclaims=Sum("reclaims"), most=Max("reclaims"),
                             all_attempts=Sum("attempts"))
    report.reclaims = totals["all_reclaims"] or 0
    report.max_reclaims_of_a_step = totals["most"] or 0
    report.attempts = totals["all_attempts"] or 0
    report.transient_retries = LogLine.objects.filter(
        step__run__in=runs, text__startswith="Transient failure (").count()
    report.ready_to_start, report.slowest_start = ready_to_start(runs)
    report.ledger_rows = CloudResource.objects.filter(cluster__in=[r.cluster for r in runs]).count()

    control = world.emulator.control
    report.faults_injected = sum(f["fired"] for f in control.faults())
    calls = control.calls()
    report.api_calls = len(calls)
    report.purchases = purchases(calls)
    by_code = {str(r.cluster.code): r.cluster.name for r in runs}
    report.inventory = {name: dict.fromkeys(BOUGHT, 0) for name in by_code.values()}
    for resource in control.resources():
        if resource["type"] not in BOUGHT:
            continue
        name = by_code.get(_tag_of(resource))
        if name is None:
            report.untagged.append(f"{resource['type']} {resource['id']}")
        else:
            report.inventory[name][resource["type"]] += 1


def soak(world: World, broker: PrivateRedis, queue: str, plan: SoakPlan, *,
         log_dir: Path | None = None, say: Callable[[str], None] = print) -> SoakReport:
    """Create plan.clusters clusters at once under the plan's trouble; wait; report."""
    report = SoakReport(plan)
    if len(world.lab.hosts) < plan.clusters:
        raise ValueError(f"{plan.clusters} clusters need as many lab hosts, the world has "
                         f"{len(world.lab.hosts)}")
    env = {**world_env(world), **plan.engine_env}
    chaos = Chaos(plan, broker, lambda: WorkerProcess(
        broker.url, queue, concurrency=plan.concurrency, beat=True, env=env))
    try:
        clusters: list[Cluster] = [
            make_world_cluster(world, servers=1, agents=0, first_host=index)
            for index in range(plan.clusters)]
        inject_faults(world, plan.fault_rate)
        began = time.monotonic()
        runs = [operations.start_create(cluster) for cluster in clusters]
        chaos.start()
        say(f"{len(runs)} runs started; chaos under way")
        deadline = began + plan.timeout
        ids = [r.pk for r in runs]
        while time.monotonic() < deadline:
            active = Run.objects.filter(pk__in=ids, status__in=RUN_ACTIVE).count()
            if not active:
                break
            time.sleep(1)
        report.wall_seconds = time.monotonic() - began
    finally:
        chaos.finish()
        report.kills = chaos.kills
        report.worker_starts = len(chaos.workers)
        report.outage_seconds = chaos.outage_seconds
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "chaos.log").write_text("\n".join(chaos.events) + "\n")
            for index, worker in enumerate(chaos.workers, 1):
                (log_dir / f"worker-{index:02d}.log").write_text("\n".join(worker.output) + "\n")
    measure(world, plan, runs, report)
    return report
