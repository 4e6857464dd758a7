"""Network-namespace helpers shared by the emulator, the lab and the K3s artifact server.

Why: emulated cloud services (RDS servers, SLB listeners, the artifact server) must listen on
addresses that lab hosts can reach, and those addresses live inside network namespaces the
test run created, never on a real network. A socket created while a thread is inside a
namespace stays bound to that namespace after the thread switches back, so one Python
process can serve listeners in several namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_switch_lock = threading.Lock()


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns failed: {os.strerror(err)}")


def netns_path(name: str) -> str:
    """Path of a namespace created by `ip netns add NAME`."""
    return os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


@contextlib.contextmanager
def entered(name: str | None) -> Iterator[None]:
    """Run the body with the calling thread inside network namespace `name` (None: stay put)."""
    if name is None:
        yield
        return
    target = os.open(netns_path(name), os.O_RDONLY)
    original = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(original)
    finally:
        os.close(target)
        os.close(original)


def listen_tcp(host: str, port: int, netns: str | None = None, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on host:port, created inside `netns` when given."""
    with _switch_lock, entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(backlog)
        except OSError:
            sock.close()
            raise
    return sock


def connect_tcp(
    host: str, port: int, netns: str | None = None, timeout: float = 5.0,
    source: str | None = None,
) -> socket.socket:
    """A TCP connection made from inside `netns` (for proxies and health checks in the lab)."""
    with _switch_lock, entered(netns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
    try:
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def exec_prefix(netns: str | None) -> list[str]:
    """Argument prefix that runs a command inside `netns` (empty when None)."""
    return ["ip", "netns", "exec", netns] if netns else []
