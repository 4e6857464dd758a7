"""Real Celery worker processes for tests: started, watched, killed like in production."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url_for_workers() -> str:
    """The URL of the database the test process is using (the test database, not the real one)."""
    settings = connection.settings_dict
    engine = settings["ENGINE"]
    if engine.endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    if engine.endswith("postgresql"):
        auth = settings["USER"] or ""
        if settings.get("PASSWORD"):
            auth += f":{settings['PASSWORD']}"
        host = settings["HOST"] or "localhost"
        port = f":{settings['PORT']}" if settings.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{settings['NAME']}"
    raise RuntimeError(f"no worker URL for database engine {engine}")


class WorkerProcess:
    """`celery -A panel worker` in its own process group, with its output kept for assertions.

    It consumes the test's queue and the health queue named after it (panel/celery.py), so a
    test worker is the whole panel's workers in one, and two sessions never share either."""

    def __init__(self, broker_url: str, queue: str, *, concurrency: int = 1, beat: bool = False,
                 env: Mapping[str, str] | None = None,
                 queues: str | Sequence[str] | None = None,
                 netns: str | None = None, cgroup_procs: Path | None = None,
                 beat_only: bool = False) -> None:
        """`queues` replaces the -Q list (a step-only or a health-only worker, as
        docker-compose.yml runs them; default: the queue and its health queue); `netns`
        runs the worker inside that network namespace (`ip netns exec`: another machine);
        `cgroup_procs` is a cgroup's `cgroup.procs` the worker joins before Python starts
        (a benchmark's CPU accounting, tests/support/cpu_groups.py);
        `beat_only` starts `celery beat` alone instead of a worker."""
        from panel.celery import health_queue  # noqa: PLC0415 - once the settings are chosen

        self.schedule_dir = tempfile.mkdtemp(prefix="panel-beat-")
        # The worker's level follows LOG_LEVEL, as in docker-compose.yml.
        loglevel = (env or {}).get("LOG_LEVEL", "INFO")
        schedule = f"--schedule={self.schedule_dir}/beat-schedule"
        if beat_only:
            argv = [sys.executable, "-m", "celery", "-A", "panel", "beat",
                    f"--loglevel={loglevel}", schedule]
        else:
            argv = [
                sys.executable, "-m", "celery", "-A", "panel", "worker",
                f"--loglevel={loglevel}", f"--concurrency={concurrency}", "--pool=prefork",
                "-Q", (queues if isinstance(queues, str) else ",".join(queues or (
                    queue, health_queue(queue)))),
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                f"--hostname=test-{os.getpid()}-{time.monotonic_ns()}@%h",
            ]
            if beat:
                argv += ["--beat", schedule]
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        if cgroup_procs is not None:
            # "0" is the writing process: the shell, which then becomes the command.
            argv = ["sh", "-c", 'echo 0 > "$0" && exec "$@"', str(cgroup_procs), *argv]
        full_env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "panel.settings_test",
            "DATABASE_URL": database_url_for_workers(),
            "CELERY_BROKER_URL": broker_url,
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.output: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line.rstrip())
            if " ready." in line or "beat: Starting..." in line:
                self._ready.set()

    def wait_ready(self, timeout: float = 60) -> WorkerProcess:
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("the Celery worker did not start:\n" + "\n".join(self.output[-40:]))
        return self

    def kill_hard(self) -> None:
        """SIGKILL the whole worker (parent and pool children) at once, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                self.kill_hard()
        if self.process.poll() is None:
            self.kill_hard()
