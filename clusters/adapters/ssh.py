"""SSH to a host (paramiko): pinned host key, password or key login, sudo, streamed output,
private file upload and TCP tunnels.

Why each choice:
- The host key is pinned: the first contact returns its SHA256 fingerprint for the caller to
  store; afterwards a different key fails hard (someone may be in the middle).
- A sudo password is written to sudo's stdin (`sudo -S`), never placed on a command line;
  whether sudo needs it at all is probed once (`sudo -n true`), because sending a password to
  a NOPASSWD sudo would feed it to the command's stdin instead.
- Every output line passes the caller's Redactor before reaching the callback.
- Files are created inside a fresh 0700 directory, chmod-ed, then renamed into place: no
  moment exists where another local user could read them.
- Socket/protocol failures are TransientError (worth retrying); a refused login or a changed
  host key is PermanentError with a plain sentence.
- Nothing waits for a host without a bound: every request (channel open, exec, SFTP packet)
  has an I/O timeout, so a host whose disk hangs mid-upload fails the call (TransientError)
  instead of blocking a worker forever.
- A command that outlives its timeout is stopped *on the host*: run() starts it under a
  wrapper that gives it its own process group (coreutils `timeout`, which also stops it by
  itself shortly after our deadline if the panel is gone) and records that group's id in a
  pidfile; when our side gives up (timeout, a lost lease, a cancel) a second channel kills the
  group. A command given a `lock` also holds a flock on the host for its whole life, so a
  retry cannot start a second install beside one still running (HostBusy instead).
"""

from __future__ import annotations

import codecs
import contextlib
import io
import posixpath
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import paramiko

from clusters.core.errors import PermanentError, TransientError

Stream = Literal["stdout", "stderr"]


class LineCallback(Protocol):
    """Called with each line of output, redacted; `cut` is how many characters of an
    overlong line the adapter dropped (LINE_HOLD), passed only when it dropped some."""

    def __call__(self, stream: str, text: str, cut: int = 0) -> None: ...


Redact = Callable[[str], str]

DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_COMMAND_TIMEOUT = 600.0
#: How long one request may go unanswered: opening a channel, starting a command, one SFTP
#: packet (a write of at most 32 KiB). Seconds, not minutes: a healthy host answers at once.
DEFAULT_IO_TIMEOUT = 30.0
#: After our deadline the host's own `timeout` stops the command this much later (TERM), then
#: KILLs it KILL_AFTER_SECONDS after that: the backstop for a panel that died or lost the host.
HOST_TIMEOUT_MARGIN = 10.0
KILL_AFTER_SECONDS = 5.0
#: Root-only directory (under /run, so it is gone at reboot) holding the hosts' command locks.
LOCK_DIR = "/run/k3s-panel"
#: How the wrapper says "another command holds this lock" (exit status and stderr marker).
BUSY_EXIT = 75
BUSY_MARKER = "k3s-panel: busy:"
OUTPUT_LIMIT = 8 * 1024 * 1024  # bytes kept per stream; the callback still sees every line
#: Characters of one line held while waiting for its end: a host that prints a gigabyte with
#: no newline must not hold a gigabyte in the worker. The rest of such a line is counted, not
#: kept, and the callback is told how much (the step log shows "[cut N characters]"). Far
#: above the step log's own cut (PANEL_STEP_LOG_MAX_LINE_CHARS, at most LINE_HOLD / 2 in
#: panel/settings.py), so a secret that the hold splits lies wholly in what the log drops.
LINE_HOLD = 1024 * 1024
_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def shell_join(argv: Sequence[str]) -> str:
    """argv → one shell command string, every word quoted with shlex.quote."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def _as_command(command: Sequence[str] | str) -> str:
    return command if isinstance(command, str) else shell_join(command)


class HostKeyChanged(PermanentError):
    """The host presented a key other than the one pinned at first contact."""


class CommandTimeout(TransientError):
    """A remote command did not finish in time (it has been stopped on the host)."""


class HostBusy(TransientError):
    """Another command holding the same host lock is still running there (started by an
    earlier attempt whose worker gave up on it); nothing was run. Wait, then try again."""


@dataclass(frozen=True)
class SSHTarget:
    """How to reach and log in to one host. Secrets are excluded from repr."""

    host: str
    username: str
    port: int = 22
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # PEM or OpenSSH text
    passphrase: str | None = field(default=None, repr=False)
    sudo_password: str | None = field(default=None, repr=False)  # defaults to `password`

    @property
    def label(self) -> str:
        return f"{self.username}@{self.host}" + (f":{self.port}" if self.port != 22 else "")


@dataclass
class CommandResult:
    """What a command did. stdout/stderr are NOT redacted: callers must not show them raw."""

    command: str
    exit_status: int
    stdout_bytes: bytes
    stderr_bytes: bytes

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.stderr_bytes.decode("utf-8", "replace")

    def tail(self, redact: Redact, lines: int = 10) -> str:
        """The last lines of stderr (else stdout), redacted: for an error message."""
        text = self.stderr.strip() or self.stdout.strip()
        return redact("\n".join(text.splitlines()[-lines:]))


def load_private_key(text: str, passphrase: str | None = None) -> paramiko.PKey:
    """Read an RSA/Ed25519/ECDSA key in PEM or OpenSSH form; plain errors for a person."""
    encrypted = False
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text), password=passphrase or None)
        except paramiko.PasswordRequiredException:
            encrypted = True
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    if encrypted and not passphrase:
        raise PermanentError("The SSH private key is encrypted: enter its passphrase.")
    if encrypted or passphrase:
        raise PermanentError(
            "The SSH private key could not be opened: wrong passphrase or unsupported key type.")
    raise PermanentError(
        "The SSH private key could not be read (expected an RSA, Ed25519 or ECDSA key in "
        "PEM or OpenSSH format).")


def md5_fingerprint(pkey: paramiko.PKey) -> str:
    """The key's fingerprint as ECS shows a key pair's (DescribeKeyPairs KeyPairFingerPrint:
    "the public key fingerprint format defined in RFC 4716, MD5", V2 model
    alibabacloud_ecs20140526 DescribeKeyPairsRequest): MD5 of the public key blob, colon
    hex. paramiko's get_fingerprint is that MD5."""
    return ":".join(f"{b:02x}" for b in pkey.get_fingerprint())


def same_fingerprint(one: str, other: str) -> bool:
    """Fingerprints equal however they are written (case, colons)."""
    def bare(value: str) -> str:
        return value.replace(":", "").strip().lower()
    return bool(bare(one)) and bare(one) == bare(other)


class _LineSplitter:
    """Bytes → complete text lines, decoding UTF-8 across chunk boundaries; each line comes
    with how many of its characters were beyond `hold` and dropped (0 for most)."""

    def __init__(self, hold: int = LINE_HOLD) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._hold = hold
        self._pieces: list[str] = []
        self._held = 0
        self._over = 0
        self._cr = False  # the last chunk ended with CR: a LF first in the next belongs to it

    def feed(self, data: bytes, final: bool = False) -> list[tuple[str, int]]:
        text = self._decoder.decode(data, final)
        if self._cr and text.startswith("\n"):
            # That LF ended the CRLF: a chunk that was only it leaves no CR pending.
            text, self._cr = text[1:], False
        if text:
            self._cr = text.endswith("\r")
        parts = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        lines = [self._finish(part) for part in parts[:-1]]
        self._add(parts[-1])
        if final and (self._held or self._over):
            lines.append(self._finish(""))
        return lines

    def _add(self, part: str) -> None:
        room = self._hold - self._held
        if len(part) > room:
            self._over += len(part) - max(room, 0)
            part = part[:max(room, 0)]
        if part:
            self._pieces.append(part)
            self._held += len(part)

    def _finish(self, part: str) -> tuple[str, int]:
        self._add(part)
        line, over = "".join(self._pieces), self._over
        self._pieces, self._held, self._over = [], 0, 0
        return line, over


def connect(target: SSHTarget, *, pinned_fingerprint: str | None = None,
            timeout: float = DEFAULT_CONNECT_TIMEOUT,
            io_timeout: float = DEFAULT_IO_TIMEOUT) -> SSHSession:
    """Open an authenticated session. With no pinned fingerprint the key is trusted and
    `session.host_key_fingerprint` must be stored by the caller (trust on first use).
    `io_timeout` bounds every later request of the session (see DEFAULT_IO_TIMEOUT)."""
    pkey = load_private_key(target.private_key, target.passphrase) if target.private_key else None
    if pkey is None and target.password is None:
        raise PermanentError(f"No password or private key given for {target.label}.")
    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout)
    except TimeoutError:
        raise TransientError(f"SSH to {target.label} timed out after {timeout:.0f} s "
                             "(host down, wrong address or a firewall).") from None
    except ConnectionRefusedError:
        raise TransientError(f"SSH to {target.label} was refused: is sshd running on port "
                             f"{target.port}?") from None
    except OSError as exc:
        raise TransientError(f"SSH to {target.label} failed: {exc.strerror or exc}.") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    transport.auth_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        key = transport.get_remote_server_key()
        fingerprint = key.fingerprint  # "SHA256:…", as ssh-keygen -lf prints it
        if pinned_fingerprint and fingerprint != pinned_fingerprint:
            raise HostKeyChanged(
                f"The SSH host key of {target.host} has CHANGED: expected {pinned_fingerprint}, "
                f"got {fingerprint}. The host was reinstalled or someone is intercepting the "
                "connection; verify it on the host (ssh-keygen -lf on its host key), then "
                "press \"Host key\" at the node in the cluster's Nodes table to accept the "
                "new key, and Retry.")
        _authenticate(transport, target, pkey)
    except (PermanentError, TransientError):
        transport.close()
        raise
    except paramiko.AuthenticationException:
        transport.close()
        raise PermanentError(
            f"SSH login as {target.label} failed: wrong password or key") from None
    except (paramiko.SSHException, OSError, EOFError):
        transport.close()
        # Never the peer's words: paramiko quotes what a non-SSH service sent (its banner),
        # which would turn any caller into a way to read other services' greetings.
        raise TransientError(f"SSH to {target.label} failed during the handshake: the other "
                             "side did not complete an SSH handshake.") from None
    transport.set_keepalive(30)  # installs run for minutes; NAT/firewalls drop idle flows
    return SSHSession(target, transport, fingerprint, io_timeout)


def scan_host_key(host: str, port: int = 22, *, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> str:
    """The SHA256 fingerprint a host presents now, from the key exchange alone (no login),
    for a person to compare with the pinned one before accepting it."""
    label = f"{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise TransientError(f"SSH to {label} timed out after {timeout:.0f} s.") from None
    except OSError as exc:
        raise TransientError(f"SSH to {label} failed: {exc.strerror or exc}.") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        return str(transport.get_remote_server_key().fingerprint)
    except (paramiko.SSHException, OSError, EOFError):
        raise TransientError(f"SSH to {label} failed during the handshake: the other side did "
                             "not complete an SSH handshake.") from None
    finally:
        transport.close()


def _authenticate(transport: paramiko.Transport, target: SSHTarget,
                  pkey: paramiko.PKey | None) -> None:
    if pkey is not None:
        try:
            transport.auth_publickey(target.username, pkey)
            return
        except paramiko.AuthenticationException:
            if target.password is None:
                raise
    password = target.password or ""
    try:
        transport.auth_password(target.username, password)
    except paramiko.BadAuthenticationType as exc:
        if "keyboard-interactive" not in exc.allowed_types:
            raise
        transport.auth_interactive(
            target.username, lambda _title, _instr, prompts: [password] * len(prompts))


class SSHSession:
    """One authenticated connection. Use as a context manager, or call close()."""

    def __init__(self, target: SSHTarget, transport: paramiko.Transport,
                 fingerprint: str, io_timeout: float = DEFAULT_IO_TIMEOUT) -> None:
        self.target = target
        self.io_timeout = io_timeout
        self.host_key_fingerprint = fingerprint
        self._transport = transport
        self._sudo_mode: Literal["root", "nopasswd", "password"] | None = None
        self._sftp: paramiko.SFTPClient | None = None

    def __enter__(self) -> SSHSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
        self._transport.close()

    @property
    def is_root(self) -> bool:
        return self.target.username == "root"

    # -- commands ----------------------------------------------------------------------------

    def run(self, command: Sequence[str] | str, *, sudo: bool = False,
            timeout: float = DEFAULT_COMMAND_TIMEOUT, on_line: LineCallback | None = None,
            redact: Redact | None = None, stdin: bytes | str | None = None,
            env: dict[str, str] | None = None, env_file: str | None = None,
            lock: str | None = None) -> CommandResult:
        """Run a command; stream redacted lines to `on_line(stream, text)` as they arrive.

        `command` is an argv (quoted for you) or a shell string (quote values with
        shell_join); it runs under `sh`. `env` must hold no secrets (it is on the command
        line); secrets go in an `env_file` on the host (exported with `set -a`), uploaded with
        put_file first. A non-zero exit is returned, not raised: callers decide what it means.

        Past `timeout`, or when the caller stops (an exception out of `on_line`), the command
        is killed on the host and CommandTimeout (or that exception) is raised. With `lock`
        (a name; sudo or root only) the command holds /run/k3s-panel/<lock>.lock on the host
        while it runs; if another command holds it, nothing runs and HostBusy is raised.
        """
        text = _as_command(command)
        if env or env_file:
            text = _with_environment(text, env or {}, env_file)
        as_root = sudo or self.is_root
        if lock is not None and not as_root:
            raise ValueError("a host lock lives in a root-only directory: run with sudo=True")
        token = secrets.token_hex(8)
        text = _guarded(text, token, timeout + HOST_TIMEOUT_MARGIN, lock)
        prefix_input = b""
        if sudo and not self.is_root:
            text, prefix_input = self._sudo_wrap(text)
        data = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
        result = self._exec(text, prefix_input + data, timeout, on_line, redact or (lambda s: s),
                            stop=lambda: self._stop_remote(token, sudo))
        if lock is not None and result.exit_status == BUSY_EXIT \
                and BUSY_MARKER in result.stderr:
            raise HostBusy(f"Another panel command ({lock}) is still running on "
                           f"{self.target.host}; it is not started a second time beside it.")
        return result

    def _stop_remote(self, token: str, sudo: bool) -> None:
        """Kill the process group of the command run with `token` (TERM, then KILL), through a
        new channel. Best effort and bounded: when the host cannot be reached any more, its
        own `timeout` stops the command shortly after."""
        text = _stopper(token)
        prefix_input = b""
        if sudo and not self.is_root:
            text, prefix_input = self._sudo_wrap(text)
        with contextlib.suppress(TransientError, PermanentError):
            self._exec(text, prefix_input, KILL_AFTER_SECONDS + 10.0, None, lambda s: s)

    @contextlib.contextmanager
    def _answered(self, channel: paramiko.Channel, what: str) -> Iterator[None]:
        """Bound a request paramiko waits for without a timeout (exec, subsystem): the
        channel is closed when the host has not answered within the I/O timeout."""
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            channel.close()

        timer = threading.Timer(self.io_timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except (paramiko.SSHException, OSError, EOFError):
            if expired.is_set():
                raise TransientError(f"{self.target.label} did not answer {what} within "
                                     f"{self.io_timeout:.0f} s.") from None
            raise
        finally:
            timer.cancel()

    def _start(self, command: str, stdin: bytes, timeout: float,
               stop: Callable[[], None] | None) -> paramiko.Channel:
        """A channel running `command`, its stdin sent and closed; every step bounded."""
        channel: paramiko.Channel | None = None
        started = False
        try:
            channel = self._transport.open_session(timeout=min(timeout, self.io_timeout))
            channel.settimeout(self.io_timeout)  # bounds sendall (stdin) on a stalled host
            with self._answered(channel, "a command request"):
                channel.exec_command(command)
            started = True
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if channel is not None:
                channel.close()
            if started and stop is not None:
                stop()  # it runs on the host, but would never get its input
            raise TransientError(f"Lost the SSH connection to {self.target.label}: {exc}.") \
                from None
        return channel

    def _exec(self, command: str, stdin: bytes, timeout: float, on_line: LineCallback | None,
              redact: Redact, *, stop: Callable[[], None] | None = None) -> CommandResult:
        deadline = time.monotonic() + timeout
        channel = self._start(command, stdin, timeout, stop)
        buffers: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        splitters = {"stdout": _LineSplitter(), "stderr": _LineSplitter()}

        def take(stream: str, data: bytes, final: bool = False) -> None:
            buf = buffers[stream]
            if len(buf) < OUTPUT_LIMIT:
                buf.extend(data[: OUTPUT_LIMIT - len(buf)])
            if on_line is not None:
                for line, cut in splitters[stream].feed(data, final):
                    if cut:
                        on_line(stream, redact(line), cut)
                    else:
                        on_line(stream, redact(line))

        finished = False
        try:
            while True:
                progressed = False
                while channel.recv_ready():
                    take("stdout", channel.recv(65536))
                    progressed = True
                while channel.recv_stderr_ready():
                    take("stderr", channel.recv_stderr(65536))
                    progressed = True
                if (channel.exit_status_ready() and not channel.recv_ready()
                        and not channel.recv_stderr_ready()):
                    break
                if channel.closed and not progressed:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommandTimeout(
                        f"The command on {self.target.label} did not finish within "
                        f"{timeout:.0f} s; it was stopped there.")
                if not progressed:
                    select.select([channel], [], [], min(remaining, 0.5))
            status = channel.recv_exit_status()
            finished = True
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransientError(f"Lost the SSH connection to {self.target.label}: {exc}.") \
                from None
        finally:
            channel.close()
            if not finished and stop is not None:
                stop()  # a timeout, a lost connection, or the step told to stop (LeaseLost)
        take("stdout", b"", final=True)
        take("stderr", b"", final=True)
        return CommandResult(command, status, bytes(buffers["stdout"]), bytes(buffers["stderr"]))

    def check(self, command: Sequence[str] | str, *, what: str, redact: Redact | None = None,
              **kwargs: object) -> CommandResult:
        """run(), raising PermanentError ("<what> failed on host: <tail>") on a non-zero exit."""
        result = self.run(command, redact=redact, **kwargs)  # type: ignore[arg-type]
        if not result.ok:
            tail = result.tail(redact or (lambda s: s))
            raise PermanentError(f"{what} failed on {self.target.host} (exit "
                                 f"{result.exit_status}): {tail}")
        return result

    # -- sudo --------------------------------------------------------------------------------

    def sudo_mode(self) -> Literal["root", "nopasswd", "password"]:
        """How this user becomes root; probed once per session."""
        if self._sudo_mode is None:
            self._sudo_mode = self._probe_sudo()
        return self._sudo_mode

    def _probe_sudo(self) -> Literal["root", "nopasswd", "password"]:
        if self.is_root:
            return "root"
        probe = self._exec("sudo -n true", b"", 30.0, None, lambda s: s)
        if probe.ok:
            return "nopasswd"
        if probe.exit_status == 127:
            raise PermanentError(f"{self.target.host} has no sudo; log in as root or install it.")
        self._refuse_if_not_sudoer(probe.stderr)
        password = self.target.sudo_password or self.target.password
        if not password:
            raise PermanentError(
                f"sudo on {self.target.host} asks for a password, but none was given for "
                f"{self.target.username}.")
        check = self._exec("sudo -k -S -p '' -- true", password.encode() + b"\n", 30.0, None,
                           lambda s: s)
        if check.ok:
            return "password"
        self._refuse_if_not_sudoer(check.stderr)
        if "must have a tty" in check.stderr:
            raise PermanentError(f"sudo on {self.target.host} requires a terminal (requiretty);"
                                 " allow it without one for this user.")
        raise PermanentError(f"sudo on {self.target.host} rejected the password of "
                             f"{self.target.username}.")

    def _refuse_if_not_sudoer(self, stderr: str) -> None:
        if any(text in stderr for text in ("not in the sudoers", "may not run sudo",
                                           "is not allowed to execute")):
            raise PermanentError(f"{self.target.username} may not use sudo on "
                                 f"{self.target.host}.")

    def _sudo_wrap(self, command: str) -> tuple[str, bytes]:
        inner = shell_join(["sh", "-c", command])
        mode = self.sudo_mode()
        if mode == "nopasswd":
            return f"sudo -n -- {inner}", b""
        password = self.target.sudo_password or self.target.password or ""
        # -k: always ask, so the password line is consumed by sudo, never by the command.
        return f"sudo -k -S -p '' -- {inner}", password.encode() + b"\n"

    # -- files -------------------------------------------------------------------------------

    def _sftp_client(self) -> paramiko.SFTPClient:
        """The session's SFTP client, opened with every step bounded by the I/O timeout
        (paramiko's own from_transport waits for the subsystem and its version for ever)."""
        if self._sftp is None:
            channel: paramiko.Channel | None = None
            try:
                channel = self._transport.open_session(timeout=self.io_timeout)
                channel.settimeout(self.io_timeout)  # each SFTP packet, both ways
                with self._answered(channel, "the SFTP subsystem request"):
                    channel.invoke_subsystem("sftp")
                self._sftp = paramiko.SFTPClient(channel)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                if channel is not None:
                    channel.close()
                if isinstance(exc, TimeoutError):
                    raise self._sftp_stalled("opening SFTP") from None
                raise TransientError(f"SFTP to {self.target.label} failed: {exc}.") from None
        return self._sftp

    def _sftp_stalled(self, what: str) -> TransientError:
        """Forget an SFTP client left mid-request (its next answer belongs to the request
        that timed out); the error to raise."""
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.get_channel().close()
            self._sftp = None
        return TransientError(f"{self.target.label} stopped answering while {what} (no SFTP "
                              f"reply in {self.io_timeout:.0f} s): its disk or sshd may hang.")

    def put_file(self, path: str, data: bytes | str, *, mode: int = 0o600,
                 owner: str = "root", group: str | None = None, make_parents: bool = True) -> None:
        """Create or atomically replace `path` with `data`; never readable by others.

        The bytes go over SFTP into a new 0700 directory, get their final mode there, and
        are then moved (as root: rename in the target directory; otherwise `sudo install`
        into a temp name + `mv`). Never on a command line. A host that stops answering fails
        the call within the I/O timeout (TransientError), the staging directory removed.
        """
        content = data.encode() if isinstance(data, str) else data
        if not posixpath.isabs(path):
            raise ValueError(f"put_file needs an absolute path, not {path!r}")
        parent = posixpath.dirname(path)
        stage_root = parent if self.is_root else "/tmp"  # noqa: S108 - private 0700 dir below
        if self.is_root and make_parents:
            self.check(["mkdir", "-p", "-m", "0755", parent], what=f"Creating {parent}")
        sftp = self._sftp_client()
        stage_dir = posixpath.join(stage_root, f".panel-{secrets.token_hex(8)}")
        staged = posixpath.join(stage_dir, "file")
        stalled = False
        try:
            sftp.mkdir(stage_dir, mode=0o700)
            if sftp.stat(stage_dir).st_mode & 0o077:
                raise PermanentError(f"Could not create a private directory on {self.target.host}.")
            with sftp.open(staged, "wb") as handle:
                handle.write(content)
            sftp.chmod(staged, mode)
            if self.is_root:
                if owner != "root" or group:
                    self.check(["chown", f"{owner}:{group}" if group else owner, staged],
                               what=f"Setting the owner of {path}")
                sftp.posix_rename(staged, path)
            else:
                self._sudo_install(staged, path, mode=mode, owner=owner, group=group,
                                   make_parents=make_parents)
        except TimeoutError:
            stalled = True
            raise self._sftp_stalled(f"writing {path}") from None
        except OSError as exc:
            raise PermanentError(f"Writing {path} on {self.target.host} failed: "
                                 f"{exc.strerror or exc}.") from None
        except (paramiko.SSHException, EOFError) as exc:
            raise TransientError(f"Lost the SSH connection to {self.target.label}: {exc}.") \
                from None
        finally:
            if stalled:  # not through the stuck SFTP channel; a bounded command instead
                with contextlib.suppress(TransientError, PermanentError):
                    self.run(["rm", "-rf", "--", stage_dir], timeout=self.io_timeout)
            else:
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.remove(staged)
                with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                    sftp.rmdir(stage_dir)

    def _sudo_install(self, staged: str, path: str, *, mode: int, owner: str,
                      group: str | None, make_parents: bool) -> None:
        temp = f"{path}.panel-{secrets.token_hex(4)}"
        parent = posixpath.dirname(path)
        steps = []
        if make_parents:
            steps.append(shell_join(["mkdir", "-p", "-m", "0755", parent]))
        ownership = ["-o", owner] + (["-g", group] if group else [])
        steps.append(shell_join(["install", "-m", f"{mode:04o}", *ownership, staged, temp]))
        steps.append(shell_join(["mv", "-f", temp, path]))
        self.check(" && ".join(steps), sudo=True, what=f"Installing {path}")

    def read_file(self, path: str, *, sudo: bool = False, limit: int = OUTPUT_LIMIT) -> bytes:
        """A file's bytes; sudo for root-only files when not logged in as root."""
        if sudo and not self.is_root:
            result = self.check(["cat", "--", path], sudo=True, what=f"Reading {path}")
            return result.stdout_bytes
        try:
            with self._sftp_client().open(path, "rb") as handle:
                return handle.read(limit)
        except TimeoutError:
            raise self._sftp_stalled(f"reading {path}") from None
        except FileNotFoundError:
            raise PermanentError(f"{path} does not exist on {self.target.host}.") from None
        except OSError as exc:
            raise PermanentError(f"Reading {path} on {self.target.host} failed: "
                                 f"{exc.strerror or exc}.") from None

    # -- tunnels -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def open_tunnel(self, host: str, port: int, *, timeout: float = 10.0) -> Iterator[Tunnel]:
        """Forward a local 127.0.0.1 port to host:port *as seen from this SSH host*.

        Why: an RDS whitelist admits the cluster hosts, not the panel; checking the database
        through the host proves exactly the path K3s will use.
        """
        tunnel = Tunnel(self._transport, host, port, timeout, self.target.host)
        try:
            yield tunnel
        finally:
            tunnel.close()


class Tunnel:
    """A local listener whose connections become direct-tcpip channels through SSH."""

    def __init__(self, transport: paramiko.Transport, host: str, port: int, timeout: float,
                 via: str) -> None:
        self._transport = transport
        self.remote = (host, port)
        self._timeout = timeout
        self._via = via
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.local_port: int = self._listener.getsockname()[1]
        self.last_error: str | None = None
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    @property
    def local_address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.local_port)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def probe(self) -> None:
        """Raise a plain error unless the SSH host can open a TCP connection to the target."""
        channel = self._open_channel(("127.0.0.1", 0))
        channel.close()

    def _open_channel(self, origin: tuple[str, int]) -> paramiko.Channel:
        host, port = self.remote
        try:
            return self._transport.open_channel("direct-tcpip", self.remote, origin,
                                                timeout=self._timeout)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise PermanentError(
                    f"The SSH server on {self._via} forbids TCP forwarding (AllowTcpForwarding "
                    "no); allow it for this user so the panel can check the database.") from None
            raise TransientError(f"{self._via} cannot connect to {host}:{port} "
                                 f"({exc.text or 'connect failed'}).") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransientError(f"{self._via} cannot connect to {host}:{port}: {exc}.") \
                from None

    def _accept_loop(self) -> None:
        self._listener.settimeout(0.2)
        while not self._closed.is_set():
            try:
                client, origin = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                channel = self._open_channel(origin)
            except (PermanentError, TransientError) as exc:
                self.last_error = exc.message
                client.close()
                continue
            self._start(self._pump, client, channel)

    def _pump(self, client: socket.socket, channel: paramiko.Channel) -> None:
        try:
            while not self._closed.is_set():
                readable, _, _ = select.select([client, channel], [], [], 0.2)
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(65536)
                    if not data:
                        break
                    client.sendall(data)
        except OSError:
            pass
        finally:
            channel.close()
            client.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=2)


_LOCK_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")


def _pidfile(token: str) -> str:
    # A random name, written with noclobber: nobody can plant it or point it elsewhere.
    return f"/tmp/.k3s-panel-{token}.pid"  # noqa: S108


def _guarded(command: str, token: str, host_timeout: float, lock: str | None) -> str:
    """`command` in its own process group whose id is in a pidfile, stopped by the host's own
    `timeout` after `host_timeout` s; with `lock`, only while no other holder runs.

    The inner `sh` writes its pid, then becomes `timeout` (exec keeps the pid), which makes
    itself the leader of a new process group: killing that group stops the command and all it
    started. The lock is held by the outer shell on fd 9, closed for the command, so nothing
    the command leaves behind keeps the lock after the wrapper ends.
    """
    pidfile = _pidfile(token)
    inner = ('set -C; echo "$$" > "$1" || exit 125; '
             f'exec timeout -k {KILL_AFTER_SECONDS:.0f} {host_timeout:.1f} sh -c "$2" 9>&-')
    text = (f"{shell_join(['sh', '-c', inner, 'sh', pidfile, command])}; rc=$?; "
            f"rm -f {shlex.quote(pidfile)}; exit $rc")
    if lock is None:
        return text
    if not _LOCK_NAME.fullmatch(lock):
        raise ValueError(f"not a host lock name: {lock!r}")
    lockfile = shlex.quote(posixpath.join(LOCK_DIR, f"{lock}.lock"))
    busy = shlex.quote(f"{BUSY_MARKER} {lock}")
    return (f"mkdir -p -m 0700 {shlex.quote(LOCK_DIR)} && exec 9>>{lockfile} && "
            f"{{ flock -n 9 || {{ echo {busy} >&2; exit {BUSY_EXIT}; }}; }} && {text}")


def _stopper(token: str) -> str:
    """Kill the process group named in the command's pidfile: TERM, up to
    KILL_AFTER_SECONDS for it to end, then KILL. Nothing to do when the pidfile is gone."""
    pidfile = shlex.quote(_pidfile(token))
    rounds = int(KILL_AFTER_SECONDS * 10)
    return (f'p=$(cat {pidfile} 2>/dev/null) || exit 0; '
            'case "$p" in ""|*[!0-9]*) exit 0;; esac; '
            'kill -s TERM -- "-$p" 2>/dev/null || exit 0; i=0; '
            f'while [ "$i" -lt {rounds} ] && kill -s 0 -- "-$p" 2>/dev/null; '
            'do sleep 0.1; i=$((i+1)); done; '
            f'kill -s KILL -- "-$p" 2>/dev/null; rm -f {pidfile}; exit 0')


def _with_environment(command: str, env: dict[str, str], env_file: str | None) -> str:
    """Prefix a command with non-secret variables and/or a sourced env file."""
    parts = []
    if env_file:
        parts.append(f"set -a && . {shlex.quote(env_file)} && set +a &&")
    if env:
        parts.append("export " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
                     + " &&")
    return " ".join([*parts, command])
