"""Retry and cancel a run on behalf of whoever asked (a page or the API), audited the same way.

Why here, not in each caller: the browser's buttons and the REST API both retry and cancel
runs, and the audit trail must not depend on which was used (a refused retry from a stale tab
or a script is worth knowing about too). Callers turn a refusal into a message or a 409.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import gettext as _

from clusters import operations
from clusters.interface import audit
from clusters.models import AuditAction, Run


def retry(request: HttpRequest, run: Run) -> None:
    """Resume `run` from the step that stopped; a refusal is audited, then raised."""
    try:
        operations.retry(run)
    except operations.OperationRefused as exc:
        audit.record(request, AuditAction.RUN_RETRY_REFUSED, run.cluster, run=run.pk,
                     reason=str(exc))
        raise
    audit.record(request, AuditAction.RUN_RETRY, run.cluster, run=run.pk)


def cancel(request: HttpRequest, run: Run) -> None:
    """Cancel an active run (its running step finishes first); refuse one that has ended."""
    if not run.is_active:
        raise operations.OperationRefused(_("Only a pending or running run can be cancelled."))
    operations.cancel(run)
    audit.record(request, AuditAction.RUN_CANCEL, run.cluster, run=run.pk)
