"""Soak: N clusters created at once while the cloud faults, the worker dies and the broker stops.

Every cloud API call fails with probability --fault-rate (Throttling, ServiceUnavailable,
InternalError or a dropped connection), the one worker process (--concurrency children,
with beat) is SIGKILLed every --kill-every seconds and a new one started at once, and the
broker (a redis-server of the soak's own on a free loopback port; the shared 6379 is never
touched) is stopped once for --outage seconds. Then it checks what matters: every run
succeeded, and the emulator's inventory holds exactly one RDS instance and one load balancer
per cluster. It prints the numbers and exits 1 on any violation. The harness itself is
tests/support/soak.py.

Each cluster is one K3s server on a lab host of its own (the full pipeline: preflight, RDS,
datastore check, SLB, K3s install over SSH, listener, kubeconfig, verify, health). Needs
root (network namespaces). The database is a fresh one of its own, created next to
DATABASE_URL's (PostgreSQL recommended: DATABASE_URL=postgres://root@127.0.0.1:5432/panel;
default a SQLite file) and dropped afterwards (kept with --keep-db, or when the soak fails).

    .venv/bin/python benchmarks/soak.py [--clusters 20] [--fault-rate 0.3] [--kill-every 20]
        [--outage 20] [--outage-at 30] [--outage-loses-messages] [--time-scale 0.02]
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
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp()}/soak.sqlite3")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402

from sandbox.world import running_world  # noqa: E402
from tests.support.services import PrivateRedis, route_tasks_to  # noqa: E402
from tests.support.soak import SoakPlan, soak  # noqa: E402


def parse_plan(argv: list[str] | None) -> tuple[SoakPlan, argparse.Namespace]:
    defaults = SoakPlan()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=defaults.clusters)
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--kill-every", type=float, default=defaults.kill_every)
    parser.add_argument("--max-kills", type=int, default=None,
                        help="stop killing after this many (default: until the runs end)")
    parser.add_argument("--outage", type=float, default=defaults.outage_seconds,
                        help="seconds the broker is down (0: no outage)")
    parser.add_argument("--outage-at", type=float, default=defaults.outage_at,
                        help="seconds after the runs start")
    parser.add_argument("--outage-loses-messages", action="store_true",
                        help="crash the broker (SIGKILL, nothing saved) instead of stopping it")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    parser.add_argument("--time-scale", type=float, default=0.02,
                        help="emulator delays (RDS creation takes 300 s x this)")
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument("--log-dir", type=Path, default=None,
                        help="where the workers' output and the chaos timeline go")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args(argv)
    plan = SoakPlan(
        clusters=args.clusters, fault_rate=args.fault_rate, kill_every=args.kill_every,
        max_kills=args.max_kills, outage_at=args.outage_at, outage_seconds=args.outage,
        outage_loses_messages=args.outage_loses_messages, concurrency=args.concurrency,
        timeout=args.timeout,
    )
    return plan, args


def main(argv: list[str] | None = None) -> int:
    plan, args = parse_plan(argv)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    settings_dict = connection.settings_dict
    named = settings_dict["NAME"]
    vendor = settings_dict["ENGINE"].rsplit(".", 1)[-1]
    settings_dict["TEST"] = {**settings_dict["TEST"], "NAME": (
        f"soak_{os.getpid()}" if vendor != "sqlite3" else str(log_dir / "soak.sqlite3"))}
    database = connection.creation.create_test_db(verbosity=0, autoclobber=True,
                                                  serialize=False)
    broker = PrivateRedis()
    queue = f"soak-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker.url, queue)
    print(f"soak: {plan.clusters} clusters, faults {plan.fault_rate:.0%}, SIGKILL every "
          f"{plan.kill_every:.0f} s, broker down {plan.outage_seconds:.0f} s at "
          f"+{plan.outage_at:.0f} s; database={vendor} ({database}), broker={broker.url}, "
          f"time_scale={args.time_scale}, logs in {log_dir}", flush=True)
    passed = False
    try:
        started = time.monotonic()
        with running_world(hosts=plan.clusters, time_scale=args.time_scale) as world:
            print(f"world up in {time.monotonic() - started:.1f} s "
                  f"({plan.clusters} lab hosts)", flush=True)
            report = soak(world, broker, queue, plan, log_dir=log_dir,
                          say=lambda text: print(text, flush=True))
        for line in report.lines():
            print(line)
        violations = report.violations()
        for violation in violations:
            print(f"VIOLATION: {violation}")
        passed = not violations
        print("soak passed" if passed else f"soak FAILED (logs in {log_dir})")
    finally:
        broker.close()
        if passed and not args.keep_db:
            connection.creation.destroy_test_db(named, verbosity=0)
        else:
            print(f"database kept: {database}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
