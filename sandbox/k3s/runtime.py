"""Small host-facing helpers shared by `k3s server` and `k3s agent`.

Why: node IP detection, systemd readiness and private file writes behave the same for both
roles and are what a provisioner observes on the host.
"""

from __future__ import annotations

import hashlib
import os
import socket

from sandbox.k3s.config import Settings


def go_duration(text: str) -> float:
    """Parse a Go duration such as 5s, 500ms, 1m30s."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    total, number = 0.0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    if number:
        total += float(number)
    return total


def hash_ca(ca_pem: bytes) -> str:
    """K3s's CA hash for a single-certificate bundle: sha256 of the file bytes."""
    return hashlib.sha256(ca_pem).hexdigest()


def detect_node_ip() -> str:
    """The source address of the default route, as K3s picks the node IP; loopback if none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it only routes
        return probe.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        probe.close()


def node_name(settings: Settings, hostname: str) -> str:
    name = settings.text("node-name") or hostname
    if settings.get("with-node-id"):
        id_path = os.path.join(settings.text("data-dir"), "node-id")
        if not os.path.exists(id_path):
            write_private(id_path, os.urandom(4).hex().encode())
        with open(id_path, encoding="utf-8") as handle:
            name = f"{name}-{handle.read().strip()}"
    return name


def write_private(path: str, data: bytes, mode: int = 0o600) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def notify_ready() -> None:
    """sd_notify(READY=1) for Type=notify units (a no-op outside systemd)."""
    target = os.environ.get("NOTIFY_SOCKET")
    if not target:
        return
    if target.startswith("@"):
        target = "\0" + target[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.connect(target)
        sock.sendall(b"READY=1")
    except OSError:
        pass
    finally:
        sock.close()
