"""Fixtures shared by every test: a real broker and real Celery worker processes."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.utils import translation
from django.utils.translation import trans_real

from tests.support.network_fence import fenced
from tests.support.services import find_redis, route_tasks_to
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

    def start(concurrency: int = 1, beat: bool = False, **env: str) -> WorkerProcess:
        worker = WorkerProcess(broker_url, task_queue, concurrency=concurrency, beat=beat,
                               env={key: str(value) for key, value in env.items()})
        started.append(worker)
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()


ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale"


def compile_translations() -> None:
    """Compile every locale/*/LC_MESSAGES/django.po that is newer than its .mo (.mo files are
    build products, not in git). msgfmt --check catches a broken placeholder early."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        raise RuntimeError("msgfmt is missing: install Debian's gettext package")
    for po in LOCALE.glob("*/LC_MESSAGES/*.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        temporary = mo.with_suffix(".mo.tmp")
        subprocess.run([msgfmt, "--check", "-o", str(temporary), str(po)], check=True)
        temporary.replace(mo)


@pytest.fixture(scope="session", autouse=True)
def translations() -> None:
    compile_translations()

    # A .mo compiled after Django loaded its catalogues must be read again.
    trans_real._translations = {}
    trans_real._default = None
    translation.activate("en")
