"""The log pane of a bounded step log (clusters/engine/steplog.py): the marker row and cut
lines in words, in English and Chinese; jump to start and end; search (highlighted, bounded,
the owner's only); download (text/plain, attachment, the kept log with its markers, the
owner's only, no secret); ANSI escapes and HTML in host output never reach the page raw."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.core.redaction import Redactor
from clusters.engine import pipeline
from clusters.engine.steplog import LogLimits, StepLog
from clusters.interface import queries
from clusters.models import LOG_OMITTED, LogLine, RunKind, Step, StepStatus
from clusters.web import step_log
from tests.support.factories import make_cluster, make_user

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
SECRET = "Pw-7hQ2-never-on-a-page"
LIMITS = LogLimits(head_lines=5, tail_lines=300, max_line_chars=4000)


@pytest.fixture
def step(user: Any) -> Step:
    """A finished step that printed 2,000 lines (a secret in some), a 1 MB line, ANSI colour
    and HTML: kept are lines 1-5, the marker at 6 and lines 1,702-2,001 (2,001 printed)."""
    cluster = make_cluster(owner=user, name="edge")
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("install", "Install K3s", "test.work")], start=False)
    step = run.steps.get()
    log = StepLog(step.pk, Redactor([SECRET]), max_delay=60, limits=LIMITS)
    for index in range(1, 1991):
        log.write(f"line {index} password {SECRET}" if index % 100 == 0 else f"line {index}")
    log.write("\x1b[1;31mERROR\x1b[0m k3s exited <script>alert('x')</script>")
    log.write("z" * 1_000_000)
    for index in range(1, 10):
        log.write(f"after {index}")
    log.flush()
    Step.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, finished_at=timezone.now())
    return Step.objects.get(pk=step.pk)


def lines_url(step: Step, query: str) -> str:
    run = step.run
    return reverse("clusters:step-log-lines", args=[run.cluster.code, run.pk, step.pk]) + query


def url(step: Step, name: str) -> str:
    return reverse(name, args=[step.run.cluster.code, step.run_id, step.pk])


def test_the_stored_log_is_the_head_the_marker_and_the_tail(step: Step) -> None:
    rows = list(LogLine.objects.filter(step=step).order_by("seq"))
    assert len(rows) == 5 + 1 + 300
    assert rows[5].stream == LOG_OMITTED and rows[5].omitted_lines == 2001 - 5 - 300
    assert rows[-1].text == "after 9" and rows[-1].seq == 2001


def test_jump_to_start_shows_the_head_the_marker_in_words_and_later_lines(
        step: Step, owner_client: Client) -> None:
    html = owner_client.get(lines_url(step, "?from=0")).content.decode()
    seqs = [int(s) for s in re.findall(r'data-seq="(\d+)"', html)]
    assert seqs[:7] == [1, 2, 3, 4, 5, 6, 1702]
    # all 306 rows fit in one page of 500: no "Load later lines", and no live cursor (the
    # step has finished)
    assert len(seqs) == 306 and "log-earlier" not in html
    assert "log-later" not in html and "log-more" not in html
    omitted = step_log.thousands(
        LogLine.objects.get(step=step, stream=LOG_OMITTED).omitted_bytes)
    assert f"… 1,696 lines ({omitted} bytes) omitted …" in html
    zh = owner_client.get(lines_url(step, "?from=0"), **ZH).content.decode()
    assert f"… 省略了 1,696 行\uff08{omitted} 字节\uff09…" in zh  # full-width brackets


def test_a_cut_line_says_how_much_was_cut_and_ansi_and_html_never_reach_the_page_raw(
        step: Step, owner_client: Client) -> None:
    html = owner_client.get(lines_url(step, "?from=1980")).content.decode()
    assert "… [cut 996,000 characters]" in html
    assert "截去 996,000 个字符" in owner_client.get(lines_url(step, "?from=1980"),
                                                  **ZH).content.decode()
    assert "ERROR k3s exited &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "\x1b" not in html and "\\x1b" not in html and "[31m" not in html
    assert "<script>alert" not in html
    page = owner_client.get(reverse("clusters:cluster", args=[step.run.cluster.code])).content
    assert b"[1;31m" not in page


def test_jump_to_end_renders_the_pane_as_it_opens(step: Step, owner_client: Client) -> None:
    html = owner_client.get(lines_url(step, "?tail=1")).content.decode()
    assert f"?before={2001 - 200 + 1}" in html  # "Load earlier lines"
    assert f"?after={2001 - 200}" in html  # the cursor that loads the newest 200


def test_search_finds_lines_highlighted_bounded_and_jumps_to_them(
        step: Step, owner_client: Client) -> None:
    found = owner_client.get(url(step, "clusters:step-log-search"), {"q": "LINE 1950"})
    html = found.content.decode()
    assert found.status_code == 200
    assert "1 matching line." in html
    assert "<mark>line 1950</mark>" in html
    assert f"?from={1950 - 21}&amp;lead=1&amp;mark=1950" in html
    window = owner_client.get(lines_url(step, f"?from={1950 - 21}&lead=1&mark=1950"))
    assert 'class="line line-mark" data-seq="1950"' in window.content.decode()
    assert "?before=1930" in window.content.decode()

    many = owner_client.get(url(step, "clusters:step-log-search"), {"q": "line"}).content.decode()
    assert many.count('class="log-hit"') == step_log.SEARCH_LIMIT
    assert "294 matching lines; the first 100 are listed." in many
    assert "<mark>" not in owner_client.get(url(step, "clusters:step-log-search"),
                                            {"q": "<b>"}).content.decode()
    secret = owner_client.get(url(step, "clusters:step-log-search"), {"q": "password"})
    assert SECRET not in secret.content.decode()
    assert "line 1900 <mark>password</mark> ***" in secret.content.decode()


def test_search_and_download_are_the_owners_only(step: Step, client_for: Any) -> None:
    stranger = client_for(make_user())
    assert stranger.get(url(step, "clusters:step-log-search"), {"q": "line"}).status_code == 404
    assert stranger.get(url(step, "clusters:step-log-download")).status_code == 404
    assert Client().get(url(step, "clusters:step-log-download")).status_code == 302


def test_download_is_the_kept_log_with_its_markers_and_no_secret(
        step: Step, owner_client: Client) -> None:
    response = owner_client.get(url(step, "clusters:step-log-download"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == \
        f'attachment; filename="edge-run{step.run_id}-install.log"'
    text = b"".join(response.streaming_content).decode()
    lines = text.splitlines()
    assert lines[0] == f"# Log of “Install K3s”, run {step.run_id} of cluster edge"
    assert lines[1].startswith("# The panel keeps a step's first and newest lines: … 1,696 "
                               "lines (") and "from line 6" in lines[1]
    assert lines[2:8] == ["line 1", "line 2", "line 3", "line 4", "line 5",
                          lines[2 + 5]]
    assert re.fullmatch(r"… 1,696 lines \([\d,]+ bytes\) omitted …", lines[7])
    assert lines[8] == "line 1702"
    assert lines[-1] == "after 9"
    assert "z" * 4000 + " … [cut 996,000 characters]" in lines
    assert "line 1800 password ***" in lines
    assert SECRET not in text and "\x1b" not in text
    assert len(lines) == 2 + 306


def test_a_window_ends_with_load_later_lines_and_at_the_end_of_a_live_log_follows_it(
        user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, name="live")
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("work", "Work", "test.work")], start=False)
    step = run.steps.get()
    Step.objects.filter(pk=step.pk).update(status=StepStatus.RUNNING)
    log = StepLog(step.pk, Redactor([]), max_delay=60)
    for index in range(1, 1201):
        log.write(f"line {index}")
    log.flush()
    first = owner_client.get(lines_url(step, "?from=0")).content.decode()
    assert len(re.findall(r'data-seq="', first)) == 500
    assert "?from=500" in first and "log-later" in first and "log-more" not in first
    last = owner_client.get(lines_url(step, "?from=1000")).content.decode()
    assert len(re.findall(r'data-seq="', last)) == 200
    assert "log-later" not in last and "?after=1200" in last  # the live cursor


def _trimmed_while_followed(user: Any) -> Step:
    """A running step: head 5, tail 10; 20 lines stored (gap 6-10), then 20 more (gap 6-30)."""
    cluster = make_cluster(owner=user, name="followed")
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("work", "Work", "test.work")], start=False)
    step = run.steps.get()
    Step.objects.filter(pk=step.pk).update(status=StepStatus.RUNNING)
    log = StepLog(step.pk, Redactor([]), max_delay=60,
                  limits=LogLimits(head_lines=5, tail_lines=10, max_line_chars=4000))
    for index in range(1, 41):
        log.write(f"line {index}")
        if index in (20, 40):
            log.flush()
    return step


def test_a_pane_past_the_marker_says_which_lines_were_trimmed_before_it_read_them(
        user: Any, owner_client: Client) -> None:
    """The pane had read up to line 15 (past the marker at 6); lines 16-30 were trimmed
    before its next poll. It said nothing and jumped to 31 before."""
    step = _trimmed_while_followed(user)
    html = owner_client.get(lines_url(step, "?after=15")).content.decode()
    assert "… lines 16 to 30 were trimmed from the stored log while this page was open …" in html
    assert [int(s) for s in re.findall(r'data-seq="(\d+)"', html)] == [16, *range(31, 41)]
    assert "?after=40" in html
    zh = owner_client.get(lines_url(step, "?after=15"), **ZH).content.decode()
    assert "在本页面打开期间\uff0c第 16 至 30 行已从保存的日志中删去" in zh  # full-width comma
    # A pane before the marker sees the marker row itself, and no extra notice.
    before = owner_client.get(lines_url(step, "?after=3")).content.decode()
    assert "were trimmed" not in before and "… 25 lines (" in before


def test_each_api_log_page_reports_the_range_the_log_omits_now(user: Any) -> None:
    step = _trimmed_while_followed(user)
    page = queries.log_page(step.run, step.pk, after=15)
    assert page["omitted"] == {"from": 6, "to": 30, "lines": 25,
                               "bytes": sum(len(f"line {i}") for i in range(6, 31))}
    assert [line["seq"] for line in page["lines"]] == list(range(31, 41))
