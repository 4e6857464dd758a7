"""Retry: when a stopped run may be resumed, and resuming it.

Why a module of its own: a run resumed later changes the cluster as it is now, not as it was
when the run started. Only the cluster's newest run of its kind may resume (an older one would
undo what a newer one did: reinstall an older K3s, put K3s back on a host removed since),
never beside another active run, and only when the kind's own rules still hold; those rules
live with each operation (`create`, `nodes`, `upgrade`, `kubeconfig`) and are asked here, so
the Retry button (`retry_refusal`) and the action (`retry`) can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.utils.translation import gettext as _

from clusters.engine import pipeline
from clusters.models import Cluster, ClusterStatus, Run, RunKind
from clusters.operations import allowlist, create, kubeconfig, nodes, upgrade
from clusters.operations.runs import OperationRefused, busy_refusal, diagnosing

# Each kind's own rules, asked again before it resumes ('' when they hold).
_KIND_PROBLEM: dict[str, Callable[[Cluster, Run], str]] = {
    RunKind.CREATE: create.retry_problem,
    RunKind.ADD_NODE: nodes.add_retry_problem,
    RunKind.REMOVE_NODE: nodes.remove_retry_problem,
    RunKind.UPGRADE: upgrade.retry_problem,
    RunKind.RENEW_KUBECONFIG: kubeconfig.retry_problem,
    RunKind.API_ALLOWLIST: allowlist.retry_problem,
}

# What the cluster is while the resumed run goes on (as when the kind starts).
_STATUS_DURING: dict[str, ClusterStatus] = {
    RunKind.CREATE: ClusterStatus.PROVISIONING,
    RunKind.DESTROY: ClusterStatus.DESTROYING,
    RunKind.ADD_NODE: ClusterStatus.UPDATING,
    RunKind.REMOVE_NODE: ClusterStatus.UPDATING,
    RunKind.UPGRADE: ClusterStatus.UPDATING,
}


def retry_refusal(run: Run) -> str:
    """'' when Retry may resume `run` now; else why not, in the reader's language.

    `run.cluster` is the cluster as the caller read it (locked, in `retry`). A few queries,
    however long the history: the page asks this for the run it shows.
    """
    cluster = run.cluster
    if cluster.status == ClusterStatus.DESTROYED:  # first: the one answer for every run
        return _("This cluster is destroyed: its runs can no longer be retried.")
    if not run.can_retry:
        return _("Only a failed or cancelled run can be retried.")
    if run.kind != RunKind.DESTROY and cluster.runs.filter(kind=RunKind.DESTROY).exists():
        return _("Destroying this cluster has started: only the destroy run can be retried.")
    if not cluster.is_idle:
        return busy_refusal()
    newest = (cluster.runs.filter(kind=run.kind).order_by("-created_at", "-pk")
              .values_list("pk", flat=True).first())
    if newest != run.pk:
        return _("%(kind)s #%(newer)s was started after this run: only the newest one of its "
                 "kind can be retried.") % {"kind": run.get_kind_display(), "newer": newest}
    check = _KIND_PROBLEM.get(run.kind)
    return check(cluster, run) if check else ""


def retry(run: Run) -> Run:
    """Resume a failed or cancelled run from the steps that did not finish; OperationRefused
    (saying why) when `retry_refusal` says no.

    The cluster row is locked first, as every start does, so a second tab's Retry or a new
    operation waits and then sees this one; the checks, the cluster's status and the reopened
    run commit together or not at all (a refused retry leaves the status as it was).
    """
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=run.cluster_id)
        # The run's row lock is the one a diagnostics collection takes: a retried step must
        # not append to the log a collection is still writing.
        current = Run.objects.select_for_update().get(pk=run.pk)
        current.cluster = cluster
        problem = retry_refusal(current)
        if problem:
            raise OperationRefused(problem)
        if diagnosing(current):
            raise OperationRefused(_("Diagnostics are being written into this run's log: press "
                                     "Retry again once they are there (a few seconds)."))
        during = _STATUS_DURING.get(current.kind)
        if during:
            Cluster.objects.filter(pk=cluster.pk).update(status=during)
        if not pipeline.retry(current):  # it stopped being stopped meanwhile
            raise OperationRefused(_("Only a failed or cancelled run can be retried."))
    current.refresh_from_db()
    return current
