"""Read models for pages and JSON: a constant number of queries, whatever the row counts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from clusters.core import heartbeat
from clusters.models import LOG_OMITTED, Cluster, LogLine, Run, Step, StepStatus

LOG_PAGE = 500


def owned_clusters(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Cluster]:
    """The clusters a user may see; anyone else's are simply absent (404, not 403)."""
    return Cluster.objects.filter(owner_id=user.pk)


def owned_cluster(user: AbstractBaseUser | AnonymousUser, code: Any) -> Cluster:
    """The user's cluster with this code, or 404."""
    return get_object_or_404(owned_clusters(user), code=code)


def owned_run(user: AbstractBaseUser | AnonymousUser, code: Any, run_id: int) -> Run:
    return get_object_or_404(
        Run.objects.select_related("cluster", "created_by"), pk=run_id,
        cluster__in=owned_clusters(user),
        cluster__code=code,
    )


def run_snapshot(run: Run) -> dict[str, Any]:
    """The run and its steps as the live timeline shows them (one query for the steps)."""
    steps = Step.objects.filter(run_id=run.pk).order_by("position").defer("args", "result")
    now = timezone.now()
    return {
        "id": run.pk,
        "kind": run.kind,
        "status": run.status,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "steps": [
            {
                "id": step.pk, "key": step.key, "title": step.title,
                "display_title": step.display_title, "status": step.status,
                "attempts": step.tries, "wait_reason": step.wait_reason,
                "not_before": step.not_before, "error": step.error,
                "started_at": step.started_at, "finished_at": step.finished_at,
                "depends_on": step.depends_on,
                # A running step whose worker missed a few beats: shown at once, long before
                # its lease expires and the sweeper runs it again.
                "heartbeat_late_since": heartbeat.late_since(
                    step.heartbeat_at, now, settings.PANEL_STEP_LEASE_SECONDS)
                if step.status == StepStatus.RUNNING else None,
            }
            for step in steps
        ],
    }


def log_page(run: Run, step_id: int, after: int = 0, limit: int = LOG_PAGE) -> dict[str, Any]:
    """Log lines after sequence number `after`, oldest first; `next` is where to continue."""
    step = get_object_or_404(Step.objects.only("id", "status", "diagnosing_until"), pk=step_id,
                             run_id=run.pk)
    lines = list(
        LogLine.objects.filter(step_id=step.pk, seq__gt=after).order_by("seq")
        .values("seq", "time", "stream", "text", "cut_chars", "omitted_lines", "omitted_bytes")
        [: max(1, min(limit, LOG_PAGE))]
    )
    # On the logline_omitted_marker index; ordered by seq alone, since the model's ordering
    # (step, seq) would join the step and run tables to sort by the step's own ordering.
    marker = (LogLine.objects.filter(step_id=step.pk, stream=LOG_OMITTED).order_by("seq")
              .values("seq", "omitted_lines", "omitted_bytes").first())
    return {
        "step": step.pk,
        "status": step.status,
        # The range of line numbers the stored log omits NOW (its marker row sits at `from`):
        # a follower whose cursor is already past the marker learns from it that lines it
        # had not read yet were trimmed, instead of a silent jump in the numbers.
        "omitted": {"from": marker["seq"], "to": marker["seq"] + marker["omitted_lines"] - 1,
                    "lines": marker["omitted_lines"], "bytes": marker["omitted_bytes"]}
        if marker and marker["omitted_lines"] else None,
        # Diagnostics are being appended to this finished step's log: more lines will come.
        "diagnosing": bool(step.diagnosing_until and step.diagnosing_until > timezone.now()),
        "lines": lines,
        "next": lines[-1]["seq"] if lines else after,
    }
