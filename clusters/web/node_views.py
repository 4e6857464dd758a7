"""Cluster-page actions on nodes: add a node, remove a node, accept a node's new host key
(their forms and the page context live in clusters/web/cluster_page.py).

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
from clusters.adapters import wizard_checks
from clusters.interface import audit, queries
from clusters.interface.forms import AddInstancesForm, AddNodeForm
from clusters.models import (
    AuditAction,
    Node,
)
from clusters.web import ratelimit
from clusters.web.actions import start_operation
from clusters.web.cluster_page import cluster_context


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
    even = operations.etcd_even_warning(cluster, 1) if role == "server" else ""
    return start_operation(
        request, cluster, lambda: operations.start_add_nodes(cluster, [form.host()], request.user),
        action=AuditAction.NODE_ADD,
        details=lambda run: {"role": role, "private_ip": address},
        success=lambda run: " ".join(filter(None, [
            _("Adding %(ip)s: preflight first, then K3s.") % {"ip": address}, even])))


@login_required
@require_POST
def node_add_instances(request: HttpRequest, code: Any) -> HttpResponse:
    """Buy new instances like the cluster's first ones and join them; an invalid form (no
    count, billing not confirmed) is shown again on the cluster page."""
    cluster = queries.owned_cluster(request.user, code)
    form = AddInstancesForm(request.POST, cluster=cluster)
    if not form.is_valid():
        context = {**cluster_context(request, cluster), "add_instances_form": form}
        return render(request, "clusters/cluster_detail.html", context, status=400)
    servers, agents = form.cleaned_data["servers"], form.cleaned_data["agents"]
    billed = operations.billed_summary(cluster, servers, agents)
    even = operations.etcd_even_warning(cluster, servers) if servers else ""
    return start_operation(
        request, cluster,
        lambda: operations.start_add_instances(cluster, servers, agents, request.user),
        action=AuditAction.NODE_ADD,
        details=lambda run: {"servers": servers, "agents": agents,
                             "instance_type": cluster.instance_order.get("instance_type")},
        success=lambda run: " ".join(filter(None, [
            _("Buying %(billed)s Then preflight and K3s.") % {"billed": billed}, even])))


@login_required
@require_POST
def etcd_snapshots_refresh(request: HttpRequest, code: Any) -> HttpResponse:
    """The owner's "Refresh snapshots": `k3s etcd-snapshot ls` again on the servers, queued
    to the health worker (the request never SSHes), audited."""
    cluster = queries.owned_cluster(request.user, code)
    refusal = operations.snapshot_refresh_refusal(cluster)
    if refusal:
        messages.error(request, refusal)
    else:
        operations.request_snapshot_refresh(cluster)
        audit.record(request, AuditAction.ETCD_SNAPSHOTS_REFRESH, cluster)
        messages.success(request, _("The snapshots are being listed on the servers again; "
                                    "reload the page in a moment."))
    return redirect(f"{reverse('clusters:cluster', args=[cluster.code])}#etcd-panel")


@login_required
@require_POST
def node_remove(request: HttpRequest, code: Any, node_id: int) -> HttpResponse:
    cluster = queries.owned_cluster(request.user, code)
    node = get_object_or_404(Node, pk=node_id, cluster=cluster)
    keep = request.POST.get("keep_instance") == "on"
    return start_operation(
        request, cluster,
        lambda: operations.start_remove_node(cluster, node, request.user, keep_instance=keep),
        action=AuditAction.NODE_REMOVE,
        details=lambda run: {"role": node.role, "private_ip": node.private_ip,
                             **operations.removal_details(run)},
        success=lambda run: _("Removing %(ip)s.") % {"ip": node.private_ip})


@login_required
@require_POST
def node_host_key(request: HttpRequest, code: Any, node_id: int) -> HttpResponse:
    """The owner's remedy for a changed host key. Without `fingerprint`: scan the host (no
    login) and show the key it presents next to the pinned one. With it: pin exactly that
    fingerprint (the one the owner was shown and confirmed), audited."""
    cluster = queries.owned_cluster(request.user, code)
    node = get_object_or_404(Node, pk=node_id, cluster=cluster)
    refusal = operations.host_key_refusal(cluster, node)
    if refusal:
        messages.error(request, refusal)
        return redirect("clusters:cluster", code=cluster.code)
    fingerprint = request.POST.get("fingerprint", "").strip()
    if fingerprint:
        try:
            previous = operations.accept_host_key(cluster, node, fingerprint)
        except operations.OperationRefused as exc:
            messages.error(request, str(exc))
            return redirect("clusters:cluster", code=cluster.code)
        audit.record(request, AuditAction.NODE_HOST_KEY, cluster, private_ip=node.private_ip,
                     previous=previous, accepted=fingerprint)
        messages.success(request, _("%(ip)s: host key %(key)s accepted; the next run connects "
                                    "only to a host presenting it.")
                         % {"ip": node.private_ip, "key": fingerprint})
        return redirect("clusters:cluster", code=cluster.code)
    presented, scan_error = "", ""
    if not ratelimit.allow(request.user, "host-test"):
        scan_error = _("Too many connection tests in a minute: wait a minute, then test again.")
    else:
        try:
            presented = wizard_checks.scan_host_key(node.ssh_address,
                                                    node.ssh_port)
        except wizard_checks.CheckFailed as exc:
            scan_error = str(exc)
    return render(request, "clusters/node_host_key.html", {
        "cluster": cluster, "node": node, "presented": presented, "scan_error": scan_error})
