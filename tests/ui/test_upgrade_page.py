"""Upgrade and kubeconfig renewal from the cluster page: what is refused (and in what words),
what the confirm page says about backups, and when the kubeconfig warning appears."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters import operations
from clusters.models import (
    AuditAction,
    AuditEvent,
    ClusterStatus,
    DatastoreKind,
    InstallSource,
    Run,
    RunKind,
)
from sandbox.k3s.artifacts import ArtifactServer
from tests.support.factories import make_cluster

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


@pytest.fixture(scope="module")
def releases() -> Iterator[ArtifactServer]:
    """The offline K3s download site on loopback: the install source of these clusters."""
    with ArtifactServer("127.0.0.1") as server:
        yield server


def ready_cluster(user: Any, releases: ArtifactServer, version: str, **fields: Any) -> Any:
    return make_cluster(owner=user, nodes=3, status=ClusterStatus.READY, k3s_version=version,
                        kubeconfig="apiVersion: v1\n", slb_address="10.0.9.9",
                        install_source=InstallSource.CUSTOM,
                        install_base_url=releases.base_url, **fields)


def upgrade_page(client: Client, cluster: Any, version: str) -> str:
    response = client.get(reverse("clusters:cluster-upgrade", args=[cluster.code]),
                          {"version": version})
    assert response.status_code == 200
    return response.content.decode()


def test_a_skipped_minor_and_a_downgrade_are_refused_plainly(user: Any, releases: Any) -> None:
    old = ready_cluster(user, releases, "v1.30.8+k3s1")
    with pytest.raises(operations.OperationRefused) as skipped:
        operations.start_upgrade(old, "v1.32.5+k3s1", user)
    assert str(skipped.value) == (
        "Upgrading v1.30.8+k3s1 to v1.32.5+k3s1 skips a minor version: upgrade to v1.31 first "
        "(Kubernetes does not support skipping minor versions).")

    new = ready_cluster(user, releases, "v1.32.5+k3s1")
    with pytest.raises(operations.OperationRefused) as downgrade:
        operations.start_upgrade(new, "v1.31.4+k3s1", user)
    assert str(downgrade.value).startswith("v1.31.4+k3s1 is older than the running "
                                           "v1.32.5+k3s1: K3s cannot be downgraded in place.")
    with pytest.raises(operations.OperationRefused, match=r"already runs v1\.32\.5"):
        operations.start_upgrade(new, "v1.32.5+k3s1", user)
    with pytest.raises(operations.OperationRefused, match=r"does not exist at http://127\."):
        operations.start_upgrade(old, "v1.31.9+k3s1", user)  # a real release, not served here
    assert not Run.objects.exists()
    assert set(type(old).objects.values_list("status", flat=True)) == {ClusterStatus.READY}


def test_the_confirm_page_refuses_or_names_the_backup_then_starts_and_audits(
        user: Any, owner_client: Client, releases: Any) -> None:
    cluster = ready_cluster(user, releases, "v1.30.8+k3s1")
    page = upgrade_page(owner_client, cluster, "v1.32.5+k3s1")
    assert "skips a minor version: upgrade to v1.31 first" in page
    assert "Start the upgrade" not in page
    chinese = owner_client.get(reverse("clusters:cluster-upgrade", args=[cluster.code]),
                               {"version": "v1.32.5+k3s1"}, **ZH).content.decode()
    assert "跳过了一个次要版本" in chinese

    page = upgrade_page(owner_client, cluster, "v1.31")  # a channel, pinned to its release
    assert "From <code>v1.30.8+k3s1</code> to <code>v1.31.4+k3s1</code>" in page
    assert "An RDS backup (CreateBackup) is taken first" in page
    response = owner_client.post(reverse("clusters:cluster-upgrade", args=[cluster.code]),
                                 {"version": "v1.31"})
    run = Run.objects.get(cluster=cluster)
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    assert run.kind == RunKind.UPGRADE and run.params["to_version"] == "v1.31.4+k3s1"
    assert [s.handler for s in run.steps.order_by("position")] == [
        "upgrade.backup", "upgrade.server", "upgrade.server", "upgrade.agent"]
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.UPDATING
    event = AuditEvent.objects.get(action=AuditAction.CLUSTER_UPGRADE)
    assert event.details["to_version"] == "v1.31.4+k3s1" and event.username == user.username


def test_your_own_mysql_gets_a_warning_instead_of_a_backup(user: Any, owner_client: Client,
                                                          releases: Any) -> None:
    cluster = ready_cluster(user, releases, "v1.31.4+k3s1",
                            datastore_kind=DatastoreKind.EXTERNAL)
    page = upgrade_page(owner_client, cluster, "v1.32.5+k3s1")
    assert "Your own MySQL is NOT backed up automatically" in page
    detail = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Your own MySQL is NOT backed up automatically" in detail


@pytest.mark.parametrize(("days", "shown"), [(10, "expires in 10 days"), (-2, "expired on"),
                                             (200, None)])
def test_kubeconfig_warning_within_30_days_with_a_renew_button(
        user: Any, owner_client: Client, releases: Any, days: int, shown: str | None) -> None:
    expires = timezone.now() + timedelta(days=days, hours=1)
    cluster = ready_cluster(user, releases, "v1.32.5+k3s1", kubeconfig_expires_at=expires)
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    renew = reverse("clusters:kubeconfig-renew", args=[cluster.code])
    if shown is None:
        assert "kubeconfig-notice" not in page and renew not in page
        return
    assert shown in page and f'action="{renew}"' in page
    chinese = owner_client.get(reverse("clusters:cluster", args=[cluster.code]),
                               **ZH).content.decode()
    assert ("天后过期" if days > 0 else "已于") in chinese and "续期 kubeconfig" in chinese
    response = owner_client.post(renew)
    run = Run.objects.get(cluster=cluster)
    assert response.status_code == 302 and run.kind == RunKind.RENEW_KUBECONFIG
    assert [s.handler for s in run.steps.order_by("position")] == [
        "k3s.kubeconfig", "kubeconfig.restart_if_expiring", "kubeconfig.refetch"]
    assert AuditEvent.objects.filter(action=AuditAction.KUBECONFIG_RENEW).count() == 1


def test_the_confirm_page_counts_only_the_nodes_it_will_upgrade(
        user: Any, owner_client: Client, releases: Any) -> None:
    """A removed agent is not upgraded; the page used to count it (every node row)."""
    cluster = ready_cluster(user, releases, "v1.30.8+k3s1")
    cluster.nodes.create(role="agent", name="gone", private_ip="10.0.0.99",
                         status="removed")
    page = upgrade_page(owner_client, cluster, "v1.31")
    assert "Then 1 agent." in page and "2 servers, one at a time" in page
