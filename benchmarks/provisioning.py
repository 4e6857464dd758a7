"""Benchmark: how close the engine gets to a run's critical path, and how it scales.

Creates clusters on the offline world (lab hosts, emulator with realistic delays scaled by
--time-scale, K3s stand-in) with real Celery workers, and prints:

* for one cluster alone: wall time / critical path (the longest chain of dependent step
  durations, waits included) - 1.00 would mean the engine adds nothing;
* for N clusters created at once: wall time with two step worker processes (and one, with
  `--worker-counts 1,2`), and the ratio of that wall time to the one cluster's. As in
  docker-compose.yml, the step workers consume the default queue, one health worker the
  health queue, and beat runs alone;
* where the CPU went during each run, in CPU seconds counted exactly per cgroup
  (tests/support/cpu_groups.py): the panel's own processes (the step and health workers, `celery
  beat`, and this script's main thread, which does what the web process does: start_create,
  then polling the run's status) apart from the offline world (MariaDB servers, K3s
  stand-ins, sshd and the install commands it runs, the emulator, lab init, the artifact
  server's threads) and the rest of the machine (PostgreSQL, Redis, other people's jobs);
  the panel's share of the machine's capacity (wall x cores) and its CPU per cluster;
* how many step executions a cluster cost, by handler, and how many of them were polls
  after a Wait (each a claim, a handler call and a record in a step worker), with the step
  workers' CPU per execution. `--poll-growth 1` looks at every wait at its asked interval
  (as before growing waits, clusters/engine/polling.py), for a before/after pair.

The previous figures (README "Benchmarks") are printed beside the new ones.

Needs root (network namespaces, cgroups). Uses DATABASE_URL (PostgreSQL recommended) and a
real Redis.

    .venv/bin/python benchmarks/provisioning.py [--clusters 20] [--time-scale 0.05]
        [--worker-counts 2] [--poll-growth 1]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings_test")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Count, Sum  # noqa: E402

from clusters import operations  # noqa: E402
from clusters.models import RUN_ACTIVE, Run, Step  # noqa: E402
from panel.celery import health_queue  # noqa: E402
from sandbox.world import running_world  # noqa: E402
from tests.support.cpu_groups import (  # noqa: E402
    Classifier,
    CpuGroup,
    command_line,
    machine_busy_seconds,
)
from tests.support.services import find_redis, route_tasks_to  # noqa: E402
from tests.support.worker import WorkerProcess  # noqa: E402
from tests.support.world_clusters import FAST_ENGINE, make_world_cluster  # noqa: E402


def critical_path(run: Run) -> float:
    """Longest chain of dependent steps, each counted from its start to its finish."""
    steps = {s.key: s for s in Step.objects.filter(run=run)}
    memo: dict[str, float] = {}

    def finish_chain(key: str) -> float:
        if key not in memo:
            step = steps[key]
            own = (step.finished_at - step.started_at).total_seconds()
            memo[key] = own + max((finish_chain(d) for d in step.depends_on), default=0.0)
        return memo[key]

    return max(finish_chain(key) for key in steps)


#: README "Benchmarks", before this script counted CPU: wall seconds and run/critical path.
PREVIOUS = {
    "one": "28.9 s, run/critical path 1.01, panel 1.51 CPU-s",
    1: "122.3 s, run/critical path 3.06 (2026-11, loaded machine)",
    2: "60.5 s, run/critical path 1.73, panel 0.65 CPU-s/cluster = 10.8% of the machine",
}
PREVIOUS_RATIO = "2.09 (2026-12-02, quiet machine: 60.5 s / 28.9 s)"

#: The offline world's parts, told apart by command line (first match wins).
WORLD_PARTS = (
    ("MariaDB servers (RDS)", re.compile(r"\bmariadbd\b|\bmysqld\b")),
    ("K3s stand-ins", re.compile(r"sandbox[./]k3s(?![./]artifacts)|\bk3s (server|agent)\b")),
    ("emulator", re.compile(r"-m sandbox\.aliyun\b")),
    ("lab init", re.compile(r"hostinit")),
    ("sshd and the commands it runs", re.compile(r"\bsshd\b")),
)


class Accounting:
    """The benchmark's cgroups: this process and all it starts join `world`; the panel's
    processes are started into `worker` and `beat` (they join before Python starts), and
    the classifier moves each world process it recognises into its part's group."""

    def __init__(self) -> None:
        self.worker = CpuGroup("bench-prov", "worker")
        self.health = CpuGroup("bench-prov", "health")
        self.beat = CpuGroup("bench-prov", "beat")
        self.world = CpuGroup("bench-prov", "world")
        self.parts = [(name, pattern, CpuGroup("bench-prov", f"w{index}"))
                      for index, (name, pattern) in enumerate(WORLD_PARTS)]
        self.world.add(os.getpid())
        self.classifier = Classifier(self.world, [(p, g) for _, p, g in self.parts],
                                     keep=[os.getpid()])

    def snapshot(self) -> dict[str, float]:
        self.classifier.sweep()
        values = {
            "worker": self.worker.seconds(), "health": self.health.seconds(),
            "beat": self.beat.seconds(),
            "world": self.world.seconds(), "machine": machine_busy_seconds(),
            "driver": time.thread_time(), "classifier": self.classifier.cpu_seconds,
        }
        for name, _, group in self.parts:
            values[name] = group.seconds()
        return values

    def close(self) -> None:
        with contextlib.suppress(OSError):
            (Path("/sys/fs/cgroup/cpuacct") / "cgroup.procs").write_text(f"{os.getpid()}\n")
        groups = [self.worker, self.health, self.beat, self.world]
        for group in groups + [g for _, _, g in self.parts]:
            group.close()

    def unclassified(self) -> list[str]:
        """What is left in the world's own group (for --show-world): what no pattern knew."""
        return sorted({command_line(pid)[:100] for pid in self.world.pids()} - {""})


def create_many(world, count: int, workers: int, broker_url: str, queue: str, *,
                servers: int, accounting: Accounting,
                extra_env: dict[str, str]) -> tuple[float, list[Run], dict[str, float]]:
    env = {"ALIYUN_ENDPOINT_OVERRIDE": world.endpoint, **FAST_ENGINE,
           "PANEL_CLOUD_POLL_SECONDS": "1", **extra_env}
    # As docker-compose.yml runs them: step workers on the default queue, one health worker
    # on the health queue (a worker taking both spends its slot on health checks of
    # half-built clusters while 1,000 step messages wait), and beat alone.
    processes = [WorkerProcess(broker_url, queue, concurrency=1, env=env, queues=queue,
                               cgroup_procs=accounting.worker.procs).wait_ready()
                 for _ in range(workers)]
    processes.append(WorkerProcess(broker_url, queue, concurrency=1, env=env,
                                   queues=health_queue(queue),
                                   cgroup_procs=accounting.health.procs).wait_ready())
    processes.append(WorkerProcess(broker_url, queue, beat_only=True, env=env,
                                   cgroup_procs=accounting.beat.procs).wait_ready())
    try:
        hosts = world.lab.hosts
        clusters = []
        for index in range(count):
            cluster = make_world_cluster(world, servers=servers, agents=0)
            cluster.nodes.all().delete()
            for host in hosts[index * servers:(index + 1) * servers]:
                cluster.nodes.create(role="server", private_ip=host.ip, ssh_user="root",
                                     ssh_private_key=Path(host.private_key_path).read_text())
            clusters.append(cluster)
        before = accounting.snapshot()
        began = time.monotonic()
        runs = [operations.start_create(cluster) for cluster in clusters]
        while Run.objects.filter(pk__in=[r.pk for r in runs], status__in=RUN_ACTIVE).exists():
            time.sleep(0.5)
        elapsed = time.monotonic() - began
        after = accounting.snapshot()
    finally:
        for process in processes:
            process.stop()
    cpu = {key: after[key] - before[key] for key in after}
    return elapsed, [Run.objects.get(pk=r.pk) for r in runs], cpu


def executions(runs: list[Run], worker_cpu: float) -> None:
    """How many times the runs' steps were executed, per cluster and by handler: every
    execution is a claim, a handler call and a record in a step worker; a poll is one that
    came back after a Wait (Step.polls), the rest are tries (the first, transient retries,
    reclaims)."""
    rows = list(Step.objects.filter(run__in=runs).values("handler")
                .annotate(steps=Count("id"), executions=Sum("attempts"), polls=Sum("polls"))
                .order_by("-executions", "handler"))
    total = sum(row["executions"] for row in rows)
    polls = sum(row["polls"] for row in rows)
    per = len(runs)
    print(f"  step executions per cluster: {total / per:.1f}, of which {polls / per:.1f} polls "
          f"after a Wait ({polls / max(total, 1):.0%}); step worker CPU per execution "
          f"{1000 * worker_cpu / max(total, 1):.1f} ms")
    print(f"    {'handler':<30} {'steps':>6} {'executions':>11} {'polls':>7}  (per cluster)")
    for row in rows:
        print(f"    {row['handler']:<30} {row['steps'] / per:6.1f} {row['executions'] / per:11.1f}"
              f" {row['polls'] / per:7.1f}")


def report(label: str, elapsed: float, runs: list[Run], cpu: dict[str, float],
           previous: str) -> None:
    failed = [r.pk for r in runs if r.status != "succeeded"]
    paths = [critical_path(r) for r in runs]
    walls = [(r.finished_at - r.created_at).total_seconds() for r in runs]
    print(f"{label}: clusters={len(runs)} failed={len(failed)} wall={elapsed:.1f}s "
          f"median_run={statistics.median(walls):.1f}s "
          f"median_critical_path={statistics.median(paths):.1f}s "
          f"median_ratio={statistics.median(w / p for w, p in zip(walls, paths, strict=True)):.2f}"
          f"  (previous: {previous})")
    capacity = elapsed * (os.cpu_count() or 1)
    panel = cpu["worker"] + cpu["health"] + cpu["beat"] + cpu["driver"]
    parts = {name: cpu[name] for name, _ in WORLD_PARTS}
    # The world's own group holds what no pattern matched: the artifact server's threads (in
    # this process, less its main thread and the classifier), `ip netns exec`, unshare, ...
    world_rest = cpu["world"] - cpu["driver"] - cpu["classifier"]
    world = sum(parts.values()) + world_rest
    rest = cpu["machine"] - panel - world - cpu["classifier"]

    def line(name: str, seconds: float) -> str:
        return (f"    {name:<44} {seconds:8.1f} CPU-s  {seconds / capacity:6.1%} of the machine"
                f"  {seconds / len(runs):6.2f} CPU-s/cluster")

    print(f"  CPU during the run (capacity {capacity:.0f} CPU-s = {elapsed:.1f}s x "
          f"{os.cpu_count()} cores; machine busy {cpu['machine']:.1f} CPU-s = "
          f"{cpu['machine'] / capacity:.0%})")
    print(line("PANEL (workers + beat + web stand-in)", panel))
    print(line("  step worker processes", cpu["worker"]))
    print(line("  health worker process", cpu["health"]))
    print(line("  celery beat", cpu["beat"]))
    print(line("  web stand-in (start_create, status polls)", cpu["driver"]))
    print(line("WORLD (offline cloud, hosts, K3s)", world))
    for name, seconds in parts.items():
        print(line(f"  {name}", seconds))
    print(line("  artifact server threads, ip/unshare, other", world_rest))
    print(line("REST (PostgreSQL, Redis, other jobs)", rest))
    print(line("measurement (classifier thread)", cpu["classifier"]))
    executions(runs, cpu["worker"])


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--worker-counts", default="2",
                        help="comma-separated worker process counts for the N-cluster runs")
    parser.add_argument("--show-world", action="store_true",
                        help="list the world's processes no pattern classified")
    parser.add_argument("--poll-growth", default="",
                        help="PANEL_POLL_GROWTH for the workers (1: every wait looked at at "
                             "its asked interval, as before issue 18's growing waits); "
                             "unset: the default")
    args = parser.parse_args()
    extra_env = {"PANEL_POLL_GROWTH": args.poll_growth} if args.poll_growth else {}
    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    if Run.objects.filter(status__in=RUN_ACTIVE).exists():
        raise SystemExit("the database holds active runs (an interrupted benchmark's?): the "
                         "sweeper would send their steps to these workers too; use a fresh "
                         "database (DATABASE_URL)")
    print(f"time_scale={args.time_scale} (RDS creation {300 * args.time_scale:.0f}s), "
          f"database={settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    print(f"load before: {load()}")
    print(f"waits: PANEL_POLL_GROWTH={args.poll_growth or settings.PANEL_POLL_GROWTH} "
          f"(punctual {settings.PANEL_POLL_PUNCTUAL}, at most "
          f"{settings.PANEL_POLL_MAX_FACTOR:g}x the asked interval and "
          f"{settings.PANEL_POLL_MAX_SECONDS:g} s); cloud poll 1 s, host poll "
          f"{FAST_ENGINE['PANEL_HOST_POLL_SECONDS']} s")
    accounting = Accounting()
    try:
        with accounting.classifier:
            with running_world(hosts=2, time_scale=args.time_scale) as world:
                one, runs, cpu = create_many(world, 1, 1, broker_url, queue, servers=2,
                                             accounting=accounting, extra_env=extra_env)
                if args.show_world:
                    print("\n".join(accounting.unclassified()))
            print(f"load: {load()}")
            report("one HA cluster (2 servers), 1 worker", one, runs, cpu, PREVIOUS["one"])
            for workers in (int(n) for n in args.worker_counts.split(",")):
                with running_world(hosts=args.clusters * args.servers,
                                   time_scale=args.time_scale) as world:
                    elapsed, runs, cpu = create_many(world, args.clusters, workers, broker_url,
                                                     queue, servers=args.servers,
                                                     accounting=accounting,
                                                     extra_env=extra_env)
                print(f"load: {load()}")
                report(f"{args.clusters} clusters at once, {workers} worker process(es)",
                       elapsed, runs, cpu, PREVIOUS.get(workers, "not measured"))
                print(f"  wall ratio {args.clusters} at once / one alone: "
                      f"{elapsed / one:.2f}  (previous: {PREVIOUS_RATIO})")
    finally:
        accounting.close()
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    main()
