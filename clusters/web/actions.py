"""What every "start an operation" button does, said once: start it, turn a refusal into a
message on the cluster page, write the audit trail, say what started, show the run.

Why one helper: six views (create, destroy, add node, remove node, upgrade, renew the
kubeconfig) did this by hand, and a seventh must not forget the audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from clusters import operations
from clusters.interface import audit
from clusters.models import AuditAction, Cluster, Run


def run_url(cluster: Cluster, run: Run) -> str:
    """The cluster page showing `run`."""
    return reverse("clusters:cluster", args=[cluster.code]) + f"?run={run.pk}"


def start_operation(
    request: HttpRequest,
    cluster: Cluster,
    start: Callable[[], Run],
    *,
    action: AuditAction,
    success: Callable[[Run], str],
    details: Callable[[Run], dict[str, Any]] | None = None,
    show_run: bool = True,
) -> HttpResponse:
    """Call `start`; on OperationRefused show why on the cluster page; else audit `action`
    (with the run and `details(run)`), flash `success(run)` and redirect to the run (or to
    the cluster page when `show_run` is false: it shows the newest run anyway)."""
    try:
        run = start()
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect("clusters:cluster", code=cluster.code)
    audit.record(request, action, cluster, run=run.pk, **(details(run) if details else {}))
    messages.success(request, success(run))
    if not show_run:
        return redirect("clusters:cluster", code=cluster.code)
    return redirect(run_url(cluster, run))
