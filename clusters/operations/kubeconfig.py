"""Renew the kubeconfig: the rule to start it, and its step graph (re-fetch k3s.yaml; restart K3s
on that one server only if its certificate is close to expiry, then fetch again)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, Run, RunKind
from clusters.operations.runs import lock_ready, ready_problem

KUBECONFIG_TITLES = (
    gettext_noop("Fetch the kubeconfig from a server"),
    gettext_noop("Restart K3s on that server if the certificate expires within 30 days"),
    gettext_noop("Fetch the renewed kubeconfig"),
)


def kubeconfig_renewal_plan(cluster: Cluster) -> list[StepSpec]:
    fetch, restart, refetch = KUBECONFIG_TITLES
    return [
        StepSpec("fetch", fetch, "k3s.kubeconfig"),
        StepSpec("restart_if_expiring", restart, "kubeconfig.restart_if_expiring", ["fetch"]),
        StepSpec("refetch", refetch, "kubeconfig.refetch", ["restart_if_expiring"]),
    ]


def _ready_refusal() -> str:
    return _("Only a ready cluster's kubeconfig can be renewed; this one is %(status)s.")


def retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this renewal ('' when it may): as for a new one, the cluster
    must be ready and idle."""
    return ready_problem(cluster, _ready_refusal())


def start_kubeconfig_renewal(cluster: Cluster, user: Any = None) -> Run:
    """Re-fetch k3s.yaml; restart K3s on that one server only if its certificate is close
    to expiry (K3s renews it at start), then fetch again."""
    with transaction.atomic():
        locked = lock_ready(cluster, _ready_refusal())
        return pipeline.create_run(locked, RunKind.RENEW_KUBECONFIG,
                                   kubeconfig_renewal_plan(locked),
                                   created_by=user)
