"""The step engine on a real Redis with real Celery worker processes (no eager mode)."""

from __future__ import annotations

import json
import time

import pytest
from django.db import connection
from django.utils import timezone

from clusters.core.crypto import TOKEN_PREFIX
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.interface import queries
from clusters.models import CloudResource, LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.factories import TEST_ACCESS_KEY_SECRET, TEST_TOKEN, make_cluster
from tests.support.redis_monitor import RedisMonitor
from tests.support.services import needs_postgresql

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FAST_RETRIES = {"PANEL_RETRY_BASE_SECONDS": "0.2", "PANEL_RETRY_MAX_SECONDS": "0.5"}


def test_independent_branches_run_concurrently(start_worker):
    start_worker(concurrency=2)
    cluster = make_cluster()
    run = runs.start(cluster, [
        StepSpec("prepare", "Prepare", "test.work"),
        StepSpec("rds", "Create RDS", "test.work", ["prepare"], {"seconds": 2}),
        StepSpec("slb", "Create SLB", "test.work", ["prepare"], {"seconds": 2}),
        StepSpec("install", "Install", "test.work", ["rds", "slb"]),
    ])
    assert runs.wait_finished(run, 60).status == RunStatus.SUCCEEDED
    rds, slb, install = (runs.step(run, key).result for key in ("rds", "slb", "install"))
    assert rds["started"] < slb["finished"] and slb["started"] < rds["finished"], (rds, slb)
    assert rds["pid"] != slb["pid"]
    assert install["started"] >= max(rds["finished"], slb["finished"])


def test_waiting_never_parks_a_worker(start_worker):
    """30 runs x 3 waits of 1 s on one process at concurrency 1: seconds, not 90."""
    start_worker(concurrency=1)
    cluster = make_cluster()
    began = time.monotonic()
    started = [
        runs.start(cluster, [StepSpec("rds", "Wait for RDS", "test.wait_then_done", (),
                                      {"waits": 3, "seconds": 1.0})])
        for _ in range(30)
    ]
    for run in started:
        assert runs.wait_finished(run, 60).status == RunStatus.SUCCEEDED
    elapsed = time.monotonic() - began
    assert elapsed < 20, f"30 waiting runs took {elapsed:.1f}s on one worker slot"
    assert all(runs.step(run, "rds").result["polls"] == 4 for run in started)
    step = runs.step(started[0], "rds")
    assert (step.attempts, step.polls, step.tries) == (4, 3, 1), "re-polls are not tries"


def test_killed_worker_loses_no_step_and_buys_nothing_twice(start_worker, tmp_path):
    engine = {"PANEL_STEP_LEASE_SECONDS": "3", "PANEL_SWEEP_INTERVAL_SECONDS": "1"}
    first = start_worker(concurrency=1, **engine)
    cloud_file = tmp_path / "purchases.jsonl"
    cluster = make_cluster()
    run = runs.start(cluster, [
        StepSpec("rds", "Create RDS", "test.buy_once", (),
                 {"cloud_file": str(cloud_file), "seconds": 3}),
        StepSpec("after", "Next", "test.work", ["rds"]),
    ])
    runs.wait_until(
        lambda: LogLine.objects.filter(step__run=run, text__startswith="bought").exists(),
        30, "the step to buy its resource",
    )
    first.kill_hard()
    assert runs.step(run, "rds").status == StepStatus.RUNNING

    start_worker(concurrency=1, beat=True, **engine)
    assert runs.wait_finished(run, 60).status == RunStatus.SUCCEEDED
    rds = runs.step(run, "rds")
    assert rds.attempts == 2
    purchases = [json.loads(line) for line in cloud_file.read_text().splitlines()]
    assert len(purchases) == 1, purchases
    ledger = CloudResource.objects.get(cluster=cluster)
    assert (ledger.provider_id, ledger.state) == (purchases[0]["id"], "present")
    assert LogLine.objects.filter(step=rds, text="Attempt 2.").exists()


def test_registered_secrets_never_leave_the_run(start_worker, broker_url, task_queue):
    start_worker(concurrency=2)
    monitor = RedisMonitor(broker_url, task_queue)
    # One run per way of failing: a run stops at its first failure, so parallel siblings of
    # one run might never start.
    started = {
        key: runs.start(make_cluster(), [StepSpec(key, title, "test.leak", (), args)])
        for key, title, args in (
            ("fail", "Install", {"mode": "fail", "lines": 450}),
            ("raise", "Install again", {"mode": "raise"}),
            ("crash", "Crash", {"mode": "crash"}))}
    for run in started.values():
        assert runs.wait_finished(run, 60).status == RunStatus.FAILED
    monitor.stop()

    texts = list(LogLine.objects.filter(step__run__in=started.values())
                 .values_list("text", flat=True))
    assert len(texts) > 450
    assert "K3S_TOKEN=***" in texts
    errors = [runs.step(started[key], key).error for key in ("fail", "raise", "crash")]
    assert errors[0] == "server said: bad token ***"
    assert errors[1] == "install failed: token *** rejected"
    assert runs.step(started["crash"], "crash").status == StepStatus.ERRORED
    for secret in (TEST_TOKEN, TEST_ACCESS_KEY_SECRET):
        assert not [text for text in texts if secret in text]
        assert not [error for error in errors if secret in error]
        assert secret not in " ".join(monitor.commands)
    bodies = monitor.decoded_task_bodies()
    assert bodies, "the monitor saw no Celery message"
    # Every task argument is a row id (the sweeper the worker sends at start has none).
    arguments = [json.loads(body)[0] for body in bodies]
    assert any(arguments), "no step task seen"
    assert all(isinstance(a, int) and a > 0 for args in arguments for a in args), \
        "tasks carry ids only"
    assert not [body for body in bodies if TEST_TOKEN in body or TEST_ACCESS_KEY_SECRET in body]


def test_transient_errors_retry_with_backoff_then_give_up(start_worker):
    start_worker(concurrency=2, **FAST_RETRIES)
    cluster = make_cluster()
    ok = runs.start(cluster, [StepSpec("api", "Call API", "test.flaky", (), {"failures": 2})])
    hopeless = runs.start(cluster, [
        StepSpec("api", "Call API", "test.flaky", (), {"failures": 99}, retry_budget=3),
    ])
    assert runs.wait_finished(ok).status == RunStatus.SUCCEEDED
    assert runs.step(ok, "api").attempts == 3
    assert runs.wait_finished(hopeless).status == RunStatus.FAILED
    step = runs.step(hopeless, "api")
    assert step.status == StepStatus.FAILED
    assert step.attempts == 4
    assert "Gave up after 4 transient failures" in step.error
    assert "Throttling" in step.error and "RequestId REQ-3" in step.error


def test_permanent_failure_stops_the_run_and_retry_resumes_it(start_worker, tmp_path):
    start_worker(concurrency=1)
    cluster = make_cluster()
    marker = tmp_path / "whitelisted"
    run = runs.start(cluster, [
        StepSpec("first", "Preflight", "test.work"),
        StepSpec("whitelist", "Whitelist", "test.fail_first", ["first"],
                 {"fixed_marker": str(marker)}),
        StepSpec("last", "Install", "test.work", ["whitelist"]),
    ])
    assert runs.wait_finished(run).status == RunStatus.FAILED
    assert runs.step(run, "whitelist").error.startswith("The host is not in the RDS whitelist")
    assert runs.step(run, "last").status == StepStatus.PENDING

    assert pipeline.retry(run)
    assert runs.wait_finished(run).status == RunStatus.FAILED, "nothing was fixed yet"
    marker.touch()  # the user fixes the whitelist
    assert pipeline.retry(run)
    assert runs.wait_finished(run).status == RunStatus.SUCCEEDED
    assert runs.step(run, "first").attempts == 1, "a finished step is not run again"
    assert runs.step(run, "whitelist").attempts == 3

    quota = runs.start(cluster, [StepSpec("rds", "Create RDS", "test.quota")])
    assert runs.wait_finished(quota).status == RunStatus.FAILED
    assert runs.step(quota, "rds").error == (
        "The quota of RDS instances is exceeded. (code QuotaExceeded, RequestId REQ-QUOTA)"
    )
    assert runs.step(quota, "rds").attempts == 1


def test_a_crash_is_errored_not_failed(start_worker):
    start_worker(concurrency=1)
    run = runs.start(make_cluster(), [StepSpec("bug", "Buggy", "test.crash")])
    assert runs.wait_finished(run).status == RunStatus.FAILED
    step = runs.step(run, "bug")
    assert step.status == StepStatus.ERRORED
    assert step.error == "Internal error: RuntimeError: unexpected None"
    assert LogLine.objects.filter(step=step, stream="stderr", text__contains="Traceback").exists()


def test_cancel_stops_between_steps(start_worker):
    start_worker(concurrency=1)
    run = runs.start(make_cluster(), [
        StepSpec("slow", "Slow", "test.work", (), {"seconds": 2}),
        StepSpec("next", "Next", "test.work", ["slow"]),
    ])
    runs.wait_until(lambda: runs.step(run, "slow").status == StepStatus.RUNNING, 30, "start")
    pipeline.cancel(run)
    assert runs.wait_finished(run).status == RunStatus.CANCELLED
    assert runs.step(run, "slow").status == StepStatus.SUCCEEDED, "the running step finishes"
    assert runs.step(run, "next").status == StepStatus.CANCELLED
    assert pipeline.retry(run)
    assert runs.wait_finished(run).status == RunStatus.SUCCEEDED


def test_a_dead_workers_step_shows_a_late_heartbeat_long_before_its_lease_expires(
        start_worker):
    """A live worker beats every few seconds; once it is SIGKILLed the cluster page's snapshot
    says its heartbeat is late within ~15 s, while the 120 s lease still holds the step."""
    worker = start_worker(concurrency=1, PANEL_STEP_LEASE_SECONDS="120")
    cluster = make_cluster()
    run = runs.start(cluster, [StepSpec("long", "Long", "test.work", (), {"seconds": 60})])
    runs.wait_until(lambda: runs.step(run, "long").status == StepStatus.RUNNING, 30,
                    "the step to start")
    first_beat = runs.step(run, "long").heartbeat_at
    runs.wait_until(lambda: runs.step(run, "long").heartbeat_at > first_beat, 15,
                    "a heartbeat from the live worker")
    assert _late(run) is None

    worker.kill_hard()
    killed = time.monotonic()
    runs.wait_until(lambda: _late(run) is not None, 30, "the heartbeat to count as late")
    assert time.monotonic() - killed < 20
    step = runs.step(run, "long")
    assert step.status == StepStatus.RUNNING and step.lease_until > timezone.now()
    assert _late(run) == step.heartbeat_at


def _late(run):
    (step,) = queries.run_snapshot(run)["steps"]
    return step["heartbeat_late_since"]


def test_a_step_that_can_never_start_fails_after_a_few_reclaims(start_worker):
    """A node secret no key decrypts: the worker dies in the step's setup (before the handler
    runs), the step is left Running, and each lease expiry took it back forever. Now it is
    run again PANEL_STEP_MAX_RECLAIMS times, then failed with a reason that says what to do."""
    engine = {"PANEL_STEP_LEASE_SECONDS": "2", "PANEL_SWEEP_INTERVAL_SECONDS": "0.5",
              "PANEL_STEP_MAX_RECLAIMS": "2"}
    start_worker(concurrency=1, beat=True, **engine)
    cluster = make_cluster(nodes=1)
    with connection.cursor() as cursor:  # a token of a key the panel no longer has
        cursor.execute("UPDATE clusters_node SET ssh_password = %s WHERE cluster_id = %s",
                       [TOKEN_PREFIX + "gAAAAABnot-a-token-of-any-key", cluster.pk])
    run = runs.start(cluster, [StepSpec("install", "Install", "test.work")])
    run = runs.wait_finished(run, 60)
    step = runs.step(run, "install")
    assert run.status == RunStatus.FAILED
    assert step.status == StepStatus.FAILED
    assert (step.reclaims, step.attempts) == (3, 3)
    assert step.error.startswith("Its worker stopped answering 3 times in a row, so it is "
                                 "not run again")
    assert "PANEL_ENCRYPTION_KEYS" in step.error and "Retry" in step.error


def _cut_off_other_connections(seconds: float) -> int:
    """The database goes away for a while, as in a PostgreSQL restart: it takes no new
    connections (ALLOW_CONNECTIONS false holds for superusers too) and every session but this
    test's own is terminated, from a session on the `postgres` database."""
    import psycopg  # noqa: PLC0415 - only where the suite runs on PostgreSQL

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_backend_pid()")
        name, own_pid = cursor.fetchone()
    db = connection.settings_dict
    cut = 0
    with psycopg.connect(host=db["HOST"] or None, port=db["PORT"] or None, user=db["USER"],
                         password=db["PASSWORD"] or None, dbname="postgres",
                         autocommit=True) as admin:
        quoted = connection.ops.quote_name(name)
        admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS false")
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                cut += admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> %s", [name, own_pid]).fetchone()[0]
                time.sleep(0.1)
        finally:
            admin.execute(f"ALTER DATABASE {quoted} ALLOW_CONNECTIONS true")
    return cut


def test_a_long_step_rides_out_the_database_going_away_for_a_few_seconds(start_worker):
    """A 12 s install with a 6 s lease; the database drops every connection for 3 s in the
    middle. The heartbeat survives (the step is not reclaimed and run twice), no log line is
    lost, and the step succeeds on its first try."""
    needs_postgresql("cutting the database off")
    start_worker(concurrency=1, beat=True, PANEL_STEP_LEASE_SECONDS="6",
                 PANEL_SWEEP_INTERVAL_SECONDS="0.5")
    cluster = make_cluster()
    run = runs.start(cluster, [StepSpec("install", "Install", "test.chatty", (),
                                        {"lines": 120})])
    runs.wait_until(lambda: LogLine.objects.filter(step__run=run, text="line 20").exists(), 30,
                    "the install to be under way")
    assert _cut_off_other_connections(3.0) > 0
    run = runs.wait_finished(run, 60)
    step = runs.step(run, "install")
    assert run.status == RunStatus.SUCCEEDED, step.error
    assert (step.attempts, step.reclaims) == (1, 0)
    texts = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    assert [t for t in texts if t.startswith("line ")] == [f"line {n}" for n in range(120)]


def test_a_step_that_cannot_renew_its_lease_stops_before_another_worker_runs_it(start_worker):
    """The database is away for longer than the lease: the step stops itself (one beat before
    the lease ends) instead of running on beside the attempt the sweeper starts next."""
    needs_postgresql("cutting the database off")
    # Two slots, so the next attempt could run beside the first if the first did not stop.
    start_worker(concurrency=2, beat=True, PANEL_STEP_LEASE_SECONDS="6",
                 PANEL_SWEEP_INTERVAL_SECONDS="0.5")
    cluster = make_cluster()
    run = runs.start(cluster, [StepSpec("install", "Install", "test.chatty", (),
                                        {"lines": 150})])
    runs.wait_until(lambda: LogLine.objects.filter(step__run=run, text="line 10").exists(), 30,
                    "the install to be under way")
    _cut_off_other_connections(8.0)
    run = runs.wait_finished(run, 60)
    step = runs.step(run, "install")
    assert run.status == RunStatus.SUCCEEDED, step.error
    assert step.attempts == 2
    texts = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    second = texts.index("Attempt 2.")
    first_lines = [t for t in texts[:second] if t.startswith("line ")]
    assert first_lines == [f"line {n}" for n in range(len(first_lines))]
    assert len(first_lines) < 150, "the first attempt stopped before it finished"
    # Nothing of the first attempt after the second began: the two never ran side by side.
    assert [t for t in texts[second + 1:] if t.startswith("line ")] == [
        f"line {n}" for n in range(150)]
