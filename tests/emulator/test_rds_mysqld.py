"""The private MariaDB server and the RDS gate, without the API in front."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest

from sandbox.aliyun.rds.gate import MySQLErrorTranslator, WhitelistGate
from sandbox.aliyun.rds.mysqld import MariaDBServer, mariadbd_processes, reap_orphans
from tests.support.tools import require, require_root


def _err_packet(code: int, state: bytes, message: bytes, seq: int = 1) -> bytes:
    payload = b"\xff" + struct.pack("<H", code) + b"#" + state + message
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def test_translator_rewrites_mariadb_1709_split_across_reads() -> None:
    ok = b"\x07\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00"
    mariadb = _err_packet(1709, b"HY000", b"Index column size too large. The maximum column "
                                          b"size is 767 bytes", seq=2)
    translator = MySQLErrorTranslator()
    stream = ok + mariadb
    out = translator.feed(stream[:9]) + translator.feed(stream[9:20]) + translator.feed(
        stream[20:])
    assert out == ok + _err_packet(1071, b"42000", b"Specified key was too long; max key "
                                                   b"length is 767 bytes", seq=2)
    other = _err_packet(1045, b"28000", b"Access denied")
    assert translator.feed(other) == other


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MariaDBServer]:
    instance = MariaDBServer(tmp_path / "db", options={"innodb_default_row_format": "compact"})
    try:
        yield instance
    finally:
        instance.destroy()
        assert not mariadbd_processes(tmp_path)


@pytest.mark.lab
def test_server_lifecycle_options_and_pidfile_cleanup(server: MariaDBServer,
                                                      tmp_path: Path) -> None:
    server.start()
    first_pid = server.pid
    assert first_pid is not None and server.socket_path.is_socket()
    assert server.global_variable("innodb_default_row_format") == "compact"
    assert server.global_variable("performance_schema") == "OFF"
    # Root has a password only the emulator knows; no anonymous or remote root logins.
    assert server.execute("SELECT user, host FROM mysql.user ORDER BY user") == [
        ("mariadb.sys", "localhost"), ("root", "localhost")]
    assert (server.admin_file.stat().st_mode & 0o777) == 0o600
    server.set_option("innodb_default_row_format", "dynamic")
    assert server.global_variable("innodb_default_row_format") == "dynamic"
    server.stop()
    assert server.pid is None and not Path(f"/proc/{first_pid}").exists()

    # A second object (the emulator after a restart) loads the same server and options.
    again = MariaDBServer.load(server.home)
    again.start()
    assert again.global_variable("innodb_default_row_format") == "dynamic"
    # Crash: the process survives its owner; a stale start kills it and starts afresh.
    leftover = again.pid
    assert leftover is not None
    revived = MariaDBServer.load(server.home)
    revived.start()
    assert revived.pid != leftover and mariadbd_processes(tmp_path) == [revived.pid]
    revived.stop()
    # A pidfile naming a dead process is simply removed.
    revived.pid_file.write_text("999999\n")
    revived.start()
    assert revived.running
    revived.stop()


@pytest.mark.lab
def test_reap_orphans_finds_servers_whose_owner_died(tmp_path: Path) -> None:
    code = (
        "from sandbox.aliyun.rds.mysqld import MariaDBServer;"
        f"MariaDBServer({str(tmp_path / 'orphan')!r}).start()"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60,
                   cwd=Path(__file__).resolve().parents[2])
    pids = mariadbd_processes(tmp_path)
    assert len(pids) == 1
    assert reap_orphans(tmp_path) == 1
    assert not mariadbd_processes(tmp_path)


@pytest.mark.lab
def test_gate_relays_whitelisted_clients_with_their_real_address(server: MariaDBServer) -> None:
    server.start()
    server.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'App-Passw0rd'")
    gate = WhitelistGate(server, "127.0.0.1", 0, None, ["127.0.0.1"])
    gate.start()
    try:
        assert gate._listener is not None
        port = gate._listener.getsockname()[1]
        with pymysql.connect(host="127.0.0.1", port=port, user="app", password="App-Passw0rd",
                             connect_timeout=5, read_timeout=5) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT USER()")
            assert cursor.fetchone() == ("app@127.0.0.1",)
        # Root is reachable only on the private socket, never through the gate.
        with pytest.raises(pymysql.err.OperationalError) as denied:
            pymysql.connect(host="127.0.0.1", port=port, user="root", password="",
                            connect_timeout=5, read_timeout=5)
        assert denied.value.args[0] == 1045
        with pytest.raises(pymysql.err.OperationalError) as silent:
            pymysql.connect(host="127.0.0.1", port=port, user="app", password="App-Passw0rd",
                            bind_address="127.0.0.5", connect_timeout=1, read_timeout=1)
        assert silent.value.args[0] == 2013
    finally:
        gate.close()
    assert not gate.listening


@pytest.mark.lab
def test_server_can_listen_on_tcp_itself(tmp_path: Path) -> None:
    """Other stand-ins may run a plain MariaDB on an address of their own."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    server = MariaDBServer(tmp_path / "tcp", listen=("127.0.0.1", port))
    try:
        server.start()
        server.execute("CREATE USER 'app'@'%' IDENTIFIED BY 'App-Passw0rd'")
        with pymysql.connect(host="127.0.0.1", port=port, user="app", password="App-Passw0rd",
                             connect_timeout=5) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT USER()")
            assert cursor.fetchone() == ("app@127.0.0.1",)
    finally:
        server.destroy()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.lab
def test_a_new_datadir_is_a_copy_of_the_template_and_serves_like_an_installed_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first datadir is installed and kept as the template; the next one is a copy of it
    (byte for byte: another install would write other log sequence numbers) and boots into a
    server secured like any other."""
    from sandbox.aliyun.rds import mysqld  # noqa: PLC0415 - its TEMPLATE_ROOT is moved here

    monkeypatch.setattr(mysqld, "TEMPLATE_ROOT", tmp_path / "templates")
    first = MariaDBServer(tmp_path / "first")
    second = MariaDBServer(tmp_path / "second")
    try:
        first.initialize()
        (template,) = (tmp_path / "templates").glob("*/data")
        assert (template / "mysql").is_dir() and not (first.home / "data.partial").exists()
        second.initialize()
        for name in ("ibdata1", "aria_log_control", "mysql/global_priv.MAD"):
            copied, kept = (second.datadir / name).read_bytes(), (template / name).read_bytes()
            assert copied == kept, name
        second.start()
        assert second.execute("SELECT user, host FROM mysql.user ORDER BY user") == [
            ("mariadb.sys", "localhost"), ("root", "localhost")]
        assert second._admin_password()
    finally:
        second.destroy()
        first.destroy()


def _fake_install(path: Path) -> Path:
    """Stands for a fresh datadir (what `_save_template` copies): only the tree matters."""
    (path / "mysql").mkdir(parents=True)
    (path / "ibdata1").write_bytes(b"x" * 4096)
    return path


@pytest.mark.parametrize("planted", ["symlink", "mode 0777", "other owner"])
def test_a_template_root_someone_else_made_is_not_used(
        planted: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template root sits under world-writable /var/tmp: one made by another user, open to
    others or a symlink is neither read nor written (datadirs are installed instead)."""
    import os  # noqa: PLC0415

    from sandbox.aliyun.rds import mysqld  # noqa: PLC0415

    require("mariadbd", "mariadb-install-db")  # a missing MariaDB fails, naming the package
    assert mysqld._template_key() is not None
    root = tmp_path / "templates"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    _fake_install(elsewhere / str(mysqld._template_key()) / "data")
    if planted == "symlink":
        root.symlink_to(elsewhere)
    else:
        root.mkdir()
        os.chmod(root, 0o777)  # noqa: S103 - the planted, open directory
        if planted == "other owner":
            require_root("chown a planted directory to another owner")
            os.chmod(root, 0o700)
            os.chown(root, 65534, 65534)
    monkeypatch.setattr(mysqld, "TEMPLATE_ROOT", root)
    assert mysqld._template_datadir() is None
    mysqld._save_template(_fake_install(tmp_path / "fresh"))
    if planted != "symlink":
        assert list(root.iterdir()) == []
    planted_key = elsewhere / str(mysqld._template_key())
    assert sorted(p.name for p in planted_key.iterdir()) == ["data"]  # no lock, no copy


def test_a_planted_lock_symlink_is_not_followed_and_crashed_partials_are_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.aliyun.rds import mysqld  # noqa: PLC0415

    require("mariadbd", "mariadb-install-db")  # a missing MariaDB fails, naming the package
    key = mysqld._template_key()
    assert key is not None
    monkeypatch.setattr(mysqld, "TEMPLATE_ROOT", tmp_path / "templates")
    directory = tmp_path / "templates" / key
    directory.mkdir(parents=True, mode=0o700)
    (tmp_path / "templates").chmod(0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (directory / "lock").symlink_to(victim)
    mysqld._save_template(_fake_install(tmp_path / "fresh"))
    assert victim.read_text() == "keep me"
    assert not (directory / "data").exists()

    (directory / "lock").unlink()
    _fake_install(directory / "data.424242.partial")  # a holder that crashed mid-copy
    mysqld._save_template(_fake_install(tmp_path / "fresh2"))
    assert sorted(p.name for p in directory.iterdir()) == ["data", "lock"]
    assert (directory / "data" / "ibdata1").stat().st_size == 4096


def test_templates_saved_at_the_same_moment_make_one_whole_template(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both test processes may install their first datadir at once: one copy wins, whole."""
    import threading  # noqa: PLC0415

    from sandbox.aliyun.rds import mysqld  # noqa: PLC0415

    require("mariadbd", "mariadb-install-db")  # a missing MariaDB fails, naming the package
    key = mysqld._template_key()
    assert key is not None
    monkeypatch.setattr(mysqld, "TEMPLATE_ROOT", tmp_path / "templates")
    sources = [_fake_install(tmp_path / f"fresh{n}") for n in range(4)]
    barrier = threading.Barrier(len(sources))

    def save(source: Path) -> None:
        barrier.wait()
        mysqld._save_template(source)

    threads = [threading.Thread(target=save, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    directory = tmp_path / "templates" / key
    assert sorted(p.name for p in directory.iterdir()) == ["data", "lock"]
    assert sorted(p.name for p in (directory / "data").iterdir()) == ["ibdata1", "mysql"]
    assert (directory / "data" / "ibdata1").stat().st_size == 4096


def test_a_private_dir_of_ours_left_0755_is_tightened_and_a_symlink_to_ours_refused(
        tmp_path: Path) -> None:
    from sandbox.private_dir import private_dir  # noqa: PLC0415

    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    ours.chmod(0o755)
    assert private_dir(ours)
    assert ours.stat().st_mode & 0o777 == 0o700
    (tmp_path / "link").symlink_to(ours)
    assert not private_dir(tmp_path / "link")
    assert private_dir(tmp_path / "new") and (tmp_path / "new").stat().st_mode & 0o777 == 0o700
