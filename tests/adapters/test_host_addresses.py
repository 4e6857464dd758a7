"""Where the panel may SSH to: never itself, its networks or link-local; never echoing a peer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from clusters.adapters import nodes, ssh, wizard_checks
from clusters.adapters.host_addresses import address_refusal, panel_addresses
from clusters.core.errors import PermanentError, TransientError
from clusters.models import Node
from clusters.web import ratelimit
from tests.support.factories import make_cluster, make_user


@pytest.mark.parametrize(("address", "reason"), [
    ("127.0.0.1", "loopback"), ("127.9.8.7", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"), ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"), ("224.0.0.251", "not the address of one host"),
    ("0.0.0.0", "not the address of one host"),  # noqa: S104 - an address to refuse
    ("not-an-ip", "not an IP address"),
])
def test_loopback_link_local_multicast_and_unspecified_are_refused(address: str, reason: str,
                                                                   settings: Any) -> None:
    settings.PANEL_ALLOW_LOOPBACK_HOSTS = False  # as panel/settings.py has it
    refusal = address_refusal(address)
    assert refusal is not None and reason in str(refusal)


def test_the_panel_hosts_own_addresses_and_its_networks_are_refused(settings: Any) -> None:
    own = sorted(str(a) for a in panel_addresses() if not a.is_loopback and not a.is_link_local)
    assert own, "the machine has a non-loopback address"
    assert "panel's own server" in str(address_refusal(own[0]))
    assert address_refusal("10.0.1.11") is None  # a cluster's VPC host
    settings.PANEL_FORBIDDEN_NETWORKS = ["10.0.0.0/16"]
    assert "10.0.0.0/16, one of the panel's own networks" in str(address_refusal("10.0.1.11"))
    assert address_refusal("10.1.0.5") is None


def test_loopback_is_allowed_only_by_the_test_settings() -> None:
    import panel.settings as production  # noqa: PLC0415 - the module itself, not the test copy

    assert production.PANEL_ALLOW_LOOPBACK_HOSTS is False


@pytest.mark.django_db
def test_no_step_reaches_a_node_at_a_refused_address(settings: Any) -> None:
    settings.PANEL_ALLOW_LOOPBACK_HOSTS = False
    node = Node(cluster=make_cluster(), role="server", private_ip="127.0.0.1",
                ssh_password="pw")
    with pytest.raises(PermanentError, match="loopback"):
        nodes.target_for(node)
    with pytest.raises(wizard_checks.CheckFailed, match="loopback"):
        wizard_checks.test_ssh("127.0.0.1", 22, "root", password="pw")
    with pytest.raises(wizard_checks.CheckFailed, match="link-local"):
        wizard_checks.scan_host_key("169.254.169.254", 22)


@pytest.fixture
def chatty_service() -> Iterator[int]:
    """Not an SSH server: it greets every client with a banner naming what it is."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with client:
                client.sendall(b"+OK redis-internal-7.2 secret-banner\r\n")
                client.recv(1024)

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def test_a_failed_handshake_never_quotes_the_peer(chatty_service: int) -> None:
    target = ssh.SSHTarget(host="127.0.0.1", port=chatty_service, username="root", password="x")
    with pytest.raises(TransientError) as connect_error:
        ssh.connect(target, timeout=5)
    with pytest.raises(TransientError) as scan_error:
        ssh.scan_host_key("127.0.0.1", chatty_service, timeout=5)
    for error in (connect_error.value, scan_error.value):
        assert "did not complete an SSH handshake" in str(error)
        assert "secret-banner" not in str(error) and "redis" not in str(error)


@pytest.mark.django_db
def test_connection_tests_are_limited_per_user(settings: Any) -> None:
    settings.PANEL_HOST_TEST_RATE_LIMIT = 3
    one, other = make_user(), make_user()
    assert [ratelimit.allow(one, "host-test") for _ in range(4)] == [True, True, True, False]
    assert ratelimit.allow(other, "host-test")
