"""In a real browser: log in, watch a run driven by a real Celery worker reach succeeded
without a reload, read its log, retry a failed run, download the kubeconfig, and see it all
in Chinese. Screenshots of every page go to test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import (
    AuditAction,
    AuditEvent,
    Cluster,
    LogLine,
    Node,
    Run,
    RunKind,
    Step,
)
from tests.support.factories import make_cluster, make_user
from tests.support.runs import wait_finished
from tests.ui.browser import SCREENSHOTS, chromium, log_in, new_page, shot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KUBECONFIG = "apiVersion: v1\nkind: Config\ncurrent-context: shop\n"


@pytest.fixture(autouse=True)
def sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    # Playwright's sync API runs an event loop in this thread; the ORM calls made here are
    # still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def plan() -> list[pipeline.StepSpec]:
    return [
        pipeline.StepSpec("preflight_cloud", "Check credentials, region, zone, VPC and vSwitch",
                          "test.work", args={"seconds": 2}),
        pipeline.StepSpec("rds_create", "Create the RDS MySQL instance", "test.wait_then_done",
                          ["preflight_cloud"], args={"waits": 2, "seconds": 1.2}),
        pipeline.StepSpec("slb_create", "Create the SLB (its address goes into the certificate)",
                          "test.work", ["preflight_cloud"], args={"seconds": 0.5}),
        pipeline.StepSpec("kubeconfig", "Fetch and rewrite the kubeconfig", "test.work",
                          ["rds_create", "slb_create"], args={"seconds": 0.2}),
    ]


def failing_plan(marker: Path) -> list[pipeline.StepSpec]:
    return [
        pipeline.StepSpec("preflight_hosts", "Check every host over SSH", "test.work",
                          args={"seconds": 0.1}),
        pipeline.StepSpec("rds_configure", "Whitelist servers, create account and database, "
                          "fix parameters", "test.fail_first", ["preflight_hosts"],
                          args={"fixed_marker": str(marker)}),
        pipeline.StepSpec("datastore_check", "Prove the datastore accepts K3s's schema",
                          "test.work", ["rds_configure"], args={"seconds": 0.1}),
    ]


def test_live_timeline_logs_retry_kubeconfig_and_chinese(
        live_server: Any, start_worker: Any, tmp_path: Path) -> None:
    user = make_user("ops")
    marker = tmp_path / "whitelisted"
    shop = make_cluster(owner=user, nodes=3, name="shop", kubeconfig=KUBECONFIG,
                        k3s_version="v1.32.5+k3s1", slb_address="10.20.30.40",
                        status="provisioning")
    broken = make_cluster(owner=user, nodes=2, name="billing", k3s_channel="stable",
                          status="provisioning")
    run = pipeline.create_run(shop, RunKind.CREATE, plan(), created_by=user, start=False)
    failed = pipeline.create_run(broken, RunKind.CREATE, failing_plan(marker), created_by=user)
    start_worker(concurrency=2)
    wait_finished(failed, timeout=60)
    assert failed.status == "failed"

    with chromium() as browser:
        page = new_page(browser, live_server.url)
        page.goto("/")
        assert "/accounts/login/" in page.url
        shot(page, "en-01-login")
        log_in(page, "ops", "pw-ops")

        # The dashboard lists both clusters with their counts.
        assert page.locator("table.clusters-table tbody tr").count() == 2
        row = page.locator("tr", has_text="shop")
        assert "Provisioning" in row.inner_text() and "10.20.30.40" in row.inner_text()
        shot(page, "en-02-dashboard")

        # The cluster page, then the run starts: the timeline moves with no reload, polled by
        # htmx (the vendored copy, the server's markup) until the server answers 286.
        polls = timeline_requests(page)
        page.click("text=shop")
        page.wait_for_selector("#timeline")
        page.evaluate("window.__sameDocument = 'yes'")
        assert page.locator("li.step.step-pending").count() == 4
        pipeline.advance_run.delay(run.pk)
        page.wait_for_selector("li.step.step-running")
        page.wait_for_selector("li.step.step-waiting .step-wait:not([hidden])")
        assert "not ready yet" in page.inner_text("li.step.step-waiting")
        shot(page, "en-03-cluster-running")
        page.wait_for_selector("[data-run-status].status-succeeded", timeout=45_000)
        seen = timezone.now()
        run.refresh_from_db()
        assert run.status == "succeeded"
        assert (seen - run.finished_at).total_seconds() < 2.0
        assert page.locator("li.step.step-succeeded").count() == 4
        assert page.evaluate("window.__sameDocument") == "yes"  # never reloaded
        assert page.evaluate("typeof window.htmx.version") == "string"
        assert polls and polls[-1] == 286 and set(polls[:-1]) <= {200}
        page.wait_for_timeout(1500)
        assert polls.count(286) == 1  # and then the polling stopped
        # The side panels were swapped in: the cluster is Ready now.
        page.wait_for_selector("#cluster-summary .badge.status-ready")

        # The log of the first step: opened by itself while the step ran (else by hand).
        first = page.locator("li.step").first
        if not first.locator("details.step-log").evaluate("log => log.open"):
            first.locator(".log-toggle").click()
        first.locator(".log-lines .line").first.wait_for()
        assert "working for 2s" in first.locator(".log-lines").inner_text()
        first.locator(".log-expand").click()
        shot(page, "en-04-cluster-succeeded")

        # The cluster-admin certificate's download: a file named after the cluster, audited
        # (the summary's Download kubeconfig issues a personal one: tests/e2e).
        with page.expect_download() as download_info:
            page.click("#cluster-panels >> text=Download shop.yaml")
        download = download_info.value
        assert download.suggested_filename == "shop.yaml"
        saved = tmp_path / "shop.yaml"
        download.save_as(saved)
        assert saved.read_text() == KUBECONFIG
        event = AuditEvent.objects.get(action=AuditAction.KUBECONFIG_DOWNLOAD)
        assert (event.user, event.cluster, event.ip_address) == (user, shop, "127.0.0.1")

        # The failed run: the error, what to do, and Retry, which resumes it.
        page.goto(f"/clusters/{broken.code}/")
        callout = page.locator(".callout-danger")
        assert "not in the RDS whitelist" in callout.inner_text()
        assert "What to do" in callout.inner_text()
        shot(page, "en-05-cluster-failed")
        marker.touch()  # the operator fixes the whitelist, then retries
        page.click("text=Retry from the failed step")
        page.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
        assert page.locator("li.step.step-succeeded").count() == 3
        retried = page.locator("li.step", has_text="Whitelist servers")
        assert retried.locator(".step-attempts").inner_text() == "attempt 2"
        assert page.locator(".step-attempts").count() == 1  # the others ran once
        assert AuditEvent.objects.filter(action=AuditAction.RUN_RETRY).count() == 1
        assert Run.objects.get(pk=failed.pk).status == "succeeded"

        # Switch to Chinese: the same pages, translated.
        page.goto("/")
        page.select_option("#language-select", "zh-hans")
        page.wait_for_selector("html[lang=zh-hans]")
        assert "集群" in page.inner_text("h1")
        assert "就绪" in page.inner_text("table.clusters-table")
        shot(page, "zh-01-dashboard")
        page.click("text=shop")
        page.wait_for_selector("#timeline")
        text = page.inner_text("main")
        for phrase in ("创建集群", "检查凭据、地域、可用区、VPC 和交换机", "成功", "运行历史",
                       "下载 kubeconfig"):
            assert phrase in text, phrase
        second = page.locator("li.step").nth(1)
        second.locator(".log-toggle").click()
        second.locator(".log-lines .empty-log, .log-lines .line").first.wait_for()
        shot(page, "zh-02-cluster-succeeded")
        page.goto(f"/clusters/{broken.code}/")
        assert page.locator(".step-attempts").inner_text() == "第 2 次尝试"
        shot(page, "zh-03-cluster-retried")

        # A narrow screen: the same page stacks into one column.
        phone = new_page(browser, live_server.url, width=390, height=844)
        log_in(phone, "ops", "pw-ops")
        shot(phone, "en-06-dashboard-phone")
        phone.goto(f"/clusters/{shop.code}/")
        shot(phone, "en-07-cluster-phone")
    assert Cluster.objects.get(pk=shop.pk).status == "ready"


def timeline_requests(page: Any) -> list[int]:
    """The status codes of the timeline polls this page has made so far (appended live)."""
    seen: list[int] = []
    page.on("response", lambda response: seen.append(response.status)
            if "/timeline/" in response.url else None)
    return seen


def test_remove_stays_inside_the_nodes_card_and_a_hidden_tab_backs_off(
        live_server: Any) -> None:
    """At a laptop's width the Nodes table fits its card (no Remove button scrolled out of
    sight), in English and in Chinese; and a tab in the background polls the timeline every
    15 s, not every second, and catches up the moment it is shown again."""
    user = make_user("ops")
    ready = make_cluster(owner=user, name="warehouse-production", status="ready",
                         kubeconfig=KUBECONFIG, k3s_version="v1.32.5+k3s1",
                         slb_address="10.20.30.40")
    for index, role in enumerate(("server", "server", "server", "agent")):
        Node.objects.create(cluster=ready, role=role, name=f"warehouse-{role}-{index + 1}",
                            private_ip=f"10.0.1.{index + 11}", public_ip=f"47.96.1.{index + 11}",
                            status="ready", ssh_password="ssh-password-secret")
    waiting = make_cluster(owner=user, name="queue", status="provisioning")
    pipeline.create_run(waiting, RunKind.CREATE, plan(), created_by=user, start=False)
    long_log = pipeline.create_run(ready, RunKind.HEALTH, plan()[:1], start=False)
    step = long_log.steps.get()
    Step.objects.filter(pk=step.pk).update(status="succeeded", attempts=1,
                                           started_at=timezone.now(), finished_at=timezone.now())
    Run.objects.filter(pk=long_log.pk).update(status="succeeded", finished_at=timezone.now())
    LogLine.objects.bulk_create(LogLine(step=step, seq=i, time=timezone.now(), text=f"line {i}")
                                for i in range(1, 701))

    with chromium() as browser:
        for language, remove in (("en-US", "Remove"), ("zh-CN", "移除")):
            page = new_page(browser, live_server.url, width=1366, height=768, locale=language)
            log_in(page, "ops", "pw-ops")
            page.goto(f"/clusters/{ready.code}/")
            card = page.locator("section.panel", has=page.locator("#nodes-heading"))
            buttons = card.locator("summary", has_text=remove)
            assert buttons.count() == 4
            shot(page, f"{language[:2]}-08-cluster-laptop")
            box = card.bounding_box()
            for index in range(4):
                button = buttons.nth(index).bounding_box()
                assert button is not None and button["width"] > 0, f"{language}: no button"
                assert box["x"] <= button["x"] and \
                    button["x"] + button["width"] <= box["x"] + box["width"], \
                    f"{language}: Remove #{index + 1} sticks out of the Nodes card"
            assert card.locator(".table-wrap").evaluate(
                "wrap => wrap.scrollWidth <= wrap.clientWidth"), f"{language}: table scrolls"
            buttons.last.click()
            card.locator("button.btn-danger").last.wait_for()
            card.screenshot(path=str(SCREENSHOTS / f"{language[:2]}-09-nodes-card-laptop.png"))
            page.close()

        # A long log opens on its last 200 lines; "Load earlier lines" brings the rest back,
        # in order, above them.
        page = new_page(browser, live_server.url)
        log_in(page, "ops", "pw-ops")
        page.goto(f"/clusters/{ready.code}/?run={long_log.pk}")
        page.wait_for_function("() => window.htmx !== undefined")
        page.click("li.step >> .log-toggle")
        page.locator(".log-lines .line").last.wait_for()
        seqs = "() => [...document.querySelectorAll('.log-lines .line')].map(l => +l.dataset.seq)"
        assert page.evaluate(seqs) == list(range(501, 701))
        page.click("text=Load earlier lines")
        page.wait_for_function("() => document.querySelectorAll('.log-lines .line').length > 200")
        assert page.evaluate(seqs) == list(range(1, 701))
        assert page.locator(".log-earlier").count() == 0
        page.close()

        page = new_page(browser, live_server.url)
        log_in(page, "ops", "pw-ops")
        polls = timeline_requests(page)
        page.goto(f"/clusters/{waiting.code}/")
        page.wait_for_function("() => window.htmx !== undefined")
        page.wait_for_timeout(2500)
        assert len(polls) >= 2 and set(polls) == {200}  # visible: about one a second
        page.evaluate("""() => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
            document.dispatchEvent(new Event("visibilitychange"));
        }""")
        page.wait_for_timeout(1200)
        before = len(polls)
        page.wait_for_timeout(4000)
        assert len(polls) == before, "a hidden tab kept polling every second"
        page.evaluate("""() => {
            Object.defineProperty(document, "hidden", {configurable: true, get: () => false});
            document.dispatchEvent(new Event("visibilitychange"));
        }""")
        page.wait_for_timeout(600)
        assert len(polls) > before, "the tab did not catch up when shown again"
