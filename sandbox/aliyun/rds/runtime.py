"""What actually runs for each RDS instance: its mariadbd and its whitelist gate.

Why: the API state says what should exist; this module makes it real and keeps it that way
across emulator restarts. Slow work (initialising a datadir, starting mariadbd) happens in a
thread so the API lock is never held for it; the ticker promotes an instance to Running only
once its server answers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pymysql
from psycopg import sql as pgsql

from sandbox import netns as netns_helpers
from sandbox.aliyun.rds import parameters, tls
from sandbox.aliyun.rds import pgserver as pg
from sandbox.aliyun.rds.gate import WhitelistGate
from sandbox.aliyun.rds.mysqld import MariaDBServer, reap_orphans, typed_value
from sandbox.aliyun.rds.product import whitelist_of
from sandbox.aliyun.rds.rules import privilege_statements

if TYPE_CHECKING:
    from sandbox.aliyun.gateway.cloud import Cloud

log = logging.getLogger(__name__)
RDS_PORT = 3306
RDS_PG_PORT = 5432
# Locales an RDS PostgreSQL database may ask for that this machine may not have built:
# the emulator builds the database with the C.UTF-8 equivalent (same encoding).
PG_LOCALE_FALLBACK = {"en_US.utf8": "C.UTF-8", "en_US.UTF-8": "C.UTF-8"}
NO_SUCH_GRANT = 1141
BOOT_ATTEMPTS = 3
SSL_OPTIONS = ("ssl_cert", "ssl_key", "ssl_ca")
BOOT_RETRY_PAUSE = 1.0  # seconds, times the attempt number


@dataclass
class InstanceRuntime:
    instance_id: str
    server: MariaDBServer | pg.PostgresServer
    gate: WhitelistGate | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    booted: threading.Event = field(default_factory=threading.Event)  # ready or failed
    cancelled: threading.Event = field(default_factory=threading.Event)  # stopping: no retry
    error: str = ""
    reviving: bool = False


class RdsRuntime:
    """Servers and gates of one `Cloud`, keyed by DBInstanceId."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.root = Path(cloud.state.directory) / "rds"
        self.instances: dict[str, InstanceRuntime] = {}

    def home(self, instance_id: str) -> Path:
        return self.root / instance_id

    # ----- lifecycle ---------------------------------------------------------------------

    def provision(self, record: dict[str, Any], *, background: bool = True) -> None:
        """Create (or bring back) the instance's server; `ready` is set once it answers."""
        instance_id = record["id"]
        if record.get("engine") == "PostgreSQL":
            self._provision_pg(record, background=background)
            return
        options = parameters.server_options(record["parameters"], record["engine_version"])
        # The server enforces the class's connection limit, the one DescribeDBInstanceAttribute
        # reports as MaxConnections (RDS ties max_connections to the instance class).
        class_limit = record.get("class_spec", {}).get("max_connections")
        if class_limit:
            options["max_connections"] = str(class_limit)
        home = self.home(instance_id)
        if (home / "server.json").exists():
            server = MariaDBServer.load(home)
            server.options.update(options)
        else:
            server = MariaDBServer(home, options=options)
        runtime = InstanceRuntime(instance_id, server)
        self.instances[instance_id] = runtime
        if background:
            threading.Thread(target=self._boot, args=(runtime,), daemon=True,
                             name=f"rds-boot-{instance_id}").start()
        else:
            self._boot(runtime)

    def _provision_pg(self, record: dict[str, Any], *, background: bool) -> None:
        """A PostgreSQL instance: a private postgres with the class's connection limit."""
        options = {}
        class_limit = record.get("class_spec", {}).get("max_connections")
        if class_limit:
            options["max_connections"] = str(class_limit)
        home = self.home(record["id"])
        if (home / "server.json").exists():
            server = pg.PostgresServer.load(home)
            server.options.update(options)
        else:
            server = pg.PostgresServer(home, options=options)
        runtime = InstanceRuntime(record["id"], server)
        self.instances[record["id"]] = runtime
        if background:
            threading.Thread(target=self._boot, args=(runtime,), daemon=True,
                             name=f"rds-boot-{record['id']}").start()
        else:
            self._boot(runtime)

    @staticmethod
    def _boot(runtime: InstanceRuntime) -> None:
        """Start the server, retrying a failed start; a final failure stays in `error`.

        Why catch everything: this runs in its own thread, and an exception escaping it
        would leave the instance Creating forever with nothing in `error` and `booted`
        never set (stop/destroy would then wait for it in vain).
        """
        try:
            for attempt in range(1, BOOT_ATTEMPTS + 1):
                try:
                    runtime.server.start()
                except Exception as exc:  # any failure must be reported, not kill the thread
                    runtime.error = f"start attempt {attempt}/{BOOT_ATTEMPTS} failed: {exc}"
                    log.error("RDS %s: %s", runtime.instance_id, runtime.error)
                    _stop_quietly(runtime.server)
                    if attempt == BOOT_ATTEMPTS or runtime.cancelled.wait(
                            BOOT_RETRY_PAUSE * attempt):
                        return
                else:
                    runtime.error = ""
                    runtime.ready.set()
                    return
        finally:
            runtime.reviving = False
            runtime.booted.set()

    def revive_if_dead(self, instance_id: str) -> None:
        """A Running instance whose mariadbd died (killed, crashed) gets it back, like an
        RDS HA switchover: clients see their connections drop, then reconnect."""
        runtime = self.instances.get(instance_id)
        if runtime is None or not runtime.booted.is_set() or runtime.reviving:
            return
        if runtime.server.running:
            return
        log.warning("RDS %s: mariadbd is gone, starting it again", instance_id)
        runtime.reviving = True
        threading.Thread(target=self._boot, args=(runtime,), daemon=True,
                         name=f"rds-revive-{instance_id}").start()

    def error_of(self, instance_id: str) -> str:
        runtime = self.instances.get(instance_id)
        return runtime.error if runtime is not None else ""

    def is_ready(self, instance_id: str) -> bool:
        runtime = self.instances.get(instance_id)
        return runtime is not None and runtime.ready.is_set()

    def open_gate(self, record: dict[str, Any]) -> None:
        runtime = self.instances[record["id"]]
        if runtime.gate is not None:
            return
        gate = WhitelistGate(runtime.server, record["address"], int(record["port"]),
                             self.cloud.plumbing.netns, whitelist_of(record))
        gate.require_ssl = bool(record.get("ssl", {}).get("force"))
        gate.start()
        runtime.gate = gate

    def refresh_whitelist(self, record: dict[str, Any]) -> None:
        runtime = self.instances.get(record["id"])
        if runtime is not None and runtime.gate is not None:
            runtime.gate.set_whitelist(whitelist_of(record))

    def restart_server(self, record: dict[str, Any]) -> None:
        """Restart the server with the instance's current parameters (clients are cut off)."""
        runtime = self.instances[record["id"]]
        if isinstance(runtime.server, MariaDBServer):
            runtime.server.options.update(
                parameters.server_options(record["parameters"], record["engine_version"]),
            )
        runtime.server.stop()
        runtime.server.start()

    def cut_off(self, record: dict[str, Any]) -> None:
        """Drop every client connection (a restart is under way); the gate stays open."""
        runtime = self.instances.get(record["id"])
        if runtime is not None and runtime.gate is not None:
            runtime.gate.drop_connections()

    def apply_ssl(self, record: dict[str, Any], wanted: dict[str, Any] | None) -> datetime:
        """Restart mariadbd with a new server certificate for `wanted["connection_string"]`
        (or without TLS when `wanted` is None); returns the certificate's expiry."""
        runtime = self.instances[record["id"]]
        for option in SSL_OPTIONS:
            runtime.server.options.pop(option, None)
        expires = datetime.now(UTC)
        if wanted is not None:
            home = self.home(record["id"])
            if wanted.get("ca_type") == "custom":
                cert, key = home / "ssl" / "custom-cert.pem", home / "ssl" / "custom-key.pem"
                cert.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                cert.write_text(wanted["server_cert"])
                key.touch(mode=0o600)
                key.write_text(wanted["server_key"])
            else:
                cert, key, expires = tls.issue_server_certificate(
                    self.cloud.state.directory, home, wanted["connection_string"])
            runtime.server.options.update(ssl_cert=str(cert), ssl_key=str(key),
                                          ssl_ca=str(tls.ca_bundle_path(
                                              self.cloud.state.directory)))
        if runtime.gate is not None:
            runtime.gate.require_ssl = bool(wanted and wanted.get("force"))
        runtime.server.stop()
        runtime.server.start()
        return expires

    def stop(self, instance_id: str) -> None:
        """Close the gate and stop mariadbd; the datadir stays (emulator shutdown)."""
        runtime = self.instances.pop(instance_id, None)
        if runtime is None:
            return
        runtime.cancelled.set()
        if runtime.gate is not None:
            runtime.gate.close()
        runtime.booted.wait(timeout=60)  # let a boot in progress finish before stopping
        runtime.server.stop()

    def destroy(self, instance_id: str) -> None:
        """Close the gate, stop mariadbd and delete its datadir (the instance is released)."""
        runtime = self.instances.pop(instance_id, None)
        if runtime is not None:
            runtime.cancelled.set()
        if runtime is not None and runtime.gate is not None:
            runtime.gate.close()
        if runtime is not None:
            runtime.booted.wait(timeout=60)
            runtime.server.destroy()
        elif _is_pg_home(self.home(instance_id)):
            pg.PostgresServer(self.home(instance_id)).destroy()
        else:
            MariaDBServer(self.home(instance_id)).destroy()

    def stop_all(self) -> None:
        for instance_id in list(self.instances):
            self.stop(instance_id)
        reap_orphans(self.root)
        pg.reap_orphans(self.root)

    def pid(self, instance_id: str) -> int | None:
        runtime = self.instances.get(instance_id)
        return runtime.server.pid if runtime is not None else None

    def listening(self, instance_id: str) -> bool:
        runtime = self.instances.get(instance_id)
        return runtime is not None and runtime.gate is not None and runtime.gate.listening

    # ----- SQL the API performs ----------------------------------------------------------

    def sql(self, instance_id: str, statement: str, args: Any = None) -> list[tuple]:
        return self.instances[instance_id].server.execute(statement, args)

    def _pg(self, instance_id: str) -> pg.PostgresServer | None:
        server = self.instances[instance_id].server
        return server if isinstance(server, pg.PostgresServer) else None

    def create_account(self, instance_id: str, account: dict[str, Any], password: str) -> None:
        """Created locked: it can log in once the API says Available (the ticker unlocks it).

        PostgreSQL: a NOLOGIN role; a privileged (Super) account may create databases and
        roles, as RDS's privileged accounts do (they are not PostgreSQL superusers)."""
        server = self._pg(instance_id)
        if server is not None:
            extra = pgsql.SQL(" CREATEDB CREATEROLE" if account["type"] == "Super" else "")
            server.execute(pgsql.SQL("CREATE ROLE {} NOLOGIN PASSWORD {}{}").format(
                pgsql.Identifier(account["name"]), pgsql.Literal(password), extra))
            return
        self.sql(instance_id, "CREATE USER %s@'%%' IDENTIFIED BY %s ACCOUNT LOCK",
                 (account["name"], password))
        if account["type"] == "Super":
            self.sql(instance_id, "GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION",
                     (account["name"],))

    def unlock_account(self, instance_id: str, name: str) -> None:
        server = self._pg(instance_id)
        if server is not None:
            server.execute(pgsql.SQL("ALTER ROLE {} LOGIN").format(pgsql.Identifier(name)))
            return
        self.sql(instance_id, "ALTER USER %s@'%%' ACCOUNT UNLOCK", (name,))

    def set_password(self, instance_id: str, name: str, password: str) -> None:
        server = self._pg(instance_id)
        if server is not None:
            server.execute(pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
                pgsql.Identifier(name), pgsql.Literal(password)))
            return
        self.sql(instance_id, "ALTER USER %s@'%%' IDENTIFIED BY %s", (name, password))

    def drop_account(self, instance_id: str, name: str) -> None:
        server = self._pg(instance_id)
        if server is not None:  # what it owns goes back to the admin first, or DROP ROLE fails
            role = pgsql.Identifier(name)
            for (database,) in server.execute(
                    "SELECT datname FROM pg_database WHERE datallowconn"):
                try:
                    server.execute(pgsql.SQL("REASSIGN OWNED BY {} TO postgres; "
                                             "DROP OWNED BY {}").format(role, role),
                                   database=database)
                except psycopg.errors.UndefinedObject:
                    return  # no such role: nothing to drop
            server.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(role))
            return
        self.sql(instance_id, "DROP USER IF EXISTS %s@'%%'", (name,))

    def create_database(self, instance_id: str, name: str, charset: str) -> None:
        """`charset` as CreateDatabase took it (PostgreSQL: `Charset,Collate,Ctype`)."""
        server = self._pg(instance_id)
        if server is not None:
            encoding, collate, ctype = charset.split(",")
            server.execute(pgsql.SQL(
                "CREATE DATABASE {} ENCODING {} LC_COLLATE {} LC_CTYPE {} TEMPLATE template0",
            ).format(pgsql.Identifier(name), pgsql.Literal(encoding),
                     pgsql.Literal(PG_LOCALE_FALLBACK.get(collate, collate)),
                     pgsql.Literal(PG_LOCALE_FALLBACK.get(ctype, ctype))))
            return
        self.sql(instance_id, f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET {charset}")

    def drop_database(self, instance_id: str, name: str) -> None:
        server = self._pg(instance_id)
        if server is not None:
            server.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                pgsql.Identifier(name)))
            return
        self.sql(instance_id, f"DROP DATABASE IF EXISTS `{name}`")

    def revoke(self, instance_id: str, account: str, database: str) -> None:
        server = self._pg(instance_id)
        if server is not None:  # DBOwner taken away: the database goes back to the admin
            with contextlib.suppress(psycopg.errors.InvalidCatalogName):
                server.execute(pgsql.SQL("ALTER DATABASE {} OWNER TO postgres").format(
                    pgsql.Identifier(database)))
            return
        try:
            self.sql(instance_id, f"REVOKE ALL PRIVILEGES ON `{database}`.* FROM %s@'%%'",
                     (account,))
        except pymysql.err.MySQLError as exc:
            if exc.args[0] != NO_SUCH_GRANT:
                raise

    def grant(self, instance_id: str, account: str, database: str, privilege: str) -> None:
        """Replace the account's privileges on the database by the RDS privilege set.

        PostgreSQL's one privilege, DBOwner, makes the account the database's owner (and so,
        from PostgreSQL 15 on, of its `public` schema, owned by pg_database_owner)."""
        server = self._pg(instance_id)
        if server is not None:
            server.execute(pgsql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                pgsql.Identifier(database), pgsql.Identifier(account)))
            return
        self.revoke(instance_id, account, database)
        statements = privilege_statements(privilege)
        self.sql(instance_id, f"GRANT {statements} ON `{database}`.* TO %s@'%%'", (account,))

    def apply_parameters(self, record: dict[str, Any], changed: dict[str, str]) -> None:
        """Apply dynamic parameters to the running server and keep them for restarts.

        All or nothing, as an RDS parameter task: if MariaDB refuses one value, the values
        already set are put back (server and my.cnf) and `ParameterRefused` says which one
        and why; the caller then leaves the running parameters as they were.
        `record["parameters"]` must still hold the old values.
        """
        instance_id = record["id"]
        version = record["engine_version"]
        server = self.instances[instance_id].server
        if not isinstance(server, MariaDBServer):  # PostgreSQL has no MySQL parameters
            raise ParameterRefused("?", "not a MySQL instance")
        target = {**record["parameters"], **changed}
        options = parameters.server_options(target, version)
        saved_options = dict(server.options)
        undo: list[tuple[str, str | None]] = []
        plain = {n: v for n, v in changed.items() if n != parameters.LARGE_PREFIX}
        current = ""
        try:
            for name, value in plain.items():
                entry = parameters.template(version, name)
                if entry is None or not entry.variable or entry.force_restart:
                    continue
                current = entry.variable
                undo.append((current, server.global_variable(current)))
                server.set_option(current, value)
            if parameters.LARGE_PREFIX in changed:  # last: its table rewrite cannot be undone
                row_format = options["innodb_default_row_format"]
                current = "innodb_default_row_format"
                undo.append((current, server.global_variable(current)))
                server.set_option(current, row_format)
                if row_format == "dynamic":
                    self._lift_key_limit(instance_id)
        except pymysql.err.MySQLError as exc:
            failed = current or "?"
            for variable, old in reversed(undo):
                if old is None:
                    continue
                try:
                    server.execute(f"SET GLOBAL {variable} = %s", (typed_value(old),))
                except pymysql.err.MySQLError:
                    log.exception("RDS %s: could not restore %s", instance_id, variable)
            server.replace_options(saved_options)
            raise ParameterRefused(failed, exc.args[-1] if exc.args else str(exc)) from exc

    def _lift_key_limit(self, instance_id: str) -> None:
        """Tables made while the 767-byte limit held move to DYNAMIC, as MySQL 5.7 tables
        (DYNAMIC by default, gated only by innodb_large_prefix) behave once it is ON."""
        rows = self.sql(
            instance_id,
            "SELECT table_schema, table_name FROM information_schema.tables WHERE engine='InnoDB'"
            " AND row_format IN ('Compact', 'Redundant') AND create_options NOT LIKE "
            "'%row_format=%' AND table_schema NOT IN ('mysql', 'sys', 'information_schema',"
            " 'performance_schema')",
        )
        for schema, table in rows:
            self.sql(instance_id, f"ALTER TABLE `{schema}`.`{table}` ROW_FORMAT=DEFAULT")


class ParameterRefused(Exception):
    """MariaDB refused a parameter value: the modification task fails, nothing changes."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


def _stop_quietly(server: MariaDBServer | pg.PostgresServer) -> None:
    """Kill what a failed start left running, so the next attempt starts clean."""
    try:
        server.stop()
    except Exception:  # the start failure is what gets reported
        log.exception("RDS: could not stop %s after a failed start", server.home)


def _is_pg_home(home: Path) -> bool:
    try:
        return json.loads((home / "server.json").read_text()).get("engine") == "PostgreSQL"
    except (OSError, ValueError):
        return False


def port_for(address: str, netns: str | None, engine: str = "MySQL") -> int:
    """3306 (PostgreSQL: 5432), unless something already listens there (possible only on a
    loopback address)."""
    default = RDS_PG_PORT if engine == "PostgreSQL" else RDS_PORT
    if netns is not None:
        return default
    try:
        probe = netns_helpers.listen_tcp(address, default, None)
    except OSError:
        probe = netns_helpers.listen_tcp(address, 0, None)
    port = probe.getsockname()[1]
    probe.close()
    return port


def port_is_listening(address: str, port: int, netns: str | None) -> bool:
    try:
        sock = netns_helpers.connect_tcp(address, port, netns, timeout=1.0)
    except OSError:
        return False
    sock.close()
    return True


_RUNTIMES: weakref.WeakKeyDictionary[Cloud, RdsRuntime] = weakref.WeakKeyDictionary()
_RUNTIMES_LOCK = threading.Lock()


def runtime_of(cloud: Cloud) -> RdsRuntime:
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(cloud)
        if runtime is None:
            runtime = RdsRuntime(cloud)
            _RUNTIMES[cloud] = runtime
        return runtime

