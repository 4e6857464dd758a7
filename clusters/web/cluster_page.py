"""What the cluster page shows, read in a fixed number of queries, and the forms it carries
(add a node, upgrade K3s).

Why a module of its own: the page is rendered by the view that shows it and again by the
actions that answer an invalid form on it (clusters/web/node_views.py), so it lives below
all of them and imports none of them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _

from clusters import operations
from clusters.adapters import etcd_members
from clusters.core import allowlist
from clusters.interface import queries
from clusters.interface.forms import AddInstancesForm, AddNodeForm, KubeconfigForm, UpgradeForm
from clusters.k3s import etcd, kubeconfig_expiry
from clusters.models import (
    STEP_ACTIVE,
    STEP_BROKEN,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    LogLine,
    Node,
    NodeRole,
    ResourceState,
    Run,
    Step,
    StepStatus,
)
from clusters.operations import kube_credentials, upgrade

RUN_HISTORY = 20
AUDIT_SHOWN = 10
LOG_TAIL = 200  # lines an opened log starts with; earlier ones load on request

def annotate_removal(nodes: list[Node], cluster: Cluster | None = None) -> None:
    """Give each node the confirm text of its Remove button (`removal_note`, with a warning
    when the cluster would lose HA) and whether it may be removed (`removable`). An
    embedded-etcd server whose leaving would break quorum (by the last health check) is not
    removable, and says why; the removal asks the members again when it starts."""
    servers = [n for n in nodes if n.role == NodeRole.SERVER and n.is_live]
    etcd_cluster = cluster is not None and cluster.datastore_kind == DatastoreKind.ETCD
    bought = operations.bought_instance_ids(cluster) if cluster is not None else set()
    for node in nodes:
        node.removable = True
        # An instance the panel bought is released after the removal: the form says so and
        # offers to keep it (operations.instance_removal_note).
        node.instance_note = operations.instance_removal_note(node, bought)
        if etcd_cluster and cluster is not None and node.role == NodeRole.SERVER \
                and len(servers) > 1:
            quorum = operations.etcd_quorum_problem(cluster, node, cluster.etcd_members or [])
            if quorum:
                node.removable = False
                node.removal_note = quorum
                continue
        if node.role != NodeRole.SERVER:
            node.removal_note = _("It is cordoned and drained, K3s is uninstalled on the host "
                                  "and the node is deleted from the cluster.")
        elif len(servers) <= 1:
            node.removable = False
            node.removal_note = _("This is the last server: it cannot be removed. Add another "
                                  "server first, or destroy the cluster.")
        else:
            left = len(servers) - 1
            node.removal_note = _(
                "It leaves the SLB first, then its etcd member is removed and K3s is "
                "uninstalled on the host.") if etcd_cluster else _(
                "It leaves the SLB first, then K3s is uninstalled on the host and it leaves "
                "the RDS whitelist.")
            if warning := operations.ha_warning(left):
                node.removal_note += " " + warning


def nodes_context(cluster: Cluster, nodes: list[Node]) -> dict[str, Any]:
    """What the cluster page needs for the node buttons, the add form and the destroy form."""
    annotate_removal(nodes, cluster)
    active = [node for node in nodes if node.is_live]
    return {
        "can_change_nodes": cluster.can_change_nodes,
        # A changed host key stops a create (a failed cluster) as well as a ready one.
        "can_check_host_keys": cluster.is_idle and cluster.status != ClusterStatus.DESTROYED,
        "add_node_form": AddNodeForm(cluster=cluster),
        # Instances bought like the cluster's first ones: offered only when it bought them.
        "add_instances_form": (None if operations.instances_refusal(cluster)
                               else AddInstancesForm(cluster=cluster)),
        "instance_billed": (operations.billed_summary(cluster, 1, 0)
                            if cluster.instance_order else ""),
        "active_servers": sum(node.role == NodeRole.SERVER for node in active),
        "active_agents": sum(node.role == NodeRole.AGENT for node in active),
        # A failed cluster offers destroy in its run's callout instead.
        "can_destroy_now": cluster.can_destroy and cluster.status == ClusterStatus.READY,
        "keeps_rds": cluster.datastore_kind == DatastoreKind.RDS,
        "keeps_instances": bool(cluster.instance_order),
        # The generated key pair's private half, offered before "keep the instances".
        "offers_ssh_key": operations.holds_generated_key(cluster),
        # Embedded etcd: an added server that makes the count even buys no failure tolerance.
        "etcd_add_server_warning": operations.etcd_even_warning(cluster, 1),
    }


def allowlist_context(cluster: Cluster, resources: list[Any]) -> dict[str, Any]:
    """The API's allowed sources, and whether the owner may change them now (the cluster is
    idle and its listener sits behind an ACL the panel bought: clusters/operations/allowlist)."""
    guarded = any(r.kind == allowlist.LEDGER_KIND and r.state == ResourceState.PRESENT
                  and r.provider_id for r in resources)
    cidrs = list(cluster.api_allowed_cidrs or [])
    return {"api_allowed_cidrs": cidrs, "api_allowed_text": "\n".join(cidrs),
            "can_change_allowlist": guarded and cluster.can_change_nodes}


# Ended (revoked, expired, not issued) kubeconfigs shown; live ones are always all listed,
# since this list is where they are revoked.
CREDENTIALS_SHOWN = 50


def credentials_context(cluster: Cluster) -> dict[str, Any]:
    """The personal kubeconfigs issued for this cluster (newest first) and the form: every
    live one (each has its Revoke), then the newest ended ones."""
    live = list(cluster.kube_credentials.filter(status__in=kube_credentials.LIVE))
    ended_rows = cluster.kube_credentials.exclude(status__in=kube_credentials.LIVE)
    ended = list(ended_rows[:CREDENTIALS_SHOWN])
    hidden = ended_rows.count() - len(ended) if len(ended) == CREDENTIALS_SHOWN else 0
    credentials = sorted(live + ended, key=lambda c: (c.created_at, c.pk), reverse=True)
    for credential in credentials:
        credential.expired = kube_credentials.is_expired(credential)  # type: ignore[attr-defined]
        credential.revocable = credential.status in kube_credentials.LIVE  # type: ignore[attr-defined]
    return {"kube_credentials": credentials, "kube_credentials_hidden": hidden,
            "kubeconfig_form": KubeconfigForm(),
            "can_issue_kubeconfig": operations.kube_credential_refusal(cluster) is None,
            "kubeconfig_default_lifetime": kube_credentials.DEFAULT_LIFETIME,
            "cluster_gone": cluster.status == ClusterStatus.DESTROYED}


SNAPSHOTS_SHOWN = 50


def etcd_context(cluster: Cluster) -> dict[str, Any]:
    """Embedded etcd: each member as the last health check saw it, the quorum they make,
    and the snapshots recorded (newest first). Empty for any other datastore."""
    if cluster.datastore_kind != DatastoreKind.ETCD or cluster.status == ClusterStatus.DESTROYED:
        # Destroyed: K3s is uninstalled, its members and snapshot files are gone.
        return {"embedded_etcd": False}
    members = [{**m, "error": etcd_members.member_error(m)}
               for m in (cluster.etcd_members or []) if isinstance(m, dict)]
    voting = etcd_members.voters(members)
    quorum = etcd.Quorum(len(voting), sum(bool(m.get("healthy")) for m in voting))
    return {
        "embedded_etcd": True,
        "etcd_members": members,
        "etcd_quorum": quorum,
        "etcd_can_refresh": not operations.snapshot_refresh_refusal(cluster),
        "etcd_snapshots": list(cluster.etcd_snapshots.all()[:SNAPSHOTS_SHOWN]),
    }


def upgrade_context(cluster: Cluster) -> dict[str, Any]:
    """What the cluster page needs for the upgrade form and the kubeconfig notice."""
    idle = cluster.can_change_nodes
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


def run_version(run: Run, steps: list[dict[str, Any]]) -> str:
    """A short fingerprint of what a run's state is now (its status, each step's status and
    attempts). The timeline poll sends back the one it last saw; the side panels (summary,
    callout, nodes, ledger...) are rendered again only when it differs, i.e. when the run
    moved, not on every poll."""
    state = "|".join([str(run.pk), run.status,
                      *(f"{s['id']}:{s['status']}:{s['attempts']}" for s in steps)])
    return hashlib.sha256(state.encode()).hexdigest()[:16]


# A step id no real step has, to split a reversed URL around the step id's place.
_STEP_SLOT = 987654321987


def _step_urls(run: Run) -> dict[str, tuple[str, str]]:
    """The log URLs of this run's steps as (prefix, suffix) around the step id: reversed once
    per run rather than five times per step (with the words translated once before the loop,
    in clusters/_timeline.html, that halved the timeline's render time at 15 steps). The step
    id is the last argument, so it is the last number in the path."""
    code = run.cluster.code
    urls = {}
    for name, view in (("lines_url", "clusters:step-log-lines"),
                       ("search_url", "clusters:step-log-search"),
                       ("download_url", "clusters:step-log-download")):
        prefix, suffix = reverse(view, args=[code, run.pk, _STEP_SLOT]).rsplit(
            str(_STEP_SLOT), 1)
        urls[name] = (prefix, suffix)
    return urls


def timeline_context(run: Run) -> dict[str, Any]:
    """What the timeline partial shows for one run (clusters/_timeline.html): the page renders
    it once and the htmx poll renders it again from this same function, so the step markup
    exists in one template only. Three queries, however many steps and log lines."""
    snapshot = queries.run_snapshot(run)
    # One index probe per step (logline_unique_seq), not a sort of the run's whole log.
    newest = LogLine.objects.filter(step_id=OuterRef("pk")).order_by("-seq").values("seq")[:1]
    last_seq = {
        pk: last for pk, last in Step.objects.filter(run_id=run.pk).order_by()
        .annotate(last=Subquery(newest)).values_list("pk", "last") if last
    }
    urls = _step_urls(run)
    steps = []
    failed_step = None
    for step in snapshot["steps"]:
        for name, (prefix, suffix) in urls.items():
            step[name] = f"{prefix}{step['id']}{suffix}"
        step["last_seq"] = last_seq.get(step["id"], 0)
        # Tail: a long log opens near its end; "Load earlier lines" pages back from there.
        step["log_after"] = max(0, step["last_seq"] - LOG_TAIL)
        step["status_label"] = StepStatus(step["status"]).label
        # Follow the action: the log of a step that runs now or broke opens by itself.
        step["open_log"] = step["status"] == StepStatus.RUNNING or step["status"] in STEP_BROKEN
        steps.append(step)
        if step["status"] in STEP_BROKEN and failed_step is None:
            failed_step = step
    return {
        "run": run,
        "steps": steps,
        "failed_step": failed_step,
        "run_active": run.is_active,
        "run_version": run_version(run, snapshot["steps"]),
    }


def log_tail_context(run: Run, step_id: int) -> dict[str, Any]:
    """The log pane as an opened log starts (clusters/_log_tail.html): the newest LOG_TAIL
    lines, led by "Load earlier lines" when there are more. "Jump to end" renders it again."""
    step = get_object_or_404(Step.objects.only("id"), pk=step_id, run_id=run.pk)
    last = LogLine.objects.filter(step_id=step.pk).order_by("-seq") \
        .values_list("seq", flat=True).first() or 0
    return {"run": run, "step": {"id": step.pk, "last_seq": last,
                                 "log_after": max(0, last - LOG_TAIL)}}


def log_context(run: Run, step_id: int, *, after: int = 0, before: int | None = None,
                start: int | None = None, lead: bool = False, mark: int | None = None
                ) -> dict[str, Any] | None:
    """Lines for an open step log, in one of three directions (clusters/_log_lines.html):

    - appending (`after`): the lines after the cursor, and a new cursor when more may come
      (the step is still active, diagnostics are being appended to it, or a full page came
      back); None when there is nothing new yet, so the poll leaves the page as it is;
    - paging back (`before`): the page of lines just before the first one shown, and the
      "Load earlier lines" button again while there are older ones;
    - a window from a line (`start`: "Jump to start" is 0, a search hit a few lines before
      it, `mark`ed): a page of lines, "Load earlier lines" first when `lead` and there are
      older ones, and "Load later lines" after it while it was full; at the log's end the
      live cursor instead, so a window that reaches the end follows the log again.
    """
    if start is not None:
        page = queries.log_page(run, step_id, after=start)
        full = len(page["lines"]) >= queries.LOG_PAGE
        live = page["status"] in STEP_ACTIVE or page["diagnosing"]
        return {"lines": page["lines"], "earlier": start if lead and start > 0 else None,
                "later": page["next"] if full else None,
                "more": page["next"] if live and not full else None, "mark": mark,
                "step_id": step_id, "run": run}
    if before is not None:
        start = max(0, before - 1 - queries.LOG_PAGE)
        page = queries.log_page(run, step_id, after=start, limit=max(1, before - 1 - start))
        return {"lines": [line for line in page["lines"] if line["seq"] < before],
                "earlier": start if start > 0 else None, "more": None,
                "step_id": step_id, "run": run}
    page = queries.log_page(run, step_id, after=after)
    more = page["status"] in STEP_ACTIVE or page["diagnosing"] \
        or len(page["lines"]) >= queries.LOG_PAGE
    # The pane's cursor is past the marker and lines after it were trimmed before the poll
    # read them: a row says so (the marker it showed counted fewer), and the cursor moves on.
    omitted = page["omitted"]
    trimmed = {"first": after + 1, "last": omitted["to"]} \
        if omitted and omitted["from"] <= after < omitted["to"] else None
    if not page["lines"] and more and not trimmed:
        return None
    cursor = max(page["next"], trimmed["last"] if trimmed else 0)
    return {"lines": page["lines"], "earlier": None, "more": cursor if more else None,
            "trimmed": trimmed, "step_id": step_id, "run": run}


def retry_context(cluster: Cluster, run: Run | None) -> dict[str, Any]:
    """Whether the shown run offers Retry, and why not when it stopped but may not resume:
    the same rule operations.retry enforces (a few queries, for a stopped run only)."""
    if run is None or not run.can_retry:
        return {"can_retry": False, "retry_refusal": ""}
    run.cluster = cluster
    refusal = operations.retry_refusal(run)
    return {"can_retry": not refusal, "retry_refusal": refusal}


def cluster_context(request: HttpRequest, cluster: Cluster, *,
                    timeline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the cluster page shows, in a fixed number of queries. `timeline` is the
    already read timeline_context of the run shown, when the caller has it (the poll)."""
    runs = list(cluster.runs.select_related("created_by").order_by("-created_at", "-pk")
                [:RUN_HISTORY])
    if timeline is None:
        run = _chosen_run(request, runs)
        timeline = timeline_context(run) if run else {
            "run": None, "steps": [], "failed_step": None, "run_active": False,
            "run_version": ""}
    run = timeline["run"]
    nodes = list(cluster.nodes.only(
        "role", "name", "private_ip", "public_ip", "status", "k3s_version", "cluster_id",
        "ecs_instance_id"))
    resources = list(cluster.resources.order_by("created_at", "pk"))
    return {
        "cluster": cluster,
        **timeline,
        "runs": runs,
        **retry_context(cluster, run),
        "can_destroy": cluster.can_destroy,
        "servers": [node for node in nodes if node.role == NodeRole.SERVER],
        "agents": [node for node in nodes if node.role == NodeRole.AGENT],
        "resources": resources,
        **allowlist_context(cluster, resources),
        "audit_events": list(cluster.audit_events.order_by("-time", "-pk")[:AUDIT_SHOWN]),
        "has_kubeconfig": bool(cluster.kubeconfig),
        **upgrade_context(cluster),
        **credentials_context(cluster),
        **nodes_context(cluster, nodes),
        **etcd_context(cluster),
        "kubeconfig_filename": kubeconfig_filename(cluster),
    }


def kubeconfig_filename(cluster: Cluster) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in cluster.name) or "cluster"
    return f"{safe}.yaml"
