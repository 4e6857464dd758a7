"""The SSH adapter against a real OpenSSH server (see sshd_server.py)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

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


def test_argv_values_reach_the_command_literally(root: SSHSession) -> None:
    nasty = ["a b", "it's", '"q"', "$(touch /tmp/pwned)", "`id`", "x;y", "*", "\\n"]
    result = root.run(["printf", "%s\\n", *nasty])
    assert result.stdout.splitlines() == nasty
    assert shell_join(["echo", "$HOME"]) == "echo '$HOME'"


def test_stdin_is_passed_to_the_command(root: SSHSession) -> None:
    assert root.run(["cat"], stdin=b"from stdin\n").stdout == "from stdin\n"


def test_a_command_past_its_timeout_is_stopped(root: SSHSession) -> None:
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        root.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 5
    assert root.run(["true"]).ok  # the session is still usable


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
