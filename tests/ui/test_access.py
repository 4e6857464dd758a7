"""Who may see what: owners only (404 for anyone else), login required, CSRF enforced, and
the audit trail of the kubeconfig download."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.engine import pipeline
from clusters.models import AuditAction, AuditEvent, RunKind, RunStatus
from tests.support.factories import make_cluster, make_user

KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\n"


@pytest.fixture
def cluster(user: Any) -> Any:
    cluster = make_cluster(owner=user, nodes=3, kubeconfig=KUBECONFIG, name="prod-eu")
    pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                        start=False)
    return cluster


def cluster_urls(cluster: Any) -> list[str]:
    run = cluster.runs.get()
    step = run.steps.get()
    return [
        reverse("clusters:cluster", args=[cluster.code]),
        reverse("clusters:cluster-live", args=[cluster.code]),
        reverse("clusters:kubeconfig", args=[cluster.code]),
        reverse("clusters:run-status", args=[cluster.code, run.pk]),
        reverse("clusters:step-log", args=[cluster.code, run.pk, step.pk]),
    ]


def test_another_user_gets_404_on_every_cluster_url(cluster: Any, client_for: Any) -> None:
    stranger = client_for(make_user())
    for url in cluster_urls(cluster):
        assert stranger.get(url).status_code == 404, url
    run = cluster.runs.get()
    for name in ("clusters:run-retry", "clusters:run-cancel"):
        assert stranger.post(reverse(name, args=[cluster.code, run.pk])).status_code == 404
    assert not AuditEvent.objects.exists()


def test_another_users_cluster_is_not_on_the_dashboard(cluster: Any, client_for: Any) -> None:
    page = client_for(make_user()).get(reverse("clusters:dashboard"))
    assert page.status_code == 200
    assert "prod-eu" not in page.content.decode()
    assert "prod-eu" in client_for(cluster.owner).get(reverse("clusters:dashboard")).content\
        .decode()


def test_anonymous_user_is_sent_to_login(cluster: Any, client: Client) -> None:
    urls = [reverse("clusters:dashboard"), reverse("clusters:wizard"),
            reverse("clusters:cloud-accounts"),
            reverse("clusters:wizard-step", args=["account"]), *cluster_urls(cluster)]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login") + "?next="), url
    login = client.get(reverse("login"))
    assert login.status_code == 200
    assert 'name="username"' in login.content.decode()


def test_post_without_csrf_token_is_refused(cluster: Any, user: Any) -> None:
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    run = cluster.runs.get()
    Run = type(run)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    refused = [
        strict.post(reverse("clusters:run-retry", args=[cluster.code, run.pk])),
        strict.post(reverse("clusters:wizard-step", args=["account"]),
                    {"name": "x", "region": "cn-hangzhou"}),
        strict.post(reverse("clusters:cloud-accounts"), {"name": "x"}),
        strict.post(reverse("logout")),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED  # nothing happened
    # The same form with its token works: the pages do carry one.
    page = strict.get(reverse("clusters:cluster", args=[cluster.code]))
    assert "csrfmiddlewaretoken" in page.content.decode()


def test_kubeconfig_download_is_a_file_and_is_audited(cluster: Any, owner_client: Client) -> None:
    url = reverse("clusters:kubeconfig", args=[cluster.code])
    response = owner_client.get(url, REMOTE_ADDR="10.9.8.7", HTTP_USER_AGENT="pytest-browser")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="prod-eu.yaml"'
    assert "no-store" in response["Cache-Control"]
    assert response.content.decode() == KUBECONFIG
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.KUBECONFIG_DOWNLOAD
    assert event.user == cluster.owner
    assert event.username == cluster.owner.username
    assert event.cluster == cluster
    assert event.cluster_name == "prod-eu"
    assert event.ip_address == "10.9.8.7"
    assert event.user_agent == "pytest-browser"
    assert event.time is not None
    # The owner sees it in the cluster page's activity list.
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Kubeconfig downloaded" in page
    assert "10.9.8.7" in page


def test_kubeconfig_before_it_exists_explains_instead_of_failing(user: Any,
                                                                 owner_client: Client) -> None:
    cluster = make_cluster(owner=user)
    response = owner_client.get(reverse("clusters:kubeconfig", args=[cluster.code]),
                                follow=True)
    assert response.status_code == 200
    assert "no kubeconfig yet" in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_retry_resumes_a_failed_run_and_is_audited(cluster: Any, owner_client: Client) -> None:
    run = cluster.runs.get()
    type(run).objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    run.steps.update(status="failed", error="The host is not in the RDS whitelist")
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "The host is not in the RDS whitelist" in page
    assert "Retry from the failed step" in page
    response = owner_client.post(reverse("clusters:run-retry", args=[cluster.code, run.pk]),
                                 REMOTE_ADDR="10.1.1.1")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.steps.get().status == "pending"
    event = AuditEvent.objects.get()
    assert (event.action, event.cluster, event.details) == (AuditAction.RUN_RETRY, cluster,
                                                             {"run": run.pk})


def test_a_refused_retry_shows_why_and_is_audited(cluster: Any, owner_client: Client) -> None:
    """A stale tab's Retry of an older run: the page says why instead of offering the
    button, and the attempt is written to the audit trail like an accepted one."""
    older = cluster.runs.get()
    type(older).objects.filter(pk=older.pk).update(status=RunStatus.FAILED)
    older.steps.update(status="failed", error="The host is not in the RDS whitelist")
    newer = pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("b", "B", "test.work")],
                                start=False)
    type(newer).objects.filter(pk=newer.pk).update(status=RunStatus.SUCCEEDED)
    url = reverse("clusters:cluster", args=[cluster.code]) + f"?run={older.pk}"
    page = owner_client.get(url).content.decode()
    reason = f"Engine test #{newer.pk} was started after this run"
    assert "Retry from the failed step" not in page
    assert "Retry is not offered for this run: " + reason in page

    response = owner_client.post(reverse("clusters:run-retry", args=[cluster.code, older.pk]),
                                 REMOTE_ADDR="10.1.1.2", follow=True)
    assert reason in response.content.decode()
    older.refresh_from_db()
    assert older.status == RunStatus.FAILED
    event = AuditEvent.objects.get()
    assert (event.action, event.cluster, event.ip_address) == (
        AuditAction.RUN_RETRY_REFUSED, cluster, "10.1.1.2")
    assert event.details["run"] == older.pk and reason in event.details["reason"]
    assert "Retry refused" in owner_client.get(url).content.decode()
