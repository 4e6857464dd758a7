"""Benchmark: the dashboard and the cluster page at 1,000 clusters and 1,000,000 log lines.

Fills a fresh PostgreSQL database (benchmarks/ui_dataset.py), serves the panel with gunicorn
on 127.0.0.1 as production does (deploy/gunicorn.conf.py, the Dockerfile's; DEBUG off,
collected static files, compiled translations, only the HTTPS redirect off), logs in, and
drives each page with `wrk` (Debian package `wrk`) for a fixed time at a small concurrency.
Prints per page: the server time alone (in-process, sequential), requests/s, p50/p95/p99
latency, the CPU each request cost the gunicorn workers and their PostgreSQL backends, the
number of SQL queries at a tiny size and at full size (they must match), and the values the
README's table records now, side by side. Traffic goes only to 127.0.0.1. The database is
dropped at the end unless --keep (then give the same PANEL_ENCRYPTION_KEYS to read it again).

    .venv/bin/python benchmarks/ui_latency.py [--database-url postgres://root@127.0.0.1/x_bench]
        [--clusters 1000] [--log-lines 1000000] [--duration 15] [--keep]
        [--workers N] [--worker-class sync|gthread] [--gunicorn-threads N]

The database URL comes from --database-url, else DATABASE_URL, else a `panel_uibench`
database on 127.0.0.1:5432 as root. Its name must contain "bench": it is dropped and created.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/panel_uibench"
PIDFILE = Path(tempfile.gettempdir()) / "panel-uibench-gunicorn.pid"
OTHER_USERS, OTHER_CLUSTERS, OTHER_LINES = 3, 20, 2000
TINY_CLUSTERS, TINY_LINES = 2, 300
SLOW_P95_MS = 300
ALONE_REQUESTS = 9
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
README = ROOT / "README.md"
README_SECTION = "## Benchmarks: pages at scale"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK_REPORT = r"""
-- Per-thread counters of non-200 answers, summed in done(); percentiles in microseconds.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) non200 = 0 end
function response(status, headers, body) if status ~= 200 then non200 = non200 + 1 end end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do bad = bad + t:get("non200") end
  local e = summary.errors
  io.write(string.format("UIBENCH requests=%d duration=%d errors=%d non200=%d "
    .. "p50=%d p95=%d p99=%d max=%d\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, bad, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL")
                        or DEFAULT_DATABASE_URL)
    parser.add_argument("--clusters", type=int, default=1000, help="the owner's clusters")
    parser.add_argument("--nodes-per-cluster", type=int, default=5)
    parser.add_argument("--log-lines", type=int, default=1_000_000)
    parser.add_argument("--heavy-steps", type=int, default=300,
                        help="steps that hold most of the log lines")
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per page")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the config's)")
    parser.add_argument("--worker-class", help="gunicorn worker class (default: the config's)")
    parser.add_argument("--gunicorn-threads", type=int,
                        help="threads per gunicorn worker (default: the config's)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


# --- the database and the environment ----------------------------------------------------------


def database_name(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or "bench" not in name:
        sys.exit(f"refusing {url!r}: need a PostgreSQL URL whose database name contains "
                 "'bench' (it is dropped and created)")
    return name


def maintenance(url: str) -> psycopg.Connection:
    """A connection to the server's `postgres` database, for DROP/CREATE DATABASE."""
    parts = urlsplit(url)
    return psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True)


def recreate_database(url: str) -> None:
    name = database_name(url)
    with maintenance(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    with maintenance(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')


def production_like_env(url: str, static_root: Path) -> dict[str, str]:
    """What a deployment sets (DEBUG off, real secrets), minus the HTTPS redirect."""
    return {
        "DJANGO_SETTINGS_MODULE": "panel.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        # A kept database (--keep) is read again with the same key given in the environment.
        "PANEL_ENCRYPTION_KEYS": os.environ.get("PANEL_ENCRYPTION_KEYS")
        or Fernet.generate_key().decode(),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_STATIC_ROOT": str(static_root),
        "DATABASE_URL": url,
        "LOG_LEVEL": "WARNING",
        # Fail closed: no page calls out, and if one did it would reach a closed port.
        "ALIYUN_ENDPOINT_OVERRIDE": "127.0.0.1:1",
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    }


# --- the web server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_leftover_server() -> None:
    """A gunicorn this benchmark started in a run that crashed; found by its pid file."""
    try:
        pid = int(PIDFILE.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, ValueError):
        return
    if "gunicorn" in cmdline and str(PIDFILE) in cmdline:
        os.kill(pid, signal.SIGTERM)
        print(f"stopped a leftover benchmark gunicorn (pid {pid})")


def gunicorn_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The workers, class and threads production runs (deploy/gunicorn.conf.py, read with the
    environment this benchmark has), unless the command line asks for others."""
    config: dict[str, Any] = {}
    exec(compile(GUNICORN_CONFIG.read_text(), str(GUNICORN_CONFIG), "exec"), config)  # noqa: S102 - our own file
    return {"workers": args.workers or config["workers"],
            "worker_class": args.worker_class or config["worker_class"],
            "threads": args.gunicorn_threads or config["threads"]}


class Server:
    """gunicorn serving panel.wsgi on 127.0.0.1 with the Dockerfile's configuration."""

    def __init__(self, settings: dict[str, Any], log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.settings = settings
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.process = subprocess.Popen(
            [str(gunicorn), "--config", str(GUNICORN_CONFIG), "panel.wsgi:application",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(settings["workers"]),
             "--worker-class", settings["worker_class"], "--threads", str(settings["threads"]),
             "--pid", str(PIDFILE), "--log-level", "warning"],
            cwd=ROOT, env=os.environ.copy(), stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def describe(self) -> str:
        threads = self.settings["threads"]
        return (f"{self.settings['workers']} {self.settings['worker_class']} workers"
                + (f" x {threads} threads" if threads > 1 else ""))

    def worker_pids(self) -> list[int]:
        """The master's children: the processes that serve the requests."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()]

    def wait_ready(self, timeout: float = 30) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                with urllib.request.urlopen(  # noqa: S310 - our own http://127.0.0.1 URL
                        f"{self.base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        sys.exit(f"gunicorn did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        PIDFILE.unlink(missing_ok=True)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU each process has used so far (/proc/<pid>/stat, utime and stime,
    fields 14 and 15); a process that is gone is left out."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings: what each process still there used since, and all that
    a new one used (a backend that closed in between is lost: undercounted, never negative)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def backend_pids(url: str) -> list[int]:
    """The PostgreSQL server processes connected to the benchmark database (the workers'
    connections; this machine's own server, so /proc shows them)."""
    with maintenance(url) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s",
                            [database_name(url)]).fetchall()
    return [pid for (pid,) in rows]


def fetch_size(url: str, cookie: str) -> int:
    """One GET as the logged-in user: a redirect to the login page or an error stops the run."""
    opener = urllib.request.build_opener(NoRedirect)
    request = urllib.request.Request(url, headers={"Cookie": cookie})  # noqa: S310 - loopback
    try:
        with opener.open(request, timeout=30) as response:
            return len(response.read())
    except urllib.error.HTTPError as exc:
        sys.exit(f"GET {url} answered {exc.code} (expected 200)")


# --- load --------------------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    seconds: float
    errors: int
    non200: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def drive(url: str, cookie: str, args: argparse.Namespace, script: Path) -> Load:
    command = ["wrk", "-t", str(args.threads), "-c", str(args.connections),
               "-d", f"{args.duration}s", "--timeout", "10s", "-s", str(script),
               "-H", f"Cookie: {cookie}",
               # A new connection per request, as nginx makes them: deploy/nginx.conf has no
               # upstream keepalive, so nginx speaks HTTP/1.0 (its default) and closes after
               # each answer (nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_http_version).
               "-H", "Connection: close", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True,
                            timeout=args.duration + 30).stdout
    match = re.search(r"UIBENCH (.*)", output)
    if match is None:
        sys.exit(f"wrk printed no report:\n{output}")
    values = {key: int(value) for key, value in
              (item.split("=") for item in match.group(1).split())}
    return Load(values["requests"], values["duration"] / 1e6, values["errors"],
                values["non200"], *(values[key] / 1000 for key in ("p50", "p95", "p99", "max")))


# --- the pages and what they cost ------------------------------------------------------------


@dataclass
class Prepared:
    """The filled database: what to open, and each page's query count at both sizes."""

    pages: list[Page]
    tiny_counts: dict[str, int]
    full_counts: dict[str, int]
    alone_ms: dict[str, float]
    alone_cpu_ms: dict[str, float]
    session_cookie: str


@dataclass
class Page:
    label: str
    path: str
    language: str = ""  # a django_language cookie: the page in that language


def pages_of(target: Any, timeline_seen: str = "") -> list[Page]:
    """What a user opens, heaviest cases: the newest dashboard pages and the biggest log, and
    what the open cluster page polls (the timeline each second while its run is active, with
    the version it last saw; an open log's lines)."""
    from django.urls import reverse  # noqa: PLC0415  Django is set up in main() first

    code, run_id, step_id = target.cluster.code, target.run.pk, target.step.pk
    dashboard = reverse("clusters:dashboard")
    lines = reverse("clusters:step-log-lines", args=[code, run_id, step_id])
    return [
        Page("dashboard", dashboard),
        Page("dashboard, Chinese", dashboard, "zh-hans"),
        Page("dashboard, filtered", dashboard + "?status=ready&health=healthy&q=prod"),
        Page("dashboard, page 10", dashboard + "?page=10"),
        Page("cluster page (biggest log)", reverse("clusters:cluster", args=[code])),
        Page("cluster page, Chinese", reverse("clusters:cluster", args=[code]), "zh-hans"),
        Page("cluster live fragment",
             reverse("clusters:cluster-live", args=[code]) + f"?run={run_id}"),
        Page("timeline poll (run unchanged)",
             reverse("clusters:run-timeline", args=[code, run_id]) + f"?seen={timeline_seen}"),
        Page("run status JSON", reverse("clusters:run-status", args=[code, run_id])),
        Page("step log JSON, tail", reverse("clusters:step-log", args=[code, run_id, step_id])
             + f"?after={max(0, target.last_seq - 200)}"),
        Page("log tail (opened log)", lines + "?tail=1"),
        Page("log lines, last 200", lines + f"?after={max(0, target.last_seq - 200)}"),
    ]


def query_counts(client: Any, pages: list[Page],
                 timed: int = 0) -> dict[str, tuple[int, float, float]]:
    """SQL statements per page, counted in-process with Django's test client; the median of
    `timed` sequential requests (server time without concurrency or HTTP), and the CPU they
    cost: this process's, plus its PostgreSQL backend's (from /proc, in clock ticks, so
    summed over the requests): what the page costs whatever else the machine is doing."""
    from django.conf import settings  # noqa: PLC0415  Django is set up in main() first
    from django.db import connection  # noqa: PLC0415  Django is set up in main() first
    from django.test.utils import CaptureQueriesContext  # noqa: PLC0415  Django is set up in main() first

    counts = {}
    for page in pages:
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = page.language or "en"
        client.get(page.path)  # warm: the first request may fill process-wide caches
        with CaptureQueriesContext(connection) as captured:
            response = client.get(page.path)
        if response.status_code != 200:
            sys.exit(f"{page.label}: GET {page.path} answered {response.status_code}")
        queries = len(captured.captured_queries)  # before the next request resets the log
        durations, cpu = [], 0.0
        if timed:
            connection.ensure_connection()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = [cursor.fetchone()[0]]
            backend_before = cpu_seconds(backend)
            began_cpu = time.process_time()
        for _ in range(timed):
            began = time.perf_counter()
            client.get(page.path)
            durations.append(time.perf_counter() - began)
        if timed:
            cpu = (time.process_time() - began_cpu
                   + cpu_used(backend_before, cpu_seconds(backend))) / timed * 1000
        median = statistics.median(durations) * 1000 if durations else 0.0
        counts[page.label] = (queries, median, cpu)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    return counts


def timeline_version(client: Any, target: Any) -> str:
    """The run version the cluster page sends with its poll (clusters/_run_version.html)."""
    from django.urls import reverse  # noqa: PLC0415  Django is set up in main() first

    page = client.get(reverse("clusters:cluster", args=[target.cluster.code])).content.decode()
    match = re.search(r'name="seen" value="([0-9a-f]+)"', page)
    if match is None:
        sys.exit("the cluster page carries no run version for its poll")
    return match.group(1)


def prepare(args: argparse.Namespace) -> Prepared:
    """Count queries at a tiny size, grow the same database to full size, count again."""
    from django.conf import settings  # noqa: PLC0415  Django is set up in main() first
    from django.core.management import call_command  # noqa: PLC0415  Django is set up in main() first
    from django.test import Client  # noqa: PLC0415  Django is set up in main() first

    from benchmarks import ui_dataset  # noqa: PLC0415  Django is set up in main() first
    from tests.support.factories import make_user  # noqa: PLC0415  Django is set up in main() first

    call_command("collectstatic", interactive=False, verbosity=0)
    # As the Dockerfile does (into locale/, where `make run` puts them too; *.mo is ignored).
    call_command("compilemessages", verbosity=0, ignore_patterns=[".venv/*"])
    call_command("migrate", verbosity=0)
    owner = make_user("owner")
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    small = ui_dataset.fill(owner, TINY_CLUSTERS, args.nodes_per_cluster, TINY_LINES, 3)
    tiny = query_counts(client, pages_of(small.target, timeline_version(client, small.target)))
    tiny_counts = {label: n for label, (n, _, _) in tiny.items()}

    began = time.monotonic()
    for index in range(OTHER_USERS):
        ui_dataset.fill(make_user(f"other{index}"), OTHER_CLUSTERS, 3, OTHER_LINES, 5,
                        seed=index)
    full = ui_dataset.fill(owner, args.clusters - TINY_CLUSTERS, args.nodes_per_cluster,
                           args.log_lines - TINY_LINES - OTHER_USERS * OTHER_LINES,
                           args.heavy_steps)
    ui_dataset.analyze()
    print(f"filled in {time.monotonic() - began:.0f} s: " + ", ".join(
        f"{table}={count:,}" for table, count in ui_dataset.row_counts().items()))
    target = full.target
    print(f"biggest log: {target.cluster.name}, run #{target.run.pk} ({target.run.status}), "
          f"step {target.step.key} ({target.step.status}) with {target.last_seq:,} lines; "
          f"{ui_dataset.run_lines(target.run.pk):,} lines in the run")
    pages = pages_of(target, timeline_version(client, target))
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    full = query_counts(client, pages, timed=ALONE_REQUESTS)
    return Prepared(pages, tiny_counts, {label: n for label, (n, _, _) in full.items()},
                    {label: ms for label, (_, ms, _) in full.items()},
                    {label: cpu for label, (_, _, cpu) in full.items()},
                    f"{settings.SESSION_COOKIE_NAME}={cookie}")


def readme_rows() -> dict[str, dict[str, str]]:
    """The table the README's "Benchmarks: pages at scale" section records now, by page and
    column header, to print beside this run's figures."""
    text = README.read_text()
    if README_SECTION not in text:
        return {}
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    first = next((index for index, line in enumerate(lines) if line.startswith("|")), len(lines))
    table = itertools.takewhile(lambda line: line.startswith("|"), lines[first:])  # the first only
    rows = [line.strip().strip("|").split("|") for line in table if not line.startswith("| ---")]
    if not rows:
        return {}
    header = [cell.strip() for cell in rows[0]]
    return {cells[0].strip(): dict(zip(header, (cell.strip() for cell in cells), strict=False))
            for cells in rows[1:]}


def was(previous: dict[str, str], column: str) -> str:
    value = previous.get(column, "")
    return f" ({value})" if value else ""


def measure(args: argparse.Namespace, prepared: Prepared, server: Server,
            script: Path) -> list[str]:
    """Drive each page with wrk and print a row per page; returns the slow pages."""
    previous = readme_rows()
    print(f"gunicorn ({GUNICORN_CONFIG.relative_to(ROOT)}): {server.describe()} on "
          f"{server.base}; wrk -t{args.threads} -c{args.connections} -d{args.duration}s per "
          f"page; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("alone: in-process, one request at a time (median ms; CPU ms of this process and its "
          "PostgreSQL backend per request). CPU ms/req: the gunicorn workers' + their PostgreSQL "
          "backends' CPU during the page's load, per request. (In brackets: what the README's "
          "table records now.)")
    print()
    print("| page | bytes | alone ms | alone CPU ms | CPU ms/req (web + db) | req/s | p50 ms "
          "| p95 ms | p99 ms | max ms | queries tiny / full |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    slow = []
    for page in prepared.pages:
        url = server.base + page.path
        cookie = prepared.session_cookie
        if page.language:
            cookie += f"; django_language={page.language}"
        size = fetch_size(url, cookie)
        web_pids = server.worker_pids()
        web_before = cpu_seconds(web_pids)
        db_before = cpu_seconds(backend_pids(args.database_url))
        load = drive(url, cookie, args, script)
        requests = max(1, load.requests)
        web_ms = cpu_used(web_before, cpu_seconds(web_pids)) * 1000 / requests
        db_ms = cpu_used(db_before, cpu_seconds(backend_pids(args.database_url))) * 1000 / requests
        if load.errors or load.non200:
            print(f"!! {page.label}: {load.errors} socket errors, {load.non200} non-200 answers")
        if load.p95_ms > SLOW_P95_MS:
            slow.append(page.label)
        tiny, full = prepared.tiny_counts[page.label], prepared.full_counts[page.label]
        before = previous.get(page.label, {})
        print(f"| {page.label} | {size:,} "
              f"| {prepared.alone_ms[page.label]:.1f}{was(before, 'alone ms')} "
              f"| {prepared.alone_cpu_ms[page.label]:.1f}{was(before, 'alone CPU ms')} "
              f"| {web_ms + db_ms:.1f} ({web_ms:.1f} + {db_ms:.1f})"
              f"{was(before, 'CPU ms/req')} "
              f"| {load.rps:.1f}{was(before, 'req/s')} "
              f"| {load.p50_ms:.1f}{was(before, 'p50 ms')} "
              f"| {load.p95_ms:.1f}{was(before, 'p95 ms')} "
              f"| {load.p99_ms:.1f}{was(before, 'p99 ms')} "
              f"| {load.max_ms:.1f} | {tiny} / {full}"
              f"{'' if tiny == full else ' (GROWS)'}{was(before, 'queries tiny / full')} |")
    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return slow


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: install the Debian package `wrk` (apt-get install wrk)")
    database_name(args.database_url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stop_leftover_server()
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="panel-uibench-"))
    os.environ.update(production_like_env(args.database_url, workdir / "static"))
    recreate_database(args.database_url)
    server: Server | None = None
    try:
        import django  # noqa: PLC0415  after the environment above is set

        django.setup()
        prepared = prepare(args)
        server = Server(gunicorn_settings(args), workdir / "gunicorn.log")
        server.wait_ready()
        script = workdir / "report.lua"
        script.write_text(WRK_REPORT)
        slow = measure(args, prepared, server, script)
    finally:
        if server is not None:
            server.stop()
        from django.db import connections  # noqa: PLC0415  Django is set up in main() first

        connections.close_all()
        if args.keep:
            print(f"kept database {database_name(args.database_url)}")
        else:
            drop_database(args.database_url)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"whole benchmark: {time.monotonic() - began:.0f} s")
    if slow:
        print(f"SLOW (p95 > {SLOW_P95_MS} ms): " + ", ".join(slow))
    if prepared.tiny_counts != prepared.full_counts:
        sys.exit("query counts grow with the data (see the table)")


if __name__ == "__main__":
    main()
