"""Secrets are unreadable in the database, and keys rotate without losing anything."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from clusters.core import crypto
from clusters.models import CloudAccount, Cluster, Node
from tests.support.factories import TEST_ACCESS_KEY_SECRET, TEST_TOKEN, make_cluster

pytestmark = pytest.mark.django_db

KUBECONFIG = "apiVersion: v1\nclient-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t\n"


def raw_row(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return " ".join(str(value) for value in cursor.fetchone())


def test_raw_columns_hold_no_plaintext():
    cluster = make_cluster(nodes=1, kubeconfig=KUBECONFIG, datastore_password="Db-Pass-1234!")
    node = cluster.nodes.get()
    raw_cluster = raw_row("clusters_cluster", cluster.pk)
    raw_account = raw_row("clusters_cloudaccount", cluster.cloud_account_id)
    raw_node = raw_row("clusters_node", node.pk)
    for plaintext in (TEST_TOKEN, KUBECONFIG.strip(), "Db-Pass-1234!"):
        assert plaintext not in raw_cluster
    assert TEST_ACCESS_KEY_SECRET not in raw_account
    assert node.ssh_password and node.ssh_password not in raw_node
    assert raw_cluster.count(crypto.TOKEN_PREFIX) == 3
    # And the application still reads them back.
    fresh = Cluster.objects.get(pk=cluster.pk)
    assert (fresh.k3s_token, fresh.kubeconfig) == (TEST_TOKEN, KUBECONFIG)


def test_blank_secrets_stay_blank_and_queryable():
    cluster = make_cluster()
    assert Cluster.objects.filter(pk=cluster.pk, kubeconfig="").exists()


def test_rotation_re_encrypts_with_the_new_primary_key(settings):
    cluster = make_cluster(nodes=2)
    old_keys = list(settings.PANEL_ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.PANEL_ENCRYPTION_KEYS = [new_key, *old_keys]
    call_command("rotate_encryption_keys", stdout=open("/dev/null", "w"))  # noqa: SIM115

    settings.PANEL_ENCRYPTION_KEYS = [new_key]  # the old keys are gone now
    assert Cluster.objects.get(pk=cluster.pk).k3s_token == TEST_TOKEN
    account = CloudAccount.objects.get(pk=cluster.cloud_account_id)
    assert account.access_key_secret == TEST_ACCESS_KEY_SECRET
    assert [n.ssh_password for n in Node.objects.filter(cluster=cluster).order_by("pk")] == [
        "ssh-password-0-secret", "ssh-password-1-secret",
    ]


def test_a_dropped_key_fails_loudly_without_leaking(settings):
    cluster = make_cluster()
    settings.PANEL_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError) as caught:
        Cluster.objects.get(pk=cluster.pk)
    assert "rotate_encryption_keys" in str(caught.value)
    assert TEST_TOKEN not in str(caught.value)
