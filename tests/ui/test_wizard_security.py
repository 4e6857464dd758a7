"""The wizard offers datastore TLS and Secrets encryption, on by default for a new cluster,
and the cluster it creates carries both (against the Aliyun emulator)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import WizardState
from clusters.models import Cluster
from sandbox.aliyun.rds.tls import ensure_ca
from tests.ui.test_wizard import (  # noqa: F401 - at_k3s and at_review are fixtures
    at_k3s,
    at_review,
    field_errors,
    step_url,
)

RDS = {"kind": "rds", "rds_engine_version": "8.0", "rds_instance_class": "mysql.n2.medium.2c",
       "rds_storage_gb": 20}


def _checked(page: str, name: str) -> bool:
    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert tag, f"no {name} checkbox"
    return "checked" in tag.group(0)


def test_tls_is_on_by_default_once_the_panel_has_the_rds_ca(
        at_datastore: Client, settings: Any, tmp_path: Path) -> None:
    settings.PANEL_RDS_CA_BUNDLE = ""
    assert not _checked(at_datastore.get(step_url("datastore")).content.decode(),
                        "datastore_tls")
    refused = at_datastore.post(step_url("datastore"), {**RDS, "datastore_tls": "on"})
    assert "PANEL_RDS_CA_BUNDLE" in " ".join(field_errors(refused, "datastore_tls"))
    settings.PANEL_RDS_CA_BUNDLE = str(ensure_ca(tmp_path)[0])
    assert _checked(at_datastore.get(step_url("datastore")).content.decode(), "datastore_tls")
    response = at_datastore.post(step_url("datastore"), {**RDS, "datastore_tls": "on"})
    assert response["Location"] == step_url("hosts")


def test_secrets_encryption_is_offered_and_on_by_default(at_k3s: Client) -> None:  # noqa: F811
    assert _checked(at_k3s.get(step_url("k3s")).content.decode(), "secrets_encryption")


def test_the_created_cluster_has_tls_and_encryption(
        at_review: Client, settings: Any, tmp_path: Path) -> None:  # noqa: F811
    settings.PANEL_RDS_CA_BUNDLE = str(ensure_ca(tmp_path)[0])
    session = at_review.session
    wizard = WizardState(session)
    wizard.put("datastore", {**wizard.get("datastore"), "datastore_tls": True})
    wizard.put("k3s", {**wizard.get("k3s"), "secrets_encryption": True})
    session.save()
    review = at_review.get(step_url("review")).content.decode()
    assert "TLS, certificate verified" in review and "Secrets encrypted at rest" in review
    response = at_review.post(step_url("review"), {"billing_ack": "on"})
    assert response.status_code == 302
    cluster = Cluster.objects.get()
    assert cluster.datastore_tls and cluster.secrets_encryption
    assert response["Location"] == reverse("clusters:cluster", args=[cluster.code])
