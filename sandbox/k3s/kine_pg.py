"""Kine's PostgreSQL backend (pkg/drivers/pgsql, v0.16): its DDL and the same key/value log.

Why: a cluster on RDS PostgreSQL (or a PostgreSQL of one's own) must meet what kine does
there: `CREATE DATABASE "<name>"` through the `postgres` database when the database is missing
(a failure is only a warning), then the schema below, statement for statement, as the DSN's
account. An account that may not create in `public` (PostgreSQL 15+: only the database owner
may) fails here with PostgreSQL's own error, as K3s's journal shows it. pgx uses the extended
protocol with prepared statements: a pooler in transaction mode breaks them, which is why the
panel refuses one before K3s meets it.

The log operations are those of `sandbox.k3s.kine.Kine`; only the SQL dialect differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg import sql as pgsql

from sandbox.k3s import logs
from sandbox.k3s.dsn import PostgresDSN
from sandbox.k3s.kine import COMPACT_REV_KEY, BackendTLS, DatastoreError, KeyExists, Kine, Row
from sandbox.k3s.versions import Release

# k3s-io/kine v0.16.4 pkg/drivers/pgsql/pgsql.go `schema`.
SCHEMA = (
    'CREATE TABLE IF NOT EXISTS kine (id BIGSERIAL PRIMARY KEY, name text COLLATE "C", '
    "created INTEGER, deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, "
    "lease INTEGER, value bytea, old_value bytea)",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
    "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
    "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine "
    "(name, prev_revision)",
    "CREATE INDEX IF NOT EXISTS kine_list_query_index on kine(name, id DESC, deleted)",
)


def pg_error(exc: psycopg.Error) -> str:
    """What pgx prints for a server error: `ERROR: <message> (SQLSTATE <code>)`."""
    diag = getattr(exc, "diag", None)
    code = getattr(diag, "sqlstate", None) or getattr(exc, "sqlstate", None)
    primary = getattr(diag, "message_primary", None)
    if code and primary:
        severity = getattr(diag, "severity", None) or "ERROR"
        return f"{severity}: {primary} (SQLSTATE {code})"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"failed to connect to `{text}`"


def pool_log_line(rel: Release) -> str:
    """As `kine.pool_log_line`, for the pgsql driver: generic.go prints the database/sql
    driver's name, `pgx` in kine v0.16 (pgsql.go: generic.OpenDB(ctx, wg, "pgx", …)),
    `postgres` (lib/pq) in the older releases the stand-in plays."""
    if rel.kine_pool_v016:
        return ("Configuring pgx database connection pooling: "
                f"maxIdle={rel.max_idle}, maxOpen=0, maxLifetime=0s, maxIdleTime=0s")
    return ("Configuring postgres database connection pooling: "
            f"maxIdleConns={rel.max_idle}, maxOpenConns=0, connMaxLifetime=0s")


class PostgresKine(Kine):
    """One server's connection to the shared `kine` table in PostgreSQL."""

    def __init__(self, dsn: PostgresDSN, rel: Release,  # type: ignore[override]
                 backend_tls: BackendTLS | None = None) -> None:
        super().__init__(dsn, rel, backend_tls)  # type: ignore[arg-type]
        self.pg = dsn

    def _connect(self, with_db: bool) -> Any:  # type: ignore[override]
        params = dict(self.pg.params)
        kwargs: dict[str, Any] = {
            "host": self.pg.host, "port": self.pg.port, "user": self.pg.user,
            "password": self.pg.password, "autocommit": True,
            "dbname": self.pg.dbname if with_db else "postgres",
            "sslmode": params.pop("sslmode", "prefer"),
            "connect_timeout": int(params.pop("connect_timeout", "30") or 30),
        }
        tls = self.backend_tls
        if tls.cafile:
            kwargs["sslrootcert"] = tls.cafile
            kwargs["sslmode"] = "verify-full" if "sslmode" not in self.pg.params \
                else kwargs["sslmode"]
        if tls.certfile:
            kwargs["sslcert"] = tls.certfile
        if tls.keyfile:
            kwargs["sslkey"] = tls.keyfile
        for key in ("sslrootcert", "sslcert", "sslkey", "application_name"):
            if key in params:
                kwargs[key] = params.pop(key)
        try:
            return psycopg.connect(**kwargs)
        except psycopg.Error as exc:
            raise DatastoreError(pg_error(exc)) from None

    @contextmanager
    def cursor(self) -> Iterator[Any]:  # type: ignore[override]
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(with_db=True)
            try:
                with self._conn.cursor() as cur:
                    yield cur
            except psycopg.errors.UniqueViolation:
                raise KeyExists() from None
            except psycopg.OperationalError as exc:
                self._conn = None
                raise DatastoreError(pg_error(exc)) from None
            except psycopg.Error as exc:
                raise DatastoreError(pg_error(exc)) from None

    def fill_pool(self) -> int:
        with self._lock:
            held = (1 if self._conn is not None and not self._conn.closed else 0) + len(
                self._idle)
            while held < self.rel.max_idle:
                try:
                    self._idle.append(self._connect(with_db=True))
                except DatastoreError as exc:
                    logs.error(f"error while filling the datastore connection pool: {exc}")
                    break
                held += 1
            return held

    def setup(self) -> None:
        logs.info(pool_log_line(self.rel))
        self._create_database()
        logs.info("Configuring database table schema and indexes, this may take a moment...")
        with self.cursor() as cur:
            for stmt in SCHEMA:
                cur.execute(stmt)
        logs.info("Database tables and indexes are up to date")
        self.compact_start()

    def _create_database(self) -> None:
        """createDBIfNotExist: through `postgres`; every failure there is only a warning."""
        name = self.pg.dbname
        try:
            conn = self._connect(with_db=False)
        except DatastoreError as exc:
            logs.warn(f"failed to ensure existence of database {name}: unable to connect to "
                      f"default postgres database: {exc}")
            return
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone() is not None
            if not exists:
                try:
                    conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
                except psycopg.Error as exc:
                    logs.warn(f"failed to create database {name}: {pg_error(exc)}")
        finally:
            conn.close()

    def _insert(self, cur: Any, values: tuple) -> int:
        cur.execute(
            "INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease,"
            " value, old_value) VALUES (%s, %s, %s, %s, %s, 0, %s, %s) RETURNING id", values)
        return int(cur.fetchone()[0])

    def create(self, name: str, value: bytes) -> int:
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest and not latest.deleted:
                raise KeyExists()
            return self._insert(cur, (name, 1, 0, 0, latest.id if latest else 0, value, None))

    def update(self, name: str, value: bytes, revision: int) -> int:
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest is None or latest.deleted or latest.id != revision:
                raise KeyExists()
            return self._insert(cur, (name, 0, 0, latest.create_revision or latest.id,
                                      latest.id, value, latest.value))

    def delete(self, name: str) -> bool:
        with self.cursor() as cur:
            latest = self._latest(cur, name)
            if latest is None or latest.deleted:
                return False
            self._insert(cur, (name, 0, 1, latest.create_revision or latest.id, latest.id,
                               latest.value, latest.value))
            return True

    def _latest(self, cur: Any, name: str) -> Row | None:
        found = super()._latest(cur, name)
        if found is not None and isinstance(found.value, memoryview):
            found.value = bytes(found.value)
        return found

    def list(self, prefix: str) -> list[Row]:
        rows = super().list(prefix)
        for row in rows:
            if isinstance(row.value, memoryview):
                row.value = bytes(row.value)
        return rows

    def compact_start(self) -> None:
        with self.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM kine WHERE name = %s", (COMPACT_REV_KEY,))
            if cur.fetchone()[0]:
                return
            with suppress(psycopg.errors.UniqueViolation):
                self._insert(cur, (COMPACT_REV_KEY, 1, 0, 0, 0, b"", None))

    def _compact(self, compact_rev: int, target_rev: int, min_retain: int
                 ) -> tuple[int, int, bool]:
        """kine's pgsql CompactSQL (DELETE … USING), in one transaction."""
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect(with_db=True)
            conn = self._conn
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT MAX(id) FROM kine")
                    current = int(cur.fetchone()[0] or 0)
                    cur.execute("SELECT prev_revision FROM kine WHERE name = %s "
                                "ORDER BY id DESC LIMIT 1 FOR UPDATE", (COMPACT_REV_KEY,))
                    found = cur.fetchone()
                    db_rev = int(found[0] or 0) if found else 0
                    if db_rev != compact_rev:
                        logs.info(f"COMPACT compact revision changed since last iteration: "
                                  f"{compact_rev} => {db_rev}")
                        return db_rev, current, False
                    safe = max(0, min(target_rev, current - min_retain))
                    if safe <= compact_rev:
                        return db_rev, current, False
                    cur.execute(
                        "DELETE FROM kine AS kv USING (SELECT kp.prev_revision AS id FROM kine"
                        " AS kp WHERE kp.name != 'compact_rev_key' AND kp.prev_revision != 0"
                        " AND kp.id <= %s UNION SELECT kd.id AS id FROM kine AS kd WHERE"
                        " kd.deleted != 0 AND kd.id <= %s) AS ks WHERE kv.id = ks.id",
                        (safe, safe))
                    deleted = int(cur.rowcount)
                    cur.execute("UPDATE kine SET prev_revision = %s WHERE name = %s",
                                (safe, COMPACT_REV_KEY))
            except psycopg.OperationalError as exc:
                self._conn = None
                raise DatastoreError(pg_error(exc)) from None
            except psycopg.Error as exc:
                raise DatastoreError(pg_error(exc)) from None
        logs.info(f"COMPACT deleted {deleted} rows from {safe - compact_rev} revisions - "
                  f"compacted to {safe}/{current}")
        return safe, current, True
