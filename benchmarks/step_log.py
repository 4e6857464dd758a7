"""Benchmark: one step that prints 1,000,000 lines, with the default log limits.

Writes the lines through the engine's StepLog (clusters/engine/steplog.py; a redactor with one
secret, the default batches), then prints: the ingest time and rate; the rows and bytes the
database keeps for the step (and the marker's count); the log table's size on disk; and,
in-process through Django's test client (median of 9), the log pane's first page ("Jump to
start"), its last page (what an opened log loads, and "Jump to end"), a search with one hit,
one with none and one with more hits than are listed, and the whole download.

    .venv/bin/python benchmarks/step_log.py [--lines 1000000]
        [--database-url postgres://root@127.0.0.1:5432/panel_logbench]

Without --database-url (or DATABASE_URL): a fresh SQLite file. A PostgreSQL database's name
must contain "bench": it is dropped and created, and dropped again at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPEATS = 9
BENCH_SECRET = "bench-Secret-7hQ2x"  # noqa: S105 - a made-up value the redactor masks


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--again", type=int, default=200_000,
                        help="lines of a second step, written after the first's dead rows "
                             "were vacuumed: the table must not grow by their size")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    return parser.parse_args()


def postgres_admin(url: str) -> tuple[str, str]:
    """The server's maintenance database URL and the benchmark database's name."""
    name = urlsplit(url).path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: a benchmark database's name holds 'bench'")
    return urlunsplit(urlsplit(url)._replace(path="/postgres")), name


def recreate_postgres(url: str, create: bool) -> None:
    admin, name = postgres_admin(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


ARGS = parse_args()
POSTGRES = ARGS.database_url.startswith("postgres")
if POSTGRES:
    recreate_postgres(ARGS.database_url, create=True)
    os.environ["DATABASE_URL"] = ARGS.database_url
else:
    os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/logbench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings_test")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.db.models import QuerySet, Sum  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from clusters.core.redaction import Redactor  # noqa: E402
from clusters.engine.pipeline import StepSpec, create_run  # noqa: E402
from clusters.engine.steplog import OctetLength, StepLog  # noqa: E402
from clusters.models import LOG_OMITTED, LogLine, RunKind, Step  # noqa: E402
from tests.support.factories import make_cluster, make_user  # noqa: E402


def ingest(step: Step, lines: int) -> tuple[float, float]:
    """Seconds (wall, and this process's CPU: on a shared machine the wall time says more
    about the neighbours) to write `lines` lines of an install's length through StepLog."""
    log = StepLog(step.pk, Redactor([BENCH_SECRET]))
    began, cpu = time.perf_counter(), time.process_time()
    for index in range(1, lines + 1):
        log.write(f"[10.0.{index % 7}.{index % 250}] + install k3s: unpacking layer "
                  f"{index:07d} of the airgap image, sha256:{index * 2654435761 % 2**32:08x}")
    log.flush()
    return time.perf_counter() - began, time.process_time() - cpu


def table_bytes() -> int:
    """The log table and its indexes on disk (PostgreSQL), or the whole database file less
    its free pages (SQLite: deleted rows' pages go to its freelist and are reused)."""
    with connection.cursor() as cursor:
        if POSTGRES:
            cursor.execute("SELECT pg_total_relation_size('clusters_logline')")
            return int(cursor.fetchone()[0])
        cursor.execute("SELECT (page_count - freelist_count) * page_size "
                       "FROM pragma_page_count, pragma_freelist_count, pragma_page_size")
        return int(cursor.fetchone()[0])


def vacuum() -> str:
    """What PostgreSQL's autovacuum does in production (this machine's server may have it
    off): mark the deleted rows' space free for new rows, and refresh the planner's counts."""
    if not POSTGRES:
        return "SQLite reuses deleted pages by itself"
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        setting = cursor.fetchone()[0]
        cursor.execute("VACUUM ANALYZE clusters_logline")
    return f"autovacuum is {setting} on this server; ran VACUUM ANALYZE"


def storage(kept: QuerySet[LogLine]) -> str:
    rows = kept.count()
    size = kept.aggregate(size=Sum(OctetLength("text")))["size"]
    marker = kept.get(stream=LOG_OMITTED)
    return (f"kept: {rows:,} rows, {size:,} bytes of text; marker: {marker.omitted_lines:,} "
            f"lines ({marker.omitted_bytes:,} bytes) omitted; on disk "
            f"{table_bytes() / 2**20:.1f} MiB")


def timed(call: Callable[[], bytes]) -> tuple[float, float, bytes]:
    """Median wall and CPU milliseconds of REPEATS calls (CPU: this process's, which is all
    of it on SQLite; PostgreSQL's own work shows in the wall time only)."""
    walls, cpus, body = [], [], b""
    for _ in range(REPEATS):
        began, cpu = time.perf_counter(), time.process_time()
        body = call()
        walls.append(time.perf_counter() - began)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000, body


def pages(owner: Any, step: Step, last: int, lines: int) -> dict[str, Callable[[], bytes]]:
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    ids = [step.run.cluster.code, step.run_id, step.pk]
    lines_url = reverse("clusters:step-log-lines", args=ids)
    search_url = reverse("clusters:step-log-search", args=ids)
    download_url = reverse("clusters:step-log-download", args=ids)

    def get(url: str, **params: str) -> bytes:
        response = client.get(url, params)
        assert response.status_code == 200, (url, response.status_code)
        return b"".join(response.streaming_content) if response.streaming \
            else response.content

    return {
        "first page (Jump to start, ?from=0)": lambda: get(lines_url, **{"from": "0"}),
        "last page (an opened log, ?after=last-200)":
            lambda: get(lines_url, after=str(last - 200)),
        "Jump to end (?tail=1)": lambda: get(lines_url, tail="1"),
        "search, one hit": lambda: get(search_url, q=f"layer {lines:07d} "),
        "search, no hit": lambda: get(search_url, q="no such text"),
        "search, every kept line (100 listed)": lambda: get(search_url, q="unpacking"),
        "download (whole kept log)": lambda: get(download_url),
    }


def main() -> None:
    call_command("migrate", verbosity=0)
    owner = make_user("bench")
    run = create_run(make_cluster(owner=owner, name="bench"), RunKind.TEST,
                     [StepSpec("work", "Work", "test.work")], start=False)
    step = run.steps.select_related("run__cluster").get()
    seconds, cpu = ingest(step, ARGS.lines)
    kept = LogLine.objects.filter(step=step)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"database={engine} lines={ARGS.lines:,} head={settings.PANEL_STEP_LOG_HEAD_LINES:,}"
          f" tail={settings.PANEL_STEP_LOG_TAIL_LINES:,}"
          f" max_line_chars={settings.PANEL_STEP_LOG_MAX_LINE_CHARS:,}")
    print(f"ingest: {seconds:.1f} s wall ({ARGS.lines / seconds:,.0f} lines/s), {cpu:.1f} s CPU"
          f" in this process ({ARGS.lines / cpu:,.0f} lines/CPU-s)")
    print(storage(kept))
    print(vacuum())
    if ARGS.again:
        before = table_bytes()
        second = create_run(run.cluster, RunKind.TEST, [StepSpec("more", "More", "test.work")],
                            start=False).steps.get()
        again, _ = ingest(second, ARGS.again)
        print(f"a second step of {ARGS.again:,} lines ({again:.1f} s): on disk "
              f"{before / 2**20:.1f} -> {table_bytes() / 2**20:.1f} MiB")
        print(vacuum())
    last = kept.order_by("-seq").values_list("seq", flat=True).first() or 0
    for name, call in pages(owner, step, last, ARGS.lines).items():
        wall, cpu, body = timed(call)
        print(f"{name}: {wall:.1f} ms wall, {cpu:.1f} ms CPU (medians of {REPEATS}), "
              f"{len(body):,} bytes")


if __name__ == "__main__":
    try:
        main()
    finally:
        if POSTGRES:
            connections.close_all()
            recreate_postgres(ARGS.database_url, create=False)
