"""The PostgreSQL datastore check against a real postgres (Debian's, run as the postgres user),
directly, through a real SSH tunnel, and behind a real PgBouncer in both pool modes."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql as pgsql

from clusters.adapters.datastore_pg import (
    POOLER,
    PoolerRefused,
    check_pg_datastore,
    connect,
    measure,
)
from clusters.adapters.ssh import SSHTarget
from clusters.adapters.ssh import connect as ssh_connect
from clusters.core.errors import PermanentError, TransientError
from clusters.k3s.dsn import DatastoreEndpointError
from clusters.k3s.pgdsn import PostgresEndpoint, build_pg_endpoint, kine_pg_ddl, parse_pg_endpoint
from sandbox.aliyun.rds.pgserver import PostgresServer
from tests.adapters.sshd_server import SshServer
from tests.support.tools import require

pytestmark = pytest.mark.slow

PASSWORD = "K3s:p@ss/w%rd#1"  # every character kine's URL parser would misread unescaped
PGBOUNCER = "/usr/sbin/pgbouncer"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL of one's own: `k3s` owns database `k3s`; `other` may only connect."""
    home = tmp_path_factory.mktemp("byo-pg") / "server"
    pg = PostgresServer(home, listen=("127.0.0.1", _free_port()))
    pg.start()
    try:
        for role in ("k3s", "other"):
            pg.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                pgsql.Identifier(role), pgsql.Literal(PASSWORD)))
        pg.execute("CREATE DATABASE k3s OWNER k3s")
        yield pg
    finally:
        pg.destroy()


def _endpoint(pg: PostgresServer, *, user: str = "k3s", password: str = PASSWORD,
              database: str = "k3s", port: int | None = None) -> PostgresEndpoint:
    text = build_pg_endpoint(user, password, "127.0.0.1", port or pg.port, database=database,
                             params={"sslmode": "disable"})
    return parse_pg_endpoint(text)  # the very string K3s gets, read back


def test_the_endpoint_escapes_what_kines_url_parser_would_misread() -> None:
    text = build_pg_endpoint("k3s", PASSWORD, "pgm-x.pg.rds.aliyuncs.com", database="k3s",
                             params={"sslmode": "verify-full"})
    assert text == ("postgres://k3s:K3s%3Ap%40ss%2Fw%25rd%231@pgm-x.pg.rds.aliyuncs.com:5432"
                    "/k3s?sslmode=verify-full")
    back = parse_pg_endpoint(text)
    assert (back.password, back.database, back.sslmode) == (PASSWORD, "k3s", "verify-full")
    assert PASSWORD not in back.redacted() and "***" in back.redacted()
    assert parse_pg_endpoint("postgres://k3s:x@db").database == "kubernetes"
    for bad, hint in (("mysql://k3s:x@tcp(db:3306)/k3s", "postgres://"),
                      ("'postgres://k3s:x@db/k3s'", "quotes"),
                      ("postgres://db:5432/k3s", "no user"),
                      ("postgres://k3s:x@db/k3s?sslmode=on", "sslmode")):
        with pytest.raises(DatastoreEndpointError, match=hint):
            parse_pg_endpoint(bad)
    with pytest.raises(DatastoreEndpointError, match="lower case"):
        build_pg_endpoint("k3s", "x", "db", database="K3s")


def test_the_ddl_is_kines_and_a_scratch_table_names_its_own_indexes() -> None:
    ddl = kine_pg_ddl()
    assert ddl[0].startswith('CREATE TABLE IF NOT EXISTS kine (id BIGSERIAL PRIMARY KEY, '
                             'name text COLLATE "C"')
    assert len(ddl) == 7 and "kine_list_query_index" in ddl[-1]
    assert all("kine_panel_check_1_" in s for s in kine_pg_ddl("kine_panel_check_1")[1:])


def test_the_owner_passes_and_nothing_is_left_behind(server: PostgresServer) -> None:
    report = check_pg_datastore(_endpoint(server))
    assert report.server_version.split(".")[0].isdigit() and not report.holds_cluster
    assert report.statements_run == 9 and report.max_connections > 0 and report.tls == ""
    assert server.execute("SELECT relname FROM pg_class WHERE relname LIKE 'kine%'",
                          database="k3s") == []


def test_what_kine_would_fail_on_is_said_plainly(server: PostgresServer) -> None:
    with pytest.raises(PermanentError, match="only the database owner"):
        check_pg_datastore(_endpoint(server, user="other"))
    with pytest.raises(PermanentError, match="wrong password"):
        check_pg_datastore(_endpoint(server, password="Wrong-Passw0rd"))
    with pytest.raises(PermanentError, match="does not exist"):
        check_pg_datastore(_endpoint(server, database="missing"))
    with pytest.raises(TransientError, match="Cannot reach"):
        check_pg_datastore(_endpoint(server, port=_free_port()), timeout=2)


def test_the_check_runs_through_an_ssh_tunnel(server: PostgresServer, sshd: SshServer) -> None:
    with ssh_connect(SSHTarget(sshd.host, "root", sshd.port,
                               private_key=sshd.keys["ed25519"].private)) as session:
        report = check_pg_datastore(_endpoint(server), via=session)
    assert report.statements_run == 9


@contextlib.contextmanager
def _pgbouncer(server: PostgresServer, mode: str) -> Iterator[int]:
    """A real PgBouncer in `mode` in front of the server, run as postgres from a directory
    it can reach (pytest's tmp_path sits below a 0700 directory)."""
    tmp = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    shutil.chown(tmp, "postgres")
    try:
        process, port = _start_pgbouncer(tmp, server, mode)
        try:
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _start_pgbouncer(tmp: Path, server: PostgresServer,
                     mode: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    (tmp / "users.txt").write_text(f'"k3s" "{PASSWORD}"\n')
    (tmp / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"k3s = host=127.0.0.1 port={server.port} dbname=k3s\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = plain\nauth_file = {tmp / 'users.txt'}\npool_mode = {mode}\n"
        f"logfile = {tmp / 'pgbouncer.log'}\npidfile = {tmp / 'pgbouncer.pid'}\n"
        "default_pool_size = 4\nmin_pool_size = 2\n")
    for name in ("users.txt", "pgbouncer.ini"):
        shutil.chown(tmp / name, "postgres")
    process = subprocess.Popen([PGBOUNCER, str(tmp / "pgbouncer.ini")], user="postgres",
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    log = tmp / "pgbouncer.log"
    raise AssertionError(f"pgbouncer did not listen: {log.read_text() if log.exists() else ''}")


def test_a_transaction_pooler_is_refused_and_a_session_pooler_is_not(
        server: PostgresServer) -> None:
    require("pgbouncer")  # a missing PgBouncer fails here, naming the package: never a skip
    with _pgbouncer(server, "transaction") as port, pytest.raises(PoolerRefused) as refused:
        check_pg_datastore(_endpoint(server, port=port))
    assert refused.value.code == POOLER and "prepared statement" in str(refused.value)
    with _pgbouncer(server, "session") as port:
        assert check_pg_datastore(_endpoint(server, port=port)).statements_run == 9


def test_health_reads_kines_table_on_postgresql(server: PostgresServer) -> None:
    """The health check's figures, read with kine's own queries on a table kine's DDL made."""
    server.execute(pgsql.SQL("SET ROLE k3s; " + "; ".join(kine_pg_ddl())), database="k3s")
    server.execute("INSERT INTO kine (name, created, deleted, create_revision, prev_revision,"
                   " lease, value, old_value) VALUES ('compact_rev_key', 1, 0, 0, 3, 0, '', ''),"
                   " ('/registry/a', 1, 0, 0, 0, 0, 'v', ''), ('/registry/b', 1, 0, 0, 0, 0,"
                   " 'v', '')", database="k3s")
    try:
        with connect(_endpoint(server)) as (conn,):
            found = measure(conn, rows_cap=2)
        assert found.unreadable == {}
        assert (found.newest_revision, found.compacted_revision) == (3, 3)
        assert found.rows == 3 and found.rows_capped
        assert found.table_bytes and found.table_bytes > 0
        assert found.connections_in_use and found.connections_in_use >= 1
        assert found.max_connections == 100 - 3  # max_connections minus the superuser reserve
    finally:
        server.execute("DROP TABLE kine", database="k3s")
