"""The API's create with embedded etcd: the wizard's rules and messages (odd servers, the
schedule), no RDS billed, and the cluster it makes; the API's own spec of it is accepted again."""

from __future__ import annotations

import pytest

from clusters.models import CloudAccount, Cluster, ClusterStatus, DatastoreKind
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.api.test_api import account, spec  # noqa: F401 - account is a fixture
from tests.support.api import bearer, issue, post_json

pytestmark = pytest.mark.django_db


def _etcd_spec(cloud: Emulator, account: CloudAccount, artifacts: ArtifactServer,  # noqa: F811
               servers: int, **datastore: object) -> dict:
    body = spec(cloud, account, artifacts)
    base = cloud.vswitch["cidr"].rsplit(".", 1)[0]
    body["hosts"] = [{"role": "server", "private_ip": f"{base}.{11 + i}", "auth": "password",
                      "password": "s3cret-pass"} for i in range(servers)]
    body["datastore"] = {"kind": "etcd", **datastore}
    return body


def test_api_creates_an_etcd_cluster_with_no_rds(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:  # noqa: F811
    api = bearer(issue(account.owner))
    dry = post_json(api, "/api/v1/clusters/?dry_run=1", _etcd_spec(cloud, account, artifacts, 3))
    assert dry.status_code == 200 and dry.json()["valid"] is True, dry.json()
    assert [item["what"] for item in dry.json()["billed"]["items"]] == [
        "CLB instance (pay-as-you-go, pay-by-LCU), TCP listener on 6443"]
    made = post_json(api, "/api/v1/clusters/", _etcd_spec(
        cloud, account, artifacts, 5, etcd_snapshot_cron="0 */6 * * *",
        etcd_snapshot_retention=10))
    assert made.status_code == 202, made.json()
    cluster = Cluster.objects.get(owner=account.owner)
    assert cluster.datastore_kind == DatastoreKind.ETCD
    assert (cluster.etcd_snapshot_cron, cluster.etcd_snapshot_retention) == ("0 */6 * * *", 10)
    assert cluster.status == ClusterStatus.PROVISIONING and not cluster.external_dsn
    assert not cluster.datastore_password
    run = cluster.runs.get()
    assert not run.steps.filter(handler__startswith="rds.").exists()
    shown = api.get(f"/api/v1/clusters/{cluster.code}/").json()
    assert shown["etcd_snapshot_cron"] == "0 */6 * * *"
    assert shown["spec"]["datastore"] == {"kind": "etcd", "etcd_snapshot_cron": "0 */6 * * *",
                                          "etcd_snapshot_retention": 10,
                                          "etcd_single_server": False}


def test_api_refuses_what_the_wizard_refuses(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:  # noqa: F811
    api = bearer(issue(account.owner))
    even = post_json(api, "/api/v1/clusters/", _etcd_spec(cloud, account, artifacts, 2))
    assert even.status_code == 400
    assert "odd number of servers: 3 or 5 (you have 2)" in even.json()["fields"]["hosts"][0]
    one = post_json(api, "/api/v1/clusters/", _etcd_spec(cloud, account, artifacts, 1))
    assert "not highly available" in one.json()["fields"]["hosts"][0]
    acknowledged = post_json(api, "/api/v1/clusters/?dry_run=1", _etcd_spec(
        cloud, account, artifacts, 1, etcd_single_server=True))
    assert acknowledged.json()["valid"] is True, acknowledged.json()
    cron = post_json(api, "/api/v1/clusters/", _etcd_spec(
        cloud, account, artifacts, 3, etcd_snapshot_cron="0 12 * *"))
    assert "A schedule has 5 fields" in cron.json()["fields"]["datastore.etcd_snapshot_cron"][0]
    assert not Cluster.objects.exists()
