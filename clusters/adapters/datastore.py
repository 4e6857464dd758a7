"""Prove a MySQL database can hold K3s *before* K3s is installed, with a real driver.

Why: K3s only reports a bad datastore by crash-looping (`Error 1071: Specified key was too
long` on MySQL 5.6/5.7 with innodb_large_prefix OFF, a wrong password, a missing whitelist
entry). Running kine's own DDL for the chosen K3s version in a scratch table, then dropping
it, catches all of these in seconds with an error a person can act on.

The RDS whitelist admits the cluster hosts, not the panel, so the check normally runs
through an SSH tunnel from one of the hosts (`via=`): the exact network path K3s will use.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql

from clusters.adapters.datastore_health import CONNECTION_LIMITS_SQL, connection_limit
from clusters.adapters.datastore_tls import client_context
from clusters.adapters.ssh import SSHSession, Tunnel
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.k3s.dsn import MySQLEndpoint
from clusters.k3s.versions import kine_ddl

KEY_TOO_LONG = "datastore.key-too-long"
CONNECT_TIMEOUT = 10
QUERY_TIMEOUT = 30
SCRATCH_TABLE_PREFIX = "kine_panel_check_"
_KEY_TOO_LONG_ERRORS = (1071, 1709)
_LONGEST_KEY = "/" + "k" * 629  # kine's name column is VARCHAR(630)
_UNREACHABLE = "Cannot reach the database at {address}: {detail}"
_PRIVILEGES = ("The account {user!r} lacks privileges on {database!r} (needs ReadWrite, incl. "
               "CREATE and INDEX): {detail}")
_READ_ONLY = ("The database at {where} is read-only; use the primary (read-write) connection "
              "address.")
# MySQL error number → (kind, message template). Anything else is permanent, or transient
# for client-side (2xxx) connection errors.
_EXPLANATIONS: dict[int, tuple[type[StepError], str]] = {
    1045: (PermanentError, "The database at {address} refused user {user!r}: wrong password, "
                           "or the account does not exist yet."),
    1044: (PermanentError, "The account {user!r} may not use the database {database!r}: it "
                           "does not exist, or the account has no privileges on it (grant "
                           "ReadWrite)."),
    1142: (PermanentError, _PRIVILEGES),
    1227: (PermanentError, _PRIVILEGES),
    1049: (PermanentError, "The database {database!r} does not exist on {address}; create it "
                           "first."),
    1130: (TransientError, "The database at {address} does not accept this client's address: "
                           "add the hosts to the RDS whitelist (changes take a minute to "
                           "apply)."),
    1290: (PermanentError, _READ_ONLY),
    1836: (PermanentError, _READ_ONLY),
    1040: (TransientError, "The database at {where} has no free connections (Too many "
                           "connections)."),
    1205: (TransientError, "The database at {where}: a lock wait timed out."),
    1213: (TransientError, "The database at {where}: a deadlock was detected."),
    2003: (TransientError, _UNREACHABLE),
    2006: (TransientError, _UNREACHABLE),
    2013: (TransientError, _UNREACHABLE),
    2026: (PermanentError, "The database at {address} does not offer TLS, which this cluster "
                           "requires: turn SSL on for the RDS instance ({detail})."),
    3159: (PermanentError, "The database at {address} accepts only encrypted connections "
                           "(forced SSL encryption), and this one was not: turn datastore TLS "
                           "on for the cluster."),
}
_CA_MISMATCH = ("The database at {address} presented a certificate that the datastore CA does "
                "not verify ({detail}). K3s would refuse it too (kine: \"x509: certificate "
                "signed by unknown authority\"). Check that PANEL_RDS_CA_BUNDLE is the "
                "ApsaraDB-CA-Chain.pem downloaded from this instance's RDS console.")


class SchemaRejected(PermanentError):
    """The server refuses kine's index (767-byte key limit). `code` is KEY_TOO_LONG."""


@dataclass(frozen=True)
class DatastoreReport:
    """What the check learned; `holds_cluster` means a K3s cluster already lives there."""

    server_version: str
    database: str
    holds_cluster: bool
    statements_run: int
    seconds: float
    max_connections: int = 0  # the server's max_connections (0: could not be read)
    tls: str = ""  # the TLS version the connection used ("" when plain)


def classify_mysql_error(exc: pymysql.MySQLError, endpoint: MySQLEndpoint) -> StepError:
    """A PyMySQL error → TransientError/PermanentError with a plain explanation."""
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    code = f"MySQL {number}" if number else "MySQL"
    if number in _KEY_TOO_LONG_ERRORS:
        return SchemaRejected(
            "The datastore rejects K3s's schema: turn innodb_large_prefix ON (MySQL 5.6/5.7) "
            f"or use MySQL 5.7/8.0 with the DYNAMIC row format. The server said: {detail}",
            code=KEY_TOO_LONG)
    if number == 2003 and ("CERTIFICATE_VERIFY_FAILED" in detail or "SSLError" in detail
                           or "SSL:" in detail):
        return PermanentError(_CA_MISMATCH.format(address=endpoint.address, detail=detail),
                              code="TLS")
    if number == 2013 and "timed out" in detail:  # TCP open, but no MySQL greeting
        return TransientError(
            f"{endpoint.address} accepted the connection but MySQL never answered: the "
            "client's address is probably not in the RDS whitelist yet.", code=code)
    kind, template = _EXPLANATIONS.get(number, (
        TransientError if number >= 2000 else PermanentError,
        _UNREACHABLE if number >= 2000 else "The database at {where} failed the check: {detail}"))
    message = template.format(address=endpoint.address, user=endpoint.user,
                              database=endpoint.database, detail=detail,
                              where=f"{endpoint.address}/{endpoint.database}")
    return kind(message, code=code)


@contextlib.contextmanager
def _route(endpoint: MySQLEndpoint, via: SSHSession | None) -> Iterator[tuple[str, int,
                                                                             Tunnel | None]]:
    if via is None:
        yield endpoint.host, endpoint.port, None
        return
    with via.open_tunnel(endpoint.host, endpoint.port) as tunnel:
        tunnel.probe()  # a plain "host X cannot connect to Y" before MySQL says anything
        yield "127.0.0.1", tunnel.local_port, tunnel


@contextlib.contextmanager
def connect(endpoint: MySQLEndpoint, *, via: SSHSession | None = None,
            timeout: int = CONNECT_TIMEOUT,
            ca_pem: str | None = None) -> Iterator[pymysql.connections.Connection]:
    """A PyMySQL connection to the endpoint (through an SSH tunnel from `via` if given).

    With `ca_pem` the connection is TLS, the server's certificate verified against it and its
    name against the endpoint's host (what kine does with datastore-cafile); without, plain,
    as kine without it (PyMySQL alone would try TLS unverified, which proves nothing).
    """
    tls: dict[str, Any] = {"ssl_disabled": True}
    if ca_pem:
        tls = {"ssl": client_context(ca_pem, endpoint.host)}
    elif dict(endpoint.params).get("tls", "false") != "false":
        tls = {}  # the user's own DSN asks for TLS (`tls=true|skip-verify|preferred`)
    with _route(endpoint, via) as (host, port, tunnel):
        try:
            conn = pymysql.connect(
                host=host, port=port, user=endpoint.user, password=endpoint.password,
                database=endpoint.database, connect_timeout=timeout,
                read_timeout=timeout, write_timeout=QUERY_TIMEOUT,
                autocommit=True, charset="utf8mb4", **tls)
        except pymysql.MySQLError as exc:
            if tunnel is not None and tunnel.last_error:
                raise TransientError(tunnel.last_error) from None
            raise classify_mysql_error(exc, endpoint) from None
        try:
            yield conn
        finally:
            with contextlib.suppress(pymysql.MySQLError, OSError):
                conn.close()


def check_datastore(endpoint: MySQLEndpoint, k3s_version: str, *,
                    via: SSHSession | None = None, timeout: int = CONNECT_TIMEOUT,
                    ca_pem: str | None = None) -> DatastoreReport:
    """Run kine's DDL for `k3s_version` in a scratch table, write a row, drop the table
    (over TLS verified against `ca_pem` when given)."""
    started = time.monotonic()
    table = SCRATCH_TABLE_PREFIX + secrets.token_hex(4)
    statements = kine_ddl(k3s_version, table)
    with connect(endpoint, via=via, timeout=timeout, ca_pem=ca_pem) as conn:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                (server_version,) = cur.fetchone()
                tls = _tls_version(conn)
                max_connections = _max_connections(cur)
                holds_cluster = _holds_cluster(cur)
                try:
                    for statement in statements:
                        cur.execute(statement)
                    # A maximal key, as kine writes: proves INSERT and the index width.
                    # `table` is our own identifier, validated by kine_ddl: no injection.
                    cur.execute(f"INSERT INTO {table} (name, created, deleted, "  # noqa: S608
                                "create_revision, prev_revision, lease, value, old_value) "
                                "VALUES (%s, 1, 0, 0, 0, 0, %s, %s)", (_LONGEST_KEY, b"v", b""))
                    cur.execute(f"SELECT COUNT(*) FROM {table} "  # noqa: S608
                                "WHERE name = %s", (_LONGEST_KEY,))
                    (count,) = cur.fetchone()
                finally:
                    with contextlib.suppress(pymysql.MySQLError):
                        cur.execute(f"DROP TABLE IF EXISTS {table}")
        except pymysql.MySQLError as exc:
            raise classify_mysql_error(exc, endpoint) from None
    if count != 1:
        raise PermanentError(f"The database at {endpoint.address} did not return the row the "
                             "check wrote; it cannot serve as K3s's datastore.")
    return DatastoreReport(server_version=str(server_version), database=endpoint.database,
                           holds_cluster=holds_cluster, statements_run=len(statements) + 2,
                           seconds=round(time.monotonic() - started, 3),
                           max_connections=max_connections, tls=tls)


def _tls_version(conn: pymysql.connections.Connection) -> str:
    """The TLS version of the connection as the client negotiated it ("" when plain)."""
    sock = getattr(conn, "_sock", None)
    version = getattr(sock, "version", None)
    return str(version() or "") if callable(version) else ""


def _max_connections(cur: pymysql.cursors.Cursor) -> int:
    """The limit the server enforces on kine's account (Error 1040 beyond it), read on the
    path K3s uses; 0 when it cannot be read (the capacity warning is then skipped)."""
    try:
        cur.execute(CONNECTION_LIMITS_SQL)
        instance, per_account = cur.fetchone()
        return connection_limit(int(instance), int(per_account))
    except (pymysql.MySQLError, TypeError, ValueError):
        return 0


def _holds_cluster(cur: pymysql.cursors.Cursor) -> bool:
    """True when a `kine` table with K3s bootstrap data already exists in this database."""
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'kine'")
    (tables,) = cur.fetchone()
    if not tables:
        return False
    cur.execute("SELECT COUNT(*) FROM kine WHERE name LIKE '/bootstrap/%'")
    (rows,) = cur.fetchone()
    return bool(rows)
