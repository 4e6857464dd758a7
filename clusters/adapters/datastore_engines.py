"""One interface over the datastore engines: what differs between MySQL and PostgreSQL.

Why: the RDS steps, the server config, the datastore proof and the health check do the same
things for both engines (buy, whitelist, account, database, privilege, DSN, prove), with
engine-specific values and drivers. They ask `engine_for(cluster)` instead of branching:

- RDS: CreateDBInstance `Engine`; CreateDatabase `CharacterSetName` (MySQL `utf8mb4`;
  PostgreSQL `Charset,Collate,Ctype`, V2 CreateDatabaseRequest: "Example: UTF8,C,en_US.utf8");
  the privilege K3s's account needs (MySQL ReadWrite; PostgreSQL DBOwner, its only privilege
  in GrantAccountPrivilegeRequest, and what lets the account create kine's table in
  `public` on PostgreSQL 15+).
- DSN: MySQL's go-sql-driver form, raw; PostgreSQL's URL, percent-encoded (clusters.k3s.pgdsn).
- Proof: kine's DDL for the engine, with that engine's driver (clusters.adapters.datastore /
  datastore_pg).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_noop

from clusters.adapters import datastore, datastore_health, datastore_pg
from clusters.adapters.datastore import DatastoreReport
from clusters.adapters.datastore_health import KineMeasurement
from clusters.k3s.dsn import build_endpoint, parse_endpoint
from clusters.k3s.pgdsn import build_pg_endpoint, parse_pg_endpoint
from clusters.k3s.versions import kine_schema
from clusters.models import DatastoreEngine

if TYPE_CHECKING:
    from clusters.adapters.ssh import SSHSession
    from clusters.models import Cluster


@dataclass(frozen=True)
class Engine:
    """One engine's values and functions (see the module docstring for the sources)."""

    key: str
    label: str  # as RDS names it: CreateDBInstance Engine, and in messages
    database_charset: str
    account_privilege: str
    rds_default_port: int
    # RDS SSL through ModifyDBInstanceSSL, verified by K3s and the panel: MySQL only for now.
    offers_tls: bool
    build: Callable[..., str]
    parse: Callable[[str], Any]
    prove: Callable[..., DatastoreReport]
    measure: Callable[..., KineMeasurement]
    key_column: Callable[[str], str]
    rds_params: tuple[tuple[str, str], ...] = ()
    # Step titles and the upgrade's warning for one's own database (marked for translation,
    # translated where shown).
    create_title: str = ""
    own_backup_title: str = ""
    own_backup_note: str = ""

    def endpoint(self, user: str, password: str, host: str, port: int, database: str) -> str:
        """The K3s --datastore-endpoint for an RDS account (contains the password)."""
        params = dict(self.rds_params)
        if params:
            return self.build(user, password, host, port, database=database, params=params)
        return self.build(user, password, host, port, database=database)


def _prove_mysql(endpoint: Any, k3s_version: str, *, via: SSHSession | None = None,
                 ca_pem: str | None = None) -> DatastoreReport:
    return datastore.check_datastore(endpoint, k3s_version, via=via, ca_pem=ca_pem)


def _prove_pg(endpoint: Any, k3s_version: str, *, via: SSHSession | None = None,
              ca_pem: str | None = None) -> DatastoreReport:
    """kine's pgsql DDL is the same for every K3s release the panel installs (v0.16 line);
    TLS follows the DSN's sslmode, not a panel CA (offers_tls is False)."""
    return datastore_pg.check_pg_datastore(endpoint, via=via)


def _measure_mysql(endpoint: Any, via: SSHSession, *, timeout: int, ca_pem: str | None,
                   rows_cap: int) -> KineMeasurement:
    with datastore.connect(endpoint, via=via, timeout=timeout, ca_pem=ca_pem) as conn:
        return datastore_health.measure(conn, rows_cap=rows_cap)


def _measure_pg(endpoint: Any, via: SSHSession, *, timeout: int, ca_pem: str | None,
                rows_cap: int) -> KineMeasurement:
    with datastore_pg.connect(endpoint, via=via, timeout=timeout) as (conn,):
        return datastore_pg.measure(conn, rows_cap=rows_cap)


def _mysql_key_column(k3s_version: str) -> str:
    return "ascii" if kine_schema(k3s_version).ascii_name else "utf8mb4 (767-byte index limit)"


MYSQL = Engine(DatastoreEngine.MYSQL, "MySQL", "utf8mb4", "ReadWrite", 3306, True,
               build_endpoint, parse_endpoint, _prove_mysql, _measure_mysql, _mysql_key_column,
               create_title=gettext_noop("Create the RDS MySQL instance"),
               own_backup_title=gettext_noop(
                   "Warn that your own MySQL is not backed up automatically"),
               own_backup_note=gettext_noop(
                   "Your own MySQL is NOT backed up automatically: take a backup (mysqldump or "
                   "a snapshot) before upgrading; it is the only way back if the upgrade "
                   "breaks the datastore."))
# sslmode=prefer: pgx's own default, written out (TLS when RDS offers it, not verified: the
# panel offers verified TLS for MySQL only so far).
POSTGRESQL = Engine(DatastoreEngine.POSTGRESQL, "PostgreSQL", "UTF8,C,en_US.utf8", "DBOwner",
                    5432, False, build_pg_endpoint, parse_pg_endpoint, _prove_pg, _measure_pg,
                    lambda _version: 'text COLLATE "C"', (("sslmode", "prefer"),),
                    create_title=gettext_noop("Create the RDS PostgreSQL instance"),
                    own_backup_title=gettext_noop(
                        "Warn that your own PostgreSQL is not backed up automatically"),
                    own_backup_note=gettext_noop(
                        "Your own PostgreSQL is NOT backed up automatically: take a backup "
                        "(pg_dump or a snapshot) before upgrading; it is the only way back if "
                        "the upgrade breaks the datastore."))
ENGINES = {MYSQL.key: MYSQL, POSTGRESQL.key: POSTGRESQL}


def engine_for(cluster: Cluster) -> Engine:
    return ENGINES[getattr(cluster, "datastore_engine", "") or DatastoreEngine.MYSQL]
