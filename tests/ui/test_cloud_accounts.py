"""The cloud-accounts page saves each credential kind after a live check against the
emulator, keeps no field the kind does not use, and says which field is wrong."""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.models import CloudAccount, CredentialKind
from sandbox.aliyun.testing import Emulator

URL = "clusters:cloud-accounts"
ONLY_ASSUME = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
READ_ECS = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}]}


def field_errors(response: Any, name: str) -> list[str]:
    """The error messages rendered next to one field."""
    page = response.content.decode()
    match = re.search(rf'<ul class="errorlist" id="id_{re.escape(name)}_error">(.*?)</ul>',
                      page, re.S)
    return [html.unescape(m) for m in re.findall(r"<li>(.*?)</li>", match.group(1), re.S)] \
        if match else []


def assume_only_user(cloud: Emulator) -> tuple[str, str]:
    key_id, secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    cloud.control.add_account(key_id, secret, ONLY_ASSUME)
    return key_id, secret


def test_a_ram_role_account_is_assumed_before_it_is_saved(
        cloud: Emulator, user: Any, owner_client: Client) -> None:
    key_id, secret = assume_only_user(cloud)
    arn = cloud.control.create_role("ui-role-" + secrets.token_hex(3), policy=READ_ECS,
                                    external_id="ui-ext-1")
    form = {"name": "role", "credential_kind": CredentialKind.RAM_ROLE, "access_key_id": key_id,
            "access_key_secret": secret, "role_arn": arn, "external_id": "wrong-ext",
            "security_token": "left-over", "ecs_role_name": "left-over",
            "default_region": cloud.region_id}
    refused = owner_client.post(reverse(URL), form)
    assert refused.status_code == 200
    assert any("NoPermission" in e for e in field_errors(refused, "role_arn"))
    assert not CloudAccount.objects.filter(owner=user).exists()

    saved = owner_client.post(reverse(URL), {**form, "external_id": "ui-ext-1"})
    assert saved.status_code == 302
    account = CloudAccount.objects.get(owner=user, name="role")
    assert (account.credential_kind, account.role_arn, account.external_id) == (
        CredentialKind.RAM_ROLE, arn, "ui-ext-1")
    assert account.security_token == "" and account.ecs_role_name == ""  # not this kind's
    page = owner_client.get(reverse(URL)).content.decode()
    assert arn in page and secret not in page


def test_each_kind_names_the_fields_it_needs(cloud: Emulator, owner_client: Client) -> None:
    missing = owner_client.post(reverse(URL), {
        "name": "ecs", "credential_kind": CredentialKind.ECS_ROLE,
        "default_region": cloud.region_id})
    assert field_errors(missing, "ecs_role_name") == ["Required for this kind of credential."]
    bad_arn = owner_client.post(reverse(URL), {
        "name": "r", "credential_kind": CredentialKind.RAM_ROLE, "access_key_id": "LTAI12345678a",
        "access_key_secret": "x" * 20, "role_arn": "arn:aws:iam::1:role/x",
        "session_policy": "{not json", "default_region": cloud.region_id})
    assert field_errors(bad_arn, "role_arn") and field_errors(bad_arn, "session_policy")


def test_the_panel_hosts_own_role_is_only_what_the_operator_offers(
        cloud: Emulator, owner_client: Client, settings: Any) -> None:
    """The panel host's ECS role is its operator's identity: a user naming it (or guessing
    another role of the host) is refused before anything is asked of the metadata service."""
    cloud.control.create_role("k3s-panel", policy=READ_ECS, ecs=True)
    settings.ALIYUN_ECS_METADATA_ENDPOINT = cloud.endpoint
    form = {"name": "borrowed", "credential_kind": CredentialKind.ECS_ROLE,
            "ecs_role_name": "k3s-panel", "default_region": cloud.region_id}
    refused = owner_client.post(reverse(URL), form)
    assert field_errors(refused, "ecs_role_name") == [
        "This panel does not offer the role k3s-panel of its own ECS instance: that role is "
        "its operator's identity. Ask the operator to list it in PANEL_ECS_ROLES, or use a "
        "RAM role or an AccessKey."]
    assert not CloudAccount.objects.filter(name="borrowed").exists()
    assert not [t for t in cloud.control.sts_tokens() if t["role"] == "k3s-panel"]
    settings.PANEL_ECS_ROLES = ["k3s-panel"]
    saved = owner_client.post(reverse(URL), form)
    assert saved.status_code == 302, field_errors(saved, "ecs_role_name")
    assert CloudAccount.objects.get(name="borrowed").ecs_role_name == "k3s-panel"
