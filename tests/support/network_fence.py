"""A fence around the test process's network: loopback and the lab's own range only.

Why: tests must never reach a real Alibaba Cloud endpoint or a download host, even through a
bug (an SDK falling back to its built-in endpoint table, say). Settings already point the SDK
at a closed loopback port; this fence makes any other destination fail loudly instead of
leaving the machine. It changes no behaviour under test: allowed traffic passes untouched.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sandbox.lab.network import CANDIDATE_BASE

ALLOWED_NETWORKS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    CANDIDATE_BASE,  # lab hosts and cloud addresses, inside namespaces the tests create
)


class FencedDestination(OSError):
    """A test tried to reach an address outside loopback and the lab."""


SIOCGSKNS = 0x894C  # ioctl: the network namespace a socket belongs to (Linux >= 4.9)


def _in_private_namespace(sock: socket.socket, root_namespace: int) -> bool:
    """True for a socket created inside a namespace the tests made (sandbox.netns): it can
    only reach what that namespace routes to, which never leaves the machine."""
    try:
        namespace_fd = fcntl.ioctl(sock.fileno(), SIOCGSKNS)
    except OSError:
        return False
    try:
        return os.fstat(namespace_fd).st_ino != root_namespace
    finally:
        os.close(namespace_fd)


def _allowed(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host == "localhost"
    return any(address in network for network in ALLOWED_NETWORKS)


@contextmanager
def fenced() -> Iterator[None]:
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo
    root_namespace = os.stat("/proc/self/ns/net").st_ino

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or _allowed(str(address[0])):
            return
        if not _in_private_namespace(sock, root_namespace):
            raise FencedDestination(f"test network fence: {address[0]} is outside loopback "
                                    "and the lab")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        return original_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return original_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _allowed(host.decode() if isinstance(host, bytes)
                                             else str(host)):
            raise socket.gaierror(socket.EAI_NONAME,
                                  f"test network fence: no lookups of {host}")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo
