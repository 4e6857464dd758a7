"""Benchmark: how close the engine gets to a run's critical path, and how it scales.

Creates clusters on the offline world (lab hosts, emulator with realistic delays scaled by
--time-scale, K3s stand-in) with real Celery workers, and prints:

* for one cluster alone: wall time / critical path (the longest chain of dependent step
  durations, waits included) - 1.00 would mean the engine adds nothing;
* for N clusters created at once: wall time with one worker process, then with two.

Needs root (network namespaces). Uses DATABASE_URL (PostgreSQL recommended) and a real Redis.

    .venv/bin/python benchmarks/provisioning.py [--clusters 20] [--time-scale 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
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

from clusters import operations  # noqa: E402
from clusters.models import RUN_ACTIVE, Run, Step  # noqa: E402
from sandbox.world import running_world  # noqa: E402
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


def create_many(world, count: int, workers: int, broker_url: str, queue: str, *,
                servers: int) -> tuple[float, list[Run]]:
    env = {"ALIYUN_ENDPOINT_OVERRIDE": world.endpoint, **FAST_ENGINE,
           "PANEL_CLOUD_POLL_SECONDS": "1"}
    processes = [WorkerProcess(broker_url, queue, concurrency=1, beat=(i == 0), env=env)
                 .wait_ready() for i in range(workers)]
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
        began = time.monotonic()
        runs = [operations.start_create(cluster) for cluster in clusters]
        while Run.objects.filter(pk__in=[r.pk for r in runs], status__in=RUN_ACTIVE).exists():
            time.sleep(0.5)
        elapsed = time.monotonic() - began
    finally:
        for process in processes:
            process.stop()
    return elapsed, [Run.objects.get(pk=r.pk) for r in runs]


def report(label: str, elapsed: float, runs: list[Run]) -> None:
    failed = [r.pk for r in runs if r.status != "succeeded"]
    paths = [critical_path(r) for r in runs]
    walls = [(r.finished_at - r.created_at).total_seconds() for r in runs]
    print(f"{label}: clusters={len(runs)} failed={len(failed)} wall={elapsed:.1f}s "
          f"median_run={statistics.median(walls):.1f}s "
          f"median_critical_path={statistics.median(paths):.1f}s "
          f"median_ratio={statistics.median(w / p for w, p in zip(walls, paths, strict=True)):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=0.05)
    args = parser.parse_args()
    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    print(f"time_scale={args.time_scale} (RDS creation {300 * args.time_scale:.0f}s), "
          f"database={settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    try:
        with running_world(hosts=2, time_scale=args.time_scale) as world:
            elapsed, runs = create_many(world, 1, 1, broker_url, queue, servers=2)
            report("one HA cluster (2 servers), 1 worker", elapsed, runs)
        for workers in (1, 2):
            with running_world(hosts=args.clusters * args.servers,
                               time_scale=args.time_scale) as world:
                elapsed, runs = create_many(world, args.clusters, workers, broker_url, queue,
                                            servers=args.servers)
                report(f"{args.clusters} clusters at once, {workers} worker process(es)",
                       elapsed, runs)
    finally:
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    main()
