"""Tiny TCP servers standing in for backends: they answer `<own ip>:<what they got>`."""

from __future__ import annotations

import contextlib
import socket
import threading

from sandbox import netns as netns_tools


class EchoServer:
    def __init__(self, ip: str, port: int, netns: str | None = None) -> None:
        self.ip = ip
        self.port = port
        self._socket = netns_tools.listen_tcp(ip, port, netns)
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    data = conn.recv(1024)
                    conn.sendall(f"{self.ip}:".encode() + data)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ask(ip: str, port: int, message: bytes = b"hello", timeout: float = 3.0,
        netns: str | None = None) -> bytes:
    """Send one message and return the whole answer (b'' if the connection was refused/reset)."""
    try:
        sock = netns_tools.connect_tcp(ip, port, netns, timeout=timeout)
    except OSError:
        return b""
    with sock:
        try:
            sock.sendall(message)
            chunks = []
            while chunk := sock.recv(1024):
                chunks.append(chunk)
        except OSError:
            return b""
    return b"".join(chunks)


def listening(ip: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((ip, port)) == 0
