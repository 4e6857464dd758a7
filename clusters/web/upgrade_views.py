"""Cluster-page actions for day-2 maintenance: upgrade K3s, renew the kubeconfig.

Thin like clusters/web/views.py: the rules live in clusters/operations/upgrade.py and
kubeconfig.py; here a person picks a target, confirms it on a page that names the backup (or
its absence), and every start is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from clusters import operations
from clusters.models import AuditAction, Cluster
from clusters.operations import upgrade
from clusters.web import audit, queries
from clusters.web.cluster_page import UpgradeForm


def _owned_cluster(request: HttpRequest, code: Any) -> Cluster:
    return get_object_or_404(queries.owned_clusters(request.user), code=code)


@login_required
@require_http_methods(["GET", "POST"])
def upgrade_cluster(request: HttpRequest, code: Any) -> HttpResponse:
    """GET ?version=…: the confirm page (or why not); POST: start the upgrade."""
    cluster = _owned_cluster(request, code)
    data = request.POST if request.method == "POST" else request.GET
    form = UpgradeForm(data, cluster=cluster)
    if request.method == "POST" and form.is_valid():
        try:
            run = operations.start_upgrade(cluster, form.cleaned_data["version"], request.user)
        except operations.OperationRefused as exc:
            messages.error(request, str(exc))
            return redirect("clusters:cluster", code=cluster.code)
        audit.record(request, AuditAction.CLUSTER_UPGRADE, cluster, run=run.pk,
                     from_version=run.params["from_version"],
                     to_version=run.params["to_version"])
        messages.success(request, _("Upgrading to %(version)s: servers one at a time, then "
                                    "agents.") % {"version": run.params["to_version"]})
        return redirect(reverse("clusters:cluster", args=[cluster.code]) + f"?run={run.pk}")
    note, note_is_warning = upgrade.backup_note(cluster)
    return render(request, "clusters/upgrade_confirm.html", {
        "cluster": cluster, "form": form, "target": form.target if form.is_valid() else None,
        "backup_note": note, "backup_warning": note_is_warning,
        "servers": cluster.nodes.live().servers().count(),
        "agents": cluster.nodes.live().agents().count(),
    })


@login_required
@require_POST
def renew_kubeconfig(request: HttpRequest, code: Any) -> HttpResponse:
    """Start a run that re-fetches k3s.yaml (restarting one server only if it must)."""
    cluster = _owned_cluster(request, code)
    try:
        run = operations.start_kubeconfig_renewal(cluster, request.user)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect("clusters:cluster", code=cluster.code)
    audit.record(request, AuditAction.KUBECONFIG_RENEW, cluster, run=run.pk)
    messages.success(request, _("Renewing the kubeconfig: it is fetched again from a server."))
    return redirect(reverse("clusters:cluster", args=[cluster.code]) + f"?run={run.pk}")
