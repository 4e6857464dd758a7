"""The wizard in a real browser against the Aliyun emulator and the K3s artifact server, up to
Create; a screenshot of every page, in English and in Chinese."""

from __future__ import annotations

from typing import Any

import pytest

from clusters.models import Cluster, Run, RunKind
from panel.celery import app as celery_app
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.support.factories import make_user
from tests.ui.browser import chromium, log_in, new_page, shot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def quiet_queue(task_queue: str) -> Any:
    """Create enqueues the run on this session's own queue; no worker takes it here."""
    yield task_queue
    celery_app.control.purge()


def test_wizard_in_the_browser_up_to_create(live_server: Any, cloud: Emulator,
                                            artifacts: ArtifactServer, quiet_queue: str) -> None:
    user = make_user("alice")
    base = cloud.vswitch["cidr"].rsplit(".", 1)[0]
    with chromium() as browser:
        page = new_page(browser, live_server.url)
        log_in(page, "alice", "pw-alice")
        assert "No clusters yet" in page.inner_text("main")
        shot(page, "en-10-dashboard-empty")
        page.click("main >> text=Create your first cluster")

        # 1. Account: a new AccessKey; first a wrong secret, refused at its field.
        page.fill("#id_name", "web-prod")
        page.fill("#id_new_account_name", "main")
        page.fill("#id_access_key_id", cloud.access_key_id)
        page.fill("#id_access_key_secret", "wrong-secret")
        page.click("button[value=next]")
        assert "rejected this AccessKey" in page.inner_text("#field-access_key_secret")
        assert page.input_value("#id_name") == "web-prod"
        shot(page, "en-11-wizard-account-error")
        page.fill("#id_access_key_secret", cloud.access_key_secret)
        page.click("button[value=next]")

        # 2. Network: the emulator's zones, VPC and vSwitches.
        page.wait_for_selector("#id_vswitch")
        page.select_option("#id_zone", cloud.vswitch["zone_id"])
        page.select_option("#id_vpc", cloud.vpc["vpc_id"])
        page.select_option("#id_vswitch", cloud.vswitch["vswitch_id"])
        shot(page, "en-12-wizard-network")
        page.click("button[value=next]")

        # 3. Datastore: the classes the zone sells; another version reloads its own list.
        page.wait_for_selector("#id_rds_password")
        assert page.input_value("#id_rds_engine_version") == "8.0"
        # The deferred wizard.js removes the "show the classes" button once it runs (the
        # field may be in the page a moment before): wait for that, fail if it never goes.
        page.wait_for_selector("button[data-refresh-button]", state="detached", timeout=10_000)
        assert page.is_hidden("button[data-refresh-button]")
        zone = cloud.vswitch["zone_id"]
        cloud.control.set_rds_classes(cloud.region_id, zone, "5.7", [
            {"class": "mysql.n2.only57.2c", "storage_min": 20, "storage_max": 100}])
        try:
            with page.expect_navigation():
                page.select_option("#id_rds_engine_version", "5.7")
            options = page.eval_on_selector_all("#id_rds_instance_class option",
                                                "els => els.map(e => e.value)")
            assert options == ["mysql.n2.only57.2c"]
        finally:
            cloud.control.set_rds_classes(cloud.region_id, zone, "5.7", None)
        with page.expect_navigation():
            page.select_option("#id_rds_engine_version", "8.0")
        assert "mysql.n2.medium.2c" in page.eval_on_selector_all(
            "#id_rds_instance_class option", "els => els.map(e => e.value)")
        # Then a password RDS would refuse.
        page.fill("#id_rds_password", "weakpassword")
        page.click("button[value=next]")
        assert "three of" in page.inner_text("#field-rds_password")
        shot(page, "en-13-wizard-datastore-error")
        page.fill("#id_rds_password", "")
        page.click("button[value=next]")

        # 4. Hosts: two servers (one typed badly first), a generated key pair, an agent.
        page.wait_for_selector("#id_hosts-0-private_ip")
        page.fill("#id_hosts-0-private_ip", f"{base}.11")
        page.select_option("#id_hosts-0-auth", "password")
        page.fill("#id_hosts-0-password", "s3cret-pass")
        page.fill("#id_hosts-1-private_ip", "8.8.8.8")
        page.fill("#id_hosts-1-ssh_port", "70000")
        page.select_option("#id_hosts-1-auth", "password")
        page.fill("#id_hosts-1-password", "s3cret-pass")
        page.click("button[value=next]")
        assert "public address" in page.inner_text("#field-hosts-1-private_ip")
        assert "65535" in page.inner_text("#field-hosts-1-ssh_port")
        shot(page, "en-14-wizard-hosts-errors")
        page.fill("#id_hosts-1-private_ip", f"{base}.12")
        page.fill("#id_hosts-1-ssh_port", "22")
        page.click("button[value=add_agent]")
        page.wait_for_selector("#id_hosts-2-private_ip")
        page.click("button[value=generate_key]")
        assert page.inner_text("#public-key").startswith("ssh-ed25519 ")
        page.fill("#id_hosts-2-private_ip", f"{base}.13")
        page.select_option("#id_hosts-2-auth", "generated")
        shot(page, "en-15-wizard-hosts")
        page.click("button[value=next]")

        # 5. K3s from the offline artifact server; a version that does not exist first.
        page.wait_for_selector("#id_version")
        page.check("input[name=install_source][value=custom]")
        page.fill("#id_install_base_url", artifacts.base_url)
        page.fill("#id_version", "v1.32.99+k3s1")
        page.click("button[value=next]")
        assert "does not exist" in page.inner_text("#field-version")
        shot(page, "en-16-wizard-k3s-error")
        page.fill("#id_version", "v1.32.5+k3s1")
        page.fill("#id_extra_tls_sans", "k8s.example.com")
        page.click("button[value=next]")

        # 6. Review, in Chinese too, then Create.
        page.wait_for_selector("#id_billing_ack")
        assert "RDS MySQL instance" in page.inner_text("main")
        shot(page, "en-17-wizard-review")
        page.select_option("#language-select", "zh-hans")
        page.wait_for_selector("html[lang=zh-hans]")
        assert "将创建并计费的资源" in page.inner_text("main")
        shot(page, "zh-10-wizard-review")
        page.goto("/clusters/new/hosts/")
        assert "生成的密钥对" in page.inner_text("main")
        shot(page, "zh-11-wizard-hosts")
        page.goto("/clusters/new/review/")
        page.check("#id_billing_ack")
        page.click("button[value=create]")
        page.wait_for_selector("#timeline")
        assert "正在创建 web-prod" in page.inner_text(".messages")
        shot(page, "zh-12-cluster-created")

    cluster = Cluster.objects.get(owner=user, name="web-prod")
    assert cluster.nodes.count() == 3
    assert cluster.install_base_url == artifacts.base_url
    assert Run.objects.get(cluster=cluster).kind == RunKind.CREATE
