"""The ApsaraDB CA bundle setting: what the panel accepts, and what it says otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters.adapters import datastore_tls
from clusters.core.errors import PermanentError
from clusters.models import Cluster, DatastoreKind
from sandbox.aliyun.rds.tls import ensure_ca


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no CA is configured"),
    ("missing", "cannot be read"),
    ("not a certificate\n", "holds no PEM certificate"),
])
def test_a_bundle_that_cannot_verify_anything_is_refused_with_the_way_to_fix_it(
        settings: Any, tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "ApsaraDB-CA-Chain.pem"
    if content is None:
        settings.PANEL_RDS_CA_BUNDLE = ""
    else:
        settings.PANEL_RDS_CA_BUNDLE = str(path)
        if content != "missing":
            path.write_text(content)
    with pytest.raises(PermanentError) as refused:
        datastore_tls.rds_ca_bundle()
    assert expected in str(refused.value)
    assert "Download CA certificate" in str(refused.value)


def test_a_pem_bundle_is_used_only_for_an_rds_cluster_with_tls(settings: Any,
                                                             tmp_path: Path) -> None:
    settings.PANEL_RDS_CA_BUNDLE = str(ensure_ca(tmp_path)[0])
    assert datastore_tls.rds_ca_bundle().startswith("-----BEGIN CERTIFICATE-----")
    rds = Cluster(datastore_kind=DatastoreKind.RDS, datastore_tls=True)
    assert datastore_tls.datastore_ca(rds) == datastore_tls.rds_ca_bundle()
    assert datastore_tls.datastore_ca(Cluster(datastore_kind=DatastoreKind.RDS)) is None
    assert datastore_tls.datastore_ca(
        Cluster(datastore_kind=DatastoreKind.EXTERNAL, datastore_tls=True)) is None
