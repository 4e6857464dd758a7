"""Kine's MySQL backend: schema DDL per release, and the key/value log on the `kine` table.

Why: the panel's datastore checks and the cluster's behaviour both hinge on what kine does to
the database: the exact DDL of the release being installed (the 767-byte index limit bites old
releases only), the one `/bootstrap/<hash>` key, and rows shared by every server. Rows follow
kine's log layout (id, name, created, deleted, create_revision, prev_revision, lease, value,
old_value) and the unique (name, prev_revision) index gives compare-and-swap, as in kine.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import cast

import pymysql

from sandbox.k3s import logs
from sandbox.k3s.dsn import MySQLDSN
from sandbox.k3s.runtime import go_duration
from sandbox.k3s.versions import Release

COMPACT_REV_KEY = "compact_rev_key"

SQLSTATES = {
    1040: "08004", 1044: "42000", 1045: "28000", 1049: "42000", 1050: "42S01",
    1061: "42000", 1062: "23000", 1071: "42000", 1142: "42000", 1146: "42S02",
    1227: "42000", 1709: "HY000",
}


def pool_log_line(rel: Release) -> str:
    """kine's start-up line about its connection pool, in the form of the release's kine.

    Formats from k3s-io/kine pkg/drivers/generic/generic.go `configureConnectionPooling`:
    before v0.16.0 "maxIdleConns=%d, maxOpenConns=%d, connMaxLifetime=%s"; since v0.16.0
    (e3f930e, 2026-05-20) "maxIdle=%d, maxOpen=%d, maxLifetime=%s, maxIdleTime=%s". K3s
    embeds kine without setting a pool (inference: K3s has no pool flags), so the zero values
    apply: max idle = kine's default, no open limit, and Go prints zero durations as "0s".
    """
    if rel.kine_pool_v016:
        return ("Configuring mysql database connection pooling: "
                f"maxIdle={rel.max_idle}, maxOpen=0, maxLifetime=0s, maxIdleTime=0s")
    return ("Configuring mysql database connection pooling: "
            f"maxIdleConns={rel.max_idle}, maxOpenConns=0, connMaxLifetime=0s")


class DatastoreError(Exception):
    """A datastore failure; str() is the text go-sql-driver / Go's net package would print."""


class KeyExists(DatastoreError):
    def __init__(self) -> None:
        super().__init__("key exists")


def schema_statements(rel: Release) -> list[str]:
    """The DDL kine runs for `rel`, in order (table first, then each index)."""
    id_type = "BIGINT UNSIGNED" if rel.bigint_ids else "INTEGER"
    name_type = "VARCHAR(630) CHARACTER SET ascii" if rel.ascii_name else "VARCHAR(630)"
    table = (
        "CREATE TABLE IF NOT EXISTS kine ("
        f" id {id_type} AUTO_INCREMENT, name {name_type}, created INTEGER, deleted INTEGER,"
        f" create_revision {id_type}, prev_revision {id_type}, lease INTEGER,"
        " value MEDIUMBLOB, old_value MEDIUMBLOB, PRIMARY KEY (id))"
    )
    return [
        table,
        "CREATE INDEX kine_name_index ON kine (name)",
        "CREATE INDEX kine_name_id_index ON kine (name,id)",
        "CREATE INDEX kine_id_deleted_index ON kine (id,deleted)",
        "CREATE INDEX kine_prev_revision_index ON kine (prev_revision)",
        "CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)",
    ]


def go_mysql_error(exc: pymysql.MySQLError, rel: Release) -> str:
    """Format a server error the way the release's go-sql-driver does."""
    code = exc.args[0] if exc.args else 0
    message = exc.args[1] if len(exc.args) > 1 else str(exc)
    if rel.sqlstate_errors:
        return f"Error {code} ({SQLSTATES.get(code, 'HY000')}): {message}"
    return f"Error {code}: {message}"


def _dial_check(dsn: MySQLDSN) -> None:
    """Reproduce Go's dial errors (the ones in K3s's journal) before handing over to PyMySQL."""
    timeout_text = dsn.params.get("timeout", "")
    timeout = go_duration(timeout_text) if timeout_text else 130.0
    if dsn.net == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(dsn.addr)
        except FileNotFoundError:
            raise DatastoreError(
                f"dial unix {dsn.addr}: connect: no such file or directory") from None
        except ConnectionRefusedError:
            raise DatastoreError(f"dial unix {dsn.addr}: connect: connection refused") from None
        finally:
            sock.close()
        return
    if dsn.net != "tcp":
        raise DatastoreError(f"dial {dsn.net}: unknown network {dsn.net}")
    try:
        infos = socket.getaddrinfo(dsn.host, dsn.port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise DatastoreError(f"dial tcp: lookup {dsn.host}: no such host") from None
    family, _, _, _, address = infos[0]
    host, port = cast(tuple[str, int], address[:2])  # AF_INET/AF_INET6: (host, port, ...)
    shown = f"{host}:{port}"
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    except ConnectionRefusedError:
        raise DatastoreError(f"dial tcp {shown}: connect: connection refused") from None
    except TimeoutError:
        if timeout_text:
            raise DatastoreError(f"dial tcp {shown}: i/o timeout") from None
        raise DatastoreError(f"dial tcp {shown}: connect: connection timed out") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise DatastoreError(f"dial tcp {shown}: connect: {reason}") from None
    finally:
        sock.close()


@dataclass
class Row:
    id: int
    name: str
    created: int
    deleted: int
    create_revision: int
    prev_revision: int
    value: bytes


@dataclass(frozen=True)
class BackendTLS:
    """K3s's --datastore-cafile/-certfile/-keyfile (kine's BackendTLSConfig)."""

    cafile: str = ""
    certfile: str = ""
    keyfile: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.cafile or self.certfile or self.keyfile)


_UNKNOWN_AUTHORITY = ("tls: failed to verify certificate: x509: certificate signed by unknown "
                      "authority")


def _tls_kwargs(dsn: MySQLDSN, backend: BackendTLS) -> dict:
    """PyMySQL's TLS arguments for what kine + go-sql-driver would do.

    kine (pkg/drivers/mysql prepareConfig): with any datastore TLS file it builds a tls.Config
    (RootCAs from datastore-cafile, MinVersion TLS 1.1), registers it as "kine" and sets
    config.TLSConfig = "kine". But go-sql-driver's ParseDSN has already turned a `tls=` DSN
    option into config.TLS, and NewConnector's normalize() keeps a non-nil TLS: so `tls=true`
    in the DSN wins (system roots, the CA file ignored), `skip-verify` verifies nothing,
    `preferred` also falls back to plain text. Either way ServerName is the DSN host. With
    neither, the connection is plain (PyMySQL alone would try TLS: it is turned off).
    """
    option = dsn.params.get("tls", "")
    if option == "true":
        return {"ssl": ssl.create_default_context()}
    if option in ("skip-verify", "preferred"):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        return {"ssl": context} if option == "skip-verify" else {}
    if option not in ("", "false"):
        raise DatastoreError(f"invalid value / unknown config name: {option}")
    if not backend.configured:
        return {"ssl_disabled": True}
    # kine's MinVersion is TLS 1.1; Python's floor is 1.2, which RDS and MariaDB both speak.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if backend.cafile:
        try:
            context.load_verify_locations(cafile=backend.cafile)
        except FileNotFoundError:
            raise DatastoreError(f"open {backend.cafile}: no such file or directory") from None
        except ssl.SSLError:
            # Go's x509.CertPool.AppendCertsFromPEM skips what it cannot parse: an empty pool
            # then fails every handshake.
            pass
    else:
        context.load_default_certs()
    if backend.certfile or backend.keyfile:
        try:
            context.load_cert_chain(backend.certfile, backend.keyfile or None)
        except FileNotFoundError as exc:
            raise DatastoreError(f"open {exc.filename}: no such file or directory") from None
    context.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    return {"ssl": context}


def go_tls_error(exc: pymysql.MySQLError, dsn: MySQLDSN) -> str | None:
    """A TLS failure as Go's crypto/tls (or go-sql-driver) prints it; None if not one."""
    original = getattr(exc, "original_exception", None)
    if isinstance(original, ssl.SSLCertVerificationError):
        if "mismatch" in (original.verify_message or ""):
            return (f"tls: failed to verify certificate: x509: certificate is not valid for "
                    f"{dsn.host}")  # Go also lists the names it is valid for
        return _UNKNOWN_AUTHORITY
    if isinstance(original, ssl.SSLError):
        return f"remote error: tls: {original.reason or 'handshake failure'}".lower()
    if exc.args and exc.args[0] == 2026:  # PyMySQL: SSL required, server offers none
        return "TLS requested but server does not support TLS"
    return None


class Kine:
    """One server's connection to the shared `kine` table."""

    def __init__(self, dsn: MySQLDSN, rel: Release, backend_tls: BackendTLS | None = None) -> None:
        self.dsn = dsn
        self.rel = rel
        self.backend_tls = backend_tls or BackendTLS()
        self._lock = threading.RLock()
        self._conn: pymysql.connections.Connection | None = None
        self._idle: list[pymysql.connections.Connection] = []

    # -- connection -------------------------------------------------------------------------
    def _connect(self, with_db: bool) -> pymysql.connections.Connection:
        _dial_check(self.dsn)
        kwargs: dict = {
            "user": self.dsn.user, "password": self.dsn.password,
            "autocommit": True, "connect_timeout": 30, "charset": "utf8mb4",
        }
        if self.dsn.net == "unix":
            kwargs["unix_socket"] = self.dsn.addr
        else:
            kwargs["host"], kwargs["port"] = self.dsn.host, self.dsn.port
        if with_db:
            kwargs["database"] = self.dsn.dbname
        kwargs.update(_tls_kwargs(self.dsn, self.backend_tls))
        try:
            return pymysql.connect(**kwargs)
        except pymysql.MySQLError as exc:
            raise DatastoreError(go_tls_error(exc, self.dsn)
                                 or go_mysql_error(exc, self.rel)) from None

    @contextmanager
    def cursor(self) -> Iterator[pymysql.cursors.Cursor]:
        with self._lock:
            if self._conn is None or not self._conn.open:
                self._conn = self._connect(with_db=True)
            try:
                with self._conn.cursor() as cur:
                    yield cur
            except pymysql.err.IntegrityError as exc:
                if exc.args and exc.args[0] == 1062:
                    raise KeyExists() from None
                raise DatastoreError(go_mysql_error(exc, self.rel)) from None
            except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                self._conn = None
                raise DatastoreError(go_mysql_error(exc, self.rel)) from None
            except pymysql.MySQLError as exc:
                raise DatastoreError(go_mysql_error(exc, self.rel)) from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            for conn in self._idle:
                conn.close()
            self._idle.clear()

    def fill_pool(self) -> int:
        """Hold the release's `max_idle` connections open, as a running server's pool does.

        Why: what a K3s server costs the database is its pool, not one connection. Under the
        apiserver's concurrent watches and requests database/sql grows the pool within seconds
        (kine's comment on the new default: "kine needs ~10-15 connections available under
        moderate load"), and with no idle time limit it keeps up to max idle of them (2 before
        kine v0.16, 20 since). Returns how many connections are held; a database that runs
        out logs Error 1040 as the real server does, and the server keeps running.
        """
        with self._lock:
            held = (1 if self._conn is not None and self._conn.open else 0) + len(self._idle)
            while held < self.rel.max_idle:
                try:
                    self._idle.append(self._connect(with_db=True))
                except DatastoreError as exc:
                    logs.error(f"error while filling the datastore connection pool: {exc}")
                    break
                held += 1
            return held

    # -- setup (kine New) ---------------------------------------------------------------------
    def setup(self) -> None:
        """Create the database and schema as the release's kine would; raises DatastoreError."""
        logs.info(pool_log_line(self.rel))
        self._create_database()
        logs.info("Configuring database table schema and indexes, this may take a moment...")
        with self.cursor() as cur:
            exists = False
            if self.rel.checks_schema:
                cur.execute("SELECT 1 FROM information_schema.TABLES WHERE "
                            "table_schema = DATABASE() AND table_name = %s", ("kine",))
                exists = cur.fetchone() is not None
            if not exists:
                for stmt in schema_statements(self.rel):
                    try:
                        cur.execute(stmt)
                    except pymysql.MySQLError as exc:
                        if exc.args and exc.args[0] == 1061:  # duplicate index: kine ignores
                            continue
                        raise
        logs.info("Database tables and indexes are up to date")
        self.compact_start()

    def _create_database(self) -> None:
        name = self.dsn.dbname
        stmt = (f"CREATE DATABASE IF NOT EXISTS `{name}`" if self.rel.quoted_db_name
                else f"create database if not exists {name}")
        try:
            conn = self._connect(with_db=True)
        except DatastoreError as exc:
            if self.rel.checks_schema:  # kine's QueryRow on SCHEMATA failed first
                logs.warn(f"failed to check existence of database {name}, going to attempt "
                             f"create: {exc}")
            if not str(exc).startswith("Error 1049"):
                raise
            conn = self._connect(with_db=False)
        try:
            with conn.cursor() as cur:
                if self.rel.checks_schema:
                    cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE "
                                "schema_name = %s", (name,))
                    if cur.fetchone() is not None:
                        return
                cur.execute(stmt)
        except pymysql.MySQLError as exc:
            raise DatastoreError(go_mysql_error(exc, self.rel)) from None
        finally:
            conn.close()

    # -- key/value log ----------------------------------------------------------------------
    def _latest(self, cur: pymysql.cursors.Cursor, name: str) -> Row | None:
        cur.execute("SELECT id, name, created, deleted, create_revision, prev_revision, value "
                    "FROM kine WHERE name = %s ORDER BY id DESC LIMIT 1", (name,))
        found = cur.fetchone()
        return Row(*found) if found else None

    def get(self, name: str) -> Row | None:
        with self.cursor() as cur:
            row = self._latest(cur, name)
        return row if row and not row.deleted else None

    def list(self, prefix: str) -> list[Row]:
        with self.cursor() as cur:
            cur.execute(
                "SELECT kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, "
                "kv.prev_revision, kv.value FROM kine AS kv JOIN ("
                " SELECT MAX(id) AS id FROM kine WHERE name LIKE %s GROUP BY name) AS mkv"
                " ON mkv.id = kv.id WHERE kv.deleted = 0 ORDER BY kv.name",
                (prefix.replace("%", r"\%").replace("_", r"\_") + "%",))
            return [Row(*found) for found in cur.fetchall()]

    def create(self, name: str, value: bytes) -> int:
        """Insert `name` if absent (or deleted); KeyExists if another writer got there first."""
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest and not latest.deleted:
                raise KeyExists()
            prev = latest.id if latest else 0
            cur.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease,"
                " value, old_value) VALUES (%s, 1, 0, 0, %s, 0, %s, NULL)", (name, prev, value))
            return int(cur.lastrowid)

    def update(self, name: str, value: bytes, revision: int) -> int:
        """Compare-and-swap: succeeds only if `revision` is still the latest row of `name`."""
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest is None or latest.deleted or latest.id != revision:
                raise KeyExists()
            create_rev = latest.create_revision or latest.id
            cur.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease,"
                " value, old_value) VALUES (%s, 0, 0, %s, %s, 0, %s, %s)",
                (name, create_rev, latest.id, value, latest.value))
            return int(cur.lastrowid)

    def put(self, name: str, value: bytes) -> int:
        """Create or overwrite, retrying on races (what an apiserver update loop amounts to)."""
        for _ in range(20):
            latest = self.get(name)
            try:
                if latest is None:
                    return self.create(name, value)
                return self.update(name, value, latest.id)
            except KeyExists:
                time.sleep(0.05)
        raise DatastoreError(f"too many conflicts writing {name}")

    def delete(self, name: str) -> bool:
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest is None or latest.deleted:
                return False
            cur.execute(
                "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease,"
                " value, old_value) VALUES (%s, 0, 1, %s, %s, 0, %s, %s)",
                (name, latest.create_revision or latest.id, latest.id, latest.value,
                 latest.value))
            return True

    # -- compaction (kine pkg/logstructured/sqllog/sql.go) ------------------------------------
    def compact_start(self) -> None:
        """compactStart: create the `compact_rev_key` row once (a Create at revision 0)."""
        with self.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM kine WHERE name = %s", (COMPACT_REV_KEY,))
            if cur.fetchone()[0]:
                return
            # Another server may create it first: the unique (name, prev_revision) index.
            with suppress(pymysql.err.IntegrityError):
                cur.execute(
                    "INSERT INTO kine (name, created, deleted, create_revision, prev_revision,"
                    " lease, value, old_value) VALUES (%s, 1, 0, 0, 0, 0, %s, NULL)",
                    (COMPACT_REV_KEY, b""))

    def revisions(self) -> tuple[int, int]:
        """(compacted revision, current revision): kine's compactRevSQL and revSQL."""
        with self.cursor() as cur:
            cur.execute("SELECT (SELECT MAX(prev_revision) FROM kine WHERE name = %s),"
                        " (SELECT MAX(id) FROM kine)", (COMPACT_REV_KEY,))
            compacted, current = cur.fetchone()
        return int(compacted or 0), int(current or 0)

    def compact_iter(self, compact_rev: int, target_rev: int,
                     settings: CompactSettings) -> tuple[int, int]:
        """One compactor tick (compactIter): compact towards `target_rev` in batches, each in
        one transaction that deletes superseded and deleted rows and moves compact_rev_key.
        Returns the (compact, target) pair for the next tick, as kine's compactor keeps it."""
        if settings.failure:
            # What kine logs when every pass fails (kine#745 / k3s#10619): compaction stops,
            # K3s keeps serving, the table grows.
            logs.error(f"Compact failed: failed to get current revision: {settings.failure}")
            return compact_rev, target_rev
        started, count = time.monotonic(), 0
        compacted, current = compact_rev, 0
        step_rev = compact_rev
        while step_rev < target_rev:
            step_rev = min(step_rev + settings.batch_size, target_rev)
            try:
                done, now, more = self._compact(compacted, step_rev, settings.min_retain)
            except DatastoreError as exc:
                logs.error(f"Compact failed: {exc}")
                break
            compacted, current = done, now
            if not more:
                break
            count += 1
        if count:
            logs.info(f"COMPACT compacted from {compact_rev} to {compacted} in {count} "
                      f"transactions over {time.monotonic() - started:.3f}s")
        if current:
            return compacted, current
        return compact_rev, target_rev

    def _compact(self, compact_rev: int, target_rev: int, min_retain: int
                 ) -> tuple[int, int, bool]:
        """compact(): (compacted to, current revision, whether it did anything)."""
        with self.cursor() as cur:
            cur.execute("START TRANSACTION")
            try:
                cur.execute("SELECT MAX(id) FROM kine")
                current = int(cur.fetchone()[0] or 0)
                cur.execute("SELECT MAX(prev_revision) FROM kine WHERE name = %s FOR UPDATE",
                            (COMPACT_REV_KEY,))
                db_rev = int(cur.fetchone()[0] or 0)
                if db_rev != compact_rev:  # another server compacted: normal with several
                    logs.info(f"COMPACT compact revision changed since last iteration: "
                              f"{compact_rev} => {db_rev}")
                    cur.execute("ROLLBACK")
                    return db_rev, current, False
                safe = max(0, min(target_rev, current - min_retain))  # safeCompactRev
                if safe <= compact_rev:
                    cur.execute("ROLLBACK")
                    return db_rev, current, False
                cur.execute(
                    "DELETE kv FROM kine AS kv INNER JOIN ("
                    " SELECT kp.prev_revision AS id FROM kine AS kp"
                    " WHERE kp.name != 'compact_rev_key' AND kp.prev_revision != 0"
                    " AND kp.id <= %s"
                    " UNION SELECT kd.id AS id FROM kine AS kd WHERE kd.deleted != 0"
                    " AND kd.id <= %s) AS ks ON kv.id = ks.id", (safe, safe))
                deleted = int(cur.rowcount)
                cur.execute("UPDATE kine SET prev_revision = %s WHERE name = %s",
                            (safe, COMPACT_REV_KEY))
                cur.execute("COMMIT")
            except BaseException:
                with suppress(pymysql.MySQLError):
                    cur.execute("ROLLBACK")
                raise
        logs.info(f"COMPACT deleted {deleted} rows from {safe - compact_rev} revisions - "
                  f"compacted to {safe}/{current}")
        return safe, current, True


@dataclass(frozen=True)
class CompactSettings:
    """kine's compaction settings, scaled by the stand-in's environment for tests.

    Defaults are kine's (pkg/app/app.go): every 5 minutes (until kine v0.16.1; since then the
    apiserver's --etcd-compaction-interval drives it, also 5 minutes), never the newest 1000
    revisions, 1000 revisions per transaction. K3S_STANDIN_COMPACT_INTERVAL (Go duration, 0
    = off), K3S_STANDIN_COMPACT_MIN_RETAIN and K3S_STANDIN_COMPACT_BATCH_SIZE scale them;
    K3S_STANDIN_COMPACT_ERROR makes every pass fail with that database error, as a kine on
    MariaDB 11.8 with innodb_snapshot_isolation ON does (kine#745, k3s#10619).
    """

    interval: float = 300.0
    min_retain: int = 1000
    batch_size: int = 1000
    failure: str = ""

    @classmethod
    def from_environment(cls) -> CompactSettings:
        interval = os.environ.get("K3S_STANDIN_COMPACT_INTERVAL", "")
        return cls(
            interval=go_duration(interval) if interval else 300.0,
            min_retain=int(os.environ.get("K3S_STANDIN_COMPACT_MIN_RETAIN", "1000")),
            batch_size=max(1, int(os.environ.get("K3S_STANDIN_COMPACT_BATCH_SIZE", "1000"))),
            failure=os.environ.get("K3S_STANDIN_COMPACT_ERROR", ""))
