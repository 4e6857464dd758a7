"""The SSH adapter against a real OpenSSH server (see sshd_server.py)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusters.adapters import ssh
from clusters.adapters.ssh import (
    CommandTimeout,
    HostKeyChanged,
    SSHSession,
    SSHTarget,
    connect,
    load_private_key,
    shell_join,
)
from clusters.core.errors import PermanentError, TransientError
from clusters.core.redaction import Redactor
from tests.adapters.sshd_server import PASSWORDS, SshServer
from tests.support import stalling_sftp
from tests.support.stalling_sftp import stalling_sftp_server


def login(sshd: SshServer, user: str, **kwargs: object) -> SSHSession:
    if "private_key" not in kwargs and "password" not in kwargs:
        kwargs["password"] = PASSWORDS[user]
    return connect(SSHTarget(sshd.host, user, sshd.port, **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def root(sshd: SshServer) -> Iterator[SSHSession]:
    with login(sshd, "root", private_key=sshd.keys["ed25519"].private) as session:
        yield session


@pytest.mark.parametrize("kind", ["rsa-pem", "ed25519", "ecdsa-pass"])
def test_key_login_for_each_key_format(sshd: SshServer, kind: str) -> None:
    key = sshd.keys[kind]
    with login(sshd, "root", private_key=key.private, passphrase=key.passphrase) as session:
        assert session.run(["id", "-un"]).stdout.strip() == "root"


def test_encrypted_key_without_passphrase_asks_for_it(sshd: SshServer) -> None:
    with pytest.raises(PermanentError, match="passphrase"):
        load_private_key(sshd.keys["ecdsa-pass"].private)
    with pytest.raises(PermanentError, match="wrong passphrase"):
        load_private_key(sshd.keys["ecdsa-pass"].private, "not-it")
    with pytest.raises(PermanentError, match="could not be read"):
        load_private_key("-----BEGIN NONSENSE-----\nabc\n")


@pytest.mark.slow  # PAM delays a failed login by 2-4 s on purpose
def test_wrong_password_is_a_plain_permanent_error(sshd: SshServer) -> None:
    with pytest.raises(PermanentError) as caught:
        login(sshd, "pt_pw", password="wrong-one")
    assert str(caught.value) == (
        f"SSH login as pt_pw@127.0.0.1:{sshd.port} failed: wrong password or key")
    assert not isinstance(caught.value, TransientError)


def test_first_contact_reports_the_host_key_and_a_changed_key_fails_hard(
        sshd: SshServer) -> None:
    with login(sshd, "pt_nopw") as session:
        assert session.host_key_fingerprint == sshd.host_fingerprint  # as ssh-keygen -lf says
    pinned = sshd.host_fingerprint
    with login(sshd, "pt_nopw") as again:  # same key pinned: fine
        assert again.host_key_fingerprint == pinned
    forged = "SHA256:" + "A" * 43
    with pytest.raises(HostKeyChanged) as caught:
        connect(SSHTarget(sshd.host, "pt_nopw", sshd.port, password=PASSWORDS["pt_nopw"]),
                pinned_fingerprint=forged)
    assert forged in caught.value.message and sshd.host_fingerprint in caught.value.message
    # The remedy it names exists for the owner: the Nodes table's "Host key" button.
    assert '"Host key" at the node' in caught.value.message


def test_unreachable_and_silent_hosts_are_transient(sshd: SshServer) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(TransientError, match="refused"):
        connect(SSHTarget("127.0.0.1", "root", port, password="x"), timeout=2)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says hello
        started = time.monotonic()
        with pytest.raises(TransientError):
            connect(SSHTarget("127.0.0.1", "root", silent.getsockname()[1], password="x"),
                    timeout=1)
        assert time.monotonic() - started < 5


def test_output_streams_line_by_line_while_the_command_runs(root: SSHSession) -> None:
    seen: list[tuple[float, str, str]] = []
    started = time.monotonic()
    result = root.run("echo first; echo oops >&2; sleep 1; printf 'last'; exit 3",
                      on_line=lambda stream, text: seen.append(
                          (time.monotonic() - started, stream, text)))
    assert result.exit_status == 3 and not result.ok
    assert [(s, t) for _, s, t in seen] == [
        ("stdout", "first"), ("stderr", "oops"), ("stdout", "last")]
    assert seen[0][0] < 0.9 < seen[2][0]  # the first line arrived before the sleep ended
    assert result.stdout == "first\nlast" and result.stderr == "oops\n"


def test_secrets_are_redacted_before_the_callback(root: SshServer) -> None:
    secret = "Tok-3f9a8b7c6d5e"
    lines: list[str] = []
    root.run(["sh", "-c", f"echo token={secret}; echo done"], redact=Redactor([secret]),
             on_line=lambda _stream, text: lines.append(text))
    assert lines == ["token=***", "done"]


def test_a_line_of_megabytes_reaches_the_callback_held_with_the_rest_counted(
        root: SSHSession) -> None:
    seen: list[tuple[str, int, int]] = []
    root.run(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; echo; echo end"],
             on_line=lambda _stream, text, cut=0: seen.append((text[:3], len(text), cut)))
    assert seen == [("aaa", ssh.LINE_HOLD, 3_000_000 - ssh.LINE_HOLD), ("end", 3, 0)]


def test_argv_values_reach_the_command_literally(root: SSHSession) -> None:
    nasty = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", "x;y", "*", "\\n"]
    result = root.run(["printf", "%s\\n", *nasty])
    assert result.stdout.splitlines() == nasty
    assert shell_join(["echo", "$HOME"]) == "echo '$HOME'"


def test_stdin_is_passed_to_the_command(root: SSHSession) -> None:
    assert root.run(["cat"], stdin=b"from stdin\n").stdout == "from stdin\n"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.parametrize("user", ["root", "pt_pw"])
def test_a_command_past_its_timeout_is_stopped_on_the_host(sshd: SshServer, tmp_path: Path,
                                                          user: str) -> None:
    """Closing the channel alone leaves the command running on the host (sshd sends no
    signal without a terminal); the adapter kills its process group through a second
    channel, also when sudo (with a password on stdin) runs it."""
    marker = tmp_path / "child.pid"
    tmp_path.chmod(0o777)
    kwargs = {"private_key": sshd.keys["ed25519"].private} if user == "root" else {}
    with login(sshd, user, **kwargs) as session:
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match="it was stopped there"):
            session.run(f"sleep 300 & echo $! > {marker}; wait", sudo=True, timeout=1)
        assert time.monotonic() - started < 5
        child = int(marker.read_text())
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the timed-out command still runs on the host"
        assert session.run(["true"]).ok  # the session is still usable
    assert not list(Path("/tmp").glob(".k3s-panel-*.pid"))  # this sshd shares our /tmp


def test_passwordless_sudo(sshd: SshServer) -> None:
    with login(sshd, "pt_nopw") as session:
        assert session.sudo_mode() == "nopasswd"
        assert session.run(["id", "-un"], sudo=True).stdout.strip() == "root"
        assert session.run(["id", "-un"]).stdout.strip() == "pt_nopw"


def test_sudo_password_goes_to_stdin_never_to_a_command_line(sshd: SshServer) -> None:
    password = PASSWORDS["pt_pw"]
    with login(sshd, "pt_pw") as session:
        assert session.sudo_mode() == "password"
        # Every command line on the machine while sudo runs: the password is in none.
        result = session.run("cat /proc/[0-9]*/cmdline | tr '\\0' ' '; id -un", sudo=True)
        assert result.ok and result.stdout.strip().endswith("root")
        assert password not in result.stdout
        # The password line is eaten by sudo: the command sees only the caller's stdin.
        assert session.run(["cat"], sudo=True, stdin="payload\n").stdout == "payload\n"


def test_wrong_sudo_password_and_non_sudoers_are_permanent(sshd: SshServer) -> None:
    with login(sshd, "pt_pw", sudo_password="Not-the-1") as session, \
            pytest.raises(PermanentError, match="rejected the password of pt_pw"):
        session.run(["true"], sudo=True)
    with login(sshd, "pt_nosudo") as session, \
            pytest.raises(PermanentError, match="pt_nosudo may not use sudo"):
        session.run(["true"], sudo=True)


@pytest.mark.parametrize("user", ["root", "pt_nopw", "pt_pw"])
def test_put_file_creates_a_private_file_atomically(sshd: SshServer, root: SSHSession,
                                                    user: str) -> None:
    directory = f"/tmp/panel-put-{user}-{sshd.port}"
    path = f"{directory}/sub/config.yaml"
    kwargs = {"private_key": sshd.keys["ed25519"].private} if user == "root" else {}
    try:
        with login(sshd, user, **kwargs) as session:
            session.put_file(path, "token: first\n")
            first_inode = root.run(["stat", "-c", "%i", path]).stdout
            session.put_file(path, b"token: second\n", mode=0o640)
            stat = root.run(["stat", "-c", "%a %U %G %i", path]).stdout.split()
            assert stat[:3] == ["640", "root", "root"]
            assert stat[3] != first_inode.strip()  # replaced by rename, not rewritten
            assert root.read_file(path) == b"token: second\n"
            assert session.read_file(path, sudo=True) == b"token: second\n"
        leftovers = root.run(f"ls -a {directory}/sub /tmp | grep panel- || true").stdout
        assert ".panel-" not in leftovers and "config.yaml.panel" not in leftovers
    finally:
        root.run(["rm", "-rf", directory])


def test_env_file_supplies_secrets_without_a_command_line(sshd: SshServer,
                                                          root: SSHSession) -> None:
    path = f"/tmp/panel-env-{sshd.port}/k3s.env"
    try:
        with login(sshd, "pt_pw") as session:
            session.put_file(path, "K3S_TOKEN='s3cret value'\n")
            out = session.run(["sh", "-c", 'echo "$K3S_TOKEN $MODE"'], sudo=True,
                              env_file=path, env={"MODE": "server"}).stdout
            assert out == "s3cret value server\n"
            assert not session.run(["cat", path]).ok  # 0600 root: not for pt_pw
    finally:
        root.run(["rm", "-rf", path.rsplit("/", 1)[0]])


@pytest.fixture
def echo_server() -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"hello:" + conn.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=2)
    listener.close()


def test_tunnel_reaches_a_port_as_seen_from_the_host(root: SSHSession, echo_server: int) -> None:
    with root.open_tunnel("127.0.0.1", echo_server) as tunnel:
        tunnel.probe()
        for _ in range(2):  # several connections through one tunnel
            with socket.create_connection(tunnel.local_address, timeout=5) as conn:
                conn.sendall(b"ping")
                assert conn.recv(1024) == b"hello:ping"


def test_tunnel_errors_are_plain(sshd: SshServer, root: SSHSession) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with root.open_tunnel("127.0.0.1", port) as tunnel, \
            pytest.raises(TransientError, match=f"cannot connect to 127.0.0.1:{port}"):
        tunnel.probe()
    with login(sshd, "pt_nosudo") as session, session.open_tunnel("127.0.0.1", port) as tunnel, \
            pytest.raises(PermanentError, match="forbids TCP forwarding"):
        tunnel.probe()


def test_an_upload_to_a_host_that_stops_answering_fails_within_the_io_timeout(
        tmp_path: Path) -> None:
    """The host's sftp-server stops at the first write (its disk hangs): put_file gives up
    after the I/O timeout with a TransientError instead of blocking its worker for ever."""
    root = tmp_path / "served"
    root.mkdir()
    with stalling_sftp_server(root) as server:
        session = connect(SSHTarget(server.host, stalling_sftp.USER, server.port,
                                    password=stalling_sftp.PASSWORD), io_timeout=1.5)
        with session:
            outcome: dict[str, object] = {}

            def upload() -> None:
                started = time.monotonic()
                try:
                    session.put_file("/etc/rancher/k3s/config.yaml", "token: x\n" * 50_000)
                except BaseException as exc:
                    outcome["error"] = exc
                outcome["seconds"] = time.monotonic() - started

            uploader = threading.Thread(target=upload, daemon=True)
            uploader.start()
            assert server.writes_started.wait(10), "the upload never reached the write"
            uploader.join(timeout=20)
            assert not uploader.is_alive(), "put_file still hangs on the stalled host"
    error = outcome["error"]
    assert isinstance(error, TransientError), error
    assert "stopped answering while writing /etc/rancher/k3s/config.yaml" in str(error)
    assert float(outcome["seconds"]) < 1.5 * 3 + 2  # type: ignore[arg-type]
