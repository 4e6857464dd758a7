"""Benchmark: 1,000 trivial steps across 100 runs, driven by 2 real Celery worker processes.

Prints steps per second and the delay from a step becoming ready (its last dependency
finished, or its run was created) to a worker starting it. Uses a real Redis (TEST_REDIS_URL
or 127.0.0.1:6379, else the embedded one) and DATABASE_URL (default: a fresh SQLite file).

    .venv/bin/python benchmarks/engine_throughput.py [--runs 100] [--workers 2]
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
os.environ.setdefault("PANEL_SWEEP_INTERVAL_SECONDS", "60")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from clusters.engine.pipeline import StepSpec, create_run  # noqa: E402
from clusters.models import RUN_ACTIVE, Run, RunKind, Step  # noqa: E402
from tests.support.factories import make_cluster  # noqa: E402
from tests.support.services import find_redis, route_tasks_to  # noqa: E402
from tests.support.worker import WorkerProcess  # noqa: E402

STEPS_PER_RUN = 10


def plan() -> list[StepSpec]:
    """One root, eight parallel steps, one join: the shape of a real create run."""
    middle = [StepSpec(f"m{i}", f"Middle {i}", "test.work", ["root"]) for i in range(8)]
    return [StepSpec("root", "Root", "test.work"), *middle,
            StepSpec("join", "Join", "test.work", [s.key for s in middle])]


def ready_to_start_delays(run_ids: list[int]) -> list[float]:
    delays = []
    runs = {run.pk: run for run in Run.objects.filter(pk__in=run_ids)}
    steps = list(Step.objects.filter(run_id__in=run_ids))
    finished = {(s.run_id, s.key): s.finished_at for s in steps}
    for step in steps:
        ready = max((finished[(step.run_id, dep)] for dep in step.depends_on),
                    default=runs[step.run_id].created_at)
        delays.append((step.started_at - ready).total_seconds())
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    workers = [WorkerProcess(broker_url, queue, concurrency=1).wait_ready()
               for _ in range(args.workers)]
    try:
        cluster = make_cluster()
        began = time.monotonic()
        run_ids = [create_run(cluster, RunKind.TEST, plan()).pk for _ in range(args.runs)]
        while Run.objects.filter(pk__in=run_ids, status__in=RUN_ACTIVE).exists():
            time.sleep(0.2)
        elapsed = time.monotonic() - began
    finally:
        for worker in workers:
            worker.stop()
        if embedded:
            embedded.stop()

    failed = Run.objects.filter(pk__in=run_ids).exclude(status="succeeded").count()
    delays = sorted(ready_to_start_delays(run_ids))
    total = args.runs * STEPS_PER_RUN
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database={engine} broker={broker_url.split('://')[0]} workers={args.workers}x1")
    print(f"steps={total} runs={args.runs} failed_runs={failed} wall={elapsed:.2f}s")
    print(f"throughput={total / elapsed:.1f} steps/s")
    print(f"ready_to_start median={statistics.median(delays) * 1000:.0f}ms "
          f"p95={delays[int(0.95 * len(delays))] * 1000:.0f}ms max={delays[-1] * 1000:.0f}ms")


if __name__ == "__main__":
    main()
