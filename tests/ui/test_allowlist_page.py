"""Changing the API's allow-list from the cluster page: the owner only, audited, validated,
and started as a run of the slb.acl step (which the engine tests drive against the emulator)."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudResource,
    ClusterStatus,
    ResourceState,
    Run,
    RunKind,
)
from tests.support.factories import make_cluster, make_user


def guarded_cluster(user: Any, cidrs: list[str]) -> Any:
    """A ready Internet cluster whose listener sits behind the panel's ACL."""
    cluster = make_cluster(owner=user, nodes=2, status=ClusterStatus.READY,
                           kubeconfig="apiVersion: v1\n", slb_address="198.18.0.10",
                           slb_address_type="internet", api_allowed_cidrs=cidrs)
    CloudResource.objects.create(cluster=cluster, kind="slb_acl", region=cluster.region,
                                 client_token=f"acl-{cluster.code}", provider_id="acl-test1",
                                 state=ResourceState.PRESENT)
    return cluster


def test_the_owner_changes_the_allow_list_and_it_is_audited(
        user: Any, owner_client: Client, client_for: Any) -> None:
    cluster = guarded_cluster(user, ["203.0.113.0/24"])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    url = reverse("clusters:cluster-allowlist", args=[cluster.code])
    assert f'action="{url}"' in page and "203.0.113.0/24" in page

    # Another user cannot see or change it.
    stranger = client_for(make_user())
    assert stranger.post(url, {"cidrs": "0.0.0.0/0"}).status_code == 404

    # A bad entry and an empty list are refused, nothing starts.
    for text, said in (("10.0.0.1/24", "is not an IPv4 CIDR block"),
                       ("", "nobody can reach it")):
        response = owner_client.post(url, {"cidrs": text}, follow=True)
        assert said in response.content.decode()
    assert not Run.objects.filter(cluster=cluster).exists()

    response = owner_client.post(url, {"cidrs": "198.51.100.0/24\n203.0.113.0/24"})
    assert response.status_code == 302
    run = Run.objects.get(cluster=cluster)
    assert run.kind == RunKind.API_ALLOWLIST
    assert [s.handler for s in run.steps.order_by("position")] == ["slb.acl"]
    cluster.refresh_from_db()
    assert cluster.api_allowed_cidrs == ["198.51.100.0/24", "203.0.113.0/24"]
    event = AuditEvent.objects.get(action=AuditAction.API_ALLOWLIST)
    assert event.details["from"] == ["203.0.113.0/24"]
    assert event.details["to"] == ["198.51.100.0/24", "203.0.113.0/24"]


def test_a_cluster_without_an_acl_offers_no_change(user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, nodes=2, status=ClusterStatus.READY,
                           kubeconfig="apiVersion: v1\n", slb_address="10.0.9.9")
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "allowlist-panel" not in page
    response = owner_client.post(reverse("clusters:cluster-allowlist", args=[cluster.code]),
                                 {"cidrs": "203.0.113.0/24"}, follow=True)
    assert "created without an allow-list" in response.content.decode()
    assert not Run.objects.filter(cluster=cluster).exists()
