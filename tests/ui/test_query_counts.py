"""The dashboard and the cluster page cost the same number of queries however much there is."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import CloudResource, LogLine, Node, NodeRole, RunKind, Step
from tests.support.factories import make_cluster


def queries_for(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


def add_clusters(owner: Any, count: int, nodes: int) -> None:
    for _ in range(count):
        make_cluster(owner=owner, nodes=nodes)


def test_dashboard_queries_do_not_grow_with_clusters_or_nodes(user: Any,
                                                              owner_client: Client) -> None:
    url = reverse("clusters:dashboard")
    add_clusters(user, 2, nodes=1)
    few = queries_for(owner_client, url)
    add_clusters(user, 30, nodes=5)
    many = queries_for(owner_client, url)
    assert many == few
    filtered = queries_for(owner_client, url + "?status=draft&health=unknown&q=cluster")
    assert filtered == few
    page = owner_client.get(url).content.decode()
    assert page.count('class="badge status-draft"') == 32


def grow(cluster: Any, steps: int, nodes: int, lines: int, resources: int) -> None:
    specs = [pipeline.StepSpec(f"s{i}", f"Step {i}", "test.work") for i in range(steps)]
    run = pipeline.create_run(cluster, RunKind.TEST, specs, start=False)
    start = cluster.nodes.count()
    Node.objects.bulk_create(
        Node(cluster=cluster, role=NodeRole.AGENT, private_ip=f"10.1.{(start + i) // 250}."
             f"{(start + i) % 250 + 1}") for i in range(nodes))
    now = timezone.now()
    for step in Step.objects.filter(run=run):
        LogLine.objects.bulk_create(LogLine(step=step, seq=i + 1, time=now, text=f"line {i}")
                                    for i in range(lines))
    CloudResource.objects.bulk_create(
        CloudResource(cluster=cluster, kind="slb", provider_id=f"lb-{run.pk}-{i}",
                      client_token=f"tok-{run.pk}-{i}", region="cn-hangzhou")
        for i in range(resources))


def test_cluster_page_queries_do_not_grow(user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, nodes=2)
    url = reverse("clusters:cluster", args=[cluster.code])
    live = reverse("clusters:cluster-live", args=[cluster.code])
    grow(cluster, steps=2, nodes=1, lines=3, resources=1)
    few, few_live = queries_for(owner_client, url), queries_for(owner_client, live)
    for _ in range(4):
        grow(cluster, steps=15, nodes=10, lines=200, resources=3)
    many, many_live = queries_for(owner_client, url), queries_for(owner_client, live)
    assert (many, many_live) == (few, few_live)
    older = cluster.runs.order_by("created_at").first()
    assert queries_for(owner_client, f"{url}?run={older.pk}") == few


def test_the_timeline_poll_and_the_log_lines_do_not_grow(user: Any, owner_client: Client) -> None:
    """The poll htmx makes each second costs the same however long the run and its logs are,
    and much less when the run did not move (no side panels then)."""
    cluster = make_cluster(owner=user, nodes=2)

    def costs() -> tuple[int, int, int]:
        run = cluster.runs.order_by("-created_at", "-pk").first()
        timeline = reverse("clusters:run-timeline", args=[cluster.code, run.pk])
        page = owner_client.get(timeline).content.decode()
        seen = page.split('name="seen" value="', 1)[1].split('"', 1)[0]
        step = run.steps.order_by("position").first()
        lines = reverse("clusters:step-log-lines", args=[cluster.code, run.pk, step.pk])
        with CaptureQueriesContext(connection) as changed:
            assert owner_client.get(timeline).status_code == 200
        with CaptureQueriesContext(connection) as same:
            assert owner_client.get(timeline, {"seen": seen}).status_code == 200
        return (len(changed.captured_queries), len(same.captured_queries),
                queries_for(owner_client, f"{lines}?after=10"))

    grow(cluster, steps=2, nodes=1, lines=30, resources=1)
    few = costs()
    grow(cluster, steps=40, nodes=10, lines=1200, resources=3)
    assert costs() == few
    assert few[1] < few[0]
