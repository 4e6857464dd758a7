"""What the pages' speed-ups must not change (benchmarks/ui_latency.py measures the speed):
each dashboard row counts its own cluster's nodes, on every page, in a constant number of
queries; the labels worked out once per page are the ones each row showed before, in English
and Chinese; each timeline step's log tools point at that step; and a step's omission marker
is found on its own index, not by reading every line the step kept."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from clusters.engine import pipeline
from clusters.interface import queries
from clusters.models import (
    LOG_OMITTED,
    ClusterStatus,
    Health,
    LogLine,
    Node,
    NodeRole,
    RunKind,
)
from tests.support.factories import make_cluster, make_user

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def rows_of(html: str) -> dict[str, dict[str, str]]:
    """Each dashboard row by cluster name: its cells' text by data-label."""
    rows = {}
    for row in re.findall(r"<tr>\s*<th scope=\"row\".*?</tr>", html, re.S):
        name = re.search(r'<a href="[^"]+">([^<]+)</a>', row).group(1)  # type: ignore[union-attr]
        cells = {label: re.sub(r"<[^>]+>", "", text).strip() for label, text in
                 re.findall(r'data-label="([^"]+)"[^>]*>(.*?)</t[dh]>', row, re.S)}
        cells["href"] = re.search(r'<a href="([^"]+)"', row).group(1)  # type: ignore[union-attr]
        cells["datetime"] = re.search(r'<time datetime="([^"]+)"', row).group(1)  # type: ignore[union-attr]
        rows[name] = cells
    return rows


def get(client: Client, url: str, **headers: Any) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, **headers)
    assert response.status_code == 200
    return response.content.decode(), len(captured.captured_queries)


def test_each_row_counts_its_own_nodes_on_every_page_in_constant_queries(
        user: Any, owner_client: Client) -> None:
    dashboard = reverse("clusters:dashboard")
    oldest = make_cluster(owner=user, nodes=5, name="oldest")  # page 2 once there are 51
    make_cluster(owner=user, nodes=0, name="empty")
    make_cluster(owner=user, nodes=1, name="single")
    other = make_cluster(owner=make_user(), nodes=4, name="theirs")
    _, few = get(owner_client, dashboard)
    for index in range(50):
        make_cluster(owner=user, nodes=3, name=f"c{index:02d}")
    # A removed node still counts, as it did: the columns count the cluster's node rows.
    Node.objects.create(cluster=oldest, role=NodeRole.AGENT, name="gone", status="removed",
                        private_ip="10.0.9.9")

    first, many = get(owner_client, dashboard)
    second, second_count = get(owner_client, dashboard + "?page=2")
    assert many == few == second_count
    rows = rows_of(first) | rows_of(second)
    assert "theirs" not in rows and len(rows) == 53
    assert (rows["oldest"]["Servers"], rows["oldest"]["Agents"]) == ("2", "4")
    assert (rows["empty"]["Servers"], rows["empty"]["Agents"]) == ("0", "0")
    assert (rows["single"]["Servers"], rows["single"]["Agents"]) == ("1", "0")
    assert all((rows[f"c{i:02d}"]["Servers"], rows[f"c{i:02d}"]["Agents"]) == ("2", "1")
               for i in range(50))
    assert "oldest" in rows_of(second)  # the oldest is alone on page 2
    assert other.nodes.count() == 4


def test_rows_show_the_labels_links_and_times_each_cluster_had(user: Any,
                                                               client_for: Any) -> None:
    ready = make_cluster(owner=user, name="alpha", status=ClusterStatus.READY,
                         health=Health.DEGRADED)
    failed = make_cluster(owner=user, name="beta", status=ClusterStatus.FAILED)
    for headers, language in (({}, "en"), (ZH, "zh-hans")):
        html, _ = get(client_for(user), reverse("clusters:dashboard"), **headers)
        rows = rows_of(html)
        with translation.override(language):
            headers_text = re.findall(r'<th scope="col"[^>]*>([^<]+)</th>', html)
            for cluster in (ready, failed):
                row = rows[cluster.name]
                # The data-labels are the column headers, in the page's language.
                assert list(row)[:8] == headers_text
                assert row[str(translation.gettext("Status"))] == cluster.get_status_display()
                assert row[str(translation.gettext("Health"))] == cluster.get_health_display()
                assert row["href"] == reverse("clusters:cluster", args=[cluster.code])
                assert row["datetime"] == timezone.localtime(cluster.created_at).isoformat()
        if language == "zh-hans":
            assert "就绪" in html and "名称" in headers_text


def test_each_timeline_step_links_its_own_log_lines_search_and_download(
        user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, name="edge")
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("first", "First step", "test.work"),
        pipeline.StepSpec("second", "Second step", "test.work", ["first"])], start=False)
    steps = list(run.steps.order_by("position"))
    LogLine.objects.bulk_create(LogLine(step=steps[0], seq=seq, time=timezone.now(),
                                        text=f"line {seq}") for seq in range(1, 251))
    html, _ = get(owner_client, reverse("clusters:cluster", args=[cluster.code]))
    blocks = re.findall(r'<li class="step .*?</li>', html, re.S)
    assert len(blocks) == 2
    for block, step, other in ((blocks[0], steps[0], steps[1]), (blocks[1], steps[1], steps[0])):
        def url(name: str, pk: int) -> str:
            return reverse(name, args=[cluster.code, run.pk, pk])

        lines = url("clusters:step-log-lines", step.pk)
        for link in (f'hx-get="{lines}?from=0"', f'hx-get="{lines}?tail=1"',
                     f'hx-get="{url("clusters:step-log-search", step.pk)}"',
                     f'href="{url("clusters:step-log-download", step.pk)}"'):
            assert link in block, link
        for name in ("clusters:step-log-lines", "clusters:step-log-search",
                     "clusters:step-log-download"):
            assert url(name, other.pk) not in block
    # The longer log opens on its newest 200 lines, led by "Load earlier lines".
    first_lines = reverse("clusters:step-log-lines", args=[cluster.code, run.pk, steps[0].pk])
    assert f'hx-get="{first_lines}?before=51"' in blocks[0]
    assert f'hx-get="{first_lines}?after=50"' in blocks[0]
    assert "?before=" not in blocks[1] and "No output yet." in blocks[1]


def test_a_steps_marker_is_read_on_its_own_index(user: Any) -> None:
    """The marker lookup of every log page: on logline_omitted_marker (the marker rows only),
    not a scan of all the lines a step kept (benchmarks/ui_latency.py: 30-70 ms at 120,000)."""
    cluster = make_cluster(owner=user)
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("install", "Install K3s", "test.work")], start=False)
    step = run.steps.get()
    now = timezone.now()
    LogLine.objects.bulk_create(
        [LogLine(step=step, seq=seq, time=now, text=f"line {seq}") for seq in range(1, 6)]
        + [LogLine(step=step, seq=6, time=now, stream=LOG_OMITTED, text="",
                   omitted_lines=90, omitted_bytes=900)]
        + [LogLine(step=step, seq=seq, time=now, text=f"line {seq}") for seq in range(96, 120)])
    with CaptureQueriesContext(connection) as captured:
        page = queries.log_page(run, step.pk, after=100)
    assert page["omitted"] == {"from": 6, "to": 95, "lines": 90, "bytes": 900}
    marker_sql = next(q["sql"] for q in captured.captured_queries if "'omitted'" in q["sql"])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":  # a tiny table: make the planner show its choice
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + marker_sql)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + marker_sql)
        plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
    assert "logline_omitted_marker" in plan, plan
