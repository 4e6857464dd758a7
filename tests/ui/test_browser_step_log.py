"""In Chromium: a failed step's bounded log (clusters/engine/steplog.py) opens at its end;
"Jump to start" shows its first lines and the marker that counts what was omitted; a cut
line says so; the search is used from the keyboard alone (type, Enter, Down to a hit, Enter)
and shows the hit's line marked; "Jump to end" goes back and follows; Download saves the
kept log. In English and in Chinese, with screenshots of the log pane in
test-artifacts/screenshots/."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from clusters.core.redaction import Redactor
from clusters.engine import pipeline
from clusters.engine.steplog import LogLimits, StepLog
from clusters.models import Run, RunKind, RunStatus, Step, StepStatus
from tests.support.factories import make_cluster, make_user
from tests.ui.browser import SCREENSHOTS, chromium, log_in, new_page

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def failed_step_with_a_long_log() -> tuple[Any, Step]:
    user = make_user("ops")
    cluster = make_cluster(owner=user, name="edge-prod", status="failed")
    run = pipeline.create_run(cluster, RunKind.CREATE, [
        pipeline.StepSpec("k3s_install", "Install K3s on the first server", "test.work")],
        created_by=user, start=False)
    step = run.steps.get()
    log = StepLog(step.pk, Redactor(["Pw-7hQ2-never-shown"]), max_delay=60,
                  limits=LogLimits(head_lines=40, tail_lines=400, max_line_chars=300))
    log.write("+ curl -sfL https://get.k3s.io | INSTALL_K3S_VERSION=v1.32.5+k3s1 sh -s - server")
    for index in range(2, 20_001):
        log.write(f"[10.0.1.11] \x1b[32m[INFO]\x1b[0m unpacking layer {index:05d}")
    log.write("[10.0.1.11] token " + "A" * 100_000)
    log.write("[10.0.1.11] \x1b[1;31mError:\x1b[0m k3s exited: datastore unreachable", "stderr")
    log.flush()
    now = timezone.now()
    Step.objects.filter(pk=step.pk).update(status=StepStatus.FAILED, attempts=1, started_at=now,
                                           finished_at=now, error="K3s did not start.")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED, finished_at=now)
    return cluster, step


LANGUAGES = (
    ("en-US", {"start": "Jump to start", "end": "Jump to end", "omitted": "19,562 lines (",
               "cut": "[cut 99,718 characters]", "hits": "1 matching line."}),
    ("zh-CN", {"start": "跳到开头", "end": "跳到末尾", "omitted": "省略了 19,562 行",
               "cut": "截去 99,718 个字符", "hits": "1 行匹配。"}),
)


def test_jump_search_and_download_in_a_bounded_log(live_server: Any, tmp_path: Any) -> None:
    cluster, step = failed_step_with_a_long_log()
    seqs = "() => [...document.querySelectorAll('.log-lines .line')].map(l => +l.dataset.seq)"
    with chromium() as browser:
        for language, words in LANGUAGES:
            page = new_page(browser, live_server.url, width=1280, height=900, locale=language)
            log_in(page, "ops", "pw-ops")
            page.goto(f"/clusters/{cluster.code}/")
            page.wait_for_function("() => window.htmx !== undefined")
            pane = page.locator(f"#log-{step.pk}")
            lines = pane.locator(".log-lines")
            # A broken step's log opens by itself, at its end.
            lines.locator(".line.stderr").wait_for()
            assert page.evaluate(seqs)[-1] == 20_002
            text = lines.inner_text()
            assert words["cut"] in text
            assert "\\x1b" not in text and "[32m" not in text and "[INFO] unpacking" in text

            pane.get_by_role("button", name=words["start"]).click()
            lines.locator(".log-omitted").wait_for()
            assert page.evaluate(seqs)[:42] == [*range(1, 42), 19_603]
            assert words["omitted"] in lines.locator(".log-omitted").inner_text()
            assert not pane.locator(".log-follow").is_checked()
            assert lines.evaluate("pre => pre.scrollTop") == 0
            lines.evaluate("pre => { pre.scrollTop = pre.querySelector('.log-omitted')"
                           ".offsetTop - pre.offsetTop - 80; }")
            pane.screenshot(path=str(SCREENSHOTS / f"{language[:2]}-log-jump-to-start.png"))

            # The search, from the keyboard alone.
            box = pane.locator(".log-search input")
            box.focus()
            page.keyboard.type("layer 19950")
            page.keyboard.press("Enter")
            hit = pane.locator(".log-hit")
            hit.wait_for()
            # htmx binds the hit's request once it has processed the swapped-in list (a
            # person reads the hit first; the test would press Enter on a bare button).
            page.wait_for_function(
                "() => { const b = document.querySelector('.log-hit');"
                " const d = b && b['htmx-internal-data']; return !!(d && d.initHash); }")
            assert words["hits"] in pane.locator(".log-search-summary").inner_text()
            assert hit.locator("mark").inner_text() == "layer 19950"
            page.keyboard.press("ArrowDown")  # from the search box to the first hit
            assert page.evaluate("() => document.activeElement.classList.contains('log-hit')")
            page.keyboard.press("Enter")
            marked = lines.locator(".line-mark")
            marked.wait_for()
            assert marked.get_attribute("data-seq") == "19950"
            # The pane scrolls once the swapped-in lines have settled: wait for it (a busy
            # machine settles later), then read where the hit is.
            in_view = ("pre => { const at = pre.querySelector('.line-mark').offsetTop"
                       " - pre.offsetTop; return pre.scrollTop <= at"
                       " && at <= pre.scrollTop + pre.clientHeight; }")
            page.wait_for_function(f"pre => ({in_view})(pre)", arg=lines.element_handle(),
                                   timeout=10_000)
            top, bottom, at = lines.evaluate(
                "pre => [pre.scrollTop, pre.scrollTop + pre.clientHeight,"
                " pre.querySelector('.line-mark').offsetTop - pre.offsetTop]")
            assert top <= at <= bottom, "the hit is scrolled into view"
            pane.screenshot(path=str(SCREENSHOTS / f"{language[:2]}-log-search-hit.png"))

            pane.get_by_role("button", name=words["end"]).click()
            page.wait_for_function("() => document.querySelectorAll('.log-lines .line-mark')"
                                   ".length === 0 && document.querySelector('.log-lines .stderr')")
            assert pane.locator(".log-follow").is_checked()
            assert page.evaluate(seqs)[-1] == 20_002
            pane.locator(".log-cut").wait_for()
            pane.screenshot(path=str(SCREENSHOTS / f"{language[:2]}-log-end-cut-line.png"))

            with page.expect_download() as download:
                pane.locator(".log-download").click()
            saved = tmp_path / f"{language}.log"
            download.value.save_as(saved)
            body = saved.read_text()
            assert body.count("\n") == 2 + 40 + 1 + 400
            assert "Pw-7hQ2" not in body
            page.context.close()  # its connections too: the next language starts clean
