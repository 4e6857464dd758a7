"""Benchmark: two worker "machines" share the runs, and no step runs twice.

Two `celery -A panel worker` processes (prefork, concurrency 1 each, or --concurrency), each
in a network namespace of its own (tests/support/machines.py: a veth on a bridge of ours,
no route out), reach this host's PostgreSQL and Redis through relays the benchmark binds on
the bridge's address: as two worker hosts would, over a network. They drive --runs runs of
the shape of a create (one step, eight parallel, one join) of `test.work` steps, each of
which records the network namespace it ran in.

It prints each machine's share of the steps, the throughput, and the proof that nothing ran
twice: every step succeeded after exactly one attempt and wrote its one "working for" log
line once. Needs root (namespaces). DATABASE_URL: PostgreSQL (the default here); SQLite
works too (the file is shared, not relayed).

    .venv/bin/python benchmarks/two_machines.py [--runs 100] [--seconds 0.05]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings_test")
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/panel_twomachines")
os.environ.setdefault("PANEL_SWEEP_INTERVAL_SECONDS", "60")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from clusters.engine.pipeline import StepSpec, create_run  # noqa: E402
from clusters.models import RUN_ACTIVE, Run, RunKind  # noqa: E402
from tests.support.factories import make_cluster  # noqa: E402
from tests.support.machines import Machines  # noqa: E402
from tests.support.runs import no_step_ran_twice, steps_per_namespace  # noqa: E402
from tests.support.services import find_redis, route_tasks_to  # noqa: E402
from tests.support.worker import WorkerProcess, database_url_for_workers  # noqa: E402

#: README "Benchmarks": the engine on one machine, two worker processes of concurrency 1,
#: 1,000 trivial steps (benchmarks/engine_throughput.py).
PREVIOUS = "one machine, 2 workers x1: 77.0 steps/s (engine_throughput.py, 0 s steps)"


def plan(seconds: float) -> list[StepSpec]:
    args = {"seconds": seconds}
    middle = [StepSpec(f"m{i}", f"Middle {i}", "test.work", ["root"], args=args)
              for i in range(8)]
    return [StepSpec("root", "Root", "test.work", args=args), *middle,
            StepSpec("join", "Join", "test.work", [s.key for s in middle], args=args)]


def ensure_database() -> None:
    """The PostgreSQL database the benchmark uses, created if missing."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("postgresql"):
        return
    made = subprocess.run(["createdb", "-h", db["HOST"] or "127.0.0.1", "-U", db["USER"] or "root",
                           db["NAME"]], capture_output=True, text=True, check=False)
    if made.returncode and "already exists" not in made.stderr:
        raise SystemExit(f"cannot create database {db['NAME']}: {made.stderr.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=0.05,
                        help="each step's own work (a sleep, like waiting on a host)")
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    ensure_database()
    call_command("migrate", verbosity=0)
    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        with Machines(2) as machines:
            database = database_url_for_workers()
            if database.startswith("postgres"):
                database = machines.relay_url(database)
            broker = machines.relay_url(broker_url)
            workers = [WorkerProcess(broker, queue, concurrency=args.concurrency, netns=netns,
                                     env={"DATABASE_URL": database}).wait_ready()
                       for netns in machines.netns]
            try:
                cluster = make_cluster()
                began = time.monotonic()
                run_ids = [create_run(cluster, RunKind.TEST, plan(args.seconds)).pk
                           for _ in range(args.runs)]
                while Run.objects.filter(pk__in=run_ids, status__in=RUN_ACTIVE).exists():
                    time.sleep(0.2)
                elapsed = time.monotonic() - began
            finally:
                for worker in workers:
                    worker.stop()
            inodes = {machines.namespace_inode(n): n for n in machines.netns}
            shares = steps_per_namespace(run_ids)
            problems = no_step_ran_twice(run_ids)
    finally:
        if embedded:
            embedded.stop()

    total = sum(shares.values())
    failed = Run.objects.filter(pk__in=run_ids).exclude(status="succeeded").count()
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"load: {load}")
    print(f"database={engine} (through a relay on the bridge) broker=redis (relayed), "
          f"2 machines x 1 worker x{args.concurrency}, steps of {args.seconds}s")
    print(f"runs={args.runs} failed={failed} steps={total} wall={elapsed:.2f}s "
          f"throughput={total / elapsed:.1f} steps/s  (previous: {PREVIOUS})")
    named = Counter({inodes.get(inode, f"elsewhere ({inode})"): n for inode, n in shares.items()})
    for netns in machines.netns:
        print(f"  machine {netns}: {named[netns]} steps ({named[netns] / total:.0%})")
    for other in set(named) - set(machines.netns):
        print(f"  {other}: {named[other]} steps (not one of the machines!)")
    print("no step ran twice: " + ("yes (one attempt, one start line each)" if not problems
                                   else f"NO: {problems[:10]}"))
    if problems or failed or set(named) - set(machines.netns):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
