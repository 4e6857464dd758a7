"""The cluster list: its columns, filters, pages, and what a newcomer sees first."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.models import CloudAccount
from tests.support.factories import make_cluster


def dashboard(client: Client, query: str = "") -> str:
    response = client.get(reverse("clusters:dashboard") + query)
    assert response.status_code == 200
    return response.content.decode()


def test_empty_state_tells_a_newcomer_how_to_start(user: Any, owner_client: Client) -> None:
    page = dashboard(owner_client)
    assert "No clusters yet" in page
    assert "deploy/ram/panel-policy.json" in page  # no cloud account yet: what the RAM user needs
    assert f'href="{reverse("clusters:wizard")}"' in page
    CloudAccount.objects.create(owner=user, name="main", access_key_id="LTAI5tKey01",
                                access_key_secret="x" * 30)
    assert "Your cloud account is ready." in dashboard(owner_client)


def test_columns_and_filters(user: Any, owner_client: Client) -> None:
    make_cluster(owner=user, nodes=4, name="alpha", status="ready", health="healthy",
                 k3s_version="v1.32.5+k3s1", slb_address="10.1.2.3")
    make_cluster(owner=user, nodes=2, name="beta", status="failed", k3s_channel="stable")
    page = dashboard(owner_client)
    assert page.index(">beta<") < page.index(">alpha<")  # newest first
    row = page[page.index(">alpha<"):page.index(">alpha<") + 2500]
    for text in ("Ready", "Healthy", "v1.32.5+k3s1", ">2<", "10.1.2.3", "minute"):
        assert text in row, text
    only_failed = dashboard(owner_client, "?status=failed")
    assert ">beta<" in only_failed and ">alpha<" not in only_failed
    healthy = dashboard(owner_client, "?health=healthy")
    assert ">alpha<" in healthy and ">beta<" not in healthy
    by_address = dashboard(owner_client, "?q=10.1.2")
    assert ">alpha<" in by_address and ">beta<" not in by_address
    nothing = dashboard(owner_client, "?q=gamma")
    assert "No cluster matches these filters" in nothing


def test_pages_of_fifty(user: Any, owner_client: Client) -> None:
    for index in range(55):
        make_cluster(owner=user, name=f"c{index:02d}")
    first = dashboard(owner_client)
    assert first.count('<th scope="row"') == 50
    assert "Page 1 of 2" in first
    second = dashboard(owner_client, "?page=2")
    assert second.count('<th scope="row"') == 5
