"""`k3s secrets-encrypt status` text (the stand-in) and the panel's reading of it; the
config.yaml the panel writes for datastore TLS and Secrets encryption, as K3s reads it.

Pure functions and files: fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from clusters.k3s.config import DATASTORE_CA_PATH, ClusterSettings, render_server_config
from clusters.k3s.diagnosis import explain
from clusters.k3s.dsn import build_endpoint, parse_endpoint
from clusters.k3s.secrets_encryption import parse_status
from sandbox.k3s import secretsencrypt
from sandbox.k3s.config import load

# docs.k3s.io, CIS Hardening Guide, "Verify Secrets encryption is enabled".
DOCUMENTED = """Encryption Status: Enabled
Current Rotation Stage: start
Server Encryption Hashes: All hashes match

Active  Key Type  Name
------  --------  ----
 *      AES-CBC   aescbckey

"""


def _server(name: str, config: bytes) -> dict:
    return {"metadata": {"name": name, "annotations": {
        secretsencrypt.HASH_ANNOTATION: secretsencrypt.config_hash(config)}}}


def test_status_prints_what_k3s_documents_and_the_panel_reads_it() -> None:
    config = secretsencrypt.new_config()
    text = secretsencrypt.render_status(
        secretsencrypt.status(config, [_server("server-1", config), _server("server-2", config)]))
    assert text == DOCUMENTED
    status = parse_status(text)
    assert status.enabled and status.stage == "start" and status.healthy


def test_a_server_with_another_key_is_reported_and_not_healthy() -> None:
    config = secretsencrypt.new_config()
    text = secretsencrypt.render_status(secretsencrypt.status(
        config, [_server("server-1", config), _server("server-2", secretsencrypt.new_config())]))
    assert "Server Encryption Hashes: hash does not match between this server and server-2" \
        in text
    assert not parse_status(text).healthy


def test_without_the_flag_status_says_disabled() -> None:
    text = secretsencrypt.render_status(secretsencrypt.status(None, []))
    assert text == "Encryption Status: Disabled, no configuration file found\n"
    assert not parse_status(text).enabled
    with pytest.raises(ValueError):
        parse_status("FATA[0000] Error: connection refused")


def test_the_panels_config_turns_both_on_as_k3s_reads_it(tmp_path: Path) -> None:
    endpoint = build_endpoint("k3s", "p@ss", "10.0.1.50", 3306, database="k3s")
    text = render_server_config(ClusterSettings(
        token="t" * 48, datastore_endpoint=endpoint, tls_sans=("10.0.1.30",),
        secrets_encryption=True, datastore_cafile=DATASTORE_CA_PATH))
    path = tmp_path / "config.yaml"
    path.write_text(text)
    settings = load("server", ["--config", str(path)], environ={})
    assert settings.bool("secrets-encryption") is True
    assert settings.text("datastore-cafile") == DATASTORE_CA_PATH
    # No `tls=` in the DSN: go-sql-driver would apply it before kine's CA and ignore the CA.
    assert "tls" not in dict(parse_endpoint(settings.text("datastore-endpoint")).params)


def test_a_cluster_without_them_gets_neither() -> None:
    text = render_server_config(ClusterSettings(
        token="t" * 48, datastore_endpoint="mysql://k3s:p@tcp(h:3306)/k3s",
        tls_sans=("10.0.1.30",)))
    assert "secrets-encryption" not in text and "datastore-cafile" not in text


@pytest.mark.parametrize(("journal", "hint"), [
    ('level=fatal msg="starting kubernetes: preparing server: creating storage endpoint: '
     'building kine: tls: failed to verify certificate: x509: certificate signed by unknown '
     'authority"', "PANEL_RDS_CA_BUNDLE"),
    ('level=fatal msg="starting kubernetes: preparing server: creating storage endpoint: '
     'building kine: Error 3159 (HY000): Connections using insecure transport are prohibited '
     'while --require_secure_transport=ON."', "only encrypted connections"),
])
def test_the_datastore_tls_failures_of_the_journal_are_explained(journal: str,
                                                                  hint: str) -> None:
    explained = explain([journal])
    assert explained and hint in explained
