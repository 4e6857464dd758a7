"""What the cluster page shows, read in a fixed number of queries, and the forms it carries
(add a node, upgrade K3s).

Why a module of its own: the page is rendered by the view that shows it and again by the
actions that answer an invalid form on it (clusters/web/node_views.py), so it lives below
all of them and imports none of them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from clusters import operations
from clusters.k3s import kubeconfig_expiry
from clusters.models import (
    RUN_ACTIVE,
    STEP_BROKEN,
    Cluster,
    ClusterStatus,
    LogLine,
    Node,
    NodeRole,
    NodeStatus,
    Run,
    RunStatus,
    Step,
    StepStatus,
)
from clusters.operations import upgrade
from clusters.web import queries
from clusters.web.display import step_title
from clusters.web.forms import HostForm

RUN_HISTORY = 20
AUDIT_SHOWN = 10

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


def nodes_context(cluster: Cluster, runs: list[Run], nodes: list[Node]) -> dict[str, Any]:
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


class UpgradeForm(forms.Form):
    """The target of an upgrade; valid only when clusters.operations.upgrade accepts it."""

    version = forms.CharField(
        label=gettext_lazy("Target version or channel"), max_length=64,
        help_text=gettext_lazy("A release such as v1.32.5+k3s1, or a channel (stable, v1.32) "
                               "which is pinned to its current release."))

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.target: upgrade.UpgradeTarget | None = None

    def clean_version(self) -> str:
        text = self.cleaned_data["version"].strip()
        try:
            self.target = upgrade.check_target(self.cluster, text)
        except upgrade.UpgradeRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


def upgrade_context(cluster: Cluster, runs: list[Run]) -> dict[str, Any]:
    """What the cluster page needs for the upgrade form and the kubeconfig notice."""
    idle = cluster.status == ClusterStatus.READY and not any(r.status in RUN_ACTIVE
                                                              for r in runs)
    note, note_is_warning = upgrade.backup_note(cluster)
    return {
        "kubeconfig_notice": kubeconfig_expiry.notice(cluster.kubeconfig_expires_at),
        "can_renew_kubeconfig": idle and bool(cluster.kubeconfig),
        "can_upgrade": idle and bool(cluster.kubeconfig),
        "upgrade_form": UpgradeForm(cluster=cluster),
        "upgrade_backup_note": note,
        "upgrade_backup_warning": note_is_warning,
    }


def _chosen_run(request: HttpRequest, runs: list[Run]) -> Run | None:
    """The run the page shows: `?run=<id>` from the history, else the latest."""
    wanted = request.GET.get("run", "")
    if wanted.isdigit():
        for run in runs:
            if run.pk == int(wanted):
                return run
        raise Http404("no such run for this cluster")
    return runs[0] if runs else None


def cluster_context(request: HttpRequest, cluster: Cluster) -> dict[str, Any]:
    """Everything the cluster page shows, in a fixed number of queries."""
    runs = list(cluster.runs.select_related("created_by").order_by("-created_at", "-pk")
                [:RUN_HISTORY])
    run = _chosen_run(request, runs)
    snapshot = queries.run_snapshot(run) if run else None
    last_seq: dict[int, int] = {}
    if run is not None:
        # One index probe per step (logline_unique_seq), not a sort of the run's whole log.
        newest = LogLine.objects.filter(step_id=OuterRef("pk")).order_by("-seq").values("seq")[:1]
        last_seq = {
            pk: last for pk, last in Step.objects.filter(run_id=run.pk).order_by()
            .annotate(last=Subquery(newest)).values_list("pk", "last") if last
        }
    steps = []
    failed_step = None
    for step in snapshot["steps"] if snapshot else []:
        step["display_title"] = step_title(step["title"])
        step["last_seq"] = last_seq.get(step["id"], 0)
        step["status_label"] = StepStatus(step["status"]).label
        steps.append(step)
        if step["status"] in STEP_BROKEN and failed_step is None:
            failed_step = step
    nodes = list(cluster.nodes.only(
        "role", "name", "private_ip", "public_ip", "status", "k3s_version", "cluster_id"))
    return {
        "cluster": cluster,
        "run": run,
        "runs": runs,
        "steps": steps,
        "failed_step": failed_step,
        "run_active": bool(run and run.status in RUN_ACTIVE),
        "can_retry": bool(run and run.status in (RunStatus.FAILED, RunStatus.CANCELLED)
                          and not any(r.status in RUN_ACTIVE for r in runs)),
        "can_destroy": hasattr(operations, "start_destroy")
        and not any(r.status in RUN_ACTIVE for r in runs),
        "servers": [node for node in nodes if node.role == NodeRole.SERVER],
        "agents": [node for node in nodes if node.role == NodeRole.AGENT],
        "resources": list(cluster.resources.order_by("created_at", "pk")),
        "audit_events": list(cluster.audit_events.order_by("-time", "-pk")[:AUDIT_SHOWN]),
        "has_kubeconfig": bool(cluster.kubeconfig),
        **upgrade_context(cluster, runs),
        **nodes_context(cluster, runs, nodes),
        "kubeconfig_filename": kubeconfig_filename(cluster),
        "live_labels": {
            "step": {value: str(label) for value, label in StepStatus.choices},
            "run": {value: str(label) for value, label in RunStatus.choices},
            "attempt": _("attempt %(n)s"),
            "late": _("No word from its worker since %(time)s."),
            "no_lines": _("No output yet."),
            "earlier": _("Load earlier lines"),
        },
    }


def kubeconfig_filename(cluster: Cluster) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cluster.name) or "cluster"
    return f"{safe}.yaml"
