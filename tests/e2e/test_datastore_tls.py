"""A cluster whose datastore connection is TLS, verified, and whose Secrets are encrypted.

What a careful Alibaba Cloud user checks: RDS SSL is on with forced encryption, each server
holds the ApsaraDB CA (0600) and K3s's `datastore-cafile` names it, a plain or wrongly
verified connection is refused with a message a person can act on, and
`k3s secrets-encrypt status` says Enabled with every server's hash matching.
"""

from __future__ import annotations

import pytest
import yaml

from clusters import operations
from clusters.adapters import clusterconfig, nodes, ssh
from clusters.adapters.cloud import cloud_for
from clusters.adapters.datastore import check_datastore
from clusters.core.errors import PermanentError
from clusters.k3s.config import DATASTORE_CA_PATH
from clusters.k3s.dsn import parse_endpoint
from clusters.models import Cluster, LogLine, RunStatus, StepStatus
from sandbox.aliyun.rds.tls import ensure_ca
from tests.support import runs
from tests.support.ssh_login import ssh as ssh_login
from tests.support.ssh_login import ssh_run
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

ENCRYPTION_CONFIG = "/var/lib/rancher/k3s/server/cred/encryption-config.json"


def test_datastore_tls_verified_and_secrets_encrypted(world, start_worker, settings,
                                                     tmp_path) -> None:
    bundle = str(world.emulator.rds_ca_bundle)
    settings.PANEL_RDS_CA_BUNDLE = bundle  # this process too (the wrong-CA check below)
    start_worker(concurrency=2, PANEL_RDS_CA_BUNDLE=bundle, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0, rds_engine_version="8.0",
                                 datastore_tls=True, secrets_encryption=True)
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    cluster = Cluster.objects.get(pk=cluster.pk)

    # RDS: SSL on for the address K3s uses, unencrypted clients refused.
    (rds,) = [r for r in world.emulator.control.resources() if r["type"] == "rds_instance"]
    state = cloud_for(cluster).describe_ssl(rds["id"])
    assert state.enabled and state.force_encryption
    assert state.connection_string == rds["addresses"][0]
    logs = list(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert any("Turned SSL on for" in text for text in logs)
    assert any("certificate of" in text and "verified against the datastore CA" in text
               for text in logs)

    # Each server: the CA (0600) and datastore-cafile naming it; the encryption config (0600).
    for host in world.lab.hosts[:2]:
        client = ssh_login(host)
        status, text, _ = ssh_run(client, "cat /etc/rancher/k3s/config.yaml")
        config = yaml.safe_load(text)
        assert config["datastore-cafile"] == DATASTORE_CA_PATH
        assert config["secrets-encryption"] is True
        assert "tls=" not in config["datastore-endpoint"]
        status, modes, _ = ssh_run(client, f"stat -c '%a %n' {DATASTORE_CA_PATH} "
                                           f"{ENCRYPTION_CONFIG}")
        assert status == 0 and modes.split() == ["600", DATASTORE_CA_PATH,
                                                 "600", ENCRYPTION_CONFIG], modes
        _, ca, _ = ssh_run(client, f"cat {DATASTORE_CA_PATH}")
        assert ca == world.emulator.rds_ca_bundle.read_text()
        # Secrets encryption, asked as a person would, on each server.
        status, text, err = ssh_run(client, "k3s secrets-encrypt status")
        assert status == 0, err
        assert text.startswith("Encryption Status: Enabled\nCurrent Rotation Stage: start\n"
                               "Server Encryption Hashes: All hashes match\n"), text
        assert " *      AES-CBC   aescbckey" in text
    verified = run.steps.get(key="verify").result
    assert verified["secrets_encryption"] == "Enabled, stage start, all hashes match"

    # A wrong CA fails, before anything is installed, with what to fix.
    wrong = ensure_ca(tmp_path / "another-world")[0].read_text()
    endpoint = parse_endpoint(clusterconfig.recorded_datastore_endpoint(cluster))
    server = cluster.nodes.servers().order_by("pk").first()
    with ssh.connect(nodes.target_for(server), pinned_fingerprint=server.host_key) as session, \
            pytest.raises(PermanentError) as refused:
        check_datastore(endpoint, cluster.k3s_version, via=session, ca_pem=wrong)
    message = str(refused.value)
    assert "does not verify" in message and "PANEL_RDS_CA_BUNDLE" in message
    assert endpoint.address in message
