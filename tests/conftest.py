"""Fixtures shared by every test: a real broker and real Celery worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings

from panel.celery import app as celery_app
from tests.support.services import find_redis
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
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    celery_app.conf.broker_url = broker_url
    celery_app.conf.task_default_queue = queue
    return queue


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
