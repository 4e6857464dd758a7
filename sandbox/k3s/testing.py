"""Test harness pieces: a scratch MariaDB and "hosts" with private K3s directories.

Why: tests (ours and the panel's) need a real MySQL-compatible datastore and several K3s
nodes on one machine. A `ScratchHost` is a mount+UTS namespace with tmpfs over the
directories a lab host keeps private (/etc/rancher, /var/lib/rancher, /usr/local/bin,
/etc/systemd/system, /run), so the stand-in uses its real default paths without touching the
machine's own. Everything is named with a per-run prefix and removed on close, or by
`cleanup_leftovers()` after a crash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pymysql

PREFIX = "k3sstandin"
PRIVATE_DIRS = ("/etc/rancher", "/var/lib/rancher", "/usr/local/bin", "/etc/systemd/system",
                "/run")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_leftovers() -> None:
    """Kill holders/mariadbd of earlier runs whose test process is gone; remove their dirs."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        marker = f"{PREFIX}-"
        if marker not in cmdline:
            continue
        owner = cmdline.split(marker, 1)[1].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry), signal.SIGKILL)
    for path in os.listdir(tempfile.gettempdir()):
        if path.startswith(f"{PREFIX}-"):
            owner = path.split("-")[1]
            if owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(os.path.join(tempfile.gettempdir(), path), ignore_errors=True)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def listening_pid(host: str, port: int, pid: int) -> bool:
    """Whether process `pid` itself holds the TCP listener on host:port (IPv4).

    Why: a port picked by `free_port` is free only when picked; another process (the other
    test process, another engineer's run) may bind it first, and then a connect succeeds
    against *its* server. The listener's socket inode must be one of `pid`'s descriptors."""
    address = f"{struct.unpack('=I', socket.inet_aton(host))[0]:08X}:{port:04X}"
    inodes = set()
    try:
        with open(f"/proc/{pid}/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == address and fields[3] == "0A":  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in descriptors:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


class ScratchMariaDB:
    """A private mariadbd on a loopback address, configured like an old RDS: utf8mb4 default
    charset and COMPACT rows, so the 767-byte index limit is in force until switched off with
    `large_prefix(True)` (which sets innodb_default_row_format=dynamic)."""

    def __init__(self, host: str = "127.0.0.1", user: str = "k3s",
                 password: str = "k3s-Pass_1") -> None:  # noqa: S107 - scratch DB
        if not shutil.which("mariadbd"):
            raise RuntimeError("mariadbd is not installed; tests need MariaDB 10.x")
        self.host, self.user, self.password = host, user, password
        self.dir = tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}-db-")
        self.socket = os.path.join(self.dir, "mysqld.sock")
        # A private tmpdir: a mariadbd starting elsewhere on the machine deletes #sql* files
        # in /tmp, including another server's bootstrap tables.
        self.tmpdir = os.path.join(self.dir, "tmp")
        os.mkdir(self.tmpdir)
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.dir}/data", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             f"--tmpdir={self.tmpdir}"],
            check=True, capture_output=True)
        # The port is free when picked, not necessarily when mariadbd binds it: if another
        # process took it first, this server exits ("Bind on TCP/IP port") and the next port
        # is tried; the port is trusted only once this very process listens on it.
        for _attempt in range(5):
            self.port = free_port(host)
            self.proc = self._spawn()
            if self._wait_listening(timeout=30):
                break
            self._stop()
        else:
            raise RuntimeError(f"mariadbd did not listen on {host}; see {self.dir}/error.log")
        self.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        self.sql(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%'")

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir}/data", "--user=root",
             f"--tmpdir={self.tmpdir}", f"--socket={self.socket}", f"--bind-address={self.host}",
             f"--port={self.port}",
             "--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M",
             "--performance-schema=OFF", "--skip-name-resolve", "--skip-log-bin",
             "--innodb-default-row-format=compact", "--character-set-server=utf8mb4",
             "--collation-server=utf8mb4_general_ci", "--innodb-flush-log-at-trx-commit=2",
             f"--log-error={self.dir}/error.log",
             f"--pid-file={self.dir}/{PREFIX}-{os.getpid()}-mariadbd.pid"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _wait_listening(self, timeout: float) -> bool:
        """True once our own mariadbd listens on host:port; False if it exited or never did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if listening_pid(self.host, self.port, self.proc.pid):
                return True
            time.sleep(0.1)
        return False

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def sql(self, statement: str, database: str | None = None) -> list[tuple]:
        conn = pymysql.connect(unix_socket=self.socket, user="root", database=database,
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return list(cur.fetchall())
        finally:
            conn.close()

    def endpoint(self, database: str) -> str:
        """K3s's --datastore-endpoint for `database`."""
        return f"mysql://{self.user}:{self.password}@tcp({self.host}:{self.port})/{database}"

    def large_prefix(self, enabled: bool) -> None:
        self.sql(f"SET GLOBAL innodb_default_row_format = '{'dynamic' if enabled else 'compact'}'")

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class ScratchHost:
    """A "host" whose K3s directories are private tmpfs mounts, with its own hostname."""

    def __init__(self, hostname: str) -> None:
        for path in PRIVATE_DIRS:
            os.makedirs(path, exist_ok=True)
        self.hostname = hostname
        mounts = "; ".join(f"mount -t tmpfs -o mode=0755 {PREFIX} {p}" for p in PRIVATE_DIRS)
        script = (f"set -e; {mounts}; hostname {hostname}; "
                  f"exec -a {PREFIX}-{os.getpid()}-{hostname} sleep infinity")
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--uts", "--propagation", "private", "bash", "-c", script],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.path("/run")) or not self._ready():
            if time.monotonic() > deadline or self.holder.poll() is not None:
                raise RuntimeError(f"scratch host {hostname} did not come up")
            time.sleep(0.05)
        self.processes: list[subprocess.Popen] = []

    def _ready(self) -> bool:
        try:
            with open(f"/proc/{self.holder.pid}/cmdline", "rb") as handle:
                return handle.read().startswith(PREFIX.encode())
        except OSError:
            return False

    def path(self, inside: str) -> str:
        """Where a path of this host is visible from outside (through /proc/PID/root)."""
        return f"/proc/{self.holder.pid}/root{inside}"

    def command(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-u", "--", *argv]

    def run(self, argv: list[str], env: dict[str, str] | None = None, timeout: float = 120,
            input_text: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), env=env, capture_output=True, text=True,
                              timeout=timeout, input=input_text, check=False)

    def start(self, argv: list[str], log_path: str,
              env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
        proc = subprocess.Popen(self.command(argv), stdout=log, stderr=subprocess.STDOUT,
                                env=env, stdin=subprocess.DEVNULL)
        log.close()
        self.processes.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._kill_namespace_members()
        self.holder.kill()
        self.holder.wait()

    def member_pids(self) -> list[int]:
        """The processes in this host's mount namespace, the holder excepted.

        Why not `ps` inside the host: a scratch host has no PID namespace of its own, so `ps`
        there lists every process of the machine, other test runs' K3s included."""
        try:
            ours = os.readlink(f"/proc/{self.holder.pid}/ns/mnt")
        except OSError:
            return []
        members = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.holder.pid:
                continue
            try:
                if os.readlink(f"/proc/{entry}/ns/mnt") == ours:
                    members.append(int(entry))
            except OSError:
                continue
        return members

    def command_lines(self) -> list[str]:
        """The command lines of this host's processes (see member_pids)."""
        lines = []
        for pid in self.member_pids():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    lines.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
        return lines

    def _kill_namespace_members(self) -> None:
        """Kill whatever still runs in this host's mount namespace (e.g. a unit's k3s)."""
        for pid in self.member_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
