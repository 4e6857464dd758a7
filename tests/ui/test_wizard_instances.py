"""The hosts page lists the chosen VPC's ECS instances (DescribeInstances through the official
SDK, against the emulator) and lets the person pick servers and agents from the list; only a
Running instance can be picked, and typing an address stays possible."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import WizardState
from clusters.models import CloudAccount
from sandbox.aliyun.testing import Emulator
from tests.ui.wizard_data import host_rows

HOSTS = reverse("clusters:wizard-step", args=["hosts"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """An emulator of this file's own: its VPC holds exactly the instances registered here."""
    with Emulator(tmp_path_factory.mktemp("instances")) as emu:
        base = emu.vswitch["cidr"].rsplit(".", 1)[0]
        other = emu.vpc["vswitches"][1]
        emu.register_instance("web-1", f"{base}.11", instance_name="k3s-web-1",
                              tags={"team": "web", "env": "prod"})
        emu.register_instance("web-2", f"{base}.12", instance_name="k3s-web-2")
        emu.register_instance("web-3", f"{base}.13", instance_name="k3s-web-3")
        emu.register_instance("old-db", f"{base}.20", instance_name="old-db", status="Stopped")
        emu.register_instance("fresh", f"{base}.21", instance_name="fresh", status="Starting")
        emu.register_instance("zone-i", other["cidr"].rsplit(".", 1)[0] + ".11",
                              instance_name="zone-i-worker", zone_id=other["zone_id"],
                              vswitch_id=other["vswitch_id"])
        yield emu


@pytest.fixture
def at_hosts(world: Emulator, settings: Any, user: Any, owner_client: Client) -> Client:
    return wizard_at_hosts(world, settings, user, owner_client)


def wizard_at_hosts(world: Emulator, settings: Any, user: Any, owner_client: Client) -> Client:
    """A wizard at the hosts page, in the world's VPC."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    account = CloudAccount.objects.create(owner=user, name="emu",
                                          access_key_id=world.access_key_id,
                                          access_key_secret=world.access_key_secret)
    session = owner_client.session
    state = WizardState(session)
    state.put("account", {"name": "picked", "cloud_account": account.pk,
                          "region": world.region_id})
    vswitch = world.vswitch
    state.put("network", {"zone": vswitch["zone_id"], "vpc": world.vpc["vpc_id"],
                          "vswitch": vswitch["vswitch_id"], "slb_address_type": "intranet",
                          "vpc_cidr": world.vpc["cidr"], "vswitch_cidr": vswitch["cidr"]})
    state.put("datastore", {"kind": "external", "external_dsn": "mysql://k3s:pw@tcp(db:3306)/k3s"})
    session.save()
    return owner_client


def listed(page: str) -> dict[str, str]:
    """Each listed instance's row text by name, tags and cells as a person reads them."""
    rows = re.findall(r'<tr id="instance-(i-[0-9a-z]+)" class="([a-z-]+)">(.*?)</tr>', page, re.S)
    return {re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).strip(): klass
            for _, klass, body in rows}


def row_values(page: str, index: int) -> dict[str, str]:
    found = {}
    for name in ("private_ip", "role"):
        match = re.search(rf'<input[^>]*name="hosts-{index}-{name}"[^>]*value="([^"]*)"', page)
        selected = re.search(rf'<select name="hosts-{index}-{name}".*?<option value="(\w+)"'
                             r" selected>", page, re.S)
        found[name] = (match or selected).group(1) if (match or selected) else ""
    return found


def instance_ids(world: Emulator) -> dict[str, str]:
    found = world.call(_describe(world))["Instances"]["Instance"]
    return {i["InstanceName"]: i["InstanceId"] for i in found}


def _describe(world: Emulator) -> Any:
    from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import (  # noqa: PLC0415
        DescribeInstancesRequest,
    )
    request = DescribeInstancesRequest()
    request.set_VpcId(world.vpc["vpc_id"])
    request.set_MaxResults(100)
    return request


def test_the_vpc_instances_are_listed_with_what_tells_them_apart(
        at_hosts: Client, world: Emulator) -> None:
    page = at_hosts.get(HOSTS).content.decode()
    rows = listed(page)
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    ids = instance_ids(world)
    zone, other_zone = world.vswitch["zone_id"], world.vpc["vswitches"][1]["zone_id"]
    web1 = next(text for text in rows if text.startswith("k3s-web-1 "))
    for value in (ids["k3s-web-1"], f"{base}.11", zone, "Running", "Ubuntu 22.04 64位",
                  "env=prod, team=web"):
        assert value in web1, (value, web1)
    assert rows[web1] == "pickable"
    # Every zone of the VPC, every status; Running ones first.
    names = [text.split(" ")[0] for text in rows]
    assert names == ["k3s-web-1", "k3s-web-2", "k3s-web-3", "zone-i-worker", "fresh", "old-db"]
    assert any(other_zone in text for text in rows if text.startswith("zone-i-worker"))
    # Not Running: shown, not pickable, and why.
    stopped = next(text for text in rows if text.startswith("old-db"))
    assert rows[stopped] == "not-pickable"
    assert "Cannot be picked: stopped: start it in the ECS console" in stopped
    starting = next(text for text in rows if text.startswith("fresh"))
    assert rows[starting] == "not-pickable" and "still starting" in starting
    assert f'name="pick-{ids["old-db"]}"' not in page
    assert f'name="pick-{ids["k3s-web-1"]}"' in page


def test_picked_instances_become_hosts_with_their_roles_and_names(
        at_hosts: Client, world: Emulator) -> None:
    ids = instance_ids(world)
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    at_hosts.get(HOSTS)  # two empty server rows to start with
    response = at_hosts.post(HOSTS, {
        **host_rows({"private_ip": "", "password": ""}, {"private_ip": "", "password": ""}),
        f"pick-{ids['k3s-web-1']}": "server", f"pick-{ids['k3s-web-2']}": "server",
        f"pick-{ids['k3s-web-3']}": "agent", f"pick-{ids['zone-i-worker']}": "",
        "action": "pick"})
    page = response.content.decode()
    assert 'name="hosts-TOTAL_FORMS" value="3"' in page  # the empty rows were filled
    assert [row_values(page, i) for i in range(3)] == [
        {"private_ip": f"{base}.11", "role": "server"},
        {"private_ip": f"{base}.12", "role": "server"},
        {"private_ip": f"{base}.13", "role": "agent"}]
    assert f"k3s-web-3 ({ids['k3s-web-3']})" in html.unescape(page)
    # In the list they now name their host and can no longer be picked twice.
    rows = listed(page)
    assert any(text.startswith("k3s-web-3 ") and text.endswith("Host 3") for text in rows)
    assert f'name="pick-{ids["k3s-web-1"]}"' not in page

    # They log in like typed hosts: a password each, then the next step.
    done = at_hosts.post(HOSTS, {**host_rows({"private_ip": f"{base}.11"},
                                             {"private_ip": f"{base}.12"},
                                             {"private_ip": f"{base}.13", "role": "agent"}),
                                 "action": "next"})
    assert done.status_code == 302, done.content.decode()[:2000]
    hosts = WizardState(at_hosts.session).get("hosts")["hosts"]
    assert [(h["private_ip"], h["role"]) for h in hosts] == [
        (f"{base}.11", "server"), (f"{base}.12", "server"), (f"{base}.13", "agent")]


def test_typing_an_address_stays_possible_beside_a_pick(at_hosts: Client,
                                                       world: Emulator) -> None:
    ids = instance_ids(world)
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    page = at_hosts.post(HOSTS, {**host_rows({"private_ip": f"{base}.99"}),
                                 f"pick-{ids['k3s-web-2']}": "agent",
                                 "action": "pick"}).content.decode()
    assert [row_values(page, i) for i in range(2)] == [
        {"private_ip": f"{base}.99", "role": "server"},
        {"private_ip": f"{base}.12", "role": "agent"}]
    # Picking the same instance again adds nothing.
    again = at_hosts.post(HOSTS, {**host_rows({"private_ip": f"{base}.99"},
                                              {"private_ip": f"{base}.12", "role": "agent"}),
                                  f"pick-{ids['k3s-web-2']}": "server", "action": "pick"})
    assert 'name="hosts-TOTAL_FORMS" value="2"' in again.content.decode()


def test_a_stopped_or_unknown_instance_is_refused_by_name_and_nothing_is_lost(
        at_hosts: Client, world: Emulator) -> None:
    """The page offers no choice for them; a crafted POST is judged against a fresh list."""
    ids = instance_ids(world)
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    response = at_hosts.post(HOSTS, {**host_rows({"private_ip": f"{base}.99"}),
                                     f"pick-{ids['old-db']}": "server",
                                     "pick-i-notinthisvpc000000": "agent",
                                     "action": "pick"}, follow=True)
    page = html.unescape(response.content.decode())
    assert f"old-db ({ids['old-db']}) cannot be used: stopped: start it in the ECS console" in page
    assert "i-notinthisvpc000000 is not an ECS instance of this VPC." in page
    assert 'name="hosts-TOTAL_FORMS" value="1"' in page
    assert row_values(page, 0)["private_ip"] == f"{base}.99"


def test_adding_nothing_says_what_to_choose(at_hosts: Client) -> None:
    page = at_hosts.post(HOSTS, {**host_rows({"private_ip": ""}), "action": "pick"}
                         ).content.decode()
    assert "Choose Server or Agent for at least one instance first." in html.unescape(page)


def test_the_list_speaks_chinese(at_hosts: Client, world: Emulator) -> None:
    page = html.unescape(at_hosts.get(HOSTS, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9"
                                      ).content.decode())
    for text in (f"{world.vpc['vpc_id']} 中的 ECS 实例", "实例 ID", "操作系统", "标签", "用作",
                 "不可选择： 已停止：请在 ECS 控制台启动它",  # noqa: RUF001
                 "仍在启动中", "添加所选实例", "不使用"):
        assert text in page, text
    ids = instance_ids(world)
    refused = at_hosts.post(HOSTS, {**host_rows({"private_ip": ""}),
                                    f"pick-{ids['old-db']}": "agent", "action": "pick"},
                            HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert f"old-db（{ids['old-db']}）不能使用：已停止" in html.unescape(  # noqa: RUF001
        refused.content.decode())


def test_every_page_of_a_large_vpc_is_listed(tmp_path: Any, settings: Any, user: Any,
                                             owner_client: Client) -> None:
    """DescribeInstances answers at most 100 a page (MaxResults); the page lists them all,
    asked with NextToken, the paging the V2 model says replaces PageNumber."""
    with Emulator(tmp_path) as big:
        base = big.vswitch["cidr"].rsplit(".", 1)[0]
        for n in range(101):
            big.register_instance(f"bulk-{n}", f"{base}.{100 + n}", instance_name=f"bulk-{n:03d}")
        client = wizard_at_hosts(big, settings, user, owner_client)
        big.control.clear_calls()
        page = client.get(HOSTS).content.decode()
        names = [text.split(" ")[0] for text in listed(page)]
        assert names == [f"bulk-{n:03d}" for n in range(101)]
        asked = [c["params"] for c in big.control.calls() if c["action"] == "DescribeInstances"]
        assert [(p.get("MaxResults"), bool(p.get("NextToken"))) for p in asked] == [
            ("100", False), ("100", True)]


def test_a_failed_lookup_is_shown_and_typing_still_works(at_hosts: Client,
                                                         settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = "127.0.0.1:9"  # nothing listens there
    response = at_hosts.get(HOSTS)
    page = html.unescape(response.content.decode())
    assert "could not list this VPC's instances; type their addresses below instead" in page
    assert 'name="hosts-0-private_ip"' in page and 'value="pick"' not in page


# --- "create instances": the panel buys the hosts --------------------------------------------


def order_post(**fields: Any) -> dict[str, Any]:
    values = {"servers": 2, "agents": 1, "instance_type": "ecs.g7.large",
              "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd", "system_disk_gb": 40,
              "public_bandwidth_mbps": 0, **fields}
    return {**host_rows({"private_ip": "", "password": ""}), "action": "order",
            **{f"order-{k}": v for k, v in values.items()}}


def test_the_order_form_offers_what_the_zone_sells_and_refuses_the_rest(
        at_hosts: Client, world: Emulator) -> None:
    page = html.unescape(at_hosts.get(HOSTS).content.decode())
    assert "ecs.g7.large · 2 vCPU · 8 GiB" in page
    for image in ("Ubuntu 24.04 64 bit", "Ubuntu 22.04 64 bit", "Debian 12.11 64 bit",
                  "Alibaba Cloud Linux 3.2104 LTS 64 bit"):
        assert image in page, image
    world.control.request("POST", "ecs/stock", {"zone_id": world.vswitch["zone_id"],
                                                "instance_type": "ecs.c7.large",
                                                "status_category": "WithoutStock"})
    try:
        assert "ecs.c7.large ·" not in html.unescape(at_hosts.get(HOSTS).content.decode())
        refused = at_hosts.post(HOSTS, order_post(instance_type="ecs.c7.large", servers=0,
                                                  system_disk_gb=10))
    finally:
        world.control.request("POST", "ecs/stock", {"zone_id": world.vswitch["zone_id"],
                                                    "instance_type": "ecs.c7.large",
                                                    "status_category": "WithStock"})
    assert refused.status_code == 200
    from tests.ui.test_wizard import field_errors  # noqa: PLC0415

    assert "not one of the available choices" in " ".join(
        field_errors(refused, "order-instance_type"))
    assert field_errors(refused, "order-servers") and field_errors(refused, "order-system_disk_gb")
    assert not WizardState(at_hosts.session).get("hosts").get("order")


def test_an_order_is_saved_listed_on_the_review_and_becomes_the_clusters_order(
        at_hosts: Client, user: Any) -> None:
    response = at_hosts.post(HOSTS, order_post(public_bandwidth_mbps=5))
    assert response.status_code == 302 and response["Location"].endswith("/k3s/")
    state = WizardState(at_hosts.session)
    assert state.get("hosts")["order"] == {
        "servers": 2, "agents": 1, "instance_type": "ecs.g7.large",
        "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd",
        "system_disk_category": "cloud_essd", "system_disk_gb": 40,
        "public_bandwidth_mbps": 5, "key_pair": ""}
    session = at_hosts.session
    WizardState(session).put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                                     "install_source": "official"})
    session.save()
    review = html.unescape(at_hosts.get(reverse("clusters:wizard-step", args=["review"])
                                        ).content.decode())
    billed = re.findall(r'<tr class="price-line billed-instance">\s*<td><strong>'
                        r"(.*?)</strong><br><code>(.*?)</code>", review)
    assert [what for what, _ in billed] == [
        "ECS instance s1 (Server, pay-as-you-go)", "ECS instance s2 (Server, pay-as-you-go)",
        "ECS instance a1 (Agent, pay-as-you-go)"]
    assert all("ecs.g7.large" in detail and "40 GiB ESSD" in detail
               and "public address, 5 Mbit/s" in detail for _, detail in billed)
    zh = html.unescape(at_hosts.get(reverse("clusters:wizard-step", args=["review"]),
                                    HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode())
    assert "ECS 实例 s1（服务器，按量付费）" in zh  # noqa: RUF001
    hosts_zh = html.unescape(at_hosts.get(HOSTS, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9"
                                          ).content.decode())
    assert "或者由面板创建实例" in hosts_zh and "已选择：面板将在创建时购买这些实例" in hosts_zh  # noqa: RUF001
    created = at_hosts.post(reverse("clusters:wizard-step", args=["review"]),
                            {"billing_ack": "on"})
    assert created.status_code == 302
    from clusters.models import Cluster  # noqa: PLC0415
    from clusters.operations.create import create_plan  # noqa: PLC0415

    cluster = Cluster.objects.get(owner=user, name="picked")
    assert cluster.instance_order["servers"] == 2 and cluster.nodes.count() == 0
    assert [s.key for s in create_plan(cluster)][:4] == [
        "ecs_keypair", "ecs_group", "ecs_check", "ecs_buy"]


def test_destroy_offers_to_keep_the_instances_the_panel_bought(user: Any,
                                                              owner_client: Client) -> None:
    from clusters.models import ClusterStatus, Run, RunKind  # noqa: PLC0415
    from tests.support.factories import make_cluster  # noqa: PLC0415

    bought = make_cluster(owner=user, status=ClusterStatus.READY,
                          instance_order={"servers": 1, "agents": 0, "instance_type": "t",
                                          "image_id": "i"})
    own = make_cluster(owner=user, status=ClusterStatus.READY)
    page = owner_client.get(reverse("clusters:cluster", args=[bought.code])).content.decode()
    assert 'name="keep_instances"' in page and "Keep the ECS instances the panel bought" in page
    assert 'name="keep_instances"' not in owner_client.get(
        reverse("clusters:cluster", args=[own.code])).content.decode()
    owner_client.post(reverse("clusters:cluster-destroy", args=[bought.code]),
                      {"confirm_name": bought.name, "keep_instances": "on"})
    run = Run.objects.get(cluster=bought, kind=RunKind.DESTROY)
    assert run.params["keep_instances"] is True
    keep = run.steps.get(key="ecs_instances_delete")
    assert keep.args == {"keep_instances": True}


# --- an existing key pair of the region ------------------------------------------------------


def _key_pair(world: Emulator, user: Any, name: str) -> str:
    """A key pair imported into the region (ImportKeyPair through the SDK): its private key."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    from clusters.adapters.cloud import cloud_for_account  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    account = CloudAccount.objects.filter(owner=user).first()
    assert account is not None
    cloud_for_account(account, world.region_id).import_key_pair(name, public)
    return private


def test_an_existing_key_pair_needs_its_own_private_key_kept_encrypted_never_shown(
        at_hosts: Client, world: Emulator, user: Any) -> None:
    from tests.ui.test_wizard import field_errors  # noqa: PLC0415

    mine = _key_pair(world, user, f"ops-key-{user.pk}")
    other = _key_pair(world, user, f"other-key-{user.pk}")
    page = html.unescape(at_hosts.get(HOSTS).content.decode())
    assert f'<option value="ops-key-{user.pk}">ops-key-{user.pk} · ' in page
    assert "Let the panel make one (recommended)" in page
    # Chosen without a key, with garbage, with another pair's key: refused by name.
    name = f"ops-key-{user.pk}"
    missing = at_hosts.post(HOSTS, order_post(key_pair=name))
    assert f"Paste the private key of key pair {name}" in " ".join(
        field_errors(missing, "order-key_pair_private_key"))
    garbage = at_hosts.post(HOSTS, order_post(key_pair=name, key_pair_private_key="nope"))
    assert "not a private key the panel can read" in " ".join(
        field_errors(garbage, "order-key_pair_private_key"))
    wrong = at_hosts.post(HOSTS, order_post(key_pair=name, key_pair_private_key=other))
    errors = " ".join(field_errors(wrong, "order-key_pair_private_key"))
    assert re.search(r"fingerprint is ([0-9a-f]{2}:){15}[0-9a-f]{2}, but key pair "
                     + re.escape(name) + r" has ([0-9a-f]{2}:){15}[0-9a-f]{2}", errors), errors
    assert other.splitlines()[1] not in wrong.content.decode()  # the pasted key: never echoed
    assert not WizardState(at_hosts.session).get("hosts").get("order")
    # The pair's own key: saved, encrypted in the session, not in the order, not shown again.
    saved = at_hosts.post(HOSTS, order_post(key_pair=name, key_pair_private_key=mine))
    assert saved.status_code == 302
    state = WizardState(at_hosts.session)
    assert state.get("hosts")["order"]["key_pair"] == name
    assert state.get("hosts")["order_key"].strip() == mine.strip()
    assert mine.splitlines()[1] not in repr(dict(at_hosts.session.items()))
    again = at_hosts.get(HOSTS).content.decode()
    assert mine.splitlines()[1] not in again and f'<option value="{name}" selected>' in again
    zh = at_hosts.post(HOSTS, order_post(key_pair=name), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert f"请粘贴密钥对 {name} 的私钥" in html.unescape(zh.content.decode())
    # Create: the cluster holds the key encrypted, as it would hold a generated one.
    at_hosts.post(HOSTS, order_post(key_pair=name, key_pair_private_key=mine))
    session = at_hosts.session
    WizardState(session).put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                                     "install_source": "official"})
    session.save()
    created = at_hosts.post(reverse("clusters:wizard-step", args=["review"]),
                            {"billing_ack": "on"})
    assert created.status_code == 302
    from django.db import connection  # noqa: PLC0415

    from clusters.models import Cluster  # noqa: PLC0415

    cluster = Cluster.objects.get(owner=user, name="picked")
    assert cluster.instance_order["key_pair"] == name
    assert cluster.generated_ssh_key.strip() == mine.strip()
    with connection.cursor() as cursor:
        cursor.execute("SELECT generated_ssh_key FROM clusters_cluster WHERE id = %s",
                       [cluster.pk])
        (stored,) = cursor.fetchone()
    assert mine.splitlines()[1] not in stored and "PRIVATE KEY" not in stored


# --- the owner's instances in the cluster's security group: an explicit choice -----------------


def test_joining_the_clusters_group_is_offered_off_with_its_rules_and_planned_when_chosen(
        at_hosts: Client, world: Emulator, user: Any) -> None:
    page = html.unescape(at_hosts.get(HOSTS).content.decode())
    assert '<input type="checkbox" name="join_group">' in page  # off by default
    assert "Add these instances to the cluster's security group" in page
    assert "flannel VXLAN (UDP 8472) and the kubelet (TCP 10250)" in page
    assert "must all be basic or all advanced" in page
    zh = html.unescape(at_hosts.get(HOSTS, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode())
    assert "将这些实例加入集群的安全组" in zh
    base = world.vswitch["cidr"].rsplit(".", 1)[0]
    rows = host_rows({"private_ip": f"{base}.11"}, {"private_ip": f"{base}.12"},
                     {"private_ip": f"{base}.13", "role": "agent"})
    done = at_hosts.post(HOSTS, {**rows, "join_group": "on", "action": "next"})
    assert done.status_code == 302
    assert WizardState(at_hosts.session).get("hosts")["join_group"] is True
    assert 'name="join_group" checked' in at_hosts.get(HOSTS).content.decode()
    session = at_hosts.session
    WizardState(session).put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                                     "install_source": "official"})
    session.save()
    created = at_hosts.post(reverse("clusters:wizard-step", args=["review"]),
                            {"billing_ack": "on"})
    assert created.status_code == 302
    from clusters.models import Cluster  # noqa: PLC0415
    from clusters.operations.create import create_plan  # noqa: PLC0415
    from clusters.operations.destroy import destroy_plan  # noqa: PLC0415

    cluster = Cluster.objects.get(owner=user, name="picked")
    assert cluster.join_security_group and not cluster.instance_order
    plan = {s.key: s for s in create_plan(cluster)}
    assert plan["ecs_group"].depends_on == ["preflight_cloud"]
    assert plan["ecs_join"].handler == "ecs.join_group"
    assert plan["preflight_hosts"].depends_on == ["ecs_join"]
    gone = {s.key: s for s in destroy_plan(cluster)}
    assert gone["ecs_group_leave"].depends_on == ["uninstall"]
    assert "ecs_group_leave" in gone["ecs_group_delete"].depends_on


def test_a_panel_outside_the_vpc_must_order_public_bandwidth(
        at_hosts: Client, world: Emulator, settings: Any) -> None:
    """A panel outside the VPC reaches a node only at its public address, and without
    bandwidth a bought instance has none (V2 RunInstancesRequest.InternetMaxBandwidthOut):
    the order is refused at its field, and accepted with bandwidth or a panel inside."""
    from tests.ui.test_wizard import field_errors  # noqa: PLC0415

    settings.PANEL_SSH_SOURCE_CIDRS = ["203.0.113.9/32"]
    refused = at_hosts.post(HOSTS, order_post(public_bandwidth_mbps=0))
    assert refused.status_code == 200
    said = " ".join(field_errors(refused, "order-public_bandwidth_mbps"))
    assert "Order public bandwidth" in said and "run the panel inside the VPC" in said
    assert not WizardState(at_hosts.session).get("hosts").get("order")
    assert at_hosts.post(HOSTS, order_post(public_bandwidth_mbps=1)).status_code == 302
    settings.PANEL_SSH_SOURCE_CIDRS = [f"{world.vswitch['cidr'].rsplit('.', 1)[0]}.250/32"]
    assert at_hosts.post(HOSTS, order_post(public_bandwidth_mbps=0)).status_code == 302
