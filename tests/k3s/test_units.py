"""Fast checks of the pieces whose exact behaviour is copied from K3s, kine and Go."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from sandbox.k3s import bootstrap, certs, config, dsn, kine, nodes, protobuf
from sandbox.k3s import serviceaccounts as sa
from sandbox.k3s.artifacts import ArtifactServer
from sandbox.k3s.binary import sha256
from sandbox.k3s.versions import CHANNELS, RELEASES, newest, release
from tests.support.memory_kine import MemoryKine


def test_dsn_parsing_follows_go_sql_driver() -> None:
    parsed = dsn.parse_endpoint("mysql://k3s:p@ss:w0rd@tcp(rm-x.mysql.rds.aliyuncs.com)/k3s")
    assert (parsed.user, parsed.password) == ("k3s", "p@ss:w0rd")
    assert parsed.addr == "rm-x.mysql.rds.aliyuncs.com:3306" and parsed.dbname == "k3s"
    assert dsn.parse_endpoint("mysql://").addr == "/var/run/mysqld/mysqld.sock"
    assert dsn.parse_endpoint("mysql://u:p@tcp(h:3306)/").dbname == "kubernetes"
    with pytest.raises(dsn.DSNError, match="missing closing brace"):
        dsn.parse_endpoint("mysql://u:p@tcp(h:3306/k3s")
    with pytest.raises(dsn.DSNError, match="storage backend is not defined"):
        dsn.parse_endpoint("postgresx://u:p@h/db")


def test_bootstrap_key_and_cipher_match_k3s() -> None:
    # sha256("token")[:12] — the /bootstrap/<hash> key K3s uses for the short token "token".
    assert bootstrap.storage_key("token") == "/bootstrap/3c469e9d6c58"
    sealed = bootstrap.encrypt("token", b'{"ServerCA":{}}')
    salt, _, _ = sealed.decode().partition(":")
    assert len(salt) == 16
    assert bootstrap.decrypt("token", sealed) == b'{"ServerCA":{}}'
    with pytest.raises(Exception):  # noqa: B017 - AES-GCM InvalidTag
        bootstrap.decrypt("other", sealed)
    assert bootstrap.normalize_token("K10" + "a" * 64 + "::server:secret") == "secret"
    assert bootstrap.normalize_token("secret") == "secret"


def test_old_and_new_kine_ddl() -> None:
    old = kine.schema_statements(release("v1.23.8+k3s1"))[0]
    new = kine.schema_statements(release("v1.33.1+k3s1"))[0]
    assert "name VARCHAR(630)," in old and "id INTEGER AUTO_INCREMENT" in old
    assert "name VARCHAR(630) CHARACTER SET ascii" in new and "BIGINT UNSIGNED" in new


def test_config_precedence(tmp_path: pytest.TempPathFactory) -> None:
    main = tmp_path / "config.yaml"
    main.write_text("token: from-file\ntls-san: [a.example]\nwrite-kubeconfig-mode: '0644'\n")
    (tmp_path / "config.yaml.d").mkdir()
    (tmp_path / "config.yaml.d" / "10-more.yaml").write_text("tls-san+: [10.0.0.100]\n")
    env = {"K3S_CONFIG_FILE": str(main), "K3S_TOKEN": "from-env",
           "K3S_DATASTORE_ENDPOINT": "mysql://env"}
    settings = config.load("server", [], env)
    assert settings.text("token") == "from-file"
    assert settings.items("tls-san") == ["a.example", "10.0.0.100"]
    assert settings.text("datastore-endpoint") == "mysql://env"
    cli = config.load("server", ["--token=cli", "--tls-san", "b"], env)
    assert cli.text("token") == "cli" and cli.items("tls-san") == ["b"]
    with pytest.raises(config.UsageError, match="flag provided but not defined: -bogus"):
        config.load("server", ["--bogus"], env)


def test_serving_sans_are_what_k3s_puts_there() -> None:
    sans = certs.serving_sans("node1", ["10.0.0.11"], ["10.0.0.100", "api.example"])
    assert sans[:5] == list(certs.DEFAULT_SAN_NAMES)
    assert {"node1", "127.0.0.1", "::1", "10.43.0.1", "10.0.0.11", "10.0.0.100"} <= set(sans)


def test_human_duration() -> None:
    assert [nodes.human_duration(s) for s in (5, 119, 150, 3600, 90000)] == \
        ["5s", "119s", "2m30s", "60m", "25h"]


def test_artifact_server_shapes() -> None:
    with ArtifactServer("127.73.5.1") as server:
        base = server.base_url

        def get(path: str) -> bytes:
            with urllib.request.urlopen(base + path, timeout=5) as response:  # noqa: S310
                return response.read()

        binary = get("/k3s-io/k3s/releases/download/v1.33.1+k3s1/k3s")
        sums = get("/k3s-io/k3s/releases/download/v1.33.1+k3s1/sha256sum-amd64.txt").decode()
        assert sums == f"{sha256(binary)}  k3s\n"
        assert binary.startswith(b"#!/") and b"v1.33.1+k3s1" in binary
        assert get("/k3s/v1.33.1-k3s1/k3s") == binary
        assert b"k3s-arm64" in get("/k3s/v1.33.1-k3s1/sha256sum-arm64.txt")
        assert get("/k3s/channels/stable") == b"v1.36.4+k3s1"
        channels = json.loads(get("/v1-release/channels"))
        assert {c["id"] for c in channels["data"]} >= {"stable", "latest", "v1.23"}
        with urllib.request.urlopen(base + "/v1-release/channels/latest", timeout=5) as response:  # noqa: S310
            assert response.url.endswith("/k3s-io/k3s/releases/tag/v1.37.0+k3s1")
        assert get("/").startswith(b"#!/bin/sh")
        newest = next(iter(json.loads(get("/repos/k3s-io/k3s/releases"))))
        assert newest["tag_name"] == "v1.37.0+k3s1"
        for missing in ("/k3s-io/k3s/releases/download/v1.99.0+k3s1/k3s", "/k3s/v1.99.0-k3s1/k3s",
                        "/v1-release/channels/nope"):
            with pytest.raises(urllib.error.HTTPError) as info:
                get(missing)
            assert info.value.code == 404


def test_catalogue_has_todays_lines_and_channels() -> None:
    lines = {release(v).minor_channel for v in RELEASES}
    assert {"v1.34", "v1.35", "v1.36", "v1.37"} <= lines
    assert all(target in RELEASES for target in CHANNELS.values())
    v136 = [v for v in RELEASES if v.startswith("v1.36.")]
    assert CHANNELS["stable"] == newest(v136) == "v1.36.4+k3s1"
    assert CHANNELS["latest"].startswith("v1.37.") and CHANNELS["v1.37"] == CHANNELS["latest"]
    assert CHANNELS["v1.36"] == "v1.36.4+k3s1" and CHANNELS["v1.35"] == "v1.35.6+k3s1"
    # newest() orders releases, not strings: v1.36.10 would sort before v1.36.4 as text.
    assert newest(["v1.36.4+k3s1", "v1.36.10+k3s1", "v1.36.4+k3s2"]) == "v1.36.10+k3s1"


def test_kine_pool_line_changed_in_kine_v016() -> None:
    # k3s-io/kine pkg/drivers/generic/generic.go before and after e3f930e (v0.16.0).
    assert release("v1.36.1+k3s1").kine == "v0.15.0"
    assert kine.pool_log_line(release("v1.36.1+k3s1")) == (
        "Configuring mysql database connection pooling: maxIdleConns=2, maxOpenConns=0, "
        "connMaxLifetime=0s")
    assert release("v1.36.2+k3s1").kine == "v0.16.1"
    assert kine.pool_log_line(release("v1.36.2+k3s1")) == (
        "Configuring mysql database connection pooling: maxIdle=20, maxOpen=0, "
        "maxLifetime=0s, maxIdleTime=0s")
    assert [release(v).max_idle for v in ("v1.33.1+k3s1", "v1.34.9+k3s1", "v1.35.5+k3s1",
                                          "v1.37.0+k3s1")] == [2, 20, 2, 20]


def test_a_channel_can_move_on_one_artifact_server_only() -> None:
    with ArtifactServer("127.73.5.2") as moved, ArtifactServer("127.73.5.3") as other:

        def get(server: ArtifactServer, path: str) -> bytes:
            with urllib.request.urlopen(server.base_url + path, timeout=5) as response:  # noqa: S310
                return response.read()

        assert moved.move_channel("stable", "v1.37.0+k3s1") == "v1.36.4+k3s1"
        assert get(moved, "/k3s/channels/stable") == b"v1.37.0+k3s1"
        with urllib.request.urlopen(moved.base_url + "/v1-release/channels/stable",  # noqa: S310
                                    timeout=5) as response:
            assert response.url.endswith("/releases/tag/v1.37.0+k3s1")
        listed = {c["id"]: c["latest"] for c in json.loads(get(moved, "/v1-release/channels"))
                  ["data"]}
        assert listed["stable"] == "v1.37.0+k3s1"
        assert get(other, "/k3s/channels/stable") == b"v1.36.4+k3s1"
        with pytest.raises(KeyError, match=r"v1\.99\.0"):
            moved.move_channel("stable", "v1.99.0+k3s1")


def test_service_account_tokens_expire_and_are_bound_to_this_clusters_key() -> None:
    """A token is honoured only before `exp`, only with this cluster's service key, and not
    once altered: what makes the panel's expiry choice real."""
    _, key = certs.new_ca("k3s-service-account")
    _, other_key = certs.new_ca("k3s-service-account")
    claims = {"aud": sa.AUDIENCES, "iss": sa.ISSUER, "iat": 1000, "nbf": 1000, "exp": 1600,
              "jti": "j-1", "sub": "system:serviceaccount:kube-system:a",
              "kubernetes.io": {"namespace": "kube-system",
                                "serviceaccount": {"name": "a", "uid": "u-1"}}}
    token = sa.sign(key, claims)
    assert sa.verified_claims(key, token, now=1599) == claims
    # go-jose's one-minute leeway, which kube-apiserver's validation uses.
    assert sa.verified_claims(key, token, now=1660) == claims
    assert sa.verified_claims(key, token, now=1661) is None  # expired
    assert sa.verified_claims(key, token, now=940) == claims
    assert sa.verified_claims(key, token, now=939) is None  # not yet valid
    assert sa.verified_claims(other_key, token, now=1200) is None  # another cluster's key
    header, _body, signature = token.split(".")
    forged = sa._b64url(json.dumps({**claims, "exp": 9999}).encode())
    assert sa.verified_claims(key, f"{header}.{forged}.{signature}", now=1200) is None
    assert sa.verified_claims(key, "not-a-jwt", now=1200) is None


def test_token_request_validation_is_kube_apiservers() -> None:
    """TokenREST.Create: the account first (404), then validation with an empty name."""
    _, key = certs.new_ca("k3s-service-account")
    store = MemoryKine()
    with pytest.raises(sa.ApiError) as missing:
        sa.request_token(store, key, "kube-system", "a",  # type: ignore[arg-type]
                         {"spec": {"expirationSeconds": 1}})
    assert missing.value.code == 404 and missing.value.message == \
        'serviceaccounts "a" not found'
    sa.create_service_account(store, "kube-system",  # type: ignore[arg-type]
                              {"metadata": {"name": "a"}})
    for seconds, text in ((599, "less than 10 minutes"), (2**32 + 1, "larger than 2^32")):
        with pytest.raises(sa.ApiError, match=re.escape(text)) as caught:
            sa.request_token(store, key, "kube-system", "a",  # type: ignore[arg-type]
                             {"spec": {"expirationSeconds": seconds}})
        assert caught.value.code == 422
        assert caught.value.message.startswith(
            f'TokenRequest.authentication.k8s.io "" is invalid: spec.expirationSeconds: '
            f"Invalid value: {seconds}: ")
    answer = sa.request_token(store, key, "kube-system", "a",  # type: ignore[arg-type]
                              {"spec": {"expirationSeconds": 600}}, now=1_700_000_000)
    assert answer["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert answer["status"]["expirationTimestamp"] == "2023-11-14T22:23:20Z"


def test_a_successful_token_is_cached_ten_seconds_like_kube_apiserver() -> None:
    """Revoking (deleting the account) refuses the token only once the server's success
    cache has forgotten it; failures are not cached; a new account of the same name (another
    UID) does not bring the token back."""
    _, key = certs.new_ca("k3s-service-account")
    store = MemoryKine()
    sa.create_service_account(store, "kube-system",  # type: ignore[arg-type]
                              {"metadata": {"name": "a"}})
    token = sa.request_token(store, key, "kube-system", "a",  # type: ignore[arg-type]
                             {})["status"]["token"]
    cache = sa.SuccessCache(ttl=0.3)
    assert sa.SUCCESS_CACHE_TTL == 10.0
    user = "system:serviceaccount:kube-system:a"
    assert sa.authenticate(store, key, token, cache=cache)[0] == user  # type: ignore[arg-type,index]
    sa.delete_service_account(store, "kube-system", "a")  # type: ignore[arg-type]
    assert sa.authenticate(store, key, token, cache=cache)[0] == user  # type: ignore[arg-type,index]
    assert sa.authenticate(store, key, token) is None  # type: ignore[arg-type]
    time.sleep(0.35)
    assert sa.authenticate(store, key, token, cache=cache) is None  # type: ignore[arg-type]
    sa.create_service_account(store, "kube-system",  # type: ignore[arg-type]
                              {"metadata": {"name": "a"}})
    assert sa.authenticate(store, key, token, cache=cache) is None  # type: ignore[arg-type]


def test_service_accounts_and_bindings_list_as_kubectl_get_reads_them() -> None:
    store = MemoryKine()
    for name in ("b", "a"):
        sa.create_service_account(store, "kube-system",  # type: ignore[arg-type]
                                  {"metadata": {"name": name}})
    sa.create_service_account(store, "default",  # type: ignore[arg-type]
                              {"metadata": {"name": "c"}})
    listed = sa.list_service_accounts(store, "kube-system")  # type: ignore[arg-type]
    assert listed["kind"] == "ServiceAccountList"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["a", "b"]
    everywhere = sa.list_service_accounts(store, None)  # type: ignore[arg-type]
    assert [item["metadata"]["name"] for item in everywhere["items"]] == ["c", "a", "b"]
    with pytest.raises(sa.ApiError, match="not found"):
        sa.list_service_accounts(store, "nope")  # type: ignore[arg-type]
    sa.create_cluster_role_binding(store, {  # type: ignore[arg-type]
        "metadata": {"name": "a"}, "subjects": [],
        "roleRef": {"kind": "ClusterRole", "apiGroup": "rbac.authorization.k8s.io",
                    "name": "view"}})
    bindings = sa.list_cluster_role_bindings(store)  # type: ignore[arg-type]
    assert bindings["kind"] == "ClusterRoleBindingList" and len(bindings["items"]) == 1


def test_protobuf_bodies_decode_as_kubectl_sends_them() -> None:
    def field(number: int, payload: bytes) -> bytes:
        return bytes([number << 3 | 2, len(payload)]) + payload

    meta = field(1, b"alice-1")
    spec = field(1, b"k3s") + bytes([4 << 3, 0x84, 0x07])  # expirationSeconds = 900
    raw = field(1, meta) + field(2, spec)
    body = protobuf.MAGIC + field(1, field(1, b"authentication.k8s.io/v1")
                                  + field(2, b"TokenRequest")) + field(2, raw)
    assert protobuf.decode(body) == {
        "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": "alice-1"},
        "spec": {"audiences": ["k3s"], "expirationSeconds": 900}}
    with pytest.raises(protobuf.DecodeError):
        protobuf.decode(b"{}")
    # A varint where kind (a string) or the object (a message) should be: a 400, not a crash.
    for bad in (field(1, bytes([2 << 3, 5])), field(1, field(2, b"TokenRequest"))
                + bytes([2 << 3, 7])):
        with pytest.raises(protobuf.DecodeError):
            protobuf.decode(protobuf.MAGIC + bad)


def test_a_port_counts_as_ours_only_if_our_process_listens_on_it() -> None:
    """What ScratchMariaDB trusts before using its port: a connect that succeeds may reach
    another process's server (the other test process picked the same free port first)."""
    import os  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from sandbox.k3s.testing import free_port, listening_pid  # noqa: PLC0415

    host = "127.73.5.9"
    with socket.socket() as own:
        own.bind((host, 0))
        port = own.getsockname()[1]
        assert not listening_pid(host, port, os.getpid())  # bound, not listening
        own.listen()
        assert listening_pid(host, port, os.getpid())
        assert not listening_pid(host, port + 1, os.getpid())
    other_port = free_port(host)
    other = subprocess.Popen(
        [sys.executable, "-c", "import socket, sys, time; s = socket.socket(); "
         f"s.bind(({host!r}, {other_port})); s.listen(); print(1, flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout is not None and other.stdout.readline().strip() == "1"
        socket.create_connection((host, other_port), timeout=2).close()  # it answers...
        assert not listening_pid(host, other_port, os.getpid())  # ...but is not ours
        assert listening_pid(host, other_port, other.pid)
    finally:
        other.kill()
        other.wait()


def test_each_test_process_has_its_own_session_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.xdist import session_address  # noqa: PLC0415

    seen = set()
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen |= {session_address(1), session_address(2)}
    assert len(seen) == 6
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert session_address(1) == "127.73.0.1"
