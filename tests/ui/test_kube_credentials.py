"""Personal kubeconfigs on the cluster page: the form, the list, the refusals, and what a
failed issue or revoke leaves behind (a cluster whose API does not answer: a closed loopback
port). The issue and revoke against a live cluster are in tests/e2e/test_create_cluster.py."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import reverse
from django.utils import timezone

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
from panel.celery import app as panel_app
from sandbox.k3s import serviceaccounts as sa
from tests.support.factories import make_cluster, make_user
from tests.support.kube_api import LiveApi, admin_kubeconfig, live_kube_api
from tests.support.memory_kine import MemoryKine


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing answers on: bound for the whole test and never listening, so
    no other process (the other test process included) can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
def dead_cluster(user: Any, closed_port: int) -> Any:
    """A ready cluster whose API (its SLB) does not answer."""
    return make_cluster(owner=user, name="shop", status=ClusterStatus.READY,
                        kubeconfig=admin_kubeconfig(f"https://127.0.0.1:{closed_port}"))


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    with live_kube_api(tmp_path) as api:
        yield api


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


def _accounts(store: MemoryKine) -> list[str]:
    return [row.name for row in store.list(sa.SA_PREFIX + "kube-system/")]


def _bindings(store: MemoryKine) -> list[str]:
    return [row.name for row in store.list(sa.CRB_PREFIX)]


@pytest.mark.django_db
def test_issue_and_revoke_against_the_stand_in_api(user: Any, live_api: LiveApi) -> None:
    cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                           kubeconfig=live_api.kubeconfig)
    issued = operations.issue_kube_credential(cluster, user, "1h")
    credential = issued.credential
    assert credential.status == KubeCredentialStatus.ACTIVE and credential.token_id
    assert _accounts(live_api.kine) == [f"{sa.SA_PREFIX}kube-system/{credential.name}"]
    token = yaml.safe_load(issued.kubeconfig)["users"][0]["user"]["token"]
    assert token not in json.dumps(kube_credentials.audit_details(credential))
    operations.revoke_kube_credential(credential, user)
    credential.refresh_from_db()
    assert credential.status == KubeCredentialStatus.REVOKED
    assert _accounts(live_api.kine) == [] and _bindings(live_api.kine) == []


@pytest.mark.django_db(transaction=True)  # the Revoke runs in the API server's thread
def test_a_revoke_during_an_issue_wins_and_nothing_is_handed_out(
        user: Any, live_api: LiveApi) -> None:
    """The Revoke lands after the token was signed and before the row turns ACTIVE: the
    issue must not overwrite REVOKED, must delete what it made and must refuse."""
    cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                           kubeconfig=live_api.kubeconfig)

    def revoke_now() -> None:
        row = KubeCredential.objects.get(cluster=cluster)
        assert row.status == KubeCredentialStatus.ISSUING
        operations.revoke_kube_credential(row, user)

    class Armed:
        def __call__(self) -> None:  # arm on the account the issue is about to make
            for name in list(live_api.kine.rows):
                if name.startswith(sa.SA_PREFIX + "kube-system/panel-"):
                    live_api.kine.after_get[name] = revoke_now

    original_create = live_api.kine.create

    def create(name: str, value: bytes) -> int:
        revision = original_create(name, value)
        if name.startswith(sa.SA_PREFIX):
            Armed()()  # the token request's account lookup is the next get of it
        return revision

    live_api.kine.create = create  # type: ignore[method-assign]
    with pytest.raises(operations.OperationRefused, match="revoked while it was being issued"):
        operations.issue_kube_credential(cluster, user, "1h")
    credential = KubeCredential.objects.get(cluster=cluster)
    assert credential.status == KubeCredentialStatus.REVOKED
    assert credential.revoked_by == user.get_username()
    assert _accounts(live_api.kine) == [] and _bindings(live_api.kine) == []


@pytest.mark.django_db
def test_an_api_answer_that_is_not_json_is_a_refusal_not_a_500(
        user: Any, live_api: LiveApi, owner_client: Client) -> None:
    """A ServiceAccount created, but the answer unreadable (a proxy's page, a cut body): the
    issue is refused with a reason, what was made is removed, the row does not stay ISSUING."""
    cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                           kubeconfig=live_api.kubeconfig)
    live_api.context.garbled_create_kinds.add("ServiceAccount")
    try:
        response = owner_client.post(reverse("clusters:kubeconfig-issue", args=[cluster.code]),
                                     {"lifetime": "1h"}, follow=True)
    finally:
        live_api.context.garbled_create_kinds.clear()
    assert response.status_code == 200
    assert "could not be issued" in response.content.decode()
    assert "no ServiceAccount UID" in response.content.decode()
    credential = KubeCredential.objects.get()
    assert credential.status == KubeCredentialStatus.FAILED
    assert _accounts(live_api.kine) == []


@pytest.mark.django_db
def test_issuing_is_rate_limited_per_person_and_cluster(user: Any, live_api: LiveApi) -> None:
    cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                           kubeconfig=live_api.kubeconfig)
    for _ in range(kube_credentials.ISSUE_LIMIT):
        operations.issue_kube_credential(cluster, user, "1h")
    with pytest.raises(operations.OperationRefused,
                       match=r"You issued 10 personal kubeconfigs .* Try again in 60 minutes"):
        operations.issue_kube_credential(cluster, user, "1h")
    assert KubeCredential.objects.count() == kube_credentials.ISSUE_LIMIT
    # Someone else (another owner's cluster here) is not held back by it.
    other = make_user("other")
    theirs = make_cluster(owner=other, status=ClusterStatus.READY,
                          kubeconfig=live_api.kubeconfig)
    assert operations.issue_kube_credential(theirs, other, "1h").credential.status == \
        KubeCredentialStatus.ACTIVE
    # An hour later the window has moved on.
    KubeCredential.objects.filter(cluster=cluster).update(
        created_at=timezone.now() - timedelta(minutes=61))
    assert kube_credentials.rate_refusal(cluster, user) is None


@pytest.mark.django_db
def test_expired_credentials_are_cleaned_off_the_cluster(user: Any, live_api: LiveApi) -> None:
    cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                           kubeconfig=live_api.kubeconfig)
    old = operations.issue_kube_credential(cluster, user, "1h").credential
    KubeCredential.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(seconds=30))
    assert kube_credentials.clean_up_all_expired() == 0  # within the API's leeway: not yet
    KubeCredential.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5))
    assert kube_credentials.clean_up_all_expired() == 1
    old.refresh_from_db()
    assert old.status == KubeCredentialStatus.EXPIRED
    assert _accounts(live_api.kine) == [] and _bindings(live_api.kine) == []
    # The next issue cleans up too.
    second = operations.issue_kube_credential(cluster, user, "1h").credential
    KubeCredential.objects.filter(pk=second.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5))
    third = operations.issue_kube_credential(cluster, user, "1h").credential
    second.refresh_from_db()
    assert second.status == KubeCredentialStatus.EXPIRED
    assert _accounts(live_api.kine) == [f"{sa.SA_PREFIX}kube-system/{third.name}"]


@pytest.mark.django_db
def test_every_live_credential_is_listed_however_many_ended_ones_there_are(
        user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, status=ClusterStatus.READY, kubeconfig="x")
    oldest_live = KubeCredential.objects.create(
        cluster=cluster, username="u", namespace="kube-system", name="panel-u-live",
        role="cluster-admin", status=KubeCredentialStatus.ACTIVE,
        expires_at=timezone.now() + timedelta(days=7))
    KubeCredential.objects.bulk_create([KubeCredential(
        cluster=cluster, username="u", namespace="kube-system", name=f"panel-u-{i}",
        role="cluster-admin", status=KubeCredentialStatus.REVOKED) for i in range(60)])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "panel-u-live" in page
    assert reverse("clusters:kubeconfig-revoke", args=[cluster.code, oldest_live.pk]) in page
    assert "10 older ended kubeconfigs are not listed." in page
    assert "What Revoke cannot end:" in page and "within seconds" in page


def test_the_beat_cleans_up_expired_kubeconfigs_hourly() -> None:
    entry = panel_app.conf.beat_schedule["clean up expired personal kubeconfigs"]
    assert entry["task"] == "clusters.clean_up_expired_kube_credentials"
    assert entry["schedule"] == 3600.0
    assert panel_app.tasks[entry["task"]].run is kube_credentials.clean_up_all_expired.run
