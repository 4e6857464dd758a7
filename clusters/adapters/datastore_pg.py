"""Prove a PostgreSQL database can hold K3s before K3s is installed, with a real driver.

Why: as for MySQL (clusters.adapters.datastore), K3s reports a bad PostgreSQL datastore only
by crash-looping. This check runs kine's own pgsql DDL (kine v0.16.4: `name text COLLATE
"C"`, its seven statements) in a scratch table through the same SSH tunnel K3s's path takes,
writes kine's longest key, drops the table, and says in plain words what is wrong: a wrong
password (28P01), a database that does not exist (3D000), an account that may not create in
`public` (42501: PostgreSQL 15+ lets only the database owner), a read-only standby (25006).

It also refuses what kine cannot use although it connects: a pooler in transaction mode
(PgBouncer `pool_mode = transaction`, RDS's or one's own). pgx, kine's driver, prepares its
statements on the connection; a transaction pooler hands each transaction another server
connection, where they do not exist. The check sees it the way kine would meet it: a
statement prepared in one transaction is executed in the next.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql as pgsql

from clusters.adapters.datastore import DatastoreReport
from clusters.adapters.datastore_health import (
    COMPACTION,
    CONNECTIONS,
    MAX_CONNECTIONS,
    ROWS,
    TABLE_SIZE,
    KineMeasurement,
)
from clusters.adapters.ssh import SSHSession, Tunnel
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.k3s.pgdsn import HOST_FILE_PARAMS, PostgresEndpoint, kine_pg_ddl

CONNECT_TIMEOUT = 10
SCRATCH_TABLE_PREFIX = "kine_panel_check_"
_LONGEST_KEY = "/" + "k" * 629
POOLER = "datastore.pooler"
# kine's revSQL / compactRevSQL (generic.go), as for MySQL.
REVISIONS_SQL = ("SELECT (SELECT MAX(rkv.id) FROM kine AS rkv), (SELECT MAX(crkv.prev_revision)"
                 " FROM kine AS crkv WHERE crkv.name = 'compact_rev_key')")
_PRIVILEGES = ("The account {user!r} may not create K3s's table in {database!r} (PostgreSQL "
               "15+ lets only the database owner create in schema public): make it the "
               "database's owner (RDS: GrantAccountPrivilege DBOwner) or GRANT CREATE ON "
               "SCHEMA public. The server said: {detail}")
# SQLSTATE → (kind, message template).
_EXPLANATIONS: dict[str, tuple[type[StepError], str]] = {
    "28P01": (PermanentError, "The database at {address} refused user {user!r}: wrong "
                              "password, or the account does not exist yet."),
    "28000": (PermanentError, "The database at {address} does not let {user!r} in from this "
                              "host (pg_hba.conf or the RDS whitelist): {detail}"),
    "3D000": (PermanentError, "The database {database!r} does not exist on {address}; "
                              "create it first."),
    "42501": (PermanentError, _PRIVILEGES),
    "25006": (PermanentError, "The database at {where} is read-only (a standby); use the "
                              "primary's address."),
    "53300": (TransientError, "The database at {where} has no free connections (too many "
                              "clients)."),
    "57P03": (TransientError, "The database at {address} is starting up or shutting down."),
}


class PoolerRefused(PermanentError):
    """A transaction-mode pooler sits in front of the database; `code` is POOLER."""


def classify_pg_error(exc: psycopg.Error, endpoint: PostgresEndpoint) -> StepError:
    """A psycopg error → TransientError/PermanentError with a plain explanation."""
    state = getattr(exc, "sqlstate", None) or ""
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    fields = {"address": endpoint.address, "user": endpoint.user,
              "database": endpoint.database, "detail": detail,
              "where": f"{endpoint.address}/{endpoint.database}"}
    code = f"PostgreSQL {state}" if state else "PostgreSQL"
    if state in _EXPLANATIONS:
        kind, template = _EXPLANATIONS[state]
        return kind(template.format(**fields), code=code)
    if "password authentication failed" in detail:
        return PermanentError(_EXPLANATIONS["28P01"][1].format(**fields), code=code)
    if "does not exist" in detail and "database" in detail:
        return PermanentError(_EXPLANATIONS["3D000"][1].format(**fields), code=code)
    if "certificate" in detail or "SSL" in detail:
        return PermanentError(
            f"The TLS connection to {endpoint.address} failed ({detail}); K3s would fail the "
            f"same way with sslmode={endpoint.sslmode}.", code="TLS")
    if isinstance(exc, psycopg.OperationalError) and not state:
        return TransientError(f"Cannot reach the database at {endpoint.address}: {detail}",
                              code=code)
    return PermanentError(f"The database at {fields['where']} failed the check: {detail}",
                          code=code)


@contextlib.contextmanager
def _route(endpoint: PostgresEndpoint,
           via: SSHSession | None) -> Iterator[tuple[str, int, Tunnel | None]]:
    if via is None:
        yield endpoint.host, endpoint.port, None
        return
    with via.open_tunnel(endpoint.host, endpoint.port) as tunnel:
        tunnel.probe()
        yield "127.0.0.1", tunnel.local_port, tunnel


@contextlib.contextmanager
def connect(endpoint: PostgresEndpoint, *, via: SSHSession | None = None,
            timeout: int = CONNECT_TIMEOUT,
            second: bool = False) -> Iterator[tuple[psycopg.Connection[Any], ...]]:
    """psycopg connections as kine's would be (one, or two with `second`): the endpoint's
    sslmode; through a tunnel the certificate is checked against the endpoint's host name
    (libpq follows `host` for that, so the tunnel's 127.0.0.1 is given as `hostaddr`)."""
    params = dict(endpoint.params)
    with _route(endpoint, via) as (host, port, tunnel):
        kwargs: dict[str, Any] = {
            "host": endpoint.host, "hostaddr": host, "port": port, "user": endpoint.user,
            "password": endpoint.password, "dbname": endpoint.database,
            "connect_timeout": timeout, "sslmode": endpoint.sslmode, "autocommit": True,
            "application_name": "k3s-panel-check"}
        # No sslrootcert/sslcert/sslkey: those are paths on the K3s servers, not here; the
        # parser (clusters.k3s.pgdsn) refuses them, and this never hands any to libpq.
        refused = [key for key in HOST_FILE_PARAMS if key in params]
        if refused:
            raise PermanentError(f"The endpoint names files on the K3s servers "
                                 f"({', '.join(refused)}); the panel cannot check it.")
        if via is None:
            kwargs.pop("hostaddr")
        opened: list[psycopg.Connection[Any]] = []
        try:
            for _ in range(2 if second else 1):
                try:
                    opened.append(psycopg.connect(**kwargs))
                except psycopg.Error as exc:
                    if tunnel is not None and tunnel.last_error:
                        raise TransientError(tunnel.last_error) from None
                    raise classify_pg_error(exc, endpoint) from None
            yield tuple(opened)
        finally:
            for conn in opened:
                with contextlib.suppress(psycopg.Error, OSError):
                    conn.close()


def check_pg_datastore(endpoint: PostgresEndpoint, *, via: SSHSession | None = None,
                       timeout: int = CONNECT_TIMEOUT) -> DatastoreReport:
    """Refuse a transaction pooler, run kine's DDL in a scratch table, write kine's longest
    key, drop the table."""
    started = time.monotonic()
    table = SCRATCH_TABLE_PREFIX + secrets.token_hex(4)
    statements = kine_pg_ddl(table)
    with connect(endpoint, via=via, timeout=timeout, second=True) as (conn, other):
        try:
            server_version = str(_one(conn, "SHOW server_version"))
            max_connections = int(_one(conn, "SHOW max_connections"))
            _refuse_transaction_pooler(conn, other, endpoint)
            holds_cluster = _holds_cluster(conn)
            try:
                for statement in statements:
                    conn.execute(statement.encode())
                conn.execute(pgsql.SQL(
                    "INSERT INTO {} (name, created, deleted, create_revision, prev_revision,"
                    " lease, value, old_value) VALUES (%s, 1, 0, 0, 0, 0, %s, %s)").format(
                        pgsql.Identifier(table)), (_LONGEST_KEY, b"v", b""))
                (count,) = conn.execute(pgsql.SQL("SELECT COUNT(*) FROM {} WHERE name = %s")
                                        .format(pgsql.Identifier(table)),
                                        (_LONGEST_KEY,)).fetchone() or (0,)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.execute(pgsql.SQL("DROP TABLE IF EXISTS {}").format(
                        pgsql.Identifier(table)))
        except psycopg.Error as exc:
            raise classify_pg_error(exc, endpoint) from None
        try:  # the server's view of this connection: its TLS version, NULL when plain
            tls = _one(conn, "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                             " AND ssl")
        except psycopg.Error:
            tls = ""
    if count != 1:
        raise PermanentError(f"The database at {endpoint.address} did not return the row the "
                             "check wrote; it cannot serve as K3s's datastore.")
    return DatastoreReport(server_version=server_version, database=endpoint.database,
                           holds_cluster=holds_cluster, statements_run=len(statements) + 2,
                           seconds=round(time.monotonic() - started, 3),
                           max_connections=max_connections,
                           tls=str(tls or ""))


def _one(conn: psycopg.Connection[Any], query: str) -> Any:
    row = conn.execute(query.encode()).fetchone()
    return row[0] if row else ""


def _refuse_transaction_pooler(conn: psycopg.Connection[Any], other: psycopg.Connection[Any],
                               endpoint: PostgresEndpoint) -> None:
    """A statement prepared on `conn` (protocol-level, as pgx prepares) must still run there
    while `other` holds a transaction open: behind a transaction pooler `conn`'s next
    transaction gets another server process, where the statement does not exist (a pooler
    that tracks prepared statements itself, PgBouncer >= 1.21 with max_prepared_statements,
    passes, as kine then works)."""
    query = b"SELECT pg_backend_pid()"
    conn.execute(query, prepare=True)
    try:
        with other.transaction():
            other.execute(b"SELECT 1")
            conn.execute(query, prepare=True)
    except psycopg.errors.InvalidSqlStatementName:
        raise PoolerRefused(
            f"{endpoint.address} hands each transaction another server connection (a pooler "
            "in transaction mode, e.g. PgBouncer pool_mode=transaction): kine's driver "
            "prepares statements and would fail with \"prepared statement … does not "
            "exist\". Point K3s at the database itself, or at a pooler in session mode.",
            code=POOLER) from None


def _holds_cluster(conn: psycopg.Connection[Any]) -> bool:
    found = conn.execute("SELECT to_regclass('kine') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return False
    rows = conn.execute("SELECT COUNT(*) FROM kine WHERE name LIKE '/bootstrap/%'").fetchone()
    return bool(rows and rows[0])


def measure(conn: psycopg.Connection[Any], *, rows_cap: int) -> KineMeasurement:
    """datastore_health.measure for PostgreSQL: kine's own revision queries, the row count
    up to `rows_cap` + 1, kine's GetSizeSQL (pg_total_relation_size), the connections the
    server has and its limit minus the superuser reserve (what a plain account may use)."""
    found = KineMeasurement()

    def read(metric: str, statement: str) -> tuple | None:
        try:
            with conn.transaction():
                return conn.execute(statement.encode()).fetchone()
        except psycopg.errors.UndefinedTable:
            found.unreadable[metric] = ("there is no kine table in this database (K3s has "
                                        "not started on it yet)")
        except psycopg.Error as exc:
            state = getattr(exc, "sqlstate", None) or ""
            found.unreadable[metric] = f"PostgreSQL {state}: {exc}".strip()
        return None

    revisions = read(COMPACTION, REVISIONS_SQL)
    if revisions is not None:
        found.newest_revision = int(revisions[0] or 0)
        found.compacted_revision = int(revisions[1] or 0)
    counted = read(ROWS, "SELECT COUNT(*) FROM (SELECT 1 FROM kine LIMIT "  # noqa: S608
                         f"{int(rows_cap) + 1}) AS capped")  # an int, not input
    found.rows = int(counted[0]) if counted else None
    found.rows_capped = found.rows is not None and found.rows > rows_cap
    size = read(TABLE_SIZE, "SELECT pg_total_relation_size('kine')")
    found.table_bytes = int(size[0]) if size else None
    in_use = read(CONNECTIONS, "SELECT COUNT(*) FROM pg_stat_activity WHERE backend_type = "
                               "'client backend'")
    found.connections_in_use = int(in_use[0]) if in_use else None
    limits = read(MAX_CONNECTIONS, "SELECT current_setting('max_connections')::int - "
                                   "current_setting('superuser_reserved_connections')::int")
    found.max_connections = int(limits[0]) if limits else None
    return found
