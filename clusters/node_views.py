"""Cluster-page actions on membership: add a node, remove a node (and the destroy form's
context).

Thin like clusters/views.py: the rules live in clusters/operations.py (last server, typed
name, a destroyed cluster refuses everything); the add form reuses the wizard's host
validation; every start is written to the audit trail.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from clusters import audit, operations, queries
from clusters.forms import HostForm
from clusters.models import (
    RUN_ACTIVE,
    AuditAction,
    Cluster,
    ClusterStatus,
    Node,
    NodeRole,
    NodeStatus,
    Run,
)

GONE = (NodeStatus.REMOVING, NodeStatus.REMOVED)


class AddNodeForm(HostForm):
    """One host, checked as the wizard checks hosts (address, port, user, key or password)."""

    AUTH_CHOICES = (("key", HostForm.AUTH_CHOICES[0][1]), ("password", HostForm.AUTH_CHOICES[2][1]))

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(*args, prefix="node", **kwargs)
        self.cluster = cluster
        del self.fields["key_file"]
        self.fields["auth"].choices = self.AUTH_CHOICES

    def clean_private_ip(self) -> str:
        address = super().clean_private_ip()
        if self.cluster.nodes.filter(private_ip=address).exclude(status__in=GONE).exists():
            raise ValidationError(_("%(value)s is already a node of this cluster.") %
                                  {"value": address})
        return address

    def host(self) -> dict[str, Any]:
        """What operations.start_add_nodes takes."""
        data = self.cleaned_data
        by_key = data["auth"] == "key"
        return {
            "role": data["role"], "private_ip": data["private_ip"],
            "public_ip": data.get("public_ip") or None, "ssh_port": data["ssh_port"],
            "ssh_user": data["ssh_user"],
            "ssh_private_key": data.get("private_key", "") if by_key else "",
            "ssh_key_passphrase": data.get("passphrase", "") if by_key else "",
            "ssh_password": "" if by_key else data.get("password", ""),
        }


def annotate_removal(nodes: list[Node]) -> None:
    """Give each node the confirm text of its Remove button (`removal_note`, with a warning
    when the cluster would lose HA) and whether it may be removed (`removable`)."""
    servers = [n for n in nodes if n.role == NodeRole.SERVER and n.status not in GONE]
    for node in nodes:
        node.removable = True
        if node.role != NodeRole.SERVER:
            node.removal_note = _("It is cordoned and drained, K3s is uninstalled on the host "
                                  "and the node is deleted from the cluster.")
        elif len(servers) <= 1:
            node.removable = False
            node.removal_note = _("This is the last server: it cannot be removed. Add another "
                                  "server first, or destroy the cluster.")
        else:
            left = len(servers) - 1
            node.removal_note = _("It leaves the SLB first, then K3s is uninstalled on the host "
                                  "and it leaves the RDS whitelist.")
            if left < 2:
                node.removal_note += " " + ngettext(
                    "Only %(n)d server will remain: the cluster is no longer highly available.",
                    "Only %(n)d servers will remain: the cluster is no longer highly available.",
                    left) % {"n": left}


def page_context(cluster: Cluster, runs: list[Run], nodes: list[Node]) -> dict[str, Any]:
    """What the cluster page needs for the node buttons, the add form and the destroy form."""
    idle = not any(run.status in RUN_ACTIVE for run in runs)
    annotate_removal(nodes)
    active = [node for node in nodes if node.status not in GONE]
    return {
        "can_change_nodes": idle and cluster.status == ClusterStatus.READY,
        "add_node_form": AddNodeForm(cluster=cluster),
        "active_servers": sum(node.role == NodeRole.SERVER for node in active),
        "active_agents": sum(node.role == NodeRole.AGENT for node in active),
        # A failed cluster offers destroy in its run's callout instead.
        "can_destroy_now": idle and cluster.status == ClusterStatus.READY,
        "keeps_rds": cluster.datastore_kind == "rds",
    }


def _owned_cluster(request: HttpRequest, code: Any) -> Cluster:
    return get_object_or_404(queries.owned_clusters(request.user), code=code)


def _to_run(cluster: Cluster, run: Run) -> HttpResponse:
    return redirect(reverse("clusters:cluster", args=[cluster.code]) + f"?run={run.pk}")


@login_required
@require_POST
def node_add(request: HttpRequest, code: Any) -> HttpResponse:
    """Add one server or agent; an invalid form is shown again on the cluster page."""
    from clusters.views import cluster_context

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
