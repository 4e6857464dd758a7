"""Bound the logs stored before the bound existed: every step keeping more than its first
PANEL_STEP_LOG_HEAD_LINES and newest PANEL_STEP_LOG_TAIL_LINES lines is trimmed to them, with
the marker row that counts what was omitted (clusters/engine/steplog.py).

Why a command and not a migration: the log table may hold millions of rows, and deleting
most of them is for the operator to start when it suits the database, not a deploy.
A step that is still active (pending, running, waiting) is skipped: it trims itself at its
next flush, and two StepLogs trimming one step at once would count the same lines twice.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db.models import Max

from clusters.engine.steplog import StepLog
from clusters.models import STEP_ACTIVE, LogLine


class Command(BaseCommand):
    help = "Trim every step log to its first and newest lines, counting the rest in a marker."

    def handle(self, *args: Any, **options: Any) -> None:
        longest = settings.PANEL_STEP_LOG_HEAD_LINES + settings.PANEL_STEP_LOG_TAIL_LINES + 1
        steps = (LogLine.objects.values("step_id").annotate(last=Max("seq"))
                 .filter(last__gt=longest).exclude(step__status__in=STEP_ACTIVE)
                 .values_list("step_id", flat=True))
        trimmed = 0
        for step_id in list(steps):
            # A StepLog over a log longer than its bound trims it at its first flush; it
            # writes no line of its own (and redacts nothing: stored lines already are).
            StepLog(step_id, redact=str).flush()
            trimmed += 1
        self.stdout.write(f"{trimmed} step logs trimmed.")
