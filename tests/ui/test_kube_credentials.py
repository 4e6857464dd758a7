"""Personal kubeconfigs on the cluster page: the form, the list, the refusals, and what a
failed issue or revoke leaves behind (a cluster whose API does not answer: a closed loopback
port). The issue and revoke against a live cluster are in tests/e2e/test_create_cluster.py."""

from __future__ import annotations

import base64
import socket
from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import reverse

from clusters import operations
from clusters.k3s.kubeconfig import token_claims, with_token
from clusters.models import (
    AuditAction,
    AuditEvent,
    ClusterStatus,
    KubeCredential,
    KubeCredentialStatus,
)
from clusters.operations import kube_credentials
from sandbox.k3s import certs
from tests.support.factories import make_cluster, make_user


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again once the socket is


def admin_kubeconfig(server: str) -> str:
    """A kubeconfig shaped like the panel's stored one (real CA and client certificate)."""
    ca, ca_key = certs.new_ca("k3s-client-ca")
    cert, key = certs.client_cert(ca, ca_key, "system:admin", "system:masters")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "shop",
        "clusters": [{"name": "shop", "cluster": {"server": server,
                                                 "certificate-authority-data": b64(ca)}}],
        "contexts": [{"name": "shop", "context": {"cluster": "shop", "user": "shop"}}],
        "users": [{"name": "shop", "user": {"client-certificate-data": b64(cert + ca),
                                            "client-key-data": b64(key)}}]})


@pytest.fixture
def dead_cluster(user: Any) -> Any:
    """A ready cluster whose API (its SLB) does not answer."""
    return make_cluster(owner=user, name="shop", status=ClusterStatus.READY,
                        kubeconfig=admin_kubeconfig(f"https://127.0.0.1:{closed_port()}"))


def test_the_token_kubeconfig_keeps_server_and_ca_and_carries_only_the_token() -> None:
    stored = admin_kubeconfig("https://10.0.0.5:6443")
    text = with_token(stored, "Alice Smith", "header.payload.signature")
    doc, before = yaml.safe_load(text), yaml.safe_load(stored)
    assert doc["clusters"] == before["clusters"]
    assert doc["users"] == [{"name": "shop-alice-smith",
                             "user": {"token": "header.payload.signature"}}]
    assert doc["current-context"] == "shop-alice-smith"
    assert doc["contexts"][0]["context"] == {"cluster": "shop", "user": "shop-alice-smith"}
    assert "client-key-data" not in text  # the admin key never travels with it

    payload = base64.urlsafe_b64encode(b'{"jti":"j-1","exp":5}').rstrip(b"=").decode()
    assert token_claims(f"h.{payload}.s") == {"jti": "j-1", "exp": 5}
    with pytest.raises(Exception, match="not a JWT"):
        token_claims("no-dots")


def test_account_names_say_whose_and_are_unique_dns_labels() -> None:
    first, second = (kube_credentials.account_name("Alice.Smith@corp") for _ in range(2))
    assert first.startswith("panel-alice-smith-corp-") and first != second
    long = kube_credentials.account_name("x" * 150)
    assert len(long) <= 63 and long.replace("-", "").isalnum()


@pytest.mark.django_db
def test_refusals_create_nothing(user: Any) -> None:
    pending = make_cluster(owner=user, status=ClusterStatus.PROVISIONING)
    with pytest.raises(operations.OperationRefused, match="no kubeconfig yet"):
        operations.issue_kube_credential(pending, user, "1d")
    gone = make_cluster(owner=user, status=ClusterStatus.DESTROYED, kubeconfig="x")
    with pytest.raises(operations.OperationRefused, match="destroyed"):
        operations.issue_kube_credential(gone, user, "1d")
    ready = make_cluster(owner=user, status=ClusterStatus.READY, kubeconfig="x")
    with pytest.raises(operations.OperationRefused, match="how long"):
        operations.issue_kube_credential(ready, user, "365d")  # longer than the longest
    assert not KubeCredential.objects.exists()
    revoked = KubeCredential.objects.create(
        cluster=ready, username="u", namespace="kube-system", name="panel-u-1",
        role="cluster-admin", status=KubeCredentialStatus.REVOKED)
    with pytest.raises(operations.OperationRefused, match="already revoked"):
        operations.revoke_kube_credential(revoked, user)


def test_lifetimes_are_what_kubernetes_accepts_with_a_day_by_default() -> None:
    seconds = [value for value, _label in kube_credentials.LIFETIMES.values()]
    assert min(seconds) >= 600  # TokenRequest refuses less than 10 minutes
    assert max(seconds) == 30 * 86400
    assert kube_credentials.LIFETIMES[kube_credentials.DEFAULT_LIFETIME][0] == 86400


@pytest.mark.django_db
def test_an_issue_the_api_does_not_answer_says_so_and_leaves_a_revocable_row(
        dead_cluster: Any, owner_client: Client) -> None:
    page_url = reverse("clusters:cluster", args=[dead_cluster.code])
    page = owner_client.get(page_url).content.decode()
    assert 'name="lifetime"' in page and 'value="1d" selected' in page
    assert "Download personal kubeconfig" in page

    response = owner_client.post(reverse("clusters:kubeconfig-issue", args=[dead_cluster.code]),
                                 {"lifetime": "8h"}, follow=True)
    assert response.redirect_chain[-1][0].startswith(page_url)
    html = response.content.decode()
    assert "could not be issued" in html and "did not answer" in html
    credential = KubeCredential.objects.get()
    # The account may have been made before the answer was lost: the row stays for Revoke.
    assert credential.status == KubeCredentialStatus.ISSUING and credential.error
    assert credential.name.startswith("panel-")
    assert f'id="kube-credential-{credential.pk}"' in html and "Revoke" in html
    assert not AuditEvent.objects.filter(action=AuditAction.KUBE_CREDENTIAL_ISSUE).exists()

    revoke = reverse("clusters:kubeconfig-revoke", args=[dead_cluster.code, credential.pk])
    html = owner_client.post(revoke, follow=True).content.decode()
    assert "could not be revoked, so it still works" in html
    credential.refresh_from_db()
    assert credential.status == KubeCredentialStatus.ISSUING
    assert not AuditEvent.objects.filter(action=AuditAction.KUBE_CREDENTIAL_REVOKE).exists()


@pytest.mark.django_db
def test_another_users_credential_cannot_be_revoked_through_ones_own_cluster(
        user: Any, owner_client: Client) -> None:
    mine = make_cluster(owner=user, status=ClusterStatus.READY, kubeconfig="x")
    theirs = make_cluster(owner=make_user("other"), status=ClusterStatus.READY, kubeconfig="x")
    foreign = KubeCredential.objects.create(
        cluster=theirs, username="other", namespace="kube-system", name="panel-other-1",
        role="cluster-admin", status=KubeCredentialStatus.ACTIVE)
    url = reverse("clusters:kubeconfig-revoke", args=[mine.code, foreign.pk])
    assert owner_client.post(url).status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == KubeCredentialStatus.ACTIVE
    page = owner_client.get(reverse("clusters:cluster", args=[mine.code])).content.decode()
    assert "panel-other-1" not in page


@pytest.mark.django_db
def test_a_destroyed_clusters_credentials_ended_with_it(user: Any,
                                                        owner_client: Client) -> None:
    gone = make_cluster(owner=user, status=ClusterStatus.DESTROYED, kubeconfig="x")
    credential = KubeCredential.objects.create(
        cluster=gone, username="u", namespace="kube-system", name="panel-u-2",
        role="cluster-admin", status=KubeCredentialStatus.ACTIVE)
    page = owner_client.get(reverse("clusters:cluster", args=[gone.code])).content.decode()
    assert "Ended with the cluster" in page and "panel-u-2" in page
    assert reverse("clusters:kubeconfig-revoke", args=[gone.code, credential.pk]) not in page
    assert reverse("clusters:kubeconfig-issue", args=[gone.code]) not in page
    with pytest.raises(operations.OperationRefused, match="gone"):
        operations.revoke_kube_credential(credential, user)
