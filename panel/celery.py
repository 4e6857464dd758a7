"""The Celery application. Tasks are registered when the clusters app is ready: the engine's
in clusters/engine/pipeline.py, the health checks in clusters/operations/health.py; each only
hands an id on."""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger
from django.conf import settings

from clusters.core.redaction import RedactingFilter

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")

app = Celery("panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _schedule(sender: Celery, **_: object) -> None:
    # The sweeper reclaims steps whose worker died and re-sends lost countdowns.
    sender.add_periodic_task(
        settings.PANEL_SWEEP_INTERVAL_SECONDS, sender.signature("clusters.sweep"),
        name="sweep the step engine",
    )
    # Health of every live cluster: API through the SLB, nodes, SLB backends, RDS.
    sender.add_periodic_task(
        settings.PANEL_HEALTH_INTERVAL_SECONDS, sender.signature("clusters.refresh_all_health"),
        name="refresh cluster health",
    )


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redact_worker_logs(logger: logging.Logger, **_: object) -> None:
    """Celery replaces the root logger's handlers with its own: they mask secrets too."""
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
