"""Pure K3s knowledge: DSN, config.yaml, install command, kubeconfig, journal, versions."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clusters.core.errors import PermanentError
from clusters.k3s import (
    ClusterSettings,
    DatastoreEndpointError,
    InstallSource,
    NodeIdentity,
    build_endpoint,
    diagnose,
    explain,
    install_command,
    kine_ddl,
    kine_schema,
    parse_endpoint,
    parse_version,
    render_server_config,
    rewrite_kubeconfig,
    upgrade_problem,
)
from clusters.k3s.config import critical_values
from sandbox.k3s.dsn import parse_endpoint as standin_parse_endpoint

NASTY_PASSWORDS = ["plain-Pass1", "p@ss:w/rd?x=1&y", "with space#hash", "(paren)", "%41%40",
                   "quote'\"`$HOME", "ünïcode-ß", "ends-with-@"]


# -- DSN ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("password", NASTY_PASSWORDS)
def test_any_password_survives_the_dsn_verbatim(password: str) -> None:
    text = build_endpoint("k3s", password, "rm-abc.mysql.rds.aliyuncs.com", 3306, database="k3s")
    parsed = parse_endpoint(text)
    assert (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) == (
        "k3s", password, "rm-abc.mysql.rds.aliyuncs.com", 3306, "k3s")
    # The K3s stand-in parses like go-sql-driver: it must read the same thing.
    theirs = standin_parse_endpoint(text)
    assert (theirs.user, theirs.password, theirs.host, theirs.port, theirs.dbname) == (
        "k3s", password, "rm-abc.mysql.rds.aliyuncs.com", 3306, "k3s")
    assert password not in str(parsed) and "***" in parsed.redacted()


def test_percent_encoding_is_not_applied() -> None:
    """go-sql-driver does not URL-decode: encoding would change the password."""
    text = build_endpoint("k3s", "a@b", "10.0.0.5", 3306, database="k3s")
    assert text == "mysql://k3s:a@b@tcp(10.0.0.5:3306)/k3s"


@pytest.mark.parametrize(("endpoint", "message"), [
    ("mysql://k3s:pw@rm-x.mysql.rds.aliyuncs.com:3306/k3s", "missing tcp"),
    ("'mysql://k3s:pw@tcp(h:3306)/k3s'", "Remove the quotes"),
    ("postgres://k3s:pw@tcp(h:5432)/k3s", "must start with mysql://"),
    ("mysql://k3s:pw@tcp(h:3306", "missing the /<database>"),
    ("mysql://k3s:pw@tcp(h:3306/k3s", "not closed"),
    ("mysql://k3s:pw@unix(/run/mysqld.sock)/k3s", "use tcp(host:port)"),
    ("mysql://@tcp(h:3306)/k3s", "names no user"),
    ("mysql://k3s:pw@tcp(h:99999)/k3s", "not a valid port"),
])
def test_hand_written_dsn_mistakes_get_plain_reasons(endpoint: str, message: str) -> None:
    with pytest.raises(DatastoreEndpointError, match=re.escape(message)):
        parse_endpoint(endpoint)


def test_dsn_defaults_match_kine() -> None:
    parsed = parse_endpoint("mysql://k3s:pw@tcp(10.0.0.5)/")
    assert (parsed.port, parsed.database) == (3306, "kubernetes")
    v6 = parse_endpoint(build_endpoint("k3s", "pw", "fd00::5", 3307, database="k3s"))
    assert (v6.host, v6.port, v6.address) == ("fd00::5", 3307, "[fd00::5]:3307")


def test_unusable_user_names_are_refused() -> None:
    with pytest.raises(DatastoreEndpointError):
        build_endpoint("k3s:admin", "pw", "h")


# -- config.yaml -------------------------------------------------------------------------------

def cluster_settings(**changes: object) -> ClusterSettings:
    values: dict[str, object] = {
        "token": "0123abcd" * 6,
        "datastore_endpoint": build_endpoint("k3s", "p@ss:w/rd #1", "rm-x", 3306,
                                             database="k3s"),
        "tls_sans": ("10.0.1.30", "k3s-api.example.com", "10.0.1.30"),
        "disable": ("traefik", "servicelb"),
        "node_taints": ("CriticalAddonsOnly=true:NoExecute",),
        **changes,
    }
    return ClusterSettings(**values)  # type: ignore[arg-type]


def test_config_yaml_round_trips_every_value() -> None:
    settings = cluster_settings(secrets_encryption=True, cluster_cidr="10.42.0.0/16")
    text = render_server_config(settings, NodeIdentity(node_ip="10.0.1.11", node_name="m1"))
    loaded = yaml.safe_load(text)
    assert loaded["token"] == settings.token
    assert loaded["datastore-endpoint"] == settings.datastore_endpoint  # '#', ':' survive YAML
    assert loaded["tls-san"] == ["10.0.1.30", "k3s-api.example.com"]
    assert loaded["disable"] == ["traefik", "servicelb"]
    assert loaded["node-taint"] == ["CriticalAddonsOnly=true:NoExecute"]
    assert loaded["write-kubeconfig-mode"] == "0600"  # a string: YAML must not make it 384
    assert (loaded["node-ip"], loaded["node-name"]) == ("10.0.1.11", "m1")
    assert loaded["secrets-encryption"] is True and loaded["cluster-cidr"] == "10.42.0.0/16"
    assert "server" not in loaded and "K3S_URL" not in text


def test_critical_flags_are_identical_on_every_server() -> None:
    settings = cluster_settings()
    one = render_server_config(settings, NodeIdentity(node_ip="10.0.1.11"))
    two = render_server_config(settings, NodeIdentity(node_ip="10.0.1.12"))
    assert one != two and critical_values(one) == critical_values(two)


def test_config_refuses_what_would_break_the_cluster() -> None:
    with pytest.raises(PermanentError, match="tls-san"):
        cluster_settings(tls_sans=())
    with pytest.raises(PermanentError, match="cannot disable traefk"):
        cluster_settings(disable=("traefk",))
    with pytest.raises(PermanentError, match="token"):
        cluster_settings(token="")


# -- install command ---------------------------------------------------------------------------

class _ScriptHandler(http.server.BaseHTTPRequestHandler):
    script = (b'#!/bin/sh\necho "args=$*"\necho "version=$INSTALL_K3S_VERSION"\n'
              b'echo "github=$GITHUB_URL"\necho "skip=$INSTALL_K3S_SKIP_START"\n'
              b'echo "script=$0"\n')

    def do_GET(self) -> None:
        if self.path != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.script)))
        self.end_headers()
        self.wfile.write(self.script)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def script_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ScriptHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("role", ["server", "agent"])
def test_install_command_downloads_then_runs_the_script_with_its_variables(
        script_server: str, role: str) -> None:
    command = install_command(InstallSource("custom", script_server), version="v1.30.8+k3s1",
                              role=role)  # type: ignore[arg-type]
    env = {"PATH": os.environ["PATH"]}
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30,
                          env=env)
    assert done.returncode == 0, done.stderr
    out = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert out["args"] == role and out["version"] == "v1.30.8+k3s1"
    assert out["github"] == f"{script_server}/k3s-io/k3s/releases"
    assert out["skip"] == "true"
    assert not Path(out["script"]).exists()  # the private temp dir is removed


def test_a_failed_download_fails_the_command(script_server: str) -> None:
    source = InstallSource("custom", script_server + "/missing")
    done = subprocess.run(["sh", "-c", install_command(source, channel="stable")],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"]})
    assert done.returncode != 0 and "args=" not in done.stdout


def test_install_sources_and_no_secrets_on_the_command_line() -> None:
    china = install_command(InstallSource("china"), version="v1.30.8+k3s1")
    assert "https://rancher-mirror.rancher.cn/k3s/k3s-install.sh" in china
    assert "INSTALL_K3S_MIRROR=cn" in china
    assert "https://get.k3s.io" in install_command(InstallSource(), channel="v1.30")
    with pytest.raises(PermanentError, match="looks secret"):
        install_command(InstallSource(), version="v1.30.8+k3s1",
                        extra_env={"K3S_TOKEN": "abc"})
    with pytest.raises(PermanentError, match="not a K3s channel"):
        install_command(InstallSource(), channel="stable; rm -rf /")
    with pytest.raises(PermanentError, match="must look like"):
        InstallSource("custom", "ftp://mirror")


# -- kubeconfig --------------------------------------------------------------------------------

def _k3s_yaml(not_after: dt.datetime) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "k3s-client-ca")])
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=3650))
          .sign(key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:admin")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now).not_valid_after(not_after).sign(key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    chain = leaf.public_bytes(pem) + ca.public_bytes(pem)
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": "default", "cluster": {
            "certificate-authority-data": b64(ca.public_bytes(pem)),
            "server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
        "current-context": "default",
        "users": [{"name": "default", "user": {"client-certificate-data": b64(chain),
                                               "client-key-data": b64(key_pem)}}],
    })


def test_kubeconfig_points_at_the_load_balancer_and_is_named_after_the_cluster(
        tmp_path: Path) -> None:
    expires = dt.datetime(2031, 5, 4, 3, 2, 1, tzinfo=dt.UTC)
    result = rewrite_kubeconfig(_k3s_yaml(expires), "Prod EU", "10.0.1.30")
    assert result.server == "https://10.0.1.30:6443" and result.name == "prod-eu"
    assert result.client_cert_not_after == expires
    assert result.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    path = tmp_path / "kubeconfig"
    path.write_text(result.text)
    # The real kubectl reads it the way a user's kubectl will.
    view = subprocess.run(
        ["kubectl", "--kubeconfig", str(path), "config", "view", "--minify", "-o",
         "jsonpath={.current-context} {.clusters[0].cluster.server} {.users[0].name}"],
        capture_output=True, text=True, timeout=30)
    assert view.returncode == 0, view.stderr
    assert view.stdout == "prod-eu https://10.0.1.30:6443 prod-eu"
    assert rewrite_kubeconfig(_k3s_yaml(expires), "x", "fd00::30").server == (
        "https://[fd00::30]:6443")


def test_a_broken_k3s_yaml_is_a_plain_error() -> None:
    with pytest.raises(PermanentError, match="not a kubeconfig"):
        rewrite_kubeconfig("just: text", "c", "10.0.0.1")
    with pytest.raises(PermanentError, match="not valid YAML"):
        rewrite_kubeconfig("a: [", "c", "10.0.0.1")


# -- journal -----------------------------------------------------------------------------------

def test_journal_lines_become_plain_explanations() -> None:
    journal = [
        "level=info msg=\"Starting k3s v1.30.8+k3s1\"",
        "level=fatal msg=\"starting kubernetes: preparing server: bootstrap data already found "
        "and encrypted with different token\"",
        "level=fatal msg=\"starting kubernetes: preparing server: creating storage endpoint: "
        "building kine: dial tcp 10.0.1.20:3306: connect: connection refused\"",
    ]
    found = diagnose(journal)
    assert [d.key for d in found] == ["token-mismatch", "datastore-unreachable"]
    assert found[1].transient and not found[0].transient
    assert explain(journal).startswith("The datastore already holds a cluster")  # type: ignore[union-attr]
    assert diagnose(["Error 1071 (42000): Specified key was too long; max key length is 767 "
                     "bytes"])[0].key == "key-too-long"
    assert diagnose(["building kine: default addr for network 'rm-x:3306' unknown"])[0].key == (
        "no-tcp")
    assert explain(["all good"]) is None


# -- versions ----------------------------------------------------------------------------------

def test_versions_parse_compare_and_guard_upgrades() -> None:
    assert str(parse_version("v1.28.5+k3s1")) == "v1.28.5+k3s1"
    assert parse_version("v1.30.8-k3s2") > parse_version("v1.30.8+k3s1")
    assert parse_version("v1.30.10+k3s1") > parse_version("v1.30.9+k3s1")
    assert upgrade_problem("v1.29.4+k3s1", "v1.30.8+k3s1") is None
    assert "skips minor versions" in (upgrade_problem("v1.28.5+k3s1", "v1.30.8+k3s1") or "")
    assert "v1.29" in (upgrade_problem("v1.28.5+k3s1", "v1.30.8+k3s1") or "")
    assert "cannot be downgraded" in (upgrade_problem("v1.30.8+k3s1", "v1.29.4+k3s1") or "")
    with pytest.raises(PermanentError):
        parse_version("latest")


def test_kine_ddl_follows_the_k3s_version() -> None:
    assert not kine_schema("v1.23.8+k3s1").ascii_name
    assert kine_schema("v1.25.4+k3s1").ascii_name and not kine_schema("v1.25.3+k3s1").ascii_name
    assert not kine_schema("v1.28.8+k3s1").bigint_ids and kine_schema("v1.28.9+k3s1").bigint_ids
    new = kine_ddl("v1.33.1+k3s1", "scratch")
    assert "CHARACTER SET ascii" in new[0] and "BIGINT UNSIGNED" in new[0]
    assert all(" scratch " in s or " scratch (" in s for s in new)
    assert len(new) == 6 and len(kine_ddl("v1.19.1+k3s1")) == 4
    with pytest.raises(ValueError, match="unsafe table"):
        kine_ddl("v1.33.1+k3s1", "kine; DROP TABLE x")
