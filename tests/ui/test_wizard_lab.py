"""'Test connection' on the hosts page against real OpenSSH servers (lab hosts)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from sandbox.lab.lab import Lab
from sandbox.lab.testing import running_lab
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


def test_connection_with_password_and_with_key(lab: Lab, at_hosts: Client) -> None:
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

    key = Path(host.private_key_path).read_text()
    data.update({"hosts-1-auth": "key", "hosts-1-private_key": key, "hosts-1-password": ""})
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "ok", text

    data.update({"hosts-1-auth": "password", "hosts-1-password": "wrong-password"})
    status, text = row_result(at_hosts.post(reverse("clusters:wizard-step", args=["hosts"]),
                                            {**data, "action": "test-1"}), 1)
    assert status == "bad" and "wrong password or key" in text
