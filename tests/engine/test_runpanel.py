"""`make run`'s supervisor (manage.py runpanel) with real processes: a dead child is started
again and the panel keeps answering; only SIGTERM (or Ctrl-C) stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from clusters.management.supervisor import Supervisor
from sandbox.k3s.testing import free_port, listening_pid

ROOT = Path(__file__).resolve().parents[2]

def wait_for(what: str, check: Callable[[], object], timeout: float = 90) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return response.status == 200
    except OSError:
        return False


class Panel:
    """A runpanel process on a free port with its own var/ (SQLite, embedded broker)."""

    def __init__(self, var: Path) -> None:
        self.port = free_port("127.0.0.1")
        self.log = var / "runpanel.log"
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PANEL_", "DJANGO_", "DATABASE_URL", "CELERY_"))}
        env.update(DJANGO_DEBUG="1", PANEL_VAR_DIR=str(var))
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "runpanel", f"--addr=127.0.0.1:{self.port}",
                 "--concurrency=1"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/accounts/login/"

    def serves(self) -> bool:
        """The port is this panel's own (its web server listens there): the port was free
        when picked, and another test process's server might have bound it since."""
        try:
            top = psutil.Process(self.process.pid)
            tree = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return False
        return any(listening_pid("127.0.0.1", self.port, proc.pid) for proc in tree)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def child(self, *words: str) -> psutil.Process | None:
        for child in psutil.Process(self.process.pid).children():
            try:
                if all(word in child.cmdline() for word in words):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None


@pytest.fixture
def panel(tmp_path: Path) -> Iterator[Panel]:
    running = Panel(tmp_path)
    try:
        wait_for("the web server", lambda: running.serves() and answers(running.url))
        yield running
    finally:
        if running.process.poll() is None:
            os.killpg(running.process.pid, signal.SIGKILL)
            running.process.wait()


def ready(panel: Panel, node: str) -> int:
    """How many times the Celery worker named `node` (worker, health) said it is ready."""
    return sum(1 for line in panel.output().splitlines()
               if f"{node}@" in line and " ready." in line)


@pytest.mark.slow
def test_a_killed_worker_is_started_again_and_the_panel_keeps_serving(panel: Panel) -> None:
    worker = wait_for("the worker", lambda: panel.child("worker", "--hostname=worker@%h"))
    assert isinstance(worker, psutil.Process)
    wait_for("the workers to be ready",
             lambda: ready(panel, "worker") >= 1 and ready(panel, "health") >= 1)
    web, beat = panel.child("runserver"), panel.child("beat")
    health = panel.child("worker", "--hostname=health@%h")
    assert web and beat and health
    # One worker per queue (panel/celery.py): health checks never take a provisioning slot.
    assert "--queues=celery" in worker.cmdline()
    assert "--queues=celery-health" in health.cmdline()

    worker.send_signal(signal.SIGKILL)
    wait_for("a restarted worker", lambda: (
        panel.child("worker", "--hostname=worker@%h") or worker).pid != worker.pid)
    out = panel.output()
    assert f"The worker (pid {worker.pid}) was killed by SIGKILL" in out
    assert "starting it again in 1 s." in out
    assert "The worker is running again" in out and "restart 1)" in out
    assert "stopping the others" not in out
    # The new worker connects to the broker again, and nothing else was touched.
    wait_for("the new worker to be ready", lambda: ready(panel, "worker") >= 2)
    assert panel.process.poll() is None
    assert answers(panel.url)
    assert web.is_running() and beat.is_running() and health.is_running()
    assert panel.child("runserver").pid == web.pid and panel.child("beat").pid == beat.pid
    assert panel.child("worker", "--hostname=health@%h").pid == health.pid

    # SIGTERM stops everything, as Ctrl-C does.
    children = psutil.Process(panel.process.pid).children(recursive=True)
    panel.process.send_signal(signal.SIGTERM)
    assert panel.process.wait(60) == 0
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert not answers(panel.url)


@pytest.mark.parametrize("lived", [0.0, 61.0])
def test_a_child_that_keeps_dying_young_waits_longer_each_time(lived: float) -> None:
    """Back-off 1, 2, 4 s ... up to 30 s while a child dies young; one that lived a minute is
    started again after 1 s. Real processes; the supervisor's clock is handed in."""
    now = [0.0]
    said: list[str] = []
    supervisor = Supervisor(said.append, clock=lambda: now[0])
    child = supervisor.add("worker", lambda: subprocess.Popen(
        [sys.executable, "-c", "raise SystemExit(3)"]))
    delays = []
    for _ in range(7):
        child.process.wait()
        now[0] += lived
        supervisor.check()
        assert child.process is None
        delays.append(child.due_at - now[0])
        now[0] = child.due_at
        supervisor.check()
        assert child.process is not None
    child.process.wait()
    expected = [1.0] * 7 if lived else [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert delays == expected
    assert re.fullmatch(rf"The worker \(pid \d+\) exited with code 3 after {lived:.0f} s; "
                        r"starting it again in 1 s\.", said[0])
    assert said[1].startswith("The worker is running again (pid ") and "restart 1)" in said[1]
    assert child.restarts == 7
