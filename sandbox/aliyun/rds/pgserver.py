"""Private PostgreSQL servers: one real `postgres` per emulated RDS PostgreSQL instance.

Why: as `mysqld` does for RDS MySQL, an RDS PostgreSQL stand-in must be a real server, so
that kine's schema, a wrong password, a database the account does not own or a missing
`CONNECT` fail exactly as on RDS. Debian's postgresql package provides initdb and postgres;
postgres refuses to run as root, so every server runs as the `postgres` system user.

Its datadir and socket live under SERVER_ROOT (/tmp/aliyun-emulator-pg/<digest>), not under
the instance's `home`: the emulator's state directory may sit below a 0700 root directory the
postgres user cannot traverse. `home/server.json` remembers which directory is whose.

The server listens on no TCP port (`listen_addresses = ''`), only on its unix socket; the
instance's whitelist gate relays allowed clients to it, as it relays MySQL clients to
mariadbd. The emulator administers it as the `postgres` superuser with a random password
(scram-sha-256) kept in `home/admin.json` (0600).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

SERVER_ROOT = Path("/tmp/aliyun-emulator-pg")  # noqa: S108 - fixed, root-owned 0711
RUN_AS = "postgres"
PG_PORT = 5432  # the socket's name (.s.PGSQL.5432); no TCP listener
WIRE = "postgresql"

# Small and quick: these servers hold one kine table, not production data.
BASE_OPTIONS: dict[str, str] = {
    "listen_addresses": "''",
    "shared_buffers": "16MB",
    "max_connections": "100",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "password_encryption": "'scram-sha-256'",
    "log_destination": "'stderr'",
    "logging_collector": "off",
    "dynamic_shared_memory_type": "posix",
}


class PostgresError(RuntimeError):
    """The server could not be initialised, started or stopped; the message names the log."""


def bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if not found:
        raise PostgresError("no PostgreSQL server is installed (/usr/lib/postgresql/*/bin)")
    return found[-1].parent


def _run_as() -> tuple[int, int]:
    entry = pwd.getpwnam(RUN_AS)
    return entry.pw_uid, entry.pw_gid


def _as_postgres() -> dict[str, Any]:
    """subprocess arguments that run the child as the postgres user, no extra groups."""
    uid, gid = _run_as()
    return {"user": uid, "group": gid, "extra_groups": []}


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresServer:
    """One private postgres, described by `home/server.json`, run from its own datadir."""

    wire = WIRE

    def __init__(self, home: str | os.PathLike[str], *,
                 options: Mapping[str, str] | None = None,
                 listen: tuple[str, int] | None = None) -> None:
        """`listen` (host, port) adds a TCP listener (a database of one's own, in tests);
        the RDS product leaves it out and serves through its gate."""
        self.home = Path(home).resolve()
        self.options: dict[str, str] = dict(options or {})
        self.listen = listen
        digest = hashlib.sha1(str(self.home).encode(), usedforsecurity=False).hexdigest()[:16]
        self.base = SERVER_ROOT / digest
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def load(cls, home: str | os.PathLike[str]) -> PostgresServer:
        description = json.loads((Path(home) / "server.json").read_text())
        listen = description.get("listen")
        return cls(home, options=description.get("options", {}),
                   listen=(listen[0], int(listen[1])) if listen else None)

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.json").write_text(json.dumps(
            {"engine": "PostgreSQL", "options": self.options, "base": str(self.base),
             "listen": list(self.listen) if self.listen else None},
            indent=1, sort_keys=True))

    # ----- paths ---------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base / "run"

    @property
    def port(self) -> int:
        return self.listen[1] if self.listen else PG_PORT

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{self.port}"

    @property
    def log_file(self) -> Path:
        return self.base / "postgres.log"

    @property
    def admin_file(self) -> Path:
        return self.home / "admin.json"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").exists() and self.admin_file.exists()

    # ----- lifecycle -------------------------------------------------------------------------

    def _prepare_dirs(self) -> None:
        uid, gid = _run_as()
        SERVER_ROOT.mkdir(mode=0o711, exist_ok=True)
        os.chmod(SERVER_ROOT, 0o711)  # noqa: S103 - traversable, not listable
        self.base.mkdir(mode=0o700, exist_ok=True)
        os.chown(self.base, uid, gid)
        for sub in (self.socket_dir,):
            sub.mkdir(mode=0o700, exist_ok=True)
            os.chown(sub, uid, gid)

    def initialize(self) -> None:
        """initdb as the postgres user: scram-sha-256 everywhere, UTF8, C collation."""
        self._prepare_dirs()
        if self.datadir.exists():
            shutil.rmtree(self.datadir)
        password = secrets.token_urlsafe(24)
        pwfile = self.base / "pwfile"
        pwfile.write_text(password + "\n")
        uid, gid = _run_as()
        os.chown(pwfile, uid, gid)
        os.chmod(pwfile, 0o600)
        try:
            done = subprocess.run(
                [str(bin_dir() / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"],
                **_as_postgres(), capture_output=True, timeout=120, check=False,
                cwd=str(self.base))
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise PostgresError(f"initdb failed: {done.stderr.decode(errors='replace')[-800:]}")
        self.admin_file.parent.mkdir(parents=True, exist_ok=True)
        self.admin_file.touch(mode=0o600)
        self.admin_file.write_text(json.dumps({"password": password}))
        (self.datadir / "pg_hba.conf").write_text(
            "# written by the RDS emulator: scram-sha-256, socket and TCP (when it listens)\n"
            "local all all scram-sha-256\n"
            "host all all 0.0.0.0/0 scram-sha-256\n")

    def _write_config(self) -> None:
        options = {**BASE_OPTIONS, **self.options,
                   "unix_socket_directories": _quote_literal(str(self.socket_dir))}
        if self.listen:
            options["listen_addresses"] = _quote_literal(self.listen[0])
        lines = [f"{name} = {value}" for name, value in sorted(options.items())]
        path = self.datadir / "postgresql.auto.conf"
        path.write_text("# written by the RDS emulator\n" + "\n".join(lines) + "\n")
        uid, gid = _run_as()
        os.chown(path, uid, gid)

    def start(self, timeout: float = 60.0) -> None:
        self.save()
        if not self.initialized:
            self.initialize()
        self._prepare_dirs()
        self._write_config()
        if self.running:
            return
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                [str(bin_dir() / "postgres"), "-D", str(self.datadir), "-p", str(self.port)],
                **_as_postgres(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                cwd=str(self.base), start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresError(f"postgres exited: {self._log_tail()}")
            if self._answers():
                return
            time.sleep(0.2)
        raise PostgresError(f"postgres did not answer in {timeout:.0f}s: {self._log_tail()}")

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            with self.admin() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    @property
    def pid(self) -> int | None:
        try:
            pid = int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        state = _proc_state(pid)
        return None if state in ("Z", "") else pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def stop(self, timeout: float = 20.0) -> None:
        """Fast shutdown (SIGINT: clients are cut off, as on an RDS restart)."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and _proc_state(pid) not in ("Z", ""):
                time.sleep(0.1)
            if _proc_state(pid) not in ("Z", ""):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
            self._process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)

    # ----- administration --------------------------------------------------------------------

    def _admin_password(self) -> str:
        return str(json.loads(self.admin_file.read_text())["password"])

    @contextlib.contextmanager
    def admin(self, database: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                               password=self._admin_password(), dbname=database,
                               autocommit=True, connect_timeout=5)
        try:
            yield conn
        finally:
            conn.close()

    def execute(self, sql: str | pgsql.Composable, args: Any = None,
                database: str = "postgres") -> list[tuple]:
        with self.admin(database) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []

    def open_proxied(self, client: tuple[str, int], server: tuple[str, int]) -> socket.socket:
        """A connection to the server's socket for one gate client (PostgreSQL has no PROXY
        protocol: the server sees a local client; the gate already checked the whitelist)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"(no log at {self.log_file})"
        return " | ".join(text)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def reap_orphans(root: str | os.PathLike[str]) -> int:
    """Stop the postgres servers of instances under `root` (this emulator's RDS directory)
    that are still running after a crash; nobody else's servers are touched."""
    stopped = 0
    for description in Path(root).glob("*/server.json"):
        try:
            engine = json.loads(description.read_text()).get("engine")
        except (OSError, ValueError):
            continue
        if engine != "PostgreSQL":
            continue
        server = PostgresServer(description.parent)
        if server.running:
            server.stop()
            stopped += 1
    return stopped
