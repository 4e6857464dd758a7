"""A real OpenSSH server on 127.0.0.1 with its own users, for the SSH adapter's tests.

Why a private mount namespace: the tests need non-root users (a NOPASSWD sudoer, a sudoer
with a password, a user without sudo) without touching the machine's /etc. sshd runs under
`unshare --mount` with copies of /etc/passwd, /etc/shadow, /etc/group and /etc/sudoers.d
bind-mounted over the real ones, and private tmpfs on /run (for /run/sshd), /etc/rancher and
/var/lib/rancher (what an install step writes); everything vanishes with the process.
Leftovers of a crashed run are found by the directory prefix and killed on the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.k3s.testing import listening_pid

PREFIX = "panel-sshtest-"
PASSWORDS = {"pt_nopw": "Nopw-pass-1", "pt_pw": "Sudo-pass-2", "pt_nosudo": "Plain-pass-3"}
UID_BASE = 61_500


@dataclass
class ClientKey:
    kind: str
    private: str
    public: str
    passphrase: str | None = None


@dataclass
class SshServer:
    directory: Path
    port: int
    host_fingerprint: str
    keys: dict[str, ClientKey] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    host = "127.0.0.1"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        shutil.rmtree(self.directory, ignore_errors=True)

    def home(self, user: str) -> Path:
        return self.directory / "home" / user


def _run(argv: list[str], stdin: str | None = None) -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {proc.stderr.strip()}")
    return proc.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def kill_leftovers() -> None:
    """Stop sshd processes of earlier runs whose pytest process is gone."""
    for directory in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = directory.name[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        pidfile = directory / "sshd.pid"
        if pidfile.exists():
            with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                os.killpg(int(pidfile.read_text().strip()), signal.SIGKILL)
        shutil.rmtree(directory, ignore_errors=True)


def _make_key(directory: Path, kind: str, bits: list[str], passphrase: str = "") -> ClientKey:
    path = directory / f"id_{kind}"
    _run(["ssh-keygen", "-q", "-t", *bits, "-N", passphrase, "-C", f"test-{kind}", "-f",
          str(path)])
    return ClientKey(kind, path.read_text(), (path.with_suffix(".pub")).read_text().strip(),
                     passphrase or None)


def start_sshd() -> SshServer:
    for tool in ("/usr/sbin/sshd", "unshare", "ssh-keygen", "openssl", "sudo"):
        if not shutil.which(tool):
            raise RuntimeError(f"{tool} is missing: install openssh-server, util-linux, "
                               "openssl and sudo to run the SSH adapter tests")
    kill_leftovers()
    directory = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    directory.chmod(0o755)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host_key")])
    fingerprint = _run(["ssh-keygen", "-lf", str(directory / "host_key.pub")]).split()[1]
    keys = {
        "rsa-pem": _make_key(directory, "rsa-pem", ["rsa", "-b", "2048", "-m", "PEM"]),
        "ed25519": _make_key(directory, "ed25519", ["ed25519"]),
        "ecdsa-pass": _make_key(directory, "ecdsa-pass", ["ecdsa", "-b", "256"], "key-pass"),
    }
    (directory / "keys").mkdir()
    authorized = "\n".join(k.public for k in keys.values()) + "\n"
    for user in ("root", "pt_nopw"):
        (directory / "keys" / user).write_text(authorized)

    etc = directory / "etc"
    etc.mkdir()
    passwd = Path("/etc/passwd").read_text()
    shadow = Path("/etc/shadow").read_text()
    group = Path("/etc/group").read_text()
    for offset, (user, password) in enumerate(PASSWORDS.items()):
        uid = UID_BASE + offset
        home = directory / "home" / user
        home.mkdir(parents=True)
        os.chown(home, uid, uid)
        hashed = _run(["openssl", "passwd", "-6", "-stdin"], password + "\n").strip()
        passwd += f"{user}:x:{uid}:{uid}::{home}:/bin/bash\n"
        shadow += f"{user}:{hashed}:19000:0:99999:7:::\n"
        group += f"{user}:x:{uid}:\n"
    (etc / "passwd").write_text(passwd)
    (etc / "shadow").write_text(shadow)
    (etc / "shadow").chmod(0o640)
    (etc / "group").write_text(group)
    sudoers = etc / "sudoers.d"
    sudoers.mkdir()
    (sudoers / "panel-test").write_text(
        "pt_nopw ALL=(ALL) NOPASSWD:ALL\npt_pw ALL=(ALL) ALL\n")
    (sudoers / "panel-test").chmod(0o440)

    # A free port is free when picked, not necessarily when sshd binds it a moment later.
    for _attempt in range(5):
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
            f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'keys'}/%u\n"
            "StrictModes no\nPermitRootLogin yes\nPubkeyAuthentication yes\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\nUsePAM yes\n"
            "PrintMotd no\nMaxStartups 50:30:100\nAllowTcpForwarding yes\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
            "Match User pt_nosudo\n  AllowTcpForwarding no\n")
        script = (
            "set -e\n"
            f"mount --bind {etc}/passwd /etc/passwd\n"
            f"mount --bind {etc}/shadow /etc/shadow\n"
            f"mount --bind {etc}/group /etc/group\n"
            f"mount --bind {sudoers} /etc/sudoers.d\n"
            "mount -t tmpfs -o mode=0755 tmpfs /run\n"
            "mkdir -m 0755 /run/sshd\n"
            # What a K3s install step writes stays in this namespace, never on the machine's /etc.
            "mkdir -p /etc/rancher /var/lib/rancher\n"
            "mount -t tmpfs -o mode=0755 tmpfs /etc/rancher\n"
            "mount -t tmpfs -o mode=0755 tmpfs /var/lib/rancher\n"
            f"exec /usr/sbin/sshd -D -e -f {config}\n"
        )
        log = open(directory / "sshd.log", "wb")  # noqa: SIM115 - handed to the child
        process = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                    script], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        log.close()
        server = SshServer(directory, port, fingerprint, keys, process)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = (directory / "sshd.log").read_text()
                if "Address already in use" in output:
                    break  # the other test process took the port first: another one
                server.stop()
                raise RuntimeError(f"sshd did not start: {output}")
            # Ours, not merely answering: a connect could reach the other process's sshd.
            if listening_pid("127.0.0.1", port, process.pid):
                return server
            time.sleep(0.05)
        else:
            server.stop()
            raise RuntimeError("sshd did not listen within 10 s")
    raise RuntimeError("sshd found no free port in 5 tries")
