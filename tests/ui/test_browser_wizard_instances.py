"""The hosts page's list of the VPC's ECS instances in a real browser: pick two servers and an
agent, see a stopped instance refused with why, go on; in English and in Chinese."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.sessions.backends.db import SessionStore

from clusters.interface.wizard import WizardState
from clusters.models import CloudAccount
from sandbox.aliyun.testing import Emulator
from tests.support.factories import make_user
from tests.ui.browser import chromium, log_in, new_page, shot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def sync_orm_beside_playwright(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("browser-instances")) as emu:
        yield emu


def answer_up_to_hosts(page: Any, world: Emulator, user: Any) -> None:
    """The account, network and datastore answers, put into the browser's own session."""
    account = CloudAccount.objects.create(owner=user, name="emu",
                                          access_key_id=world.access_key_id,
                                          access_key_secret=world.access_key_secret)
    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=cookie["value"])
    state = WizardState(session)
    state.put("account", {"name": "picked", "cloud_account": account.pk,
                          "region": world.region_id})
    vswitch = world.vswitch
    state.put("network", {"zone": vswitch["zone_id"], "vpc": world.vpc["vpc_id"],
                          "vswitch": vswitch["vswitch_id"], "slb_address_type": "intranet",
                          "vpc_cidr": world.vpc["cidr"], "vswitch_cidr": vswitch["cidr"]})
    state.put("datastore", {"kind": "external",
                            "external_dsn": "mysql://k3s:pw@tcp(db:3306)/k3s"})
    session.save()


def test_picking_servers_and_an_agent_from_the_vpc_list(live_server: Any, world: Emulator,
                                                       settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    ids = {name: world.register_instance(name, f"{base}.{n}", instance_name=f"k3s-{name}",
                                         tags={"team": "web"})
           for n, name in ((31, "s1"), (32, "s2"), (33, "a1"))}
    ids["old"] = world.register_instance("old", f"{base}.34", instance_name="k3s-old",
                                         status="Stopped")
    user = make_user("carol")
    with chromium() as browser:
        page = new_page(browser, live_server.url)
        log_in(page, "carol", "pw-carol")
        answer_up_to_hosts(page, world, user)
        page.goto("/clusters/new/hosts/")
        page.wait_for_selector("#vpc-instances table")
        stopped = page.inner_text(f"#instance-{ids['old']}")
        assert "Stopped" in stopped and "Cannot be picked: stopped" in stopped
        assert page.query_selector(f"#instance-{ids['old']} select") is None
        assert "team=web" in page.inner_text(f"#instance-{ids['s1']}")
        page.select_option(f"#pick-{ids['s1']}", "server")
        page.select_option(f"#pick-{ids['s2']}", "server")
        page.select_option(f"#pick-{ids['a1']}", "agent")
        shot(page, "en-18-wizard-hosts-pick")
        page.click("button[value=pick]")
        page.wait_for_selector("#id_hosts-2-private_ip")
        assert [page.input_value(f"#id_hosts-{i}-private_ip") for i in range(3)] == [
            f"{base}.31", f"{base}.32", f"{base}.33"]
        assert [page.input_value(f"#id_hosts-{i}-role") for i in range(3)] == [
            "server", "server", "agent"]
        assert page.query_selector("#id_hosts-3-private_ip") is None
        assert f"k3s-a1 ({ids['a1']})" in page.inner_text("#host-2 legend")
        assert page.inner_text(f"#instance-{ids['a1']}").strip().endswith("Host 3")
        shot(page, "en-19-wizard-hosts-picked")
        for index in range(3):
            page.select_option(f"#id_hosts-{index}-auth", "password")
            page.fill(f"#id_hosts-{index}-password", "s3cret-pass")
        page.click("button[value=next]")
        page.wait_for_selector("#id_version")

        page.select_option("#language-select", "zh-hans")
        page.wait_for_selector("html[lang=zh-hans]")
        page.goto("/clusters/new/hosts/")
        main = page.inner_text("main")
        assert f"{world.vpc['vpc_id']} 中的 ECS 实例" in main
        stopped_zh = "不可选择： 已停止：请在 ECS 控制台启动它"  # noqa: RUF001
        assert stopped_zh in page.inner_text(f"#instance-{ids['old']}")
        assert "主机 3" in page.inner_text(f"#instance-{ids['a1']}")
        shot(page, "zh-13-wizard-hosts-instances")
