"""Cluster-page actions on membership: add a node, remove a node (their form and the page
context live in clusters/web/cluster_page.py).

Thin like clusters/web/views.py: the rules live in clusters/operations/nodes.py and destroy.py (last
server, typed name, a destroyed cluster refuses everything); the add form reuses the
wizard's host validation; every start is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from clusters import operations
from clusters.models import (
    AuditAction,
    Cluster,
    Node,
    Run,
)
from clusters.web import audit, queries
from clusters.web.cluster_page import AddNodeForm, cluster_context


def _owned_cluster(request: HttpRequest, code: Any) -> Cluster:
    return get_object_or_404(queries.owned_clusters(request.user), code=code)


def _to_run(cluster: Cluster, run: Run) -> HttpResponse:
    return redirect(reverse("clusters:cluster", args=[cluster.code]) + f"?run={run.pk}")


@login_required
@require_POST
def node_add(request: HttpRequest, code: Any) -> HttpResponse:
    """Add one server or agent; an invalid form is shown again on the cluster page."""
    cluster = _owned_cluster(request, code)
    form = AddNodeForm(request.POST, cluster=cluster)
    if not form.is_valid():
        context = {**cluster_context(request, cluster), "add_node_form": form}
        return render(request, "clusters/cluster_detail.html", context, status=400)
    try:
        run = operations.start_add_nodes(cluster, [form.host()], request.user)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect("clusters:cluster", code=cluster.code)
    audit.record(request, AuditAction.NODE_ADD, cluster, run=run.pk,
                 role=form.cleaned_data["role"], private_ip=form.cleaned_data["private_ip"])
    messages.success(request, _("Adding %(ip)s: preflight first, then K3s.") %
                     {"ip": form.cleaned_data["private_ip"]})
    return _to_run(cluster, run)


@login_required
@require_POST
def node_remove(request: HttpRequest, code: Any, node_id: int) -> HttpResponse:
    cluster = _owned_cluster(request, code)
    node = get_object_or_404(Node, pk=node_id, cluster=cluster)
    try:
        run = operations.start_remove_node(cluster, node, request.user)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect("clusters:cluster", code=cluster.code)
    audit.record(request, AuditAction.NODE_REMOVE, cluster, run=run.pk, role=node.role,
                 private_ip=node.private_ip)
    messages.success(request, _("Removing %(ip)s.") % {"ip": node.private_ip})
    return _to_run(cluster, run)
