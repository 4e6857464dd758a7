"""Benchmark: the step engine's throughput, its ready-to-start delay, and where a step's
milliseconds go, on real Celery worker processes, Redis and PostgreSQL (and SQLite).

For each database it prints, beside the values the README recorded before (issue 18):

* backlog: 1,000 trivial steps across 100 runs created at once (each run: one step, eight
  parallel steps, one join), on `--workers` worker processes of concurrency 1: steps/s, and
  ready->start median/p95 (ready: the step's last dependency finished, or its run was
  created; start: a worker claimed it; both on the database's clock);
* the same with 10 runs (100 steps) at once, and "10 active runs": 10 runs of that shape
  started 0.25 s apart (the 1,000-step and 100-step bursts measure queueing behind a burst;
  this one measures the engine's own delay when the workers keep up);
* fairness of the backlog: in which order the runs' first steps started and the runs
  finished (against creation order), and the slowest run;
* CPU per step: the worker processes' (parent and pool children) and, on PostgreSQL, the
  server backends' of the scratch database (other jobs sharing the cores distort wall time
  far more than CPU time);
* where the milliseconds go: the same plan driven in this process through the engine's own
  functions (claim, context, handler, record, advance, enqueue to Redis), each timed
  (wall and CPU, exclusive of the phases inside it); the rest of a worker's time per step is
  Celery's (receive, hand to the pool child, ack, fetch the next message).

PostgreSQL: a scratch database (`panel_enginebench_<pid>`) is created on --postgres (the
server URL, default postgres://root@127.0.0.1:5432/postgres) and dropped at the end. SQLite:
a fresh file. Redis: TEST_REDIS_URL or 127.0.0.1:6379, on queues of their own.

    .venv/bin/python benchmarks/engine_throughput.py [--databases postgresql,sqlite]
        [--runs 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS_PER_RUN = 10
DEFAULT_POSTGRES = "postgres://root@127.0.0.1:5432/postgres"

#: What the README recorded before issue 18 (same machine, same plan; its load unrecorded).
PREVIOUS = {
    "postgresql": {"steps_per_s": 77.0, "backlog": (3651, 7020), "ten": (461, 681)},
    "sqlite": {"steps_per_s": 67.1, "backlog": (4506, 8764), "ten": None},
}


# --- the parent: one child process per database ---------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--databases", default="postgresql,sqlite")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_POSTGRES_URL",
                                                             DEFAULT_POSTGRES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"load before: {load()}")
    results = {}
    for database in args.databases.split(","):
        with scratch_database(database, args.postgres) as url:
            results[database] = run_child(url, args)
    print(f"load after: {load()}")
    for database, result in results.items():
        report(database, result, args)


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def scratch_database(database: str, server: str) -> Iterator[str]:
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="enginebench-") as directory:
            yield f"sqlite:///{directory}/bench.sqlite3"
        return
    if database != "postgresql":
        raise SystemExit(f"unknown database {database!r} (postgresql, sqlite)")
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    name = f"panel_enginebench_{os.getpid()}"
    parts = urlsplit(server)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(url: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "panel.settings_test",
           "PANEL_SWEEP_INTERVAL_SECONDS": "60"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "1", "--runs", str(args.runs),
         "--workers", str(args.workers)],
        env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(database: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    previous = PREVIOUS.get(database, {})
    print(f"\n== {database}: {args.workers} worker processes x concurrency 1, Redis ==")
    for name, label in (("backlog", f"backlog: {args.runs} runs x {STEPS_PER_RUN} steps at once"),
                        ("ten", "10 runs x 10 steps at once"),
                        ("paced", "10 active runs, started 0.25 s apart")):
        s = result[name]
        print(f"{label}: {s['steps']} steps, failed runs {s['failed_runs']}, "
              f"wall {s['wall']:.2f} s, {s['steps_per_s']:.1f} steps/s; "
              f"ready->start median {s['median_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, "
              f"max {s['max_ms']:.0f} ms")
        print(f"    CPU per step: workers {s['worker_cpu_ms']:.2f} ms"
              + (f", PostgreSQL backends {s['db_cpu_ms']:.2f} ms" if s.get("db_cpu_ms") else "")
              + f"; steps run more than once: {s['ran_twice']}; {s['load']}")
        if "fairness" in s:
            f = s["fairness"]
            print(f"    order: runs' first steps started at most {f['max_root_shift']} places, "
                  f"runs finished at most {f['max_finish_shift']} places from creation "
                  f"order; slowest run {f['slowest_run_s']:.2f} s (median run "
                  f"{f['median_run_s']:.2f} s)")
    before = previous.get("steps_per_s")
    if before:
        b = result["backlog"]
        print(f"previous (README): {before:.1f} steps/s, backlog ready->start "
              f"{previous['backlog'][0]} / {previous['backlog'][1]} ms"
              + (f", 10 runs {previous['ten'][0]} / {previous['ten'][1]} ms"
                 if previous.get("ten") else ""))
        print(f"now:               {b['steps_per_s']:.1f} steps/s, backlog ready->start "
              f"{b['median_ms']:.0f} / {b['p95_ms']:.0f} ms, 10 runs "
              f"{result['ten']['median_ms']:.0f} / {result['ten']['p95_ms']:.0f} ms, "
              f"10 active runs {result['paced']['median_ms']:.0f} / "
              f"{result['paced']['p95_ms']:.0f} ms")
    phases = result["phases"]
    print(f"where a step's milliseconds go (in-process: {phases['steps']} steps took "
          f"{phases['messages']} messages, {phases['executes']} of them to run a step; "
          "wall / CPU per step, exclusive):")
    for label, wall, cpu in phases["rows"]:
        print(f"    {label:<44} {wall:7.2f} ms {cpu:7.2f} ms")
    engine_wall = sum(wall for _, wall, _ in phases["rows"])
    worker_busy = result["backlog"]["worker_busy_ms"]
    print(f"    {'engine total (in-process)':<44} {engine_wall:7.2f} ms")
    print(f"    {'a worker slot per step in the backlog run':<44} {worker_busy:7.2f} ms  "
          f"(the rest, {max(worker_busy - engine_wall, 0):.2f} ms: Celery's receive, hand-off "
          "to the pool child, ack and next fetch, and waiting for a core)")


# --- the child: one database ----------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    import django  # noqa: PLC0415 - the settings come from the environment set by the parent

    django.setup()
    from django.core.management import call_command  # noqa: PLC0415

    from tests.support.services import find_redis, route_tasks_to  # noqa: PLC0415
    from tests.support.worker import WorkerProcess  # noqa: PLC0415

    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    result: dict[str, Any] = {}
    workers = [WorkerProcess(broker_url, queue, concurrency=1).wait_ready()
               for _ in range(args.workers)]
    try:
        result["backlog"] = scenario(workers, args.runs, 0.0, fairness=True)
        result["ten"] = scenario(workers, 10, 0.0)
        result["paced"] = scenario(workers, 10, 0.25)
    finally:
        for worker in workers:
            worker.stop()
    phase_queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, phase_queue)
    try:
        result["phases"] = phases(broker_url, phase_queue, 20)
    finally:
        forget_queues(broker_url, [queue, phase_queue])
        if embedded:
            embedded.stop()
    print(json.dumps(result))


def forget_queues(broker_url: str, queues: list[str]) -> None:
    """Delete this run's queues and kombu's bindings of them from Redis (the broker is shared:
    tests and other benchmarks use queues of their own on it)."""
    from panel.celery import health_queue  # noqa: PLC0415
    from tests.support.services import redis_client  # noqa: PLC0415

    names = [name for queue in queues for name in (queue, health_queue(queue))]
    redis_client(broker_url).delete(*names, *(f"_kombu.binding.{name}" for name in names))


def plan() -> list[Any]:
    """One root, eight parallel steps, one join: the shape of a real create run."""
    from clusters.engine.pipeline import StepSpec  # noqa: PLC0415

    middle = [StepSpec(f"m{i}", f"Middle {i}", "test.work", ["root"]) for i in range(8)]
    return [StepSpec("root", "Root", "test.work"), *middle,
            StepSpec("join", "Join", "test.work", [s.key for s in middle])]


def scenario(workers: list[Any], runs: int, stagger: float, *,
             fairness: bool = False) -> dict[str, Any]:
    from django.db import connection  # noqa: PLC0415

    from clusters.engine.pipeline import create_run  # noqa: PLC0415
    from clusters.models import RUN_ACTIVE, LogLine, Run, RunKind, Step  # noqa: PLC0415
    from tests.support.factories import make_cluster  # noqa: PLC0415

    cluster = make_cluster()
    cpu = CpuMeter([worker.process.pid for worker in workers], connection)
    cpu.start()
    run_ids = []
    for _ in range(runs):
        run_ids.append(create_run(cluster, RunKind.TEST, plan()).pk)
        if stagger:
            time.sleep(stagger)
    while Run.objects.filter(pk__in=run_ids, status__in=RUN_ACTIVE).exists():
        cpu.sample()
        time.sleep(0.05)
    worker_cpu, db_cpu = cpu.stop()

    all_runs = {run.pk: run for run in Run.objects.filter(pk__in=run_ids)}
    steps = list(Step.objects.filter(run_id__in=run_ids))
    began = min(run.created_at for run in all_runs.values())
    ended = max(run.finished_at for run in all_runs.values())
    wall = (ended - began).total_seconds()
    delays = sorted(ready_to_start(all_runs, steps))
    total = len(steps)
    # Each trivial step logs one line per call ("working for 0s"): more lines, more calls.
    calls = collections.Counter(
        LogLine.objects.filter(step__run_id__in=run_ids).values_list("step_id", flat=True))
    result = {
        "steps": total, "wall": wall, "steps_per_s": total / wall,
        "failed_runs": sum(run.status != "succeeded" for run in all_runs.values()),
        "median_ms": statistics.median(delays) * 1000,
        "p95_ms": delays[int(0.95 * len(delays))] * 1000, "max_ms": delays[-1] * 1000,
        "worker_cpu_ms": worker_cpu / total * 1000,
        "db_cpu_ms": db_cpu / total * 1000 if db_cpu else None,
        "worker_busy_ms": wall * len(workers) / total * 1000,
        "ran_twice": sum(step.attempts != 1 or calls[step.pk] != 1 for step in steps),
        "load": load(),
    }
    if fairness:
        result["fairness"] = fairness_of(run_ids, all_runs, steps)
    return result


def ready_to_start(runs: dict[int, Any], steps: list[Any]) -> list[float]:
    finished = {(s.run_id, s.key): s.finished_at for s in steps}
    return [
        (step.started_at - max((finished[(step.run_id, dep)] for dep in step.depends_on),
                               default=runs[step.run_id].created_at)).total_seconds()
        for step in steps
    ]


def fairness_of(run_ids: list[int], runs: dict[int, Any], steps: list[Any]) -> dict[str, Any]:
    """In order: first steps start in the order their runs were created. Not starved: how far
    a run's finish moved from its place in creation order, and the slowest run's time."""
    roots = {step.run_id: step.started_at for step in steps if step.key == "root"}
    root_order = sorted(run_ids, key=lambda pk: roots[pk])
    finish_order = sorted(run_ids, key=lambda pk: runs[pk].finished_at)
    durations = [(runs[pk].finished_at - runs[pk].created_at).total_seconds() for pk in run_ids]

    def shift(order: list[int]) -> int:
        return max(abs(order.index(pk) - place) for place, pk in enumerate(run_ids))

    return {
        # Two workers advance two runs at once, so neighbours may swap: how far, at most.
        "max_root_shift": shift(root_order),
        "max_finish_shift": shift(finish_order),
        "slowest_run_s": max(durations), "median_run_s": statistics.median(durations),
    }


class CpuMeter:
    """CPU seconds of the worker processes (parent and pool children) and of the PostgreSQL
    backends serving the scratch database, between start and stop."""

    def __init__(self, worker_pids: list[int], connection: Any) -> None:
        import psutil  # noqa: PLC0415

        self._psutil = psutil
        self._workers = [psutil.Process(pid) for pid in worker_pids]
        self._connection = connection
        self._start: tuple[dict[int, float], dict[int, float]] = ({}, {})

    def _worker_times(self) -> dict[int, float]:
        times = {}
        for parent in self._workers:
            for process in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(self._psutil.Error):
                    t = process.cpu_times()
                    times[process.pid] = t.user + t.system
        return times

    def _db_times(self) -> dict[int, float]:
        if self._connection.vendor != "postgresql":
            return {}
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            pids = [row[0] for row in cursor.fetchall()]
        times = {}
        for pid in pids:
            with contextlib.suppress(self._psutil.Error):
                t = self._psutil.Process(pid).cpu_times()
                times[pid] = t.user + t.system
        return times

    def start(self) -> None:
        self._start = (self._worker_times(), self._db_times())
        self._seen: tuple[dict[int, float], dict[int, float]] = ({}, {})
        self._next_sample = 0.0

    def sample(self) -> None:
        """Remember each process's time so far (twice a second): a backend whose connection
        closes meanwhile (CONN_MAX_AGE recycles a worker's after 60 s) keeps what it used."""
        if time.monotonic() < self._next_sample:
            return
        self._next_sample = time.monotonic() + 0.5
        for seen, now in zip(self._seen, (self._worker_times(), self._db_times()), strict=True):
            seen.update(now)

    def stop(self) -> tuple[float, float]:
        self._next_sample = 0.0
        self.sample()
        workers, db = self._seen
        before_workers, before_db = self._start
        # A backend that appeared meanwhile counts from zero (its whole life is in the run).
        return (sum(t - before_workers.get(pid, 0.0) for pid, t in workers.items()),
                sum(t - before_db.get(pid, 0.0) for pid, t in db.items()))


# --- the phases, in this process -------------------------------------------------------------


class Phases:
    """Wall and CPU time per labelled function, exclusive of the labelled calls inside it."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = collections.defaultdict(float)
        self.cpu: dict[str, float] = collections.defaultdict(float)
        self._stack: list[list[float]] = []

    def wrap(self, owner: Any, name: str, label: str) -> None:
        function = getattr(owner, name)

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._stack.append([0.0, 0.0])
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
                inner_wall, inner_cpu = self._stack.pop()
                self.wall[label] += wall - inner_wall
                self.cpu[label] += cpu - inner_cpu
                if self._stack:
                    self._stack[-1][0] += wall
                    self._stack[-1][1] += cpu

        setattr(owner, name, timed)


def phases(broker_url: str, queue: str, runs: int) -> dict[str, Any]:
    """Drive `runs` runs of the plan through the engine's functions in this process: each
    message the engine publishes to Redis is popped and handled here, as a worker would,
    so every phase but Celery's own is timed."""
    from celery.app.task import Task  # noqa: PLC0415
    from django.db import connection  # noqa: PLC0415

    from clusters.engine import pipeline, registry, stepcontext, steplog  # noqa: PLC0415
    from clusters.models import RunKind  # noqa: PLC0415
    from tests.support.factories import make_cluster  # noqa: PLC0415
    from tests.support.services import redis_client  # noqa: PLC0415

    timer = Phases()
    rows = [
        ("claim: one UPDATE ... RETURNING (+ ORM if missed)", pipeline, "_claim"),
        ("context: the cluster's secrets (nodes)", pipeline, "_secrets_of"),
        ("context: the step's log (last line number)", steplog.StepLog, "__init__"),
        ("context: the redactor", stepcontext.StepContext, "__post_init__"),
        ("heartbeat thread: start and stop", pipeline._Heartbeat, "__enter__"),
        ("heartbeat thread: start and stop", pipeline._Heartbeat, "__exit__"),
        ("record: log lines + outcome, one commit", pipeline, "_record"),
        ("advance: read the run's steps", pipeline, "advance"),
        ("advance: close the run (once per run)", pipeline, "_finish_run"),
        ("enqueue: Celery publish to Redis", Task, "apply_async"),
        ("execute: the rest (context, memo copy)", pipeline, "execute"),
    ]
    for label, owner, name in rows:
        timer.wrap(owner, name, label)
    # The same handler function, timed under its label.
    handler = types.SimpleNamespace(work=registry.get_handler("test.work"))
    timer.wrap(handler, "work", "handler: test.work (one log line)")
    registry._HANDLERS["test.work"] = handler.work

    redis = redis_client(broker_url)
    cluster = make_cluster()
    for _ in range(runs):
        pipeline.create_run(cluster, RunKind.TEST, plan())
    executed = messages = 0
    while (raw := redis.rpop(queue)) is not None:
        messages += 1
        message = json.loads(raw)
        (argument,) = json.loads(base64.b64decode(message["body"]))[0]
        task = message["headers"]["task"]
        if task == "clusters.advance_run":
            pipeline.advance(argument)
        elif task == "clusters.execute_step":
            pipeline.execute(argument)
            executed += 1
    connection.close()
    labels = list(dict.fromkeys(label for label, _, _ in rows))
    labels.insert(labels.index("record: log lines + outcome, one commit"),
                  "handler: test.work (one log line)")
    steps = runs * STEPS_PER_RUN  # per step, however many messages it took
    return {"steps": steps, "messages": messages, "executes": executed,
            "rows": [(label, timer.wall[label] / steps * 1000,
                      timer.cpu[label] / steps * 1000) for label in labels]}


if __name__ == "__main__":
    main()
