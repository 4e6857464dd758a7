"""Benchmark: does a real Celery worker's memory grow with the runs it has driven?

One `celery -A panel worker` (prefork, concurrency 1, as tests/support/worker.py starts it)
drives runs of the same shape as a create (one step, eight parallel, one join) in batches of
ten, each run on a cluster of its own (its own secrets, as real clusters). The steps are
`test.secrets_and_logs` (tests/engine/steps_for_tests.py): no cloud, but what a real step
does to a worker's memory: the cluster's secrets compiled into a Redactor, a secret learnt
mid-step (`register_secret`, like the kubeconfig), 20 log lines through StepLog, and a
record through Python logging (the redacting filter). It prints the worker's RSS (the
consumer process and its pool child, from /proc through psutil) after 10 runs and after
100 (--runs), and their ratio: within 10% (1.10) means no leak.

    .venv/bin/python benchmarks/worker_memory.py [--runs 100] [--lines 20]
"""

from __future__ import annotations

import argparse
import os
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

import psutil  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from clusters.engine.pipeline import StepSpec, create_run  # noqa: E402
from clusters.models import RUN_ACTIVE, Run, RunKind  # noqa: E402
from tests.support.factories import make_cluster  # noqa: E402
from tests.support.services import find_redis, route_tasks_to  # noqa: E402
from tests.support.worker import WorkerProcess  # noqa: E402

BATCH = 10
#: Before the redaction fix (clusters/core/redaction.py), measured with this script on the
#: previous commit (README "Benchmarks": worker memory): 100 runs were not reached.
PREVIOUS = ("after 10 runs 375.2 MiB (pool child 258.9 MiB), worker CPU 74.6 s per 10 runs "
            "and growing")


def plan(lines: int) -> list[StepSpec]:
    args = {"lines": lines}
    middle = [StepSpec(f"m{i}", f"Middle {i}", "test.secrets_and_logs", ["root"], args=args)
              for i in range(8)]
    return [StepSpec("root", "Root", "test.secrets_and_logs", args=args), *middle,
            StepSpec("join", "Join", "test.secrets_and_logs", [s.key for s in middle],
                     args=args)]


def worker_rss(worker: WorkerProcess) -> tuple[int, int, float]:
    """RSS in bytes of the worker's Celery processes (consumer, pool children) and their
    CPU seconds so far."""
    top = psutil.Process(worker.process.pid)
    consumer, *children = [top, *top.children(recursive=True)]
    cpu = sum(sum(p.cpu_times()[:2]) for p in (consumer, *children))
    return consumer.memory_info().rss, sum(p.memory_info().rss for p in children), cpu


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--lines", type=int, default=20)
    args = parser.parse_args()
    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    worker = WorkerProcess(broker_url, queue, concurrency=1).wait_ready()
    samples: dict[int, tuple[int, int]] = {}
    began = time.monotonic()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database={engine} worker=1x1 prefork, steps=test.secrets_and_logs "
          f"({args.lines} lines, one secret learnt, one logging record each), "
          f"{len(plan(args.lines))} steps a run", flush=True)
    cpu_before = 0.0
    try:
        done = 0
        while done < args.runs:
            ids = [create_run(make_cluster(), RunKind.TEST, plan(args.lines)).pk
                   for _ in range(BATCH)]
            while Run.objects.filter(pk__in=ids, status__in=RUN_ACTIVE).exists():
                time.sleep(0.2)
            failed = Run.objects.filter(pk__in=ids).exclude(status="succeeded").count()
            if failed:
                raise SystemExit(f"{failed} runs failed:\n" + "\n".join(worker.output[-30:]))
            done += BATCH
            consumer, children, cpu = worker_rss(worker)
            samples[done] = (consumer, children)
            print(f"  after {done:4d} runs: consumer {mib(consumer)}, pool child "
                  f"{mib(children)}, total {mib(consumer + children)}; this batch: worker CPU "
                  f"{cpu - cpu_before:.1f} s, wall {time.monotonic() - began:.0f}s so far",
                  flush=True)
            cpu_before = cpu
    finally:
        worker.stop()
        if embedded:
            embedded.stop()
    first, last = sum(samples[BATCH]), sum(samples[max(samples)])
    print(f"RSS after {BATCH} runs {mib(first)}, after {max(samples)} runs {mib(last)}: "
          f"ratio {last / first:.2f} (target <= 1.10)  (previous: {PREVIOUS})")


if __name__ == "__main__":
    main()
