"""Private MariaDB servers: one real `mariadbd` per emulated RDS instance.

Why: an RDS stand-in that only pretends would accept what real MySQL rejects (the 767-byte
index limit, wrong passwords, missing grants). Each instance gets its own datadir, config,
admin socket and process under a `home` directory, so it survives an emulator restart and
can be stopped, restarted and deleted without touching any other server on the machine.

The emulator administers the server as `root` over a private unix socket with a random
password kept in `home/admin.cnf` (0600). Clients normally reach the server through the RDS
whitelist gate, which speaks the PROXY protocol on the same socket so that MariaDB sees each
client's real address (`user()` shows 'k3s@10.0.1.11', as on RDS).

Every server also has its own `tmpdir` (`home/tmp`): a starting mariadbd deletes every
`#sql*` file in its tmpdir, so servers sharing /tmp delete each other's temporary tables,
which made one of several concurrent `mariadb-install-db` runs abort (error 1051).

A new datadir is a copy of a pristine one (`TEMPLATE_ROOT`, one per MariaDB build and install
options) when there is one: `mariadb-install-db` takes about 2 s, a copy about 0.1 s, and every
RDS instance a test buys waits for it. The first install on a machine makes the template.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pymysql

from sandbox import netns as netns_helpers
from sandbox.private_dir import private_dir

MARIADBD = "mariadbd"
INSTALL_DB = "mariadb-install-db"
SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; keep a margin
# Both under world-writable directories: used only after `_private_dir` made sure this user
# owns them, 0700 and not a symlink (sandbox/private_dir.py).
SHORT_SOCKET_DIR = Path(f"/tmp/aliyun-emulator-mysqld-{os.geteuid()}")  # noqa: S108

# Small and quick: these servers hold a few kine tables, not production data.
BASE_OPTIONS: dict[str, str] = {
    "innodb_buffer_pool_size": "16M",
    "innodb_log_file_size": "4M",
    "innodb_flush_log_at_trx_commit": "2",
    "performance_schema": "OFF",
    "skip_name_resolve": "ON",
    "skip_log_bin": "",
    "character_set_server": "utf8",
    "collation_server": "utf8_general_ci",
    "max_connections": "300",
    "max_allowed_packet": "64M",
    "default_storage_engine": "InnoDB",
    "sql_mode": "STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
                "NO_ENGINE_SUBSTITUTION",
}
INSTALL_OPTIONS = ("--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M")
# Pristine datadirs, as `mariadb-install-db` left them (root without a password, no server
# started on them yet), keyed by the binaries and the whole install command that made them.
TEMPLATE_ROOT = Path(f"/var/tmp/aliyun-emulator-mysqld-templates-{os.geteuid()}")  # noqa: S108


class MariaDBError(RuntimeError):
    """The server could not be initialised, started or stopped; the message names the log."""


def _short_socket_path(home: Path) -> Path:
    candidate = home / "admin.sock"
    if len(str(candidate)) <= SOCKET_PATH_LIMIT:
        return candidate
    if not private_dir(SHORT_SOCKET_DIR):
        raise MariaDBError(f"{SHORT_SOCKET_DIR} is not a directory of this user with mode 0700: "
                           "remove it")
    digest = hashlib.sha1(str(home).encode(), usedforsecurity=False).hexdigest()[:16]
    return SHORT_SOCKET_DIR / f"{digest}.sock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class MariaDBServer:
    """One private mariadbd, described by `home/server.json` and run from `home/data`.

    `listen` (host, port) adds a TCP listener (inside `netns` when given); without it the
    server only has its unix socket, which is how the RDS product runs it behind its gate.
    `options` are extra server variables (e.g. innodb_default_row_format) kept in the
    generated my.cnf, so they hold across restarts.
    """

    def __init__(
        self, home: str | os.PathLike[str], *, listen: tuple[str, int] | None = None,
        netns: str | None = None, options: Mapping[str, str] | None = None,
        proxy_protocol: bool = True,
    ) -> None:
        self.home = Path(home).resolve()
        self.listen = listen
        self.netns = netns
        self.options: dict[str, str] = dict(options or {})
        self.proxy_protocol = proxy_protocol
        self._process: subprocess.Popen[bytes] | None = None

    # ----- persisted description ---------------------------------------------------------

    @classmethod
    def load(cls, home: str | os.PathLike[str]) -> MariaDBServer:
        """The server previously saved in `home` (after an emulator restart)."""
        description = json.loads((Path(home) / "server.json").read_text())
        listen = tuple(description["listen"]) if description.get("listen") else None
        return cls(
            home, listen=listen, netns=description.get("netns"),  # type: ignore[arg-type]
            options=description.get("options", {}),
            proxy_protocol=description.get("proxy_protocol", True),
        )

    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        description = {
            "listen": list(self.listen) if self.listen else None, "netns": self.netns,
            "options": self.options, "proxy_protocol": self.proxy_protocol,
        }
        path = self.home / "server.json"
        path.write_text(json.dumps(description, indent=1, sort_keys=True))

    # ----- paths -------------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        return self.home / "data"

    @property
    def socket_path(self) -> Path:
        return _short_socket_path(self.home)

    @property
    def pid_file(self) -> Path:
        return self.home / "mariadbd.pid"

    @property
    def error_log(self) -> Path:
        return self.home / "error.log"

    @property
    def config_file(self) -> Path:
        return self.home / "my.cnf"

    @property
    def admin_file(self) -> Path:
        return self.home / "admin.cnf"

    @property
    def tmpdir(self) -> Path:
        return self.home / "tmp"

    @property
    def initialized(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    # ----- lifecycle ---------------------------------------------------------------------

    def initialize(self) -> None:
        """Create the datadir (once): a copy of the template, or `mariadb-install-db` (which
        then makes the template); root gets a password on start.

        The copy or install goes to `data.partial`, renamed to `data` only when it succeeded:
        a failed or interrupted one must not leave a `data/mysql` that the next attempt
        takes for a finished one.
        """
        if self.initialized:
            return
        if shutil.which(INSTALL_DB) is None or shutil.which(MARIADBD) is None:
            raise MariaDBError(f"{INSTALL_DB}/{MARIADBD} not found: install mariadb-server")
        self.home.mkdir(parents=True, exist_ok=True)
        self.tmpdir.mkdir(exist_ok=True)
        partial = self.home / "data.partial"
        for leftover in (self.datadir, partial):  # half-made datadirs from a crash
            if leftover.exists():
                shutil.rmtree(leftover)
        template = _template_datadir()
        if template is not None and _copy_tree(template, partial):
            partial.rename(self.datadir)
        else:
            self._install(partial)
            _save_template(partial)
            partial.rename(self.datadir)
        if not self.admin_file.exists():
            self._write_admin_file(password="")

    def _install(self, partial: Path) -> None:
        try:
            result = subprocess.run(
                install_argv(partial, self.tmpdir),
                capture_output=True, text=True, timeout=120, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise MariaDBError(f"{INSTALL_DB} did not finish in {exc.timeout}s") from None
        if result.returncode != 0:
            raise MariaDBError(f"{INSTALL_DB} failed: {result.stderr[-2000:]}")

    def spawn(self) -> None:
        """Start mariadbd without waiting for it (`wait_ready` waits).

        A server on this datadir that this object did not start (left by a crashed
        emulator) is stopped first, so the one that runs always has the current config.
        """
        if self._process is not None and self._process.poll() is None:
            return
        self.reap_leftover()
        self.initialize()
        self.tmpdir.mkdir(exist_ok=True)  # servers initialised before tmpdir existed
        self.save()
        self._write_config()
        log = (self.home / "mariadbd.out").open("ab")
        try:
            self._process = subprocess.Popen(
                [*netns_helpers.exec_prefix(self.netns), MARIADBD,
                 f"--defaults-file={self.config_file}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the admin socket answers; secure root on the first boot."""
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise MariaDBError(
                    f"mariadbd exited with {self._process.returncode}: {self._log_tail()}",
                )
            try:
                with self.admin() as conn:
                    conn.ping()
                break
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise MariaDBError(
                        f"mariadbd not ready after {timeout}s: {self._log_tail()}",
                    ) from None
                time.sleep(0.05)
        self._secure_root()

    def start(self, timeout: float = 60.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); afterwards no process and no socket remain."""
        pid = self.pid
        if pid is not None:
            self._terminate(pid, timeout)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=1)
            self._process = None
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        if self.socket_path.is_socket() and not self._socket_answers():
            self.socket_path.unlink()

    def destroy(self) -> None:
        """Stop the server and delete its home (datadir, logs, config)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def reap_leftover(self) -> None:
        """Kill a mariadbd a crashed emulator left on this datadir; drop a stale pidfile."""
        pid = self._pid_from_file()
        if pid is not None and _pid_alive(pid) and str(self.config_file) in _cmdline(pid):
            self._terminate(pid, 20.0)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()

    @property
    def pid(self) -> int | None:
        """Pid of the running mariadbd, or None."""
        if self._process is not None and self._process.poll() is None:
            return self._process.pid
        pid = self._pid_from_file()
        if pid is not None and _pid_alive(pid) and str(self.config_file) in _cmdline(pid):
            return pid
        return None

    @property
    def running(self) -> bool:
        return self.pid is not None

    # ----- administration ----------------------------------------------------------------

    @contextlib.contextmanager
    def admin(self, database: str | None = None) -> Iterator[pymysql.connections.Connection]:
        """A root connection over the private socket (autocommit)."""
        conn = pymysql.connect(
            unix_socket=str(self.socket_path), user="root", password=self._admin_password(),
            database=database, autocommit=True, connect_timeout=5, charset="utf8mb4",
        )
        try:
            yield conn
        finally:
            conn.close()

    def execute(self, sql: str, args: Any = None, database: str | None = None) -> list[tuple]:
        """Run one statement as root; returns its rows."""
        with self.admin(database) as conn, conn.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())

    def set_option(self, name: str, value: str, *, apply_now: bool = True) -> None:
        """Persist a server variable in my.cnf and, if the server runs, `SET GLOBAL` it.

        The value is sent as a number when it is one: MariaDB refuses a quoted number for a
        numeric variable (`SET GLOBAL wait_timeout = '60'` is error 1232, "Incorrect
        argument type"). It reaches my.cnf only once the server took it.
        """
        if apply_now and self.running:
            self.execute(f"SET GLOBAL {_identifier(name)} = %s", (typed_value(value),))
        self.options[name] = value
        self.save()
        self._write_config()

    def replace_options(self, options: Mapping[str, str]) -> None:
        """Put back a previous set of options (my.cnf included), e.g. after a refusal."""
        self.options = dict(options)
        self.save()
        self._write_config()

    def global_variable(self, name: str) -> str | None:
        rows = self.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
        return rows[0][1] if rows else None

    def open_proxied(self, client: tuple[str, int], server: tuple[str, int]) -> socket.socket:
        """A socket to this server that announces `client` as the peer (PROXY protocol v1).

        Why: the gate forwards connections over the unix socket; without the header MariaDB
        would see every client as 'localhost'.
        """
        family = "TCP6" if ":" in client[0] else "TCP4"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
            header = f"PROXY {family} {client[0]} {server[0]} {client[1]} {server[1]}\r\n"
            sock.sendall(header.encode())
        except OSError:
            sock.close()
            raise
        return sock

    # ----- internals ---------------------------------------------------------------------

    def _write_config(self) -> None:
        options = dict(BASE_OPTIONS)
        options.update({
            "datadir": str(self.datadir), "socket": str(self.socket_path),
            "pid_file": str(self.pid_file), "log_error": str(self.error_log), "user": "root",
            "tmpdir": str(self.tmpdir),
        })
        if self.listen:
            options["bind_address"], options["port"] = self.listen[0], str(self.listen[1])
        else:
            options["skip_networking"] = "ON"
        if self.proxy_protocol:
            options["proxy_protocol_networks"] = "localhost"
        options.update(self.options)
        lines = ["[mariadbd]"]
        lines += [f"{name}={value}" if value != "" else name for name, value in options.items()]
        self.config_file.write_text("\n".join(lines) + "\n")

    def _write_admin_file(self, password: str) -> None:
        text = f"[client]\nuser=root\npassword={password}\nsocket={self.socket_path}\n"
        fd = os.open(self.admin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)

    def _admin_password(self) -> str:
        try:
            for line in self.admin_file.read_text().splitlines():
                if line.startswith("password="):
                    return line.split("=", 1)[1]
        except FileNotFoundError:
            pass
        return ""

    def _secure_root(self) -> None:
        """First boot: give root a random password and drop every other built-in login.

        Why: proxied client connections arrive on the same socket, and MariaDB matches
        socket connections against '@localhost' accounts; a passwordless or unix_socket root
        would let any whitelisted client in as root.
        """
        if self._admin_password():
            return
        password = secrets.token_urlsafe(24)
        with self.admin() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT user, host FROM mysql.user")
            for user, host in cursor.fetchall():
                if (user, host) not in (("root", "localhost"), ("mariadb.sys", "localhost")):
                    cursor.execute("DROP USER %s@%s", (user, host))
            cursor.execute(
                "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password "
                "USING PASSWORD(%s)", (password,),
            )
        self._write_admin_file(password)

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _terminate(self, pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            self._reap_child()
            time.sleep(0.05)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                self._reap_child()
                time.sleep(0.05)
        self._reap_child()

    def _reap_child(self) -> None:
        if self._process is not None:
            self._process.poll()

    def _socket_answers(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            return False
        finally:
            probe.close()
        return True

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return f"(no {self.error_log})"
        return " | ".join(text.strip().splitlines()[-lines:])


def install_argv(datadir: Path, tmpdir: Path) -> list[str]:
    """The `mariadb-install-db` command for a new datadir (also what a template is keyed on)."""
    return [INSTALL_DB, "--no-defaults", f"--datadir={datadir}", "--user=root",
            "--auth-root-authentication-method=normal", "--skip-test-db",
            f"--tmpdir={tmpdir}", *INSTALL_OPTIONS]


def _template_key() -> str | None:
    """Which MariaDB build and install command a template belongs to (None: not installed).

    The whole argv, with the per-server paths as placeholders: any other option changed there
    makes different datadirs, so it must not reuse the old template."""
    identity = install_argv(Path("<datadir>"), Path("<tmpdir>"))
    for tool in (INSTALL_DB, MARIADBD):
        found = shutil.which(tool)
        if found is None:
            return None
        info = Path(found).resolve().stat()
        identity += [str(Path(found).resolve()), str(info.st_size), str(info.st_mtime_ns)]
    return hashlib.sha256("\0".join(identity).encode()).hexdigest()[:20]


def _template_directory() -> Path | None:
    """This key's directory in the private template root (None: no key, or not safe)."""
    key = _template_key()
    if key is None or not private_dir(TEMPLATE_ROOT):
        return None
    directory = TEMPLATE_ROOT / key
    return directory if private_dir(directory) else None


def _template_datadir() -> Path | None:
    directory = _template_directory()
    if directory is None:
        return None
    template = directory / "data"
    return template if (template / "mysql").is_dir() and not template.is_symlink() else None


def _copy_tree(source: Path, target: Path) -> bool:
    """Copy a datadir; False (and nothing left at `target`) when it could not be copied."""
    try:
        shutil.copytree(source, target, symlinks=True)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        return False
    return True


def _save_template(datadir: Path) -> None:
    """Keep a copy of a fresh install as the template, once per key.

    Under an exclusive lock (two test processes may both have just installed one), copied to
    `data.<pid>.partial` and renamed to `data`, so a copy in progress is never taken for a
    template; partial copies of a holder that crashed are removed first. A template that
    cannot be written is no error: the next datadir is installed again."""
    directory = _template_directory()
    if directory is None:
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            for leftover in directory.glob("data.*.partial"):  # only made under this lock
                shutil.rmtree(leftover, ignore_errors=True)
            if (directory / "data" / "mysql").is_dir():
                return
            partial = directory / f"data.{os.getpid()}.partial"
            if _copy_tree(datadir, partial):
                partial.rename(directory / "data")


def typed_value(value: str) -> int | float | str:
    """'60' → 60, '0.5' → 0.5, 'ON' → 'ON': how a parameter value goes into SET GLOBAL."""
    text = str(value).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if re.fullmatch(r"-?\d+\.\d*|-?\.\d+", text):
        return float(text)
    return str(value)


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a server variable name: {name!r}")
    return name


def mariadbd_processes(root: str | os.PathLike[str]) -> list[int]:
    """Pids of every mariadbd whose config lies under `root` (found via /proc, not pidfiles)."""
    marker = f"--defaults-file={Path(root).resolve()}"
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _pid_alive(int(entry.name)):
            command = _cmdline(int(entry.name))
            if MARIADBD in command.split(" ", 1)[0] and marker in command:
                pids.append(int(entry.name))
    return pids


def reap_orphans(root: str | os.PathLike[str], timeout: float = 20.0) -> int:
    """Kill every mariadbd run from under `root`, even if its home is gone (crash cleanup)."""
    pids = mariadbd_processes(root)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(pids)
