"""HTTP views: thin wrappers around clusters.interface.queries, clusters.operations and the wizard.

Ownership is enforced by looking objects up through `queries.owned_clusters(user)`: another
user's cluster does not exist for them (404), so its existence is not even confirmed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from clusters import operations
from clusters.interface import audit, generated_key, queries, run_actions
from clusters.interface.forms import (
    COMMON_REGIONS,
    CloudAccountForm,
    ClusterFilterForm,
    KubeconfigForm,
)
from clusters.models import (
    AuditAction,
    CloudAccount,
    Cluster,
    Node,
    NodeRole,
)
from clusters.web import display
from clusters.web.actions import run_url, start_operation
from clusters.web.cluster_page import (
    cluster_context,
    kubeconfig_filename,
    log_context,
    log_tail_context,
    timeline_context,
)
from clusters.web.signed_in import SignedInRequest

DASHBOARD_PAGE_SIZE = 50


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and compose: the process answers and the DB is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@login_required
@require_GET
def run_status(request: HttpRequest, code: str, run_id: int) -> JsonResponse:
    run = queries.owned_run(request.user, code, run_id)
    return JsonResponse(queries.run_snapshot(run))


@login_required
@require_GET
def step_log(request: HttpRequest, code: str, run_id: int, step_id: int) -> JsonResponse:
    run = queries.owned_run(request.user, code, run_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    return JsonResponse(queries.log_page(run, step_id, after=after))


def _cursor(request: HttpRequest, name: str) -> int | None:
    """A non-negative integer query parameter, None when absent or not a number."""
    text = request.GET.get(name, "")
    return int(text) if text.isdigit() else None


# htmx stops polling an element answered with this status (https://htmx.org/docs/#polling:
# "respond with the HTTP response code 286 and the element will cancel the polling").
STOP_POLLING = 286


@login_required
@require_GET
@never_cache
def run_timeline(request: HttpRequest, code: str, run_id: int) -> HttpResponse:
    """The timeline partial, polled by htmx while the run is active: the steps, the run's
    badge and clock, and the side panels too when the run changed since the version the page
    sent (`?seen=`). Answered with 286 once the run is terminal, which ends the polling."""
    run = queries.owned_run(request.user, code, run_id)
    context = timeline_context(run)
    if request.GET.get("seen") != context["run_version"]:
        context = cluster_context(request, run.cluster, timeline=context)
        context["panels"] = True
    response = render(request, "clusters/_timeline_poll.html", context)
    if not context["run_active"]:
        response.status_code = STOP_POLLING
    return response


@login_required
@require_GET
@never_cache
def step_log_lines(request: HttpRequest, code: str, run_id: int, step_id: int) -> HttpResponse:
    """Log lines as HTML for an open step log: `?after=` appends (the same cursor as
    log.json), `?before=` pages back for "Load earlier lines", `?from=` shows a window from
    a line ("Jump to start", a search hit: `&lead=1&mark=N`), `?tail=1` the pane as it
    opens ("Jump to end"). 204 when nothing is new, which htmx answers by leaving the page
    alone (and polling on)."""
    run = queries.owned_run(request.user, code, run_id)
    if request.GET.get("tail"):
        return render(request, "clusters/_log_tail.html", log_tail_context(run, step_id))
    start = _cursor(request, "from")
    if start is not None:
        return render(request, "clusters/_log_lines.html", log_context(
            run, step_id, start=start, lead=bool(request.GET.get("lead")),
            mark=_cursor(request, "mark")))
    before = _cursor(request, "before")
    context = log_context(run, step_id, after=_cursor(request, "after") or 0, before=before)
    if context is None:
        return HttpResponse(status=204)
    return render(request, "clusters/_log_lines.html", context)


# --- the dashboard ----------------------------------------------------------------------------


def dashboard_clusters(user: Any, filters: dict[str, Any]) -> QuerySet[Cluster]:
    """The user's clusters that match the filters, newest first (node counts: node_counts)."""
    clusters = queries.owned_clusters(user).only(
        "name", "code", "status", "health", "k3s_version", "k3s_channel", "slb_address",
        "api_dns_name", "region", "created_at")
    if filters.get("status"):
        clusters = clusters.filter(status=filters["status"])
    if filters.get("health"):
        clusters = clusters.filter(health=filters["health"])
    if filters.get("q"):
        text = filters["q"]
        clusters = clusters.filter(Q(name__icontains=text) | Q(slb_address__startswith=text))
    return clusters.order_by("-created_at", "-pk")


def node_counts(clusters: list[Cluster]) -> list[Cluster]:
    """Give each cluster of a page its `server_count` and `agent_count`, in one query on the
    nodes of those clusters only. Not a JOIN + GROUP BY on the cluster list: that joined and
    grouped every node of every cluster the user owns, for the page and again for the
    paginator's COUNT; nor a per-row subquery, which PostgreSQL also runs for the rows an
    OFFSET skips (page 20 would count the nodes of 1,000 clusters)."""
    counts = {(row["cluster_id"], row["role"]): row["n"] for row in
              Node.objects.filter(cluster_id__in=[cluster.pk for cluster in clusters])
              .order_by().values("cluster_id", "role").annotate(n=Count("pk"))}
    for cluster in clusters:
        cluster.server_count = counts.get((cluster.pk, NodeRole.SERVER), 0)  # type: ignore[attr-defined]
        cluster.agent_count = counts.get((cluster.pk, NodeRole.AGENT), 0)  # type: ignore[attr-defined]
    return clusters


@login_required
@require_GET
def dashboard(request: SignedInRequest) -> HttpResponse:
    form = ClusterFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    page = Paginator(dashboard_clusters(request.user, filters), DASHBOARD_PAGE_SIZE).get_page(
        request.GET.get("page"))
    filtered = any(filters.values())
    clusters = display.dashboard_rows(node_counts(list(page.object_list)))
    return render(request, "clusters/dashboard.html", {
        "page": page, "clusters": clusters, "filter_form": form, "filtered": filtered,
        "has_accounts": CloudAccount.objects.filter(owner=request.user).exists()
        if not clusters and not filtered else True,
    })


# --- the cluster page -------------------------------------------------------------------------


@login_required
@require_GET
def cluster_detail(request: HttpRequest, code: Any) -> HttpResponse:
    cluster = queries.owned_cluster(request.user, code)
    return render(request, "clusters/cluster_detail.html", cluster_context(request, cluster))


@login_required
@require_GET
@never_cache
def cluster_live(request: HttpRequest, code: Any) -> HttpResponse:
    """The side panels of the cluster page alone (the timeline poll carries them too)."""
    cluster = queries.owned_cluster(request.user, code)
    return render(request, "clusters/_cluster_live.html", cluster_context(request, cluster))


@login_required
@require_GET
@never_cache
def kubeconfig_download(request: HttpRequest, code: Any) -> HttpResponse:
    """The admin kubeconfig as a file; every download is written to the audit trail."""
    cluster = queries.owned_cluster(request.user, code)
    if not cluster.kubeconfig:
        messages.warning(request, _("This cluster has no kubeconfig yet: it is written when "
                                    "the create run verifies the API through the SLB."))
        return redirect("clusters:cluster", code=cluster.code)
    audit.record(request, AuditAction.KUBECONFIG_DOWNLOAD, cluster)
    response = HttpResponse(cluster.kubeconfig, content_type="application/yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kubeconfig_filename(cluster)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
@never_cache
def kubeconfig_issue(request: HttpRequest, code: Any) -> HttpResponse:
    """A personal, revocable kubeconfig (its own ServiceAccount token) as a file, shown this
    once: the token is in this answer only (never stored; no-store), its ID in the audit."""
    cluster = queries.owned_cluster(request.user, code)
    form = KubeconfigForm(request.POST)
    lifetime = form.cleaned_data["lifetime"] if form.is_valid() else ""
    try:
        issued = operations.issue_kube_credential(cluster, request.user, lifetime)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect(reverse("clusters:cluster", args=[cluster.code]) + "#kubeconfig-heading")
    credential = issued.credential
    audit.record(request, AuditAction.KUBE_CREDENTIAL_ISSUE, cluster, lifetime=lifetime,
                 **operations.kube_credential_details(credential))
    response = HttpResponse(issued.kubeconfig, content_type="application/yaml; charset=utf-8")
    filename = kubeconfig_filename(cluster).removesuffix(".yaml") + f"-{credential.name}.yaml"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_POST
def kubeconfig_revoke(request: HttpRequest, code: Any, credential_id: int) -> HttpResponse:
    """Revoke one personal kubeconfig of the owner's cluster (audited with its IDs)."""
    cluster = queries.owned_cluster(request.user, code)
    credential = get_object_or_404(cluster.kube_credentials, pk=credential_id)
    try:
        operations.revoke_kube_credential(credential, request.user)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
    else:
        audit.record(request, AuditAction.KUBE_CREDENTIAL_REVOKE, cluster,
                     **operations.kube_credential_details(credential))
        messages.success(request, _("Revoked %(name)s: its kubeconfig is refused within seconds.")
                         % {"name": credential.name})
    return redirect(reverse("clusters:cluster", args=[cluster.code]) + "#kubeconfig-heading")


@login_required
@require_POST
def run_retry(request: HttpRequest, code: Any, run_id: int) -> HttpResponse:
    """Resume the run, or say why not; both are written to the audit trail (a refused retry
    from a stale tab is worth knowing about too)."""
    run = queries.owned_run(request.user, code, run_id)
    try:
        run_actions.retry(request, run)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Retrying: the run resumes from the step that stopped."))
    return redirect(run_url(run.cluster, run))


@login_required
@require_POST
def run_diagnostics(request: HttpRequest, code: Any, run_id: int) -> HttpResponse:
    """Read the failed run's hosts (unit status, journal, config keys, disk, memory) into the
    failed step's log, in a background task; audited like the other run actions."""
    run = queries.owned_run(request.user, code, run_id)
    try:
        collection = operations.start_diagnostics(run)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect(run_url(run.cluster, run))
    audit.record(request, AuditAction.RUN_DIAGNOSTICS, run.cluster, run=run.pk,
                 step=collection.step.key, hosts=collection.hosts)
    messages.success(request, ngettext(
        "Collecting diagnostics from %(count)d host: they appear at the end of the failed "
        "step's log in a few seconds. Nothing on the host is changed.",
        "Collecting diagnostics from %(count)d hosts: they appear at the end of the failed "
        "step's log in a few seconds. Nothing on the hosts is changed.",
        len(collection.hosts)) % {"count": len(collection.hosts)})
    return redirect(run_url(run.cluster, run))


@login_required
@require_POST
def run_cancel(request: HttpRequest, code: Any, run_id: int) -> HttpResponse:
    run = queries.owned_run(request.user, code, run_id)
    try:
        run_actions.cancel(request, run)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, _("Cancelling: the step that is running finishes first."))
    return redirect(run_url(run.cluster, run))


@login_required
@require_POST
def cluster_destroy(request: HttpRequest, code: Any) -> HttpResponse:
    """Start deleting everything in the ledger; the typed name must match."""
    cluster = queries.owned_cluster(request.user, code)
    problem = operations.confirm_problem(cluster, request.POST.get("confirm_name", ""))
    if problem:
        messages.error(request, problem)
        return redirect("clusters:cluster", code=cluster.code)
    keep_database = request.POST.get("keep_database") == "on"
    keep_instances = request.POST.get("keep_instances") == "on"
    return start_operation(
        request, cluster,
        lambda: operations.start_destroy(cluster, request.user, confirm_name=cluster.name,
                                         keep_database=keep_database,
                                         keep_instances=keep_instances),
        action=AuditAction.CLUSTER_DESTROY,
        details=lambda run: {"keep_database": keep_database, "keep_instances": keep_instances},
        success=lambda run: _("Destroying the cluster: every resource in its ledger will be "
                              "deleted."))


@login_required
@require_POST
@never_cache
def generated_key_download(request: HttpRequest, code: Any) -> HttpResponse:
    """The private key of the key pair the panel generated for the cluster's instances, as a
    file for their owner (POST: never fetched by a link or a prefetch; no-store), each
    download in the audit trail with the public key's fingerprint, never the key. Offered
    by the destroy form: "keep the instances" needs it (operations.keep_instances_problem)."""
    cluster = queries.owned_cluster(request.user, code)
    try:
        key, _fingerprint = generated_key.take(request, cluster)
    except operations.OperationRefused as exc:
        messages.error(request, str(exc))
        return redirect("clusters:cluster", code=cluster.code)
    response = HttpResponse(key, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="k3s-{cluster.name}-id_ecdsa"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- cloud accounts ---------------------------------------------------------------------------


@login_required
def cloud_accounts(request: SignedInRequest) -> HttpResponse:
    """The user's AccessKeys (secrets never shown) and a form to add one, checked live."""
    form = CloudAccountForm(request.POST if request.method == "POST" else None,
                            owner=request.user)
    if request.method == "POST" and form.is_valid():
        account = form.save()
        audit.record(request, AuditAction.CLOUD_ACCOUNT_ADD, None, account=account.name,
                     identity=account.identity)
        messages.success(request, _("Cloud account %(name)s added.") % {"name": account.name})
        return redirect("clusters:cloud-accounts")
    accounts = CloudAccount.objects.filter(owner=request.user).annotate(
        cluster_count=Count("clusters")).order_by("name")
    return render(request, "clusters/cloud_accounts.html",
                  {"form": form, "accounts": accounts, "regions": COMMON_REGIONS})


RESTORE_DOC = Path(settings.BASE_DIR) / "docs" / "etcd-restore.md"


@login_required
@require_GET
def etcd_restore_doc(request: HttpRequest) -> HttpResponse:
    """docs/etcd-restore.md as the cluster page links it: restoring an embedded-etcd cluster
    is done on the hosts by hand, as K3s documents it, so the page shows the steps."""
    return HttpResponse(RESTORE_DOC.read_text(encoding="utf-8"),
                        content_type="text/plain; charset=utf-8")
