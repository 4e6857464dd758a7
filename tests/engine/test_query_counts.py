"""Admin pages and the run/log views cost the same number of queries at any size."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clusters.models import CloudResource, LogLine, Node, NodeRole, Run, RunKind, Step
from tests.support.factories import make_cluster, make_user

pytestmark = pytest.mark.django_db


def grow(cluster, size: int) -> Run:
    """Give a cluster `size` nodes, resources, runs, steps and 10*size log lines."""
    base = Node.objects.filter(cluster=cluster).count()
    Node.objects.bulk_create(
        Node(cluster=cluster, role=NodeRole.AGENT, private_ip=f"10.9.{(base + i) // 200}."
             f"{(base + i) % 200 + 1}") for i in range(size)
    )
    CloudResource.objects.bulk_create(
        CloudResource(cluster=cluster, kind="slb", client_token=f"{cluster.pk}-{base}-{i}",
                      region="cn-hangzhou") for i in range(size)
    )
    Run.objects.bulk_create(Run(cluster=cluster, kind=RunKind.TEST) for _ in range(size))
    run = Run.objects.create(cluster=cluster, kind=RunKind.CREATE)
    Step.objects.bulk_create(
        Step(run=run, key=f"s{i}", title=f"Step {i}", handler="test.work", position=i)
        for i in range(size)
    )
    step = run.steps.first()
    now = timezone.now()
    LogLine.objects.bulk_create(
        LogLine(step=step, seq=i + 1, time=now, text=f"line {i}") for i in range(10 * size)
    )
    return run


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(queries)


def assert_flat(make_url: Callable[[int], str], client) -> None:
    first = make_url(5)
    client.get(first)  # warm caches (content types, session) that a first request fills
    small = count_queries(client, first)
    large = count_queries(client, make_url(60))
    assert small == large, f"{make_url(60)}: {small} queries at 5 rows, {large} at 60"


@pytest.fixture
def staff_client(client):
    admin = make_user("operator", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


@pytest.mark.parametrize(
    "page", ["cluster", "node", "cloudresource", "run", "step", "logline", "cloudaccount",
             "auditevent"]
)
def test_admin_changelists_are_flat(staff_client, page):
    cluster = make_cluster(nodes=3)
    grown = 0

    def url(size: int) -> str:
        nonlocal grown
        grow(cluster, size - grown)
        make_cluster(nodes=2)
        grown = size
        return reverse(f"admin:clusters_{page}_changelist")

    assert_flat(url, staff_client)


def test_admin_change_pages_are_flat(staff_client):
    cluster = make_cluster(nodes=3)
    runs: dict[int, Run] = {}

    def url_for(model: str) -> Callable[[int], str]:
        def url(size: int) -> str:
            runs[size] = grow(cluster, size)
            target = {"cluster": cluster.pk, "run": runs[size].pk,
                      "step": runs[size].steps.first().pk}[model]
            return reverse(f"admin:clusters_{model}_change", args=[target])
        return url

    for model in ("cluster", "run", "step"):
        assert_flat(url_for(model), staff_client)


def test_run_and_log_views_are_flat_and_owner_only(client):
    owner = make_user()
    cluster = make_cluster(owner=owner)
    client.force_login(owner)

    def run_url(size: int) -> str:
        run = grow(cluster, size)
        return reverse("clusters:run-status", args=[cluster.code, run.pk])

    def log_url(size: int) -> str:
        run = grow(cluster, size)
        return reverse("clusters:step-log", args=[cluster.code, run.pk, run.steps.first().pk])

    assert_flat(run_url, client)
    assert_flat(log_url, client)

    run = cluster.runs.filter(kind=RunKind.CREATE).first()
    step = run.steps.first()
    page = client.get(reverse("clusters:step-log", args=[cluster.code, run.pk, step.pk]),
                      {"after": 10}).json()
    assert page["lines"][0]["seq"] == 11 and len(page["lines"]) == 500  # one page of 600
    assert page["next"] == 510

    client.force_login(make_user())
    assert client.get(reverse("clusters:run-status", args=[cluster.code, run.pk])).status_code \
        == 404
    client.logout()
    response = client.get(reverse("clusters:run-status", args=[cluster.code, run.pk]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
