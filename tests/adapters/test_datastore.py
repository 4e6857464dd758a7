"""The datastore check against the system MariaDB, directly and through a real SSH tunnel."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pymysql
import pytest

from clusters.adapters.datastore import (
    KEY_TOO_LONG,
    SchemaRejected,
    check_datastore,
    classify_mysql_error,
    connect,
)
from clusters.adapters.ssh import SSHSession, SSHTarget
from clusters.adapters.ssh import connect as ssh_connect
from clusters.core.errors import PermanentError, TransientError
from clusters.k3s import MySQLEndpoint, kine_ddl, parse_endpoint
from clusters.k3s.dsn import build_endpoint
from tests.adapters.sshd_server import SshServer

OLD_K3S, NEW_K3S = "v1.23.8+k3s1", "v1.33.1+k3s1"


def endpoint_for(db: dict[str, str], **changes: str) -> MySQLEndpoint:
    values = {"user": db["user"], "password": db["password"], "database": db["database"],
              **changes}
    text = build_endpoint(values["user"], values["password"], "127.0.0.1", 3306,
                          database=values["database"])
    return parse_endpoint(text)  # the same string K3s will get, read back


def tables_in(admin: pymysql.connections.Connection, database: str) -> list[str]:
    with admin.cursor() as cur:
        cur.execute("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
                    (database,))
        return [row[0] for row in cur.fetchall()]


@pytest.fixture
def host(sshd: SshServer) -> Iterator[SSHSession]:
    with ssh_connect(SSHTarget(sshd.host, "root", sshd.port,
                               private_key=sshd.keys["ed25519"].private)) as session:
        yield session


@pytest.mark.parametrize("version", [OLD_K3S, NEW_K3S])
def test_check_runs_kines_ddl_and_leaves_nothing_behind(
        scratch_db: dict[str, str], mariadb_admin: pymysql.connections.Connection,
        version: str) -> None:
    report = check_datastore(endpoint_for(scratch_db), version)
    assert report.database == scratch_db["database"]
    assert "MariaDB" in report.server_version and not report.holds_cluster
    assert report.statements_run == len(kine_ddl(version)) + 2
    assert tables_in(mariadb_admin, scratch_db["database"]) == []


def test_check_through_an_ssh_tunnel_from_a_host(scratch_db: dict[str, str],
                                                  host: SSHSession) -> None:
    report = check_datastore(endpoint_for(scratch_db), NEW_K3S, via=host)
    assert report.statements_run > 0 and not report.holds_cluster


def test_an_existing_cluster_in_the_database_is_reported(
        scratch_db: dict[str, str]) -> None:
    endpoint = endpoint_for(scratch_db)
    with connect(endpoint) as conn, conn.cursor() as cur:
        for statement in kine_ddl(NEW_K3S):
            cur.execute(statement)
        cur.execute("INSERT INTO kine (name, value) VALUES ('/bootstrap/4489e5a9bd37', 'x')")
    assert check_datastore(endpoint, NEW_K3S).holds_cluster


def test_wrong_password_unknown_database_and_missing_rights_are_permanent(
        scratch_db: dict[str, str], mariadb_admin: pymysql.connections.Connection) -> None:
    with pytest.raises(PermanentError, match="refused user") as caught:
        check_datastore(endpoint_for(scratch_db, password="Wrong-pass-1"), NEW_K3S)
    assert caught.value.code == "MySQL 1045"
    assert "Wrong-pass-1" not in str(caught.value)
    with pytest.raises(PermanentError, match="does not exist, or the account has no"):
        check_datastore(endpoint_for(scratch_db, database=scratch_db["database"] + "_x"),
                        NEW_K3S)
    with mariadb_admin.cursor() as cur:
        cur.execute(f"REVOKE ALL PRIVILEGES ON `{scratch_db['database']}`.* "
                    f"FROM '{scratch_db['user']}'@'%'")
        cur.execute(f"GRANT SELECT, INSERT ON `{scratch_db['database']}`.* "
                    f"TO '{scratch_db['user']}'@'%'")
    with pytest.raises(PermanentError, match="lacks privileges"):
        check_datastore(endpoint_for(scratch_db), NEW_K3S)


def test_a_767_byte_key_limit_is_recognised(scratch_db: dict[str, str]) -> None:
    """COMPACT rows have MySQL 5.6's 767-byte limit: the old (utf8) kine schema fails."""
    endpoint = endpoint_for(scratch_db)
    create_table, *indexes = kine_ddl(OLD_K3S, "compact_kine")
    with connect(endpoint) as conn, conn.cursor() as cur:
        cur.execute(create_table + " ROW_FORMAT=COMPACT DEFAULT CHARSET=utf8mb4")
        with pytest.raises(pymysql.MySQLError) as caught:
            cur.execute(indexes[0])
    error = classify_mysql_error(caught.value, endpoint)
    assert isinstance(error, SchemaRejected) and error.code == KEY_TOO_LONG
    assert "turn innodb_large_prefix ON" in error.message
    mysql_1071 = pymysql.err.OperationalError(
        1071, "Specified key was too long; max key length is 767 bytes")
    assert classify_mysql_error(mysql_1071, endpoint).code == KEY_TOO_LONG


def test_unreachable_and_silent_databases_are_transient(scratch_db: dict[str, str],
                                                        host: SSHSession) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    nowhere = MySQLEndpoint("k3s", "pw", "127.0.0.1", port, "k3s")
    with pytest.raises(TransientError, match="Cannot reach the database"):
        check_datastore(nowhere, NEW_K3S, timeout=2)
    with pytest.raises(TransientError, match=f"cannot connect to 127.0.0.1:{port}"):
        check_datastore(nowhere, NEW_K3S, via=host, timeout=2)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # like a non-whitelisted RDS
        mute = MySQLEndpoint("k3s", "pw", "127.0.0.1", silent.getsockname()[1], "k3s")
        with pytest.raises(TransientError, match="not in the RDS whitelist"):
            check_datastore(mute, NEW_K3S, timeout=1)
        with pytest.raises(TransientError, match="not in the RDS whitelist"):
            check_datastore(mute, NEW_K3S, via=host, timeout=1)

