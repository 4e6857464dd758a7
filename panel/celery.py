"""The Celery application. Tasks are registered when the clusters app is ready: the engine's
in clusters/engine/pipeline.py, the health checks in clusters/operations/health.py; each only
hands an id on.

Two queues: the default one (CELERY_TASK_DEFAULT_QUEUE) carries the engine's steps and the
sweeper; the health checks have one of their own (`health_queue`), consumed by a worker of its
own (runpanel, docker-compose.yml), so a flood of slow checks against unreachable clusters
can never take the slots provisioning steps need.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, current_app
from celery.signals import after_setup_logger, after_setup_task_logger, task_prerun, worker_init
from django.conf import settings
from django.db import close_old_connections

from clusters.core.redaction import RedactingFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

#: The tasks that go to the health queue (clusters/operations/health.py).
HEALTH_TASKS = frozenset({"clusters.refresh_health", "clusters.refresh_health_batch",
                          "clusters.refresh_all_health", "clusters.refresh_etcd_snapshots"})


def health_queue(default_queue: str) -> str:
    """The health checks' queue, named after the default queue: a worker started on a queue
    of its own (each test session, each benchmark) gets a health queue of its own with it."""
    return f"{default_queue}-health"


def route_task(name: str, args: Any, kwargs: Any, options: Any, task: Any = None,
               **_: Any) -> dict[str, str] | None:
    """Celery's router (settings.CELERY_TASK_ROUTES): health checks to the health queue,
    everything else to the default queue. Read at each send, so a process that moves its
    default queue (tests/support/services.route_tasks_to) moves the health queue too."""
    if name not in HEALTH_TASKS:
        return None
    conf = (task.app if task is not None else current_app).conf
    return {"queue": health_queue(conf.task_default_queue)}


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: object) -> None:
    # The sweeper reclaims steps whose worker died and re-sends lost countdowns.
    sender.add_periodic_task(
        settings.PANEL_SWEEP_INTERVAL_SECONDS, sender.signature("clusters.sweep"),
        name="sweep the step engine",
    )
    # Health of every live cluster: API through the SLB, nodes, SLB backends, RDS. A round
    # that could not start before the next one is due is dropped (the next one does the same).
    sender.add_periodic_task(
        settings.PANEL_HEALTH_INTERVAL_SECONDS, sender.signature("clusters.refresh_all_health"),
        name="refresh cluster health", expires=settings.PANEL_HEALTH_INTERVAL_SECONDS,
    )
    # Expired personal kubeconfigs: their tokens are refused already; this deletes their
    # ServiceAccounts and bindings from the clusters (issue and revoke do it too).
    sender.add_periodic_task(
        3600.0, sender.signature("clusters.clean_up_expired_kube_credentials"),
        name="clean up expired personal kubeconfigs", expires=3600.0,
    )


@worker_init.connect
def _load_step_handlers(**_: object) -> None:
    """The step handlers' modules are imported in the worker's main process, before its pool
    forks: each pool process would otherwise import them at its first step (issue 18)."""
    from clusters.engine.registry import load_handler_modules  # noqa: PLC0415 - apps ready

    load_handler_modules()


@task_prerun.connect
def _close_old_connections(**_: object) -> None:
    """Before each task, as Django before each request: a connection past CONN_MAX_AGE, or
    one left unusable by the last task's error, is closed (the next query opens a new one);
    a healthy one is reused (settings.CELERY_DB_REUSE_MAX says why Celery does not)."""
    close_old_connections()


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_worker_logs(logger: logging.Logger, **_: object) -> None:
    """Celery replaces the root logger's handlers with its own: they mask secrets too."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
