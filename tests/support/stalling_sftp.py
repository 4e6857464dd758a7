"""An SSH server on loopback whose SFTP stops answering mid-upload, like a host whose disk hangs.

Why paramiko's server classes and not OpenSSH: the hang must happen at one chosen moment (the
first write of file data) and last until the test says so; a real sftp-server would need a
stuck filesystem, which needs root and a FUSE or device-mapper trick. Everything before the
stall (login, mkdir, stat) is real SFTP over a real socket, served from a temporary directory.
Commands (exec) are refused, as a host that only offers SFTP would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK

USER = "uploader"
PASSWORD = "Stall-pass-1"


class _Server(paramiko.ServerInterface):
    def check_auth_password(self, username: str, password: str) -> int:
        if (username, password) == (USER, PASSWORD):
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED_OPEN_CHANNEL_FAILED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        return False


@dataclass
class StallingSftp:
    """Where it listens, the directory it serves, and the switch that ends the stall."""

    root: Path
    port: int = 0
    host: str = "127.0.0.1"
    writes_started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def _handle_class(server: StallingSftp) -> type[paramiko.SFTPHandle]:
    class StallingHandle(paramiko.SFTPHandle):
        def write(self, offset: int, data: bytes) -> int:
            # The disk hangs: this thread (the server's only SFTP thread) stops here, so no
            # reply and no further packet is read until the test releases it.
            server.writes_started.set()
            server.release.wait()
            return SFTP_OK

    return StallingHandle


def _sftp_interface(server: StallingSftp) -> type[paramiko.SFTPServerInterface]:
    handle_class = _handle_class(server)

    class Interface(paramiko.SFTPServerInterface):
        def _local(self, path: str) -> Path:
            return server.root / path.lstrip("/")

        def stat(self, path: str) -> paramiko.SFTPAttributes | int:
            try:
                return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))
            except OSError as exc:
                return paramiko.SFTPServer.convert_errno(exc.errno)

        lstat = stat

        def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
            local = self._local(path)
            local.parent.mkdir(parents=True, exist_ok=True)
            local.mkdir(mode=attr.st_mode or 0o700 if attr else 0o700)
            local.chmod(0o700)
            return SFTP_OK

        def rmdir(self, path: str) -> int:
            with contextlib.suppress(OSError):
                self._local(path).rmdir()
            return SFTP_OK

        def remove(self, path: str) -> int:
            try:
                self._local(path).unlink()
            except OSError:
                return SFTP_NO_SUCH_FILE
            return SFTP_OK

        def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes
                 ) -> paramiko.SFTPHandle | int:
            handle = handle_class(flags)
            handle.filename = str(self._local(path))  # type: ignore[attr-defined]
            return handle

    return Interface


def _serve(server: StallingSftp, client: socket.socket, host_key: paramiko.PKey,
           transports: list[paramiko.Transport]) -> None:
    transport = paramiko.Transport(client)
    transports.append(transport)
    transport.add_server_key(host_key)
    transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _sftp_interface(server))
    with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
        transport.start_server(server=_Server())


@contextlib.contextmanager
def stalling_sftp_server(root: Path) -> Iterator[StallingSftp]:
    """Serve `root` over SFTP on a free loopback port until the block ends."""
    server = StallingSftp(root)
    host_key = paramiko.RSAKey.generate(2048)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    server.port = listener.getsockname()[1]
    stop = threading.Event()
    transports: list[paramiko.Transport] = []

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            _serve(server, client, host_key, transports)

    thread = threading.Thread(target=accept, daemon=True, name="stalling-sftp")
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        server.release.set()
        listener.close()
        thread.join(timeout=5)
        for transport in transports:
            transport.close()
