"""Cluster-page actions on membership: add a node, remove a node (their form and the page
context live in clusters/web/cluster_page.py).

Thin like clusters/web/views.py: the rules live in clusters/operations/nodes.py and destroy.py (last
server, typed name, a destroyed cluster refuses everything); the add form reuses the
wizard's host validation; every start is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from clusters import operations
from clusters.models import (
    AuditAction,
    Node,
)
from clusters.web import queries
from clusters.web.actions import start_operation
from clusters.web.cluster_page import AddNodeForm, cluster_context


@login_required
@require_POST
def node_add(request: HttpRequest, code: Any) -> HttpResponse:
    """Add one server or agent; an invalid form is shown again on the cluster page."""
    cluster = queries.owned_cluster(request.user, code)
    form = AddNodeForm(request.POST, cluster=cluster)
    if not form.is_valid():
        context = {**cluster_context(request, cluster), "add_node_form": form}
        return render(request, "clusters/cluster_detail.html", context, status=400)
    role, address = form.cleaned_data["role"], form.cleaned_data["private_ip"]
    return start_operation(
        request, cluster, lambda: operations.start_add_nodes(cluster, [form.host()], request.user),
        action=AuditAction.NODE_ADD,
        details=lambda run: {"role": role, "private_ip": address},
        success=lambda run: _("Adding %(ip)s: preflight first, then K3s.") % {"ip": address})


@login_required
@require_POST
def node_remove(request: HttpRequest, code: Any, node_id: int) -> HttpResponse:
    cluster = queries.owned_cluster(request.user, code)
    node = get_object_or_404(Node, pk=node_id, cluster=cluster)
    return start_operation(
        request, cluster, lambda: operations.start_remove_node(cluster, node, request.user),
        action=AuditAction.NODE_REMOVE,
        details=lambda run: {"role": node.role, "private_ip": node.private_ip},
        success=lambda run: _("Removing %(ip)s.") % {"ip": node.private_ip})
