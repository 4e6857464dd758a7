"""Pinning a channel to one release: the channel server's answers, kine's pool line, the pin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clusters.adapters import k3s_release
from clusters.core.errors import PermanentError, TransientError
from clusters.interface.wizard import default_install_source
from clusters.k3s.diagnosis import parse_kine_pool
from clusters.k3s.install import InstallSource as Source
from clusters.k3s.install import install_command
from clusters.k3s.versions import kine_max_idle_connections, release_from_channel_answer
from clusters.models import Cluster, InstallSource, Node, NodeRole, NodeStatus
from sandbox.k3s.artifacts import ArtifactServer
from tests.support.factories import make_cluster


@pytest.fixture(scope="module")
def artifacts() -> Iterator[ArtifactServer]:
    with ArtifactServer("127.0.0.1") as server:
        yield server


# --- pure parts --------------------------------------------------------------------------------


def test_the_channel_servers_answers_name_one_release() -> None:
    tag = "https://github.com/k3s-io/k3s/releases/tag/v1.36.4+k3s1"
    assert release_from_channel_answer(302, tag, "") == "v1.36.4+k3s1"
    # GitHub spells the + as %2B in some links; the install script's sed keeps what it gets,
    # the panel normalises it.
    assert release_from_channel_answer(302, tag.replace("+", "%2B"), "") == "v1.36.4+k3s1"
    assert release_from_channel_answer(200, "", "v1.37.0+k3s1\n") == "v1.37.0+k3s1"  # mirror
    assert release_from_channel_answer(404, "", "v1.37.0+k3s1") is None
    assert release_from_channel_answer(200, "", "<html>captive portal</html>") is None
    assert release_from_channel_answer(302, "https://example.com/login", "") is None


def test_kine_keeps_twenty_idle_connections_from_the_june_2026_releases() -> None:
    assert [kine_max_idle_connections(v) for v in (
        "v1.33.1+k3s1", "v1.34.8+k3s1", "v1.34.9+k3s1", "v1.35.5+k3s1", "v1.35.6+k3s1",
        "v1.36.1+k3s1", "v1.36.2+k3s1", "v1.36.4+k3s1", "v1.37.0+k3s1")] == [
        2, 2, 20, 2, 20, 2, 20, 20, 20]


def test_both_forms_of_kines_pool_line_are_read_from_the_journal() -> None:
    old = ('Dec 01 08:00:01 h1 k3s[812]: time="2026-12-01T08:00:01Z" level=info '
           'msg="Configuring mysql database connection pooling: maxIdleConns=2, '
           'maxOpenConns=0, connMaxLifetime=0s"')
    new = ('Dec 01 09:00:01 h1 k3s[913]: time="2026-12-01T09:00:01Z" level=info '
           'msg="Configuring mysql database connection pooling: maxIdle=20, maxOpen=0, '
           'maxLifetime=0s, maxIdleTime=2m0s"')
    before = parse_kine_pool(["noise", old])
    assert before is not None
    assert (before.max_idle, before.max_open, before.max_lifetime, before.max_idle_time) == (
        2, 0, "0s", "")
    after = parse_kine_pool([old, "noise", new])  # a restart on a newer release: last wins
    assert after is not None
    assert (after.max_idle, after.max_open, after.max_lifetime, after.max_idle_time) == (
        20, 0, "0s", "2m0s")
    assert after.describe() == ("kine keeps up to 20 idle MySQL connections per server (no "
                                "limit on open ones)")
    assert parse_kine_pool(["level=info msg=\"Kine available at unix://kine.sock\""]) is None


def test_a_china_region_starts_on_the_china_mirror() -> None:
    assert default_install_source("cn-hangzhou") == InstallSource.CHINA_MIRROR
    assert default_install_source("cn-beijing") == InstallSource.CHINA_MIRROR
    assert default_install_source("ap-southeast-1") == InstallSource.OFFICIAL
    assert default_install_source("cn-hongkong") == InstallSource.OFFICIAL
    assert default_install_source("") == InstallSource.OFFICIAL


def test_an_install_after_pinning_carries_the_version_and_no_channel() -> None:
    command = install_command(Source("china"), version="v1.36.4+k3s1")
    assert "INSTALL_K3S_VERSION=v1.36.4+k3s1" in command
    assert "INSTALL_K3S_CHANNEL" not in command and "INSTALL_K3S_MIRROR=cn" in command


# --- resolution against a channel server -------------------------------------------------------


def custom(artifacts: ArtifactServer, channel: str = "stable") -> Cluster:
    return Cluster(install_source=InstallSource.CUSTOM, install_base_url=artifacts.base_url,
                   k3s_channel=channel)


def test_channels_resolve_at_both_layouts(artifacts: ArtifactServer, settings: Any) -> None:
    assert k3s_release.resolve_channel(custom(artifacts), "stable") == "v1.36.4+k3s1"
    assert k3s_release.resolve_channel(custom(artifacts), "v1.35") == "v1.35.6+k3s1"
    settings.PANEL_K3S_MIRROR_BASE_URL = artifacts.base_url
    mirror = Cluster(install_source=InstallSource.CHINA_MIRROR, k3s_channel="latest")
    assert k3s_release.resolve_channel(mirror, "latest") == "v1.37.0+k3s1"


def test_a_channel_that_cannot_be_resolved_says_why(artifacts: ArtifactServer) -> None:
    with pytest.raises(PermanentError, match=r"channel v1.29 does not exist at .*HTTP 404"):
        k3s_release.resolve_channel(custom(artifacts), "v1.29")
    nowhere = Cluster(install_source=InstallSource.CUSTOM, install_base_url="http://127.0.0.1:9",
                      k3s_channel="stable")
    with pytest.raises(TransientError, match=r"could not reach http://127\.0\.0\.1:9"):
        k3s_release.resolve_channel(nowhere, "stable")


@pytest.mark.django_db
def test_the_pin_is_taken_once_and_kept_after_an_install(artifacts: ArtifactServer) -> None:
    said: list[str] = []
    cluster = make_cluster(nodes=2, k3s_channel="stable", install_source=InstallSource.CUSTOM,
                           install_base_url=artifacts.base_url)
    assert k3s_release.pin_release(cluster, said.append) == "v1.36.4+k3s1"
    assert Cluster.objects.get(pk=cluster.pk).k3s_version == "v1.36.4+k3s1"
    assert "points at v1.36.4+k3s1" in said[-1]

    previous = artifacts.move_channel("stable", "v1.37.0+k3s1")
    try:
        # Nothing installed yet (a Retry of the first step): resolved again.
        assert k3s_release.pin_release(cluster, said.append) == "v1.37.0+k3s1"
        # Once a host has K3s, the channel is not asked again, whatever it says now.
        Node.objects.filter(cluster=cluster, role=NodeRole.SERVER).update(
            status=NodeStatus.FAILED)
        artifacts.move_channel("stable", "v1.36.2+k3s1")
        cluster = Cluster.objects.get(pk=cluster.pk)
        assert k3s_release.pin_release(cluster, said.append) == "v1.37.0+k3s1"
        assert Cluster.objects.get(pk=cluster.pk).k3s_version == "v1.37.0+k3s1"
    finally:
        artifacts.move_channel("stable", previous)


@pytest.mark.django_db
def test_an_install_without_a_pin_is_refused() -> None:
    cluster = make_cluster(k3s_channel="stable")
    with pytest.raises(PermanentError, match="not pinned"):
        k3s_release.pinned_version(cluster)
    with pytest.raises(PermanentError, match="neither a K3s version nor a channel"):
        k3s_release.pin_release(make_cluster(), lambda _: None)
