"""Fixtures shared by every test: a real broker and real Celery worker processes."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation
from django.utils.translation import trans_real

from tests.support.network_fence import fenced
from tests.support.services import find_redis, route_tasks_to
from tests.support.suite_order import longest_files_first
from tests.support.tools import LAB_TOOLS, require, require_root
from tests.support.worker import WorkerProcess


@pytest.fixture(scope="session")
def broker_url() -> Iterator[str]:
    url, embedded = find_redis()
    yield url
    if embedded:
        embedded.stop()


@pytest.fixture(scope="session")
def task_queue(broker_url: str) -> str:
    """A queue of this session's own, so tests never eat a developer's real tasks."""
    queue = f"panel-test-{uuid.uuid4().hex[:10]}"
    route_tasks_to(broker_url, queue)
    return queue


@pytest.fixture(scope="session", autouse=True)
def network_fence() -> Iterator[None]:
    """No test reaches beyond loopback and the lab (tests/support/network_fence.py)."""
    with fenced():
        yield


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(broker_url: str, task_queue: str) -> Iterator[WorkerFactory]:
    """Start real worker processes on this session's queue; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start(concurrency: int = 1, beat: bool = False, queues: Sequence[str] | None = None,
              **env: str) -> WorkerProcess:
        worker = WorkerProcess(broker_url, task_queue, concurrency=concurrency, beat=beat,
                               env={key: str(value) for key, value in env.items()},
                               queues=queues)
        started.append(worker)
        return worker.wait_ready()

    yield start
    # SIGKILL, not a warm shutdown: how a worker stops is not what the test asserted (those
    # that test it stop their workers themselves), and a warm shutdown waits up to 15 s for
    # the running step, then puts its reserved messages back on the queue for the next test's
    # worker. A killed worker's reserved messages stay unacked until the broker's visibility
    # timeout (an hour), well past this session.
    for worker in started:
        worker.kill_hard()


def compile_translations() -> None:
    """Compile each locale/*/LC_MESSAGES/*.po into the test build directory (settings_test's
    LOCALE_PATHS) when the .po is newer than its .mo. The source tree is left alone: the .mo is a
    build product, and `make run` compiles its own into locale/ (runpanel). msgfmt --check
    catches a broken placeholder early."""
    require("msgfmt")
    source = Path(settings.SOURCE_LOCALE_DIR)
    build = Path(settings.LOCALE_PATHS[0])
    for po in source.glob("*/LC_MESSAGES/*.po"):
        mo = build / po.relative_to(source).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        # A name of this process's own, then an atomic rename: two sessions may compile at once.
        temporary = mo.with_suffix(f".mo.{os.getpid()}.tmp")
        checked = subprocess.run(["msgfmt", "--check", "-o", str(temporary), str(po)],
                                 capture_output=True, text=True)
        if checked.returncode != 0:
            pytest.fail(f"msgfmt --check {po}: {checked.stderr.strip()}", pytrace=False)
        temporary.replace(mo)


@pytest.fixture(scope="session", autouse=True)
def translations() -> None:
    compile_translations()

    # A .mo compiled after Django loaded its catalogues must be read again.
    trans_real._translations = {}
    trans_real._default = None
    translation.activate("en")


@pytest.fixture(autouse=True)
def english_until_asked(translations: None) -> None:
    """Each test starts in English: a request answered in Chinese (LocaleMiddleware) leaves
    its language active in the thread, and the next test's messages would be Chinese."""
    translation.activate("en")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A lab test on a machine without root or the lab's tools fails with one line that says
    how to get them, before any fixture starts a host (tests/support/tools.py)."""
    if item.get_closest_marker("lab"):
        require_root("network, mount and PID namespaces, sshd and mariadbd in lab hosts")
        require(*LAB_TOOLS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In `make test`'s processes (pytest-xdist workers), whole files longest first, so the
    two processes finish together (tests/support/suite_order.py). After pytest-django's own
    reordering, whose order inside a file is kept. Both workers sort the same collection the
    same way, as xdist requires."""
    if hasattr(config, "workerinput"):
        longest_files_first(items)
