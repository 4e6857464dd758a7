"""In a real browser: log in, watch a run driven by a real Celery worker reach succeeded
without a reload, read its log, retry a failed run, download the kubeconfig, and see it all
in Chinese. Screenshots of every page go to test-artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import AuditAction, AuditEvent, Cluster, Run, RunKind
from tests.support.factories import make_cluster, make_user
from tests.support.runs import wait_finished
from tests.ui.browser import chromium, log_in, new_page, shot

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

        # The cluster page, then the run starts: the timeline moves with no reload.
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
        # The side panels were swapped in: the cluster is Ready now.
        page.wait_for_selector("#cluster-summary .badge.status-ready")

        # The log of the first step: opened by itself while the step ran (else by hand).
        first = page.locator("li.step").first
        if first.locator(".log-toggle").get_attribute("aria-expanded") != "true":
            first.locator(".log-toggle").click()
        first.locator(".log-lines .line").first.wait_for()
        assert "working for 2s" in first.locator(".log-lines").inner_text()
        first.locator(".log-expand").click()
        shot(page, "en-04-cluster-succeeded")

        # The kubeconfig download: a file named after the cluster, and an audit record.
        with page.expect_download() as download_info:
            page.click("#cluster-summary >> text=Download kubeconfig")
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

        # A narrow screen: the same page stacks into one column.
        phone = new_page(browser, live_server.url, width=390, height=844)
        log_in(phone, "ops", "pw-ops")
        shot(phone, "en-06-dashboard-phone")
        phone.goto(f"/clusters/{shop.code}/")
        shot(phone, "en-07-cluster-phone")
    assert Cluster.objects.get(pk=shop.pk).status == "ready"
