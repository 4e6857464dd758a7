"""Destroy "keeping the instances" the panel bought with a key pair it generated: their only
login is that pair's private half, which nobody but the panel has seen. The destroy form
offers it for download (owner-only, POST, no-store, audited with the fingerprint, never the
key), and the keep is refused until it was downloaded (operations/destroy.py
keep_instances_problem), so no one is left paying for hosts nobody can log in to.
"""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.adapters import ssh
from clusters.models import AuditAction, AuditEvent, CloudResource, Cluster, ClusterStatus, Run
from clusters.steps.ecs import generate_key_pair
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db

ORDER = {"servers": 1, "agents": 0, "instance_type": "ecs.g7.large", "image_id": "i",
         "key_pair": ""}


@pytest.fixture
def bought(user: Any) -> Cluster:
    private, public = generate_key_pair("k3s-panel-test")
    cluster = make_cluster(owner=user, status=ClusterStatus.READY, instance_order=ORDER,
                           generated_ssh_key=private, generated_ssh_public_key=public)
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_s1", provider_id="i-1",
                                 client_token=f"t-{cluster.code.hex}", region=cluster.region,
                                 state="present")
    return cluster


def destroy(client: Client, cluster: Cluster, **extra: str) -> Any:
    return client.post(reverse("clusters:cluster-destroy", args=[cluster.code]),
                       {"confirm_name": cluster.name, **extra}, follow=True)


def test_keep_is_refused_until_the_generated_key_was_downloaded(
        owner_client: Client, bought: Cluster) -> None:
    page = html.unescape(owner_client.get(reverse("clusters:cluster", args=[bought.code]))
                         .content.decode())
    assert reverse("clusters:generated-ssh-key", args=[bought.code]) in page
    assert "Download the instances' SSH private key" in page
    refused = destroy(owner_client, bought, keep_instances="on")
    assert "which you have not downloaded" in html.unescape(refused.content.decode())
    assert not Run.objects.filter(cluster=bought).exists()
    bought.refresh_from_db()
    assert bought.status == ClusterStatus.READY

    download = owner_client.post(reverse("clusters:generated-ssh-key", args=[bought.code]))
    assert download.status_code == 200
    assert download.content.decode() == bought.generated_ssh_key
    assert "attachment" in download["Content-Disposition"]
    assert "no-store" in download["Cache-Control"]
    (event,) = AuditEvent.objects.filter(action=AuditAction.SSH_KEY_DOWNLOAD)
    held = ssh.md5_fingerprint(ssh.load_private_key(bought.generated_ssh_key))
    assert event.details == {"fingerprint": held} and event.cluster == bought
    assert "PRIVATE KEY" not in str(event.details)

    kept = destroy(owner_client, bought, keep_instances="on")
    assert "Destroying the cluster" in kept.content.decode()
    run = Run.objects.get(cluster=bought)
    assert run.params["keep_instances"] is True
    # The key is still there for another download, after the destroy kept the instances too.
    from django.utils.timezone import now  # noqa: PLC0415

    CloudResource.objects.filter(cluster=bought).update(state="deleted", deleted_at=now(),
                                                        attributes={"kept": True})
    again = owner_client.post(reverse("clusters:generated-ssh-key", args=[bought.code]))
    assert again.status_code == 200 and again.content.decode() == bought.generated_ssh_key
    assert AuditEvent.objects.filter(action=AuditAction.SSH_KEY_DOWNLOAD).count() == 2


def test_only_the_owner_downloads_it_and_never_by_a_link(
        client_for: Any, owner_client: Client, bought: Cluster) -> None:
    from tests.support.factories import make_user  # noqa: PLC0415

    url = reverse("clusters:generated-ssh-key", args=[bought.code])
    assert owner_client.get(url).status_code == 405
    assert client_for(make_user()).post(url).status_code == 404
    assert not AuditEvent.objects.filter(action=AuditAction.SSH_KEY_DOWNLOAD).exists()
    bought.refresh_from_db()
    assert bought.generated_ssh_key_downloaded_at is None


def test_a_destroy_releasing_the_instances_needs_no_download(
        owner_client: Client, bought: Cluster) -> None:
    released = destroy(owner_client, bought)
    assert "Destroying the cluster" in released.content.decode()
    assert Run.objects.filter(cluster=bought).count() == 1


def test_instances_on_the_owner_s_own_key_pair_are_kept_without_it(
        owner_client: Client, bought: Cluster) -> None:
    Cluster.objects.filter(pk=bought.pk).update(instance_order={**ORDER, "key_pair": "mine"})
    page = owner_client.get(reverse("clusters:cluster", args=[bought.code])).content.decode()
    assert reverse("clusters:generated-ssh-key", args=[bought.code]) not in page
    kept = destroy(owner_client, bought, keep_instances="on")
    assert "Destroying the cluster" in kept.content.decode()
    refused = owner_client.post(reverse("clusters:generated-ssh-key", args=[bought.code]),
                                follow=True)
    assert "they log in with your own key pair" in html.unescape(refused.content.decode())


def test_the_refusal_is_translated(owner_client: Client, bought: Cluster) -> None:
    refused = owner_client.post(
        reverse("clusters:cluster-destroy", args=[bought.code]),
        {"confirm_name": bought.name, "keep_instances": "on"}, follow=True,
        HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert "私钥" in refused.content.decode()


def test_the_api_refuses_the_keep_by_the_same_rule(user: Any, bought: Cluster) -> None:
    from tests.support.api import bearer, issue, post_json  # noqa: PLC0415

    url = f"/api/v1/clusters/{bought.code}/destroy/"
    refused = post_json(bearer(issue(user)), url,
                        {"confirm_name": bought.name, "keep_instances": True})
    assert refused.status_code == 409, refused.json()
    assert "which you have not downloaded" in refused.json()["detail"]
    assert not Run.objects.filter(cluster=bought).exists()


def test_a_download_whose_audit_row_fails_is_not_recorded_either(
        owner_client: Client, bought: Cluster, monkeypatch: Any) -> None:
    """The download's mark on the cluster (which lets "keep the instances" go ahead) and its
    audit row are one transaction: the database refusing the row leaves no mark."""
    from django.db import DatabaseError  # noqa: PLC0415

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("the audit table refused the row")

    monkeypatch.setattr(AuditEvent, "save", refuse)
    with pytest.raises(DatabaseError):
        owner_client.post(reverse("clusters:generated-ssh-key", args=[bought.code]))
    bought.refresh_from_db()
    assert bought.generated_ssh_key_downloaded_at is None


def test_the_api_s_refusal_names_the_page_that_hands_the_key_out(
        user: Any, bought: Cluster) -> None:
    from tests.support.api import bearer, issue, post_json  # noqa: PLC0415

    refused = post_json(bearer(issue(user)), f"/api/v1/clusters/{bought.code}/destroy/",
                        {"confirm_name": bought.name, "keep_instances": True})
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "in the web panel" in detail and "Download the instances' SSH private key" in detail
