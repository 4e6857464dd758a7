"""A person creates a cluster in the browser and uses its kubeconfig with the real kubectl.

Everything is real but the cloud and K3s: Chromium, the panel under live_server, a Celery
worker, the emulator (official SDK), lab hosts over SSH, the K3s stand-in, kubectl.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from clusters.models import AuditEvent, Cluster
from tests.support.factories import make_user
from tests.support.world_clusters import K3S_VERSION, world_env
from tests.ui.browser import chromium, log_in, new_page, shot

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def test_wizard_to_kubectl_in_the_browser(world, start_worker, live_server: Any,
                                         tmp_path) -> None:
    start_worker(concurrency=2, beat=True, **world_env(world))
    make_user("ops")
    servers, agent = world.lab.hosts[:2], world.lab.hosts[2]
    with chromium() as browser:
        page = new_page(browser, live_server.url)
        log_in(page, "ops", "pw-ops")
        page.goto("/clusters/new/")

        page.fill("#id_name", "shop")
        page.fill("#id_new_account_name", "sandbox")
        page.fill("#id_access_key_id", world.access_key_id)
        page.fill("#id_access_key_secret", world.access_key_secret)
        page.click("button[value=next]")

        page.wait_for_selector("#id_vswitch")
        page.select_option("#id_zone", world.zone)
        page.select_option("#id_vpc", world.vpc_id)
        page.select_option("#id_vswitch", world.vswitch_id)
        page.click("button[value=next]")

        page.wait_for_selector("#id_rds_password")
        page.click("button[value=next]")

        page.wait_for_selector("#id_hosts-0-private_ip")
        for index, host in enumerate([*servers, agent]):
            if index == 2:
                page.click("button[value=add_agent]")
                page.wait_for_selector("#id_hosts-2-private_ip")
            page.fill(f"#id_hosts-{index}-private_ip", host.ip)
            page.select_option(f"#id_hosts-{index}-auth", "password")
            page.fill(f"#id_hosts-{index}-password", host.root_password)
        page.click("button[value=next]")

        page.wait_for_selector("#id_version")
        page.check("input[name=install_source][value=custom]")
        page.fill("#id_install_base_url", world.install_base_url)
        page.fill("#id_version", K3S_VERSION)
        page.click("button[value=next]")

        page.wait_for_selector("#id_billing_ack")
        page.check("#id_billing_ack")
        page.click("button[value=create]")
        page.wait_for_selector("#timeline")
        shot(page, "e2e-01-cluster-provisioning")

        # The timeline follows the run live, without a reload, to the end.
        page.wait_for_selector("[data-run-status].status-succeeded", timeout=240_000)
        page.wait_for_selector("text=Download kubeconfig")
        shot(page, "e2e-02-cluster-ready")
        with page.expect_download() as download:
            page.click("text=Download kubeconfig >> nth=0")
        kubeconfig = tmp_path / download.value.suggested_filename
        download.value.save_as(kubeconfig)

        page.select_option("#language-select", "zh-hans")
        page.wait_for_selector("html[lang=zh-hans]")
        assert "下载 kubeconfig" in page.inner_text("body")
        shot(page, "e2e-03-cluster-ready-zh")

    cluster = Cluster.objects.get(name="shop")
    # The page's Download kubeconfig is a personal one: its own token, revocable, a day long.
    assert kubeconfig.name.startswith("shop-panel-") and kubeconfig.name.endswith(".yaml")
    user_entry = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    assert set(user_entry) == {"token"}
    nodes = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), "get", "nodes",
                            "--no-headers"], capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and {row[1] for row in rows} == {"Ready"}, nodes.stdout
    event = AuditEvent.objects.get(cluster=cluster, action="kube_credential_issue")
    assert event.details["lifetime"] == "1d" and event.details["token_id"]
