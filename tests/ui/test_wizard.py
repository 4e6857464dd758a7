"""The create wizard, page by page, against the Aliyun emulator (the official SDK speaking to
sandbox/aliyun) and the K3s artifact server: what it accepts, what it refuses at which field,
and that what was typed survives a refusal."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import SESSION_KEY, WizardState
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudAccount,
    Cluster,
    ClusterStatus,
    Run,
    RunKind,
)
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.ui.wizard_data import host_rows, openssh_key


def step_url(step: str) -> str:
    return reverse("clusters:wizard-step", args=[step])


def field_errors(response: Any, name: str) -> list[str]:
    """The error messages rendered next to one field (its `id_<name>_error` list)."""
    page = response.content.decode()
    assert f'id="field-{name}"' in page, f"field {name} is not on the page"
    match = re.search(rf'<ul class="errorlist" id="id_{re.escape(name)}_error">(.*?)</ul>',
                      page, re.S)
    return [html.unescape(m) for m in re.findall(r"<li>(.*?)</li>", match.group(1), re.S)] \
        if match else []


def value_of(response: Any, name: str) -> str:
    page = response.content.decode()
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', page) or \
        re.search(rf'<textarea[^>]*name="{re.escape(name)}"[^>]*>\n?(.*?)</textarea>', page,
                  re.S)
    return html.unescape(match.group(1)) if match else ""


def expected_monthly(cloud: Emulator, instance_class: str, storage_gb: int) -> tuple[str, str]:
    """Monthly RDS and CLB prices from the emulator's own seeded price list (times 730 hours)."""
    prices = cloud.control.request("GET", "prices")
    rds = prices["rds"]
    rds_hourly = round(rds["classes"][instance_class]
                       + rds["storage_per_gb"][rds["default_storage_type"]] * storage_gb, 4)
    slb_hourly = prices["bss"]["slb"]["InstanceRent"]["1"][0]
    return f"{rds_hourly * 730:.2f}", f"{slb_hourly * 730:.2f}"


def monthly_prices(page: str) -> list[str]:
    return re.findall(r'<span class="price" data-monthly="([0-9.]+)">', page)


def total_of(page: str) -> str:
    match = re.search(r'<td id="price-total">.*?<strong>(.*?)</strong>', page, re.S)
    return html.unescape(match.group(1)).strip() if match else ""


# --- the whole way, against the emulator -------------------------------------------------------


def test_wizard_end_to_end_creates_the_cluster_and_starts_its_run(
        cloud: Emulator, artifacts: ArtifactServer, user: Any, owner_client: Client) -> None:
    client = owner_client
    assert client.get(reverse("clusters:wizard"))["Location"] == step_url("account")

    # 1. A new AccessKey, checked live with DescribeRegions before it is saved.
    response = client.post(step_url("account"), {
        "name": "web-prod", "new_account_name": "main", "access_key_id": cloud.access_key_id,
        "access_key_secret": cloud.access_key_secret, "region": "cn-hangzhou"})
    assert response.status_code == 302, field_errors(response, "access_key_secret")
    assert response["Location"] == step_url("network")
    account = CloudAccount.objects.get(owner=user)
    assert account.access_key_secret == cloud.access_key_secret
    assert AuditEvent.objects.get().action == AuditAction.CLOUD_ACCOUNT_ADD

    # 2. Zones, VPCs and vSwitches are the emulator's.
    page = client.get(step_url("network"))
    vpc, vswitch = cloud.vpc, cloud.vswitch
    for value in (vswitch["zone_id"], vpc["vpc_id"], vswitch["vswitch_id"], vswitch["cidr"]):
        assert value in page.content.decode()
    other_zone = cloud.vpc["vswitches"][1]["zone_id"]
    mismatch = client.post(step_url("network"), {
        "zone": other_zone, "vpc": vpc["vpc_id"], "vswitch": vswitch["vswitch_id"],
        "slb_address_type": "intranet"})
    assert "is in zone" in " ".join(field_errors(mismatch, "vswitch"))
    response = client.post(step_url("network"), {
        "zone": vswitch["zone_id"], "vpc": vpc["vpc_id"], "vswitch": vswitch["vswitch_id"],
        "slb_address_type": "intranet"})
    assert response["Location"] == step_url("datastore")

    # 3. RDS with a generated password.
    response = client.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20, "rds_password": ""})
    assert response["Location"] == step_url("hosts")

    # 4. Two servers and an agent inside the VPC; the agent uses a generated key pair.
    base = vswitch["cidr"].rsplit(".", 1)[0]
    page = client.post(step_url("hosts"), {**host_rows({"private_ip": f"{base}.11"}),
                                           "action": "generate_key"})
    public_key = value_of(page, "") or re.search(r'<code id="public-key">(.*?)</code>',
                                                  page.content.decode()).group(1)
    assert public_key.startswith("ssh-ed25519 ")
    key = openssh_key()
    response = client.post(step_url("hosts"), {**host_rows(
        {"private_ip": f"{base}.11"},
        {"private_ip": f"{base}.12", "auth": "key", "private_key": key, "password": ""},
        {"private_ip": f"{base}.13", "role": "agent", "auth": "generated", "password": ""},
    ), "action": "next"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == step_url("k3s")

    # 5. A pinned version that exists at a custom source (the offline artifact server).
    response = client.post(step_url("k3s"), {
        "version": "v1.32.5+k3s1", "install_source": "custom",
        "install_base_url": artifacts.base_url, "extra_tls_sans": "k8s.example.com\n10.0.0.5",
        "disable_traefik": "on"})
    assert response["Location"] == step_url("review")

    # 6. Review lists what is billed; Create needs the acknowledgement.
    review = client.get(step_url("review")).content.decode()
    assert "RDS MySQL instance" in review and "CLB instance (pay-as-you-go, pay-by-LCU)" in review
    assert "mysql.n2.medium.2c" in review and "slb.s1.small" not in review
    # Each item's monthly price is what the emulator's seeded price list gives for the choice
    # (RDS DescribePrice: class + 20 GB of cloud_essd; BSS GetPayAsYouGoPrice: the CLB's
    # instance fee), hourly times 730.
    rds_monthly, slb_monthly = expected_monthly(cloud, "mysql.n2.medium.2c", 20)
    assert monthly_prices(review) == [rds_monthly, slb_monthly]
    assert total_of(review) == f"{float(rds_monthly) + float(slb_monthly):.2f} CNY"
    assert "730" in review
    refused = client.post(step_url("review"), {})
    assert field_errors(refused, "billing_ack")
    assert not Cluster.objects.exists()
    response = client.post(step_url("review"), {"billing_ack": "on"}, REMOTE_ADDR="10.2.3.4")
    cluster = Cluster.objects.get(owner=user)
    assert response["Location"] == reverse("clusters:cluster", args=[cluster.code])

    assert (cluster.name, cluster.region, cluster.zone) == ("web-prod", "cn-hangzhou",
                                                            vswitch["zone_id"])
    assert (cluster.vpc_id, cluster.vswitch_id) == (vpc["vpc_id"], vswitch["vswitch_id"])
    assert cluster.status == ClusterStatus.PROVISIONING
    assert (cluster.k3s_version, cluster.k3s_channel) == ("v1.32.5+k3s1", "")
    assert cluster.install_base_url == artifacts.base_url
    assert cluster.extra_tls_sans == ["k8s.example.com", "10.0.0.5"]
    assert cluster.disable_traefik and not cluster.taint_servers
    assert len(cluster.datastore_password) >= 16 and cluster.k3s_token
    nodes = {n.private_ip: n for n in cluster.nodes.all()}
    assert nodes[f"{base}.11"].ssh_password == "s3cret-pass"
    assert nodes[f"{base}.12"].ssh_private_key.strip() == key.strip()
    agent = nodes[f"{base}.13"]
    assert agent.role == "agent" and "OPENSSH PRIVATE KEY" in agent.ssh_private_key
    run = Run.objects.get(cluster=cluster)
    assert run.kind == RunKind.CREATE and run.created_by == user
    assert run.steps.filter(key="rds_create").exists()
    create = AuditEvent.objects.get(action=AuditAction.CLUSTER_CREATE)
    assert (create.cluster, create.ip_address) == (cluster, "10.2.3.4")
    assert SESSION_KEY not in client.session  # the typed secrets are gone with the wizard

    page = client.get(response["Location"]).content.decode()
    assert "Creating web-prod" in page
    assert "Create the RDS MySQL instance" in page


def test_an_internet_api_needs_an_allow_list_of_cidr_blocks(
        at_datastore: Client, cloud: Emulator) -> None:
    """Nobody reaches an Internet-facing API until the user lists who may (a CLB whitelist
    without entries would forward from everywhere, so an empty one is never made)."""
    vswitch = cloud.vswitch
    answer = {"zone": vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
              "vswitch": vswitch["vswitch_id"], "slb_address_type": "internet"}
    page = at_datastore.get(step_url("network")).content.decode()
    assert 'name="api_allowed_cidrs"' in page
    assert "This browser reaches the panel from 127.0.0.1" in page
    empty = at_datastore.post(step_url("network"), {**answer, "api_allowed_cidrs": ""})
    assert "nobody can reach it" in " ".join(field_errors(empty, "api_allowed_cidrs"))
    bad = at_datastore.post(step_url("network"), {**answer,
                                                  "api_allowed_cidrs": "10.0.0.1/24"})
    assert "10.0.0.1/24 is not an IPv4 CIDR block" in " ".join(
        field_errors(bad, "api_allowed_cidrs"))
    good = at_datastore.post(step_url("network"), {
        **answer, "api_allowed_cidrs": "203.0.113.0/24\n198.51.100.7, 203.0.113.0/24"})
    assert good["Location"] == step_url("datastore")
    state = WizardState(at_datastore.session)
    assert state.get("network")["api_allowed_cidrs"] == ["203.0.113.0/24", "198.51.100.7/32"]
    back = at_datastore.get(step_url("network")).content.decode()  # going back: one per line
    assert "203.0.113.0/24\n198.51.100.7/32</textarea>" in back
    # An intranet SLB keeps today's behaviour: no list, no ACL.
    intranet = at_datastore.post(step_url("network"), {**answer, "slb_address_type": "intranet",
                                                       "api_allowed_cidrs": ""})
    assert intranet["Location"] == step_url("datastore")


def test_a_wrong_access_key_is_refused_at_the_field_and_not_saved(
        cloud: Emulator, user: Any, owner_client: Client) -> None:
    response = owner_client.post(step_url("account"), {
        "name": "web-prod", "new_account_name": "main", "access_key_id": cloud.access_key_id,
        "access_key_secret": "not-the-secret", "region": "cn-hangzhou"})
    assert response.status_code == 200
    errors = " ".join(field_errors(response, "access_key_secret"))
    assert "rejected this AccessKey" in errors
    assert not CloudAccount.objects.exists()
    assert value_of(response, "name") == "web-prod"
    assert value_of(response, "access_key_id") == cloud.access_key_id
    assert value_of(response, "access_key_secret") == ""  # a secret is never sent back


def test_an_unknown_region_is_refused_with_the_ones_available(
        cloud: Emulator, user: Any, owner_client: Client) -> None:
    response = owner_client.post(step_url("account"), {
        "name": "web-prod", "new_account_name": "main", "access_key_id": cloud.access_key_id,
        "access_key_secret": cloud.access_key_secret, "region": "cn-atlantis"})
    assert "cn-hangzhou" in " ".join(field_errors(response, "region"))
    assert value_of(response, "region") == "cn-atlantis"


# --- each later step's refusals, with the earlier steps already answered -----------------------


@pytest.mark.parametrize(("password", "reason"), [
    ("Sh0rt!", "8 to 32 characters"),
    ("alllowercase1234", "three of"),
    ("Spaces are 1 not OK", "may only use"),
])
def test_rds_password_outside_rds_rules_is_refused(at_datastore: Client, password: str,
                                                   reason: str) -> None:
    response = at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20, "rds_password": password})
    assert response.status_code == 200
    assert reason in " ".join(field_errors(response, "rds_password"))
    assert value_of(response, "rds_password") == "", "a password is never written back"
    assert password not in response.content.decode()
    # Refused, it is not kept either: left blank now, a strong one is generated.
    assert at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20, "rds_password": ""}).status_code == 302
    assert not WizardState(at_datastore.session).get("datastore")["rds_password"]
    assert value_of(response, "rds_storage_gb") == "20"


def test_rds_storage_out_of_range_is_refused(at_datastore: Client) -> None:
    response = at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 5})
    assert field_errors(response, "rds_storage_gb")


def class_options(response: Any) -> list[str]:
    """The values of the instance-class <select> as rendered."""
    page = response.content.decode()
    select = re.search(r'<select name="rds_instance_class"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no instance-class select on the page"
    return re.findall(r'<option value="([^"]*)"', select.group(1))


def test_rds_classes_and_storage_come_from_what_the_zone_sells_now(
        at_datastore: Client, cloud: Emulator) -> None:
    region, zone = cloud.vpc["region_id"], cloud.vswitch["zone_id"]
    seeded = class_options(at_datastore.get(step_url("datastore")))
    assert "mysql.n2.medium.2c" in seeded and "mysql.n2.medium.1" not in seeded  # HA only
    cloud.control.set_rds_classes(region, zone, "8.0", [
        {"class": "mysql.n8.colossal.2c", "cpu": 64, "memory_gb": 512, "storage_min": 100,
         "storage_max": 500, "storage_step": 10}])
    try:
        assert class_options(at_datastore.get(step_url("datastore"))) == [
            "mysql.n8.colossal.2c"]
        post = {"kind": "rds", "rds_engine_version": "8.0"}
        gone = at_datastore.post(step_url("datastore"), {
            **post, "rds_instance_class": "mysql.n2.medium.2c", "rds_storage_gb": 100})
        assert "does not sell mysql.n2.medium.2c" in " ".join(
            field_errors(gone, "rds_instance_class"))
        small = at_datastore.post(step_url("datastore"), {
            **post, "rds_instance_class": "mysql.n8.colossal.2c", "rds_storage_gb": 20})
        assert "100 to 500 GB" in " ".join(field_errors(small, "rds_storage_gb"))
        odd = at_datastore.post(step_url("datastore"), {
            **post, "rds_instance_class": "mysql.n8.colossal.2c", "rds_storage_gb": 105})
        assert "steps of 10 GB" in " ".join(field_errors(odd, "rds_storage_gb"))
        fits = at_datastore.post(step_url("datastore"), {
            **post, "rds_instance_class": "mysql.n8.colossal.2c", "rds_storage_gb": 110})
        assert fits["Location"] == step_url("hosts")
    finally:
        cloud.control.set_rds_classes(region, zone, "8.0", None)
    assert class_options(at_datastore.get(step_url("datastore"))) == seeded


def test_rds_versions_are_8_0_by_default_8_4_and_legacy_5_7(
        at_datastore: Client, cloud: Emulator) -> None:
    page = at_datastore.get(step_url("datastore")).content.decode()
    select = re.search(r'<select name="rds_engine_version".*?</select>', page, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == ["8.0", "8.4", "5.7"]
    assert re.search(r'<option value="8.0"[^>]*selected', select)
    assert "legacy" in select and "5.6" not in select
    # Picking another version shows that version's classes (what the JS refresh does).
    region, zone = cloud.vpc["region_id"], cloud.vswitch["zone_id"]
    cloud.control.set_rds_classes(region, zone, "5.7", [{"class": "mysql.n2.legacy57.2c"}])
    cloud.control.set_rds_classes(region, zone, "8.4", [])
    try:
        refreshed = at_datastore.post(step_url("datastore"), {
            "kind": "rds", "rds_engine_version": "5.7", "rds_instance_class": "mysql.n2.large.2c",
            "rds_storage_gb": 20, "action": "refresh"})
        assert class_options(refreshed) == ["mysql.n2.legacy57.2c"]
        assert not field_errors(refreshed, "rds_instance_class")
        unsold = at_datastore.post(step_url("datastore"), {
            "kind": "rds", "rds_engine_version": "8.4", "rds_instance_class": "mysql.n2.large.2c",
            "rds_storage_gb": 20})
        assert "RDS sells no MySQL 8.4" in " ".join(field_errors(unsold, "rds_engine_version"))
    finally:
        cloud.control.set_rds_classes(region, zone, "5.7", None)
        cloud.control.set_rds_classes(region, zone, "8.4", None)


def test_rds_choices_speak_chinese(at_datastore: Client) -> None:
    page = at_datastore.get(step_url("datastore"),
                            HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    for text in ("MySQL 5.7（旧版：RDS 延长支持至 2028 年）", "显示此版本的规格",  # noqa: RUF001
                 "RDS 当前在可用区", "mysql.n2.medium.2c · 20 至 32000 GB"):
        assert text in page, text


def test_rds_lookup_failure_is_shown_and_blocks_only_rds(at_datastore: Client,
                                                         settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = "127.0.0.1:9"  # nothing listens: RDS cannot be asked
    refused = at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20})
    assert "could not ask RDS" in " ".join(field_errors(refused, "rds_instance_class"))


def test_dsn_without_tcp_is_refused_and_kept(at_datastore: Client) -> None:
    dsn = "mysql://k3s:Secret-123@db.internal:3306/k3s"
    response = at_datastore.post(step_url("datastore"), {"kind": "external",
                                                         "external_dsn": dsn})
    assert response.status_code == 200
    assert "missing tcp(...)" in " ".join(field_errors(response, "external_dsn"))
    page = response.content.decode()
    assert value_of(response, "external_dsn") == "" and "Secret-123" not in page
    assert "Saved: mysql://k3s:***@db.internal:3306/k3s" in page


def test_dsn_that_parses_but_cannot_be_reached_passes_with_a_warning(
        at_datastore: Client) -> None:
    # Port 9 on loopback: nothing listens, so the panel cannot tell; preflight will.
    dsn = "mysql://k3s:Secret-123@tcp(127.0.0.1:9)/k3s"
    response = at_datastore.post(step_url("datastore"), {"kind": "external",
                                                         "external_dsn": dsn}, follow=True)
    assert response.redirect_chain[-1][0] == step_url("hosts")
    assert "could not reach 127.0.0.1:9" in response.content.decode()
    assert WizardState(at_datastore.session).get("datastore")["external_dsn"] == dsn


def test_bad_host_rows_are_refused_at_their_fields_and_kept(at_hosts: Client) -> None:
    response = at_hosts.post(step_url("hosts"), {**host_rows(
        {"private_ip": "10.0.1.300"},
        {"private_ip": "8.8.8.8"},
        {"private_ip": "10.0.1.12", "public_ip": "10.0.1.99", "ssh_port": 70000},
        {"private_ip": "10.0.1.12", "role": "agent", "auth": "key",
         "private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"},
        {"private_ip": "10.9.0.1", "role": "agent"},
    ), "action": "next"})
    assert response.status_code == 200
    assert "not an IPv4 address" in " ".join(field_errors(response, "hosts-0-private_ip"))
    assert "public address" in " ".join(field_errors(response, "hosts-1-private_ip"))
    assert "not a public address" in " ".join(field_errors(response, "hosts-2-public_ip"))
    assert "1 to 65535" in " ".join(field_errors(response, "hosts-2-ssh_port"))
    assert "could not be read" in " ".join(field_errors(response, "hosts-3-private_key"))
    assert value_of(response, "hosts-0-private_ip") == "10.0.1.300"
    assert value_of(response, "hosts-1-private_ip") == "8.8.8.8"
    assert value_of(response, "hosts-2-ssh_port") == "70000"
    page = response.content.decode()
    assert "not a key" not in page and "s3cret-pass" not in page, "never written back"
    # A key that failed its check is not kept: the next blank box must not fail again.
    assert not re.search(r'name="hosts-3-private_key"[^>]*data-saved="1"', page)
    assert len(re.findall(r'data-saved="1"', page)) == 5, "each row's password is kept"
    assert not WizardState(at_hosts.session).done("hosts")


def test_duplicate_addresses_and_hosts_outside_the_vpc_are_refused(at_hosts: Client) -> None:
    response = at_hosts.post(step_url("hosts"), {**host_rows(
        {"private_ip": "10.0.1.11"}, {"private_ip": "10.0.1.11"},
    ), "action": "next"})
    assert "already used by host 1" in " ".join(field_errors(response, "hosts-1-private_ip"))
    response = at_hosts.post(step_url("hosts"), {**host_rows(
        {"private_ip": "10.0.1.11"}, {"private_ip": "192.168.7.7"},
    ), "action": "next"})
    assert "outside the VPC" in " ".join(field_errors(response, "hosts-1-private_ip"))


def test_one_server_is_allowed_with_a_warning(at_hosts: Client) -> None:
    response = at_hosts.post(step_url("hosts"), {**host_rows({"private_ip": "10.0.1.11"}),
                                                 "action": "next"}, follow=True)
    assert response.redirect_chain[-1][0] == step_url("k3s")
    assert "not highly available" in response.content.decode()


def test_uploaded_key_file_is_accepted(at_hosts: Client, tmp_path: Path) -> None:
    key_file = tmp_path / "id_ed25519"
    key_file.write_text(openssh_key())
    data = host_rows({"private_ip": "10.0.1.11", "auth": "key", "password": ""},
                     {"private_ip": "10.0.1.12"})
    with key_file.open("rb") as handle:
        response = at_hosts.post(step_url("hosts"), {**data, "hosts-0-key_file": handle,
                                                     "action": "next"})
    assert response.status_code == 302
    hosts = WizardState(at_hosts.session).get("hosts")["hosts"]
    assert "OPENSSH PRIVATE KEY" in hosts[0]["private_key"]


def test_a_key_file_over_64_kb_is_refused_as_too_big(at_hosts: Client, tmp_path: Path) -> None:
    big = tmp_path / "id_rsa"
    big.write_text(openssh_key() + "#" * (64 * 1024))
    data = host_rows({"private_ip": "10.0.1.11", "auth": "key", "password": ""},
                     {"private_ip": "10.0.1.12"})
    errors = {}
    for language in ("en", "zh-hans"):
        with big.open("rb") as handle:
            response = at_hosts.post(step_url("hosts"), {**data, "hosts-0-key_file": handle,
                                                         "action": "next"},
                                     HTTP_ACCEPT_LANGUAGE=language)
        errors[language] = field_errors(response, "hosts-0-key_file")
    assert errors == {
        "en": ["This file is larger than 64 KB: a private key file must be smaller."],
        "zh-hans": ["此文件大于 64 KB：私钥文件必须小于 64 KB。"],  # noqa: RUF001 - Chinese punctuation
    }


def test_rows_can_be_added_and_removed_without_losing_what_was_typed(at_hosts: Client) -> None:
    data = host_rows({"private_ip": "10.0.1.11", "password": "first-pass"},
                     {"private_ip": "10.0.1.12", "password": "second-pass"})
    response = at_hosts.post(step_url("hosts"), {**data, "action": "add_agent"})
    assert value_of(response, "hosts-1-private_ip") == "10.0.1.12"
    assert 'name="hosts-2-private_ip"' in response.content.decode()
    assert 'name="hosts-TOTAL_FORMS" value="3"' in response.content.decode()
    response = at_hosts.post(step_url("hosts"), {**data, "action": "remove-0"})
    assert value_of(response, "hosts-0-private_ip") == "10.0.1.12"
    assert 'name="hosts-1-private_ip"' not in response.content.decode()
    # The passwords stayed server-side with their rows: the remaining row, sent back with
    # its box blank as the page shows it, still has its own.
    page = response.content.decode()
    assert "second-pass" not in page and "first-pass" not in page
    ref = value_of(response, "hosts-0-secret_ref")
    assert ref
    kept = at_hosts.post(step_url("hosts"), {**host_rows(
        {"private_ip": "10.0.1.12", "password": "", "secret_ref": ref}), "action": "next"})
    assert kept.status_code == 302
    assert [h["password"] for h in WizardState(at_hosts.session).get("hosts")["hosts"]] == [
        "second-pass"]


def test_test_connection_never_dials_the_panel_itself(at_hosts: Client, settings: Any) -> None:
    settings.PANEL_ALLOW_LOOPBACK_HOSTS = False  # as panel/settings.py has it
    # Loopback (Redis, PostgreSQL and the panel listen there) is refused at the field, and
    # the Test button dials nothing: the row says why, and keeps what was typed.
    data = host_rows({"private_ip": "10.0.1.11"},
                     {"private_ip": "127.0.0.1", "ssh_port": 6379})
    response = at_hosts.post(step_url("hosts"), {**data, "action": "test-1"})
    page = response.content.decode()
    result = re.search(r'<fieldset class="host card-inner" id="host-1">.*?'
                       r'<p class="test-result bad" role="status">(.*?)</p>', page, re.S)
    assert result and "127.0.0.1 is a loopback address" in html.unescape(result.group(1))
    assert value_of(response, "hosts-1-ssh_port") == "6379"
    data = host_rows({"private_ip": "10.0.1.11"}, {"private_ip": "169.254.169.254"})
    response = at_hosts.post(step_url("hosts"), {**data, "action": "next"})
    assert "link-local" in " ".join(field_errors(response, "hosts-1-private_ip"))


def test_create_pins_the_host_key_test_connection_showed(at_review: Client, user: Any) -> None:
    session = at_review.session
    state = WizardState(session)
    host = state.get("hosts")["hosts"][0]
    seen = "SHA256:" + "k" * 43
    state.remember_host_key(host["private_ip"], 22, seen)
    session.save()
    assert f'<code class="host-key">{seen}</code>' in at_review.get(
        step_url("review")).content.decode()
    assert at_review.post(step_url("review"), {"billing_ack": "on"}).status_code == 302
    node = Cluster.objects.get(owner=user, name="priced").nodes.get()
    assert node.host_key == seen  # preflight refuses any other key (clusters.adapters.nodes)


@pytest.fixture
def at_k3s(at_hosts: Client) -> Client:
    response = at_hosts.post(step_url("hosts"), {
        **host_rows({"private_ip": "10.0.1.11"}, {"private_ip": "10.0.1.12"}),
        "action": "next"})
    assert response.status_code == 302
    return at_hosts


@pytest.mark.parametrize("version", ["v1.99.0+k3s1", "v1.32.4+k3s1", "v1.29"])
def test_k3s_version_that_does_not_exist_is_refused(at_k3s: Client, artifacts: ArtifactServer,
                                                    version: str) -> None:
    response = at_k3s.post(step_url("k3s"), {"version": version, "install_source": "custom",
                                             "install_base_url": artifacts.base_url})
    assert response.status_code == 200
    errors = " ".join(field_errors(response, "version"))
    assert f"{version} does not exist at {artifacts.base_url}" in errors
    assert value_of(response, "version") == version


@pytest.mark.parametrize("version", ["stable", "v1.28", "v1.33.1+k3s1", "1.30.8"])
def test_k3s_versions_and_channels_that_exist_are_accepted(
        at_k3s: Client, artifacts: ArtifactServer, version: str) -> None:
    response = at_k3s.post(step_url("k3s"), {"version": version, "install_source": "custom",
                                             "install_base_url": artifacts.base_url})
    assert response.status_code == 302, field_errors(response, "version")


def test_china_mirror_layout_is_checked_too(at_k3s: Client, artifacts: ArtifactServer,
                                            settings: Any) -> None:
    settings.PANEL_K3S_MIRROR_BASE_URL = artifacts.base_url
    ok = at_k3s.post(step_url("k3s"), {"version": "v1.31.4+k3s1",
                                       "install_source": "china_mirror"})
    assert ok.status_code == 302
    missing = at_k3s.post(step_url("k3s"), {"version": "v1.31.5+k3s1",
                                            "install_source": "china_mirror"})
    assert "does not exist" in " ".join(field_errors(missing, "version"))


def test_k3s_garbage_version_bad_sans_and_missing_base_url(at_k3s: Client) -> None:
    response = at_k3s.post(step_url("k3s"), {"version": "banana", "install_source": "custom",
                                             "install_base_url": "",
                                             "extra_tls_sans": "ok.example.com\nbad name!"})
    assert field_errors(response, "install_base_url")
    assert "bad name!" in " ".join(field_errors(response, "extra_tls_sans"))
    response = at_k3s.post(step_url("k3s"), {"version": "banana", "install_source": "custom",
                                             "install_base_url": "http://127.0.0.1:9"})
    assert "neither a K3s version" in " ".join(field_errors(response, "version"))


def test_unreachable_source_is_a_warning_not_a_refusal(at_k3s: Client) -> None:
    response = at_k3s.post(step_url("k3s"), {"version": "stable", "install_source": "custom",
                                             "install_base_url": "http://127.0.0.1:9"},
                           follow=True)
    assert response.redirect_chain[-1][0] == step_url("review")
    page = html.unescape(response.content.decode())
    assert "could not reach http://127.0.0.1:9 to look up channel stable" in page
    assert "Give an exact version" in page


def test_steps_cannot_be_skipped(owner_client: Client) -> None:
    assert owner_client.get(step_url("review"))["Location"] == step_url("account")
    assert owner_client.get(step_url("nope")).status_code == 404


def test_secrets_typed_into_the_wizard_are_encrypted_in_the_session(at_k3s: Client) -> None:
    raw = Session.objects.get(session_key=at_k3s.session.session_key).session_data
    decoded = str(Session.objects.get(session_key=at_k3s.session.session_key).get_decoded())
    assert "s3cret-pass" not in raw and "s3cret-pass" not in decoded
    assert WizardState(at_k3s.session).get("hosts")["hosts"][0]["password"] == "s3cret-pass"


# --- the price on the review page ----------------------------------------------------------------


@pytest.fixture
def at_review(cloud: Emulator, user: Any, owner_client: Client) -> Client:
    """A client whose wizard is complete up to the review page, on the emulator's account."""
    account = CloudAccount.objects.create(owner=user, name="emu",
                                          access_key_id=cloud.access_key_id,
                                          access_key_secret=cloud.access_key_secret)
    vswitch, base = cloud.vswitch, cloud.vswitch["cidr"].rsplit(".", 1)[0]
    session = owner_client.session
    state = WizardState(session)
    state.put("account", {"name": "priced", "cloud_account": account.pk,
                          "region": cloud.region_id})
    state.put("network", {"zone": vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
                          "vswitch": vswitch["vswitch_id"], "slb_address_type": "internet",
                          "vpc_cidr": cloud.vpc["cidr"], "vswitch_cidr": vswitch["cidr"]})
    state.put("datastore", {"kind": "rds", "rds_engine_version": "8.0",
                            "rds_instance_class": "mysql.n4.medium.1", "rds_storage_gb": 100})
    state.put("hosts", {"hosts": [{"role": "server", "private_ip": f"{base}.21", "ssh_port": 22,
                                   "ssh_user": "root", "auth": "password",
                                   "password": "s3cret-pass"}], "warnings": []})
    state.put("k3s", {"k3s_version": "v1.32.5+k3s1", "k3s_channel": "",
                      "install_source": "official"})
    session.save()
    return owner_client


def test_review_price_follows_the_chosen_class_storage_and_load_balancer(
        at_review: Client, cloud: Emulator) -> None:
    review = at_review.get(step_url("review")).content.decode()
    rds_monthly, slb_monthly = expected_monthly(cloud, "mysql.n4.medium.1", 100)
    assert monthly_prices(review) == [rds_monthly, slb_monthly]
    assert total_of(review) == f"{float(rds_monthly) + float(slb_monthly):.2f} CNY"
    # An Internet-facing CLB also bills data out by traffic: named, not added to the month.
    traffic = cloud.control.request("GET", "prices")["bss"]["slb"]["InternetTrafficOut"]["1"][0]
    assert f"{traffic:g} CNY per GB of Internet data out" in html.unescape(review)
    instance_fee = cloud.control.request("GET", "prices")["bss"]["slb"]["InstanceRent"]["1"][0]
    assert f"{instance_fee:g} CNY per hour" in review
    asked = [c for c in cloud.control.calls() if c["action"] in ("DescribePrice",
                                                                  "GetPayAsYouGoPrice")][-2:]
    assert asked[0]["params"]["DBInstanceClass"] == "mysql.n4.medium.1"
    assert asked[0]["params"]["DBInstanceStorage"] == "100"
    assert asked[0]["params"]["PayType"] == "Postpaid"
    assert asked[1]["params"]["ProductCode"] == "slb"
    assert asked[1]["params"]["SubscriptionType"] == "PayAsYouGo"


def test_a_price_that_cannot_be_fetched_is_unknown_with_its_reason_and_create_still_works(
        at_review: Client, cloud: Emulator, user: Any) -> None:
    cloud.control.add_fault(action="DescribePrice", code="ServiceUnavailable", count=1)
    try:
        review = html.unescape(at_review.get(step_url("review")).content.decode())
    finally:
        cloud.control.clear_faults()
    (failed,) = [c for c in cloud.control.calls() if c["action"] == "DescribePrice"][-1:]
    assert failed["code"] == "ServiceUnavailable"
    unknown = re.search(r'<tr class="price-line price-unknown">(.*?)</tr>', review, re.S)
    assert unknown and "RDS MySQL instance" in unknown.group(1)
    assert "Unknown" in unknown.group(1) and "code ServiceUnavailable" in unknown.group(1)
    assert f"RequestId {failed['request_id']}" in unknown.group(1)
    assert "0.00 CNY" not in review  # never shown as free
    _, slb_monthly = expected_monthly(cloud, "mysql.n4.medium.1", 100)
    assert monthly_prices(review) == [slb_monthly]
    assert total_of(review) == f"{slb_monthly} CNY"
    assert "(without the items whose price is unknown)" in review

    cloud.control.add_fault(action="*", product="BssOpenApi", code="Throttling", count=1)
    cloud.control.add_fault(action="DescribePrice", code="Throttling", count=1)
    try:
        review = html.unescape(at_review.get(step_url("review")).content.decode())
    finally:
        cloud.control.clear_faults()
    assert monthly_prices(review) == [] and total_of(review) == "Unknown"
    assert review.count('class="price-line price-unknown"') == 2

    response = at_review.post(step_url("review"), {"billing_ack": "on"})
    cluster = Cluster.objects.get(owner=user, name="priced")
    assert response["Location"] == reverse("clusters:cluster", args=[cluster.code])
    assert (cluster.slb_charge_type, cluster.slb_spec) == ("PayByCLCU", "")


def test_a_china_region_starts_the_k3s_step_on_the_china_mirror(at_k3s: Client) -> None:
    page = at_k3s.get(step_url("k3s")).content.decode()
    (mirror,) = re.findall(r'<input[^>]*value="china_mirror"[^>]*>', page)
    (official,) = re.findall(r'<input[^>]*value="official"[^>]*>', page)
    assert "checked" in mirror and "checked" not in official


def test_the_review_says_a_channel_is_pinned_when_the_create_starts(
        at_k3s: Client, artifacts: ArtifactServer) -> None:
    response = at_k3s.post(step_url("k3s"), {"version": "stable", "install_source": "custom",
                                             "install_base_url": artifacts.base_url})
    assert response["Location"] == step_url("review")
    review = html.unescape(at_k3s.get(step_url("review")).content.decode())
    assert "<code>stable</code> (a channel: pinned to its current release when the create " \
           "starts)" in review


def test_create_posted_twice_at_once_leads_to_the_one_cluster_it_made(
        at_review: Client, user: Any) -> None:
    """A double click on Create: the second POST was read with the answers still in the session
    (the first had not cleared them yet). It is sent to the cluster made, not to a 500."""
    answers = dict(at_review.session[SESSION_KEY])
    first = at_review.post(step_url("review"), {"billing_ack": "on"})
    cluster = Cluster.objects.get(owner=user, name="priced")
    assert first["Location"] == reverse("clusters:cluster", args=[cluster.code])

    session = at_review.session
    session[SESSION_KEY] = answers  # the second request's view of the session
    session.save()
    second = at_review.post(step_url("review"), {"billing_ack": "on"}, follow=True)
    assert second.redirect_chain[-1][0] == reverse("clusters:cluster", args=[cluster.code])
    assert "priced was already created; this is its page." in second.content.decode()
    assert Cluster.objects.filter(owner=user).count() == 1
    assert Run.objects.filter(cluster=cluster, kind=RunKind.CREATE).count() == 1

    # Posted again once the answers are gone (a reload of the POST): the same cluster again.
    third = at_review.post(step_url("review"), {"billing_ack": "on"})
    assert third["Location"] == reverse("clusters:cluster", args=[cluster.code])
    assert Cluster.objects.filter(owner=user).count() == 1


def test_create_with_a_name_taken_since_the_account_step_is_refused_not_a_500(
        at_review: Client, user: Any) -> None:
    other = CloudAccount.objects.create(owner=user, name="other", access_key_id="LTAIother0000",
                                        access_key_secret="other-secret-value")
    Cluster.objects.create(owner=user, cloud_account=other, name="priced", region="cn-beijing")
    response = at_review.post(step_url("review"), {"billing_ack": "on"}, follow=True)
    assert response.redirect_chain[-1][0] == step_url("account")
    assert ("A cluster named priced already exists: choose another name."
            in html.unescape(response.content.decode()))
    assert Cluster.objects.filter(owner=user, name="priced").count() == 1


# --- secrets never go back into a page ---------------------------------------------------------


def test_going_back_shows_saved_secrets_as_saved_and_keeps_them_when_left_blank(
        at_datastore: Client) -> None:
    key = openssh_key()
    assert at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20, "rds_password": "Typed-Passw0rd!"}).status_code == 302
    assert at_datastore.post(step_url("hosts"), {**host_rows(
        {"private_ip": "10.0.1.11", "auth": "key", "private_key": key,
         "passphrase": "", "password": ""},
        {"private_ip": "10.0.1.12", "password": "Host-Passw0rd"}), "action": "next"}
    ).status_code == 302
    datastore = at_datastore.get(step_url("datastore")).content.decode()
    hosts = at_datastore.get(step_url("hosts"))
    page = hosts.content.decode()
    assert "Typed-Passw0rd!" not in datastore and "Saved. Leave blank to keep it" in datastore
    assert "Host-Passw0rd" not in page and "PRIVATE KEY-----\n" not in page
    assert key.splitlines()[1] not in page
    assert page.count('data-saved="1"') == 2
    # Next with the boxes as shown (blank): nothing is lost.
    rows = [{"private_ip": value_of(hosts, f"hosts-{i}-private_ip"),
             "auth": value_of(hosts, f"hosts-{i}-auth") or ("key" if i == 0 else "password"),
             "secret_ref": value_of(hosts, f"hosts-{i}-secret_ref"),
             "private_key": "", "passphrase": "", "password": ""} for i in range(2)]
    assert at_datastore.post(step_url("hosts"), {**host_rows(*rows), "action": "next"}
                             ).status_code == 302
    assert at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 20, "rds_password": ""}).status_code == 302
    state = WizardState(at_datastore.session)
    assert state.get("datastore")["rds_password"] == "Typed-Passw0rd!"
    saved = state.get("hosts")["hosts"]
    assert saved[0]["private_key"].strip() == key.strip()
    assert saved[1]["password"] == "Host-Passw0rd"


def test_a_version_refresh_keeps_the_typed_password_without_showing_it(
        at_datastore: Client) -> None:
    response = at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "5.7", "rds_password": "Typed-Passw0rd!",
        "action": "refresh"})
    assert "Typed-Passw0rd!" not in response.content.decode()
    assert at_datastore.post(step_url("datastore"), {
        "kind": "rds", "rds_engine_version": "5.7", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 50, "rds_password": ""}).status_code == 302
    assert WizardState(at_datastore.session).get("datastore")["rds_password"] == \
        "Typed-Passw0rd!"


def test_a_key_rotation_under_a_wizard_asks_to_type_the_lost_secret_again(
        at_k3s: Client, settings: Any) -> None:
    from cryptography.fernet import Fernet  # noqa: PLC0415

    settings.PANEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old keys dropped
    response = at_k3s.get(step_url("k3s"), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == step_url("hosts")
    page = response.content.decode()
    assert "can no longer read an SSH password saved in this wizard" in page
    assert 'data-saved="1"' not in page
    # The VPC's instances cannot be listed with that account now; the page says why.
    assert "AccessKey secret can no longer be read" in html.unescape(page)
    zh = at_k3s.get(step_url("hosts"), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert zh.status_code == 200
    # Typed again, the wizard goes on.
    assert at_k3s.post(step_url("hosts"), {
        **host_rows({"private_ip": "10.0.1.11"}, {"private_ip": "10.0.1.12"}),
        "action": "next"}).status_code == 302
    assert WizardState(at_k3s.session).get("hosts")["hosts"][0]["password"] == "s3cret-pass"
