"""The live timeline as the server renders it: the partial htmx polls (200 while the run is
active, 286 once it is terminal, the same markup as the page), the side panels only when the
run moved, the log appended on its `?after=` cursor and paged back with "Load earlier lines",
and the attempt number of a step that was tried more than once."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import LogLine, Run, RunKind, RunStatus, Step, StepStatus
from tests.support.factories import make_cluster, make_user

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


@pytest.fixture
def cluster(user: Any) -> Any:
    return make_cluster(owner=user, nodes=2, name="edge")


def make_run(cluster: Any) -> Run:
    return pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("first", "First step", "test.work"),
        pipeline.StepSpec("second", "Second step", "test.work", ["first"])], start=False)


def set_step(run: Run, key: str, **fields: Any) -> Step:
    Step.objects.filter(run=run, key=key).update(**fields)
    return Step.objects.get(run=run, key=key)


def timeline_url(cluster: Any, run: Run) -> str:
    return reverse("clusters:run-timeline", args=[cluster.code, run.pk])


def timeline_of(html: str) -> str:
    match = re.search(r'<ol class="timeline" id="timeline">.*?</ol>', html, re.S)
    assert match, "no timeline in the markup"
    return match.group(0)


def test_the_partial_is_200_while_active_and_286_once_terminal(cluster: Any,
                                                               owner_client: Client) -> None:
    run = make_run(cluster)
    set_step(run, "first", status=StepStatus.RUNNING, started_at=timezone.now(), attempts=1)
    active = owner_client.get(timeline_url(cluster, run))
    assert active.status_code == 200
    assert "step-running" in active.content.decode()
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    Step.objects.filter(run=run).update(status=StepStatus.SUCCEEDED, finished_at=timezone.now())
    done = owner_client.get(timeline_url(cluster, run))
    assert done.status_code == 286
    page = done.content.decode()
    assert page.count("step-succeeded") == 2
    # The run's badge comes along, out of band, so the head of the page says Succeeded too.
    assert re.search(r'<p class="run-meta" id="run-meta" hx-swap-oob="true">\s*'
                     r'<span class="badge run-status status-succeeded"', page)


def test_the_partial_is_the_markup_the_page_renders(cluster: Any, owner_client: Client) -> None:
    run = make_run(cluster)
    now = timezone.now()
    set_step(run, "first", status=StepStatus.SUCCEEDED, attempts=2,
             started_at=now - timedelta(seconds=75), finished_at=now)
    LogLine.objects.bulk_create(LogLine(step=run.steps.get(key="first"), seq=i, time=now,
                                        text=f"line {i}") for i in range(1, 300))
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    partial = owner_client.get(timeline_url(cluster, run)).content.decode()
    assert timeline_of(partial) == timeline_of(page)
    assert "1m 15s" in timeline_of(page)
    # While the run is active, the page polls that very partial.
    assert f'hx-get="{timeline_url(cluster, run)}"' in page
    assert "js/run.js" in page and "vendor/htmx/htmx.min.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()


def test_side_panels_come_only_when_the_run_changed(cluster: Any, owner_client: Client) -> None:
    run = make_run(cluster)
    first = owner_client.get(timeline_url(cluster, run)).content.decode()
    assert 'id="cluster-panels" class="panels"' in first  # no version sent: all of it
    seen = re.search(r'id="run-version" name="seen" value="(\w+)"', first).group(1)
    same = owner_client.get(timeline_url(cluster, run), {"seen": seen}).content.decode()
    assert "cluster-panels" not in same and "cluster-summary" not in same
    assert timeline_of(same) == timeline_of(first)
    set_step(run, "first", status=StepStatus.RUNNING, started_at=timezone.now())
    moved = owner_client.get(timeline_url(cluster, run), {"seen": seen}).content.decode()
    for oob in ('id="cluster-summary" class="summary" hx-swap-oob="true"',
                'id="run-callout" hx-swap-oob="true"',
                'hx-swap-oob="true">'):
        assert oob in moved, oob
    assert re.search(r'id="run-version" name="seen" value="(\w+)"', moved).group(1) != seen


def test_a_retried_step_shows_its_attempt_number_in_english_and_chinese(
        cluster: Any, user: Any, client_for: Any) -> None:
    run = make_run(cluster)
    now = timezone.now()
    set_step(run, "first", status=StepStatus.SUCCEEDED, attempts=2, started_at=now, finished_at=now)
    # Four executions, three of them only polls after a Wait: tried once, so no number shown.
    set_step(run, "second", status=StepStatus.SUCCEEDED, attempts=4, polls=3, started_at=now,
             finished_at=now)
    english = timeline_of(client_for(user).get(
        reverse("clusters:cluster", args=[cluster.code])).content.decode())
    chinese = timeline_of(client_for(user, **ZH).get(
        reverse("clusters:cluster", args=[cluster.code])).content.decode())
    assert re.findall(r'<span class="step-attempts">([^<]*)</span>', english) == ["attempt 2"]
    assert re.findall(r'<span class="step-attempts">([^<]*)</span>', chinese) == ["第 2 次尝试"]
    assert "第  次尝试" not in chinese


def lines_url(cluster: Any, run: Run, step: Step) -> str:
    return reverse("clusters:step-log-lines", args=[cluster.code, run.pk, step.pk])


def test_the_log_appends_after_its_cursor_and_stops_once_drained(
        cluster: Any, owner_client: Client) -> None:
    run = make_run(cluster)
    step = set_step(run, "first", status=StepStatus.RUNNING, started_at=timezone.now())
    url = lines_url(cluster, run, step)
    assert owner_client.get(url, {"after": 0}).status_code == 204  # nothing yet: poll on
    now = timezone.now()
    LogLine.objects.bulk_create([LogLine(step=step, seq=1, time=now, text="hello <b>"),
                                 LogLine(step=step, seq=2, time=now, text="oops",
                                         stream="stderr")])
    page = owner_client.get(url, {"after": 0}).content.decode()
    assert page.startswith('<span class="line" data-seq="1">hello &lt;b&gt;\n</span>'
                           '<span class="line stderr" data-seq="2">oops\n</span>')
    assert f'hx-get="{url}?after=2"' in page  # the next cursor, still running
    assert owner_client.get(url, {"after": 2}).status_code == 204
    set_step(run, "first", status=StepStatus.SUCCEEDED, finished_at=timezone.now())
    LogLine.objects.create(step=step, seq=3, time=now, text="done")
    last = owner_client.get(url, {"after": 2}).content.decode()
    assert '<span class="line" data-seq="3">done\n</span>' in last
    assert "hx-get" not in last  # finished and drained: no cursor, the polling ends


def test_load_earlier_lines_pages_back_from_the_first_line_shown(
        cluster: Any, owner_client: Client) -> None:
    run = make_run(cluster)
    step = set_step(run, "first", status=StepStatus.SUCCEEDED, finished_at=timezone.now())
    LogLine.objects.bulk_create(LogLine(step=step, seq=i, time=timezone.now(), text=f"l{i}")
                                for i in range(1, 1201))
    url = lines_url(cluster, run, step)
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert f'hx-get="{url}?before=1001"' in page  # the tail shows lines 1001..1200
    older = owner_client.get(url, {"before": 1001}).content.decode()
    seqs = [int(n) for n in re.findall(r'data-seq="(\d+)"', older)]
    assert seqs == list(range(501, 1001))
    assert older.startswith('<button type="button" class="btn btn-small log-earlier" '
                            f'hx-get="{url}?before=501"')
    oldest = owner_client.get(url, {"before": 501}).content.decode()
    assert [int(n) for n in re.findall(r'data-seq="(\d+)"', oldest)] == list(range(1, 501))
    assert "log-earlier" not in oldest  # nothing older


def test_someone_elses_timeline_and_log_are_404(cluster: Any, client_for: Any) -> None:
    run = make_run(cluster)
    stranger = client_for(make_user())
    assert stranger.get(timeline_url(cluster, run)).status_code == 404
    step = run.steps.first()
    assert stranger.get(lines_url(cluster, run, step), {"after": 0}).status_code == 404
