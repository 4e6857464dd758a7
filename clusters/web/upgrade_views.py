"""Cluster-page actions for day-2 maintenance: upgrade K3s, renew the kubeconfig, change the
API's allow-list.

Thin like clusters/web/views.py: the rules live in clusters/operations/upgrade.py,
kubeconfig.py and allowlist.py; here a person picks a target, confirms it on a page that names
the backup (or its absence), and every start is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from clusters import operations
from clusters.interface import queries
from clusters.interface.forms import UpgradeForm
from clusters.models import AuditAction
from clusters.operations import upgrade
from clusters.web.actions import start_operation


@login_required
@require_http_methods(["GET", "POST"])
def upgrade_cluster(request: HttpRequest, code: Any) -> HttpResponse:
    """GET ?version=…: the confirm page (or why not); POST: start the upgrade."""
    cluster = queries.owned_cluster(request.user, code)
    data = request.POST if request.method == "POST" else request.GET
    form = UpgradeForm(data, cluster=cluster)
    if request.method == "POST" and form.is_valid():
        version = form.cleaned_data["version"]
        return start_operation(
            request, cluster, lambda: operations.start_upgrade(cluster, version, request.user),
            action=AuditAction.CLUSTER_UPGRADE,
            details=lambda run: {"from_version": run.params["from_version"],
                                 "to_version": run.params["to_version"]},
            success=lambda run: _("Upgrading to %(version)s: servers one at a time, then "
                                  "agents.") % {"version": run.params["to_version"]})
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
    cluster = queries.owned_cluster(request.user, code)
    return start_operation(
        request, cluster, lambda: operations.start_kubeconfig_renewal(cluster, request.user),
        action=AuditAction.KUBECONFIG_RENEW,
        success=lambda run: _("Renewing the kubeconfig: it is fetched again from a server."))


@login_required
@require_POST
def change_allowlist(request: HttpRequest, code: Any) -> HttpResponse:
    """Start a run that makes the API's ACL hold exactly the CIDRs posted (audited)."""
    cluster = queries.owned_cluster(request.user, code)
    return start_operation(
        request, cluster,
        lambda: operations.start_allowlist_change(cluster, request.POST.get("cidrs", ""),
                                                  request.user),
        action=AuditAction.API_ALLOWLIST,
        details=lambda run: {"from": run.params["from"], "to": run.params["to"]},
        success=lambda run: _("Updating the API's allow-list: new sources are added before "
                              "old ones are removed."))
