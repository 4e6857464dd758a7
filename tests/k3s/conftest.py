"""Fixtures for the K3s stand-in tests: a scratch MariaDB, scratch hosts, the artifact server.

Everything listens on 127.73.x.x addresses; leftovers of crashed runs are removed first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.k3s.artifacts import ArtifactServer
from sandbox.k3s.binary import write_binary
from sandbox.k3s.testing import ScratchHost, ScratchMariaDB, cleanup_leftovers, free_port

KUBECTL = "/usr/bin/kubectl"
SUPERVISOR = Path(__file__).with_name("supervisor.py")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.fail(f"required tools missing: {', '.join(missing)}")
    if os.geteuid() != 0:
        pytest.fail("these tests need root (mount namespaces, tmpfs)")


@pytest.fixture(scope="session")
def mariadb() -> Iterator[ScratchMariaDB]:
    require_tools("mariadbd", "mariadb-install-db", "unshare", "nsenter", KUBECTL)
    cleanup_leftovers()
    db = ScratchMariaDB("127.73.0.1")
    yield db
    db.close()


@pytest.fixture(scope="session")
def artifacts() -> Iterator[ArtifactServer]:
    with ArtifactServer("127.73.0.2") as server:
        yield server


class Node:
    """A k3s process on a scratch host, with its journal-like log."""

    def __init__(self, host: ScratchHost, log: Path, proc: subprocess.Popen) -> None:
        self.host, self.log, self.proc = host, log, proc

    def journal(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            journal = self.journal()
            if text in journal:
                return journal
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not in journal:\n{self.journal()}")

    def kubeconfig(self) -> str:
        return self.host.path("/etc/rancher/k3s/k3s.yaml")


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Callable[[str], ScratchHost]]:
    made: list[ScratchHost] = []

    def make(name: str) -> ScratchHost:
        host = ScratchHost(name)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


@pytest.fixture
def start_k3s(hosts: Callable[[str], ScratchHost], tmp_path: Path) -> Callable[..., Node]:
    """Start `k3s <args>` of `version` on a fresh scratch host named `name`."""

    def start(name: str, args: list[str], version: str = "v1.33.1+k3s1",
              env: dict[str, str] | None = None) -> Node:
        host = hosts(name)
        write_binary(host.path("/usr/local/bin/k3s"), version)
        log = tmp_path / f"{name}.log"
        proc = host.start(["/usr/local/bin/k3s", *args], str(log), env=env)
        return Node(host, log, proc)

    return start


def install_supervisor(host: ScratchHost) -> None:
    os.makedirs(host.path("/run/testbin"), exist_ok=True)
    target = host.path("/run/testbin/systemctl")
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(f"#!{sys.executable}\n" + SUPERVISOR.read_text())
    os.chmod(target, 0o755)  # noqa: S103 - an executable


def kubectl(kubeconfig: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout=10s", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def wait_until(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(message)


__all__ = ["Node", "free_port", "install_supervisor", "kubectl", "wait_until"]
