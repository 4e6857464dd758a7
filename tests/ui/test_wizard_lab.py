"""'Test connection' on the hosts page against real OpenSSH servers (lab hosts)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import WizardState
from clusters.models import AuditAction, AuditEvent, ClusterStatus, Node
from sandbox.lab.lab import Lab
from sandbox.lab.testing import running_lab
from tests.support.factories import make_cluster
from tests.support.ssh_login import ssh, ssh_run
from tests.ui.wizard_data import host_rows

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with running_lab(1) as running:
        yield running


def row_result(response: Any, index: int) -> tuple[str, str]:
    page = response.content.decode()
    match = re.search(rf'id="host-{index}">.*?<p class="test-result (ok|bad)" role="status">'
                      r"(.*?)</p>", page, re.S)
    assert match, f"no test result at host {index + 1}"
    return match.group(1), match.group(2)


def test_connection_with_password_and_with_key(lab: Lab, at_hosts: Client,
                                              settings: Any) -> None:
    host = lab.hosts[0]
    data = host_rows({"private_ip": "10.0.1.11"},
                     {"private_ip": "10.0.1.12", "public_ip": "", "password": host.root_password})
    # The lab host is reached at its own address (the public IP field is for the panel's
    # route to a host; here the panel reaches the private address directly).
    data["hosts-1-private_ip"] = host.ip
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "ok", text
    assert "Connected: Linux" in text and "sudo: root" in text and "SHA256:" in text
    # The key shown is the one Create will pin.
    shown = re.search(r"SHA256:[A-Za-z0-9+/]{43}", text)
    assert shown and WizardState(at_hosts.session).host_key(host.ip, 22) == shown.group(0)

    key = Path(host.private_key_path).read_text()
    data.update({"hosts-1-auth": "key", "hosts-1-private_key": key, "hosts-1-password": ""})
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "ok", text

    data.update({"hosts-1-auth": "password", "hosts-1-password": "wrong-password"})
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "bad" and "wrong password or key" in text

    settings.PANEL_HOST_TEST_RATE_LIMIT = 3  # three tests made this minute already
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "bad" and "Too many connection tests" in text


def test_the_owner_accepts_the_key_a_fresh_scan_shows(lab: Lab, user: Any,
                                                      owner_client: Client) -> None:
    host = lab.hosts[0]
    cluster = make_cluster(owner=user, status=ClusterStatus.FAILED)
    stale = "SHA256:" + "q" * 43
    node = Node.objects.create(cluster=cluster, role="server", private_ip=host.ip,
                               ssh_password=host.root_password, host_key=stale)
    url = reverse("clusters:node-host-key", args=[cluster.code, node.pk])
    assert f'action="{url}"' in owner_client.get(
        reverse("clusters:cluster", args=[cluster.code])).content.decode()
    page = owner_client.post(url).content.decode()
    presented = re.search(r'<code id="presented-key">(SHA256:[^<]+)</code>', page)
    assert presented and stale in page and presented.group(0) != stale
    with ssh(host) as client:  # the host's own view of its key
        _, own, _ = ssh_run(client, "for f in /etc/ssh/ssh_host_*_key.pub; do "
                                    "ssh-keygen -lf $f; done")
    assert presented.group(1) in own
    owner_client.post(url, {"fingerprint": presented.group(1)})
    node.refresh_from_db()
    assert node.host_key == presented.group(1)
    event = AuditEvent.objects.get(action=AuditAction.NODE_HOST_KEY)
    assert event.details == {"private_ip": host.ip, "previous": stale,
                             "accepted": presented.group(1)}
