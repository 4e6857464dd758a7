"""Kine's DDL per release against a MariaDB with the 767-byte index limit, and DSN mistakes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sandbox.k3s.testing import ScratchMariaDB
from tests.support.k3s_nodes import Node

pytestmark = [pytest.mark.slow, pytest.mark.lab]

FATAL = 'level=fatal msg="starting kubernetes: preparing server: creating storage endpoint: ' \
        'building kine: '


def test_old_release_hits_767_byte_limit_until_large_prefix(
        mariadb: ScratchMariaDB, start_k3s: Callable[..., Node]) -> None:
    endpoint = mariadb.endpoint("k3s_old")
    args = ["server", "--token", "t0ken", "--datastore-endpoint", endpoint,
            "--bind-address", "127.73.6.11"]
    failing = start_k3s("old-1", args, version="v1.23.8+k3s1")
    assert failing.proc.wait(30) == 1
    # go-sql-driver v1.6 (k3s v1.23) prints no SQLSTATE; MariaDB COMPACT rows give 1709.
    assert (FATAL + "Error 1709: Index column size too large. The maximum column size is 767 "
            'bytes"') in failing.journal()

    mariadb.large_prefix(True)
    try:
        # The failed run left a COMPACT `kine` table behind; like on a real server it must go.
        mariadb.sql("DROP TABLE kine", "k3s_old")
        working = start_k3s("old-2", args, version="v1.23.8+k3s1")
        working.wait_for("k3s is up and running")
    finally:
        mariadb.large_prefix(False)
    columns = dict(mariadb.sql("SELECT column_name, column_type FROM information_schema.columns"
                               " WHERE table_schema='k3s_old' AND table_name='kine'"))
    assert columns["id"] == "int(11)" and columns["name"] == "varchar(630)"


def test_current_release_fits_767_bytes_with_ascii_names(
        mariadb: ScratchMariaDB, start_k3s: Callable[..., Node]) -> None:
    node = start_k3s("new-1", ["server", "--token", "t0ken", "--datastore-endpoint",
                               mariadb.endpoint("k3s_new"), "--bind-address", "127.73.6.12"])
    node.wait_for("k3s is up and running")
    create = mariadb.sql("SHOW CREATE TABLE kine", "k3s_new")[0][1]
    assert "`name` varchar(630) CHARACTER SET ascii" in create
    assert "`id` bigint(20) unsigned NOT NULL AUTO_INCREMENT" in create
    assert "UNIQUE KEY `kine_name_prev_revision_uindex` (`name`,`prev_revision`)" in create


@pytest.mark.parametrize(("endpoint", "message"), [
    ("mysql://k3s:pw@127.73.0.1:3306/k3s", "default addr for network '127.73.0.1:3306' unknown"),
    ("mysql://k3s:pw@tcp(127.73.0.1:1)/k3s", "dial tcp 127.73.0.1:1: connect: connection refused"),
    ('"mysql://k3s:pw@tcp(127.73.0.1:3306)/k3s"', "storage backend is not defined"),
    ("mysql://k3s:pw@tcp(127.73.0.1:3306", "invalid DSN: missing the slash separating the "
                                           "database name"),
])
def test_malformed_or_unreachable_datastore_fails_with_k3s_message(
        start_k3s: Callable[..., Node], endpoint: str, message: str) -> None:
    node = start_k3s("dsn", ["server", "--token", "t", "--datastore-endpoint", endpoint,
                             "--bind-address", "127.73.6.13"])
    assert node.proc.wait(30) == 1
    assert FATAL + message + '"' in node.journal()


def test_wrong_password_is_access_denied_with_sqlstate_on_new_releases(
        mariadb: ScratchMariaDB, start_k3s: Callable[..., Node]) -> None:
    endpoint = f"mysql://k3s:wrong@tcp({mariadb.host}:{mariadb.port})/k3s"
    node = start_k3s("denied", ["server", "--token", "t", "--datastore-endpoint", endpoint,
                                "--bind-address", "127.73.6.14"])
    assert node.proc.wait(30) == 1
    journal = node.journal()
    assert FATAL + "Error 1045 (28000): Access denied for user 'k3s'@'" in journal
    assert "(using password: YES)" in journal


@pytest.mark.parametrize(("version", "line", "held"), [
    ("v1.36.1+k3s1", "maxIdleConns=2, maxOpenConns=0, connMaxLifetime=0s", 2),
    ("v1.36.4+k3s1", "maxIdle=20, maxOpen=0, maxLifetime=0s, maxIdleTime=0s", 20),
])
def test_a_server_holds_its_kine_pool_open(mariadb: ScratchMariaDB,
                                           start_k3s: Callable[..., Node],
                                           version: str, line: str, held: int) -> None:
    """kine v0.16 (K3s v1.36.2+) keeps 20 idle connections per server, older kine 2: what
    one server costs the database's max_connections."""
    database = "k3s_pool_" + version.split("+", maxsplit=1)[0].replace(".", "_").lstrip("v")
    node = start_k3s(f"pool-{held}", ["server", "--token", "t0ken", "--datastore-endpoint",
                                      mariadb.endpoint(database),
                                      "--bind-address", f"127.73.6.{20 + held}"],
                     version=version)
    node.wait_for("k3s is up and running")
    assert f'msg="Configuring mysql database connection pooling: {line}"' in node.journal()
    query = f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE db = '{database}'"  # noqa: S608
    (count,), = mariadb.sql(query)
    assert count == held
