"""Collect diagnostics from a failed run's hosts on request (the run page's "Collect
diagnostics" button), into the end of the failed step's log.

Why the failed step's log: it is where the page already points a person ("press Log on the
red step"), it opens by itself on a failed run, and it is where the automatic diagnostics of
a failed install are; a second place to look would be a place to miss.

The rules:

* Only a failed run, and one collection at a time per run.
* The probes only read (`systemctl status`, `journalctl`, `cat` of config.yaml, `df`,
  `free`; clusters.k3s.forensics): they start, stop and write nothing on the host, take no
  lock that K3s, apt or an install script takes, and cost a few milliseconds of CPU. So a
  collection may run while another run of the cluster is active (a destroy, a new add-node)
  without disturbing it, and it is not refused then.
* What a collection could disturb is the failed run's own log: a Retry of that run would
  append to the same step. So while `Step.diagnosing_until` is in the future, Retry waits
  (clusters.operations.runs.retry), and a collection never starts on a run that runs again.
  Both decide under the run's row lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.adapters import forensics
from clusters.engine.stepcontext import StepContext
from clusters.models import STEP_BROKEN, Cluster, Node, Run, RunStatus, Step
from clusters.operations.runs import OperationRefused

# The longest one collection may take: login (15 s, sudo probe 30 s) plus every probe's own
# timeout (75 s), twice when more than eight hosts are read in two waves. Past it the
# mark expires by itself, so a worker that died mid-collection does not block Retry.
DIAGNOSTICS_SECONDS = 300
ON_REQUEST = "collected on request"


@dataclass(frozen=True)
class Collection:
    """A collection that was started: the step whose log receives it, and the hosts read."""

    step: Step
    hosts: list[str]


def failed_step(run: Run) -> Step | None:
    """The step whose log receives the diagnostics: the run's first broken step."""
    return Step.objects.filter(run_id=run.pk, status__in=STEP_BROKEN).order_by("position").first()


def hosts_of(run: Run) -> list[Node]:
    """The hosts the run's broken steps were about; when none names one (a datastore check,
    a cloud step), every host of the cluster that is still one of its nodes."""
    named = {step.args.get("node_id") for step in
             Step.objects.filter(run_id=run.pk, status__in=STEP_BROKEN).only("args")}
    named.discard(None)
    members = Node.objects.filter(cluster_id=run.cluster_id).present().order_by("pk")
    chosen = [node for node in members if node.pk in named]
    return chosen or list(members)


def start_diagnostics(run: Run) -> Collection:
    """Mark the failed step as receiving diagnostics and queue their collection (after
    commit); OperationRefused when the run is not failed or a collection is underway."""
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.FAILED:
            raise OperationRefused(_("Diagnostics are collected for a failed run only."))
        step = failed_step(locked)
        if step is None:
            raise OperationRefused(_("This run has no failed step to add diagnostics to."))
        now = timezone.now()
        if step.diagnosing_until and step.diagnosing_until > now:
            raise OperationRefused(_("Diagnostics are being collected already: they appear at "
                                     "the end of the failed step's log."))
        hosts = hosts_of(locked)
        if not hosts:
            raise OperationRefused(_("This cluster has no hosts to read diagnostics from."))
        Step.objects.filter(pk=step.pk).update(
            diagnosing_until=now + timedelta(seconds=DIAGNOSTICS_SECONDS))
        transaction.on_commit(lambda: collect_diagnostics.delay(step.pk))
    return Collection(step, [node.private_ip for node in hosts])


def collect(step_id: int) -> int:
    """Read the hosts of the step's run into the step's log (redacted with the cluster's
    secrets, as the step's own lines are); returns how many hosts were read."""
    step = Step.objects.select_related("run").filter(pk=step_id).first()
    if step is None:
        return 0
    try:
        run = step.run
        if run.status != RunStatus.FAILED or not step.diagnosing_until:
            return 0  # retried or expired meanwhile: its log belongs to the run again
        cluster = Cluster.objects.select_related("cloud_account").get(pk=run.cluster_id)
        hosts = hosts_of(run)
        ctx = StepContext(step=step, run=run, cluster=cluster, _secrets=cluster.secret_values())
        forensics.collect(ctx, hosts, ON_REQUEST)
        return len(hosts)
    finally:
        Step.objects.filter(pk=step_id).update(diagnosing_until=None)


# --- Celery entry point (on the default queue, like the health checks; the name must never
# change: queued messages name it) ----------------------------------------------------------


@shared_task(name="clusters.collect_diagnostics")
def collect_diagnostics(step_id: int) -> int:
    return collect(step_id)
