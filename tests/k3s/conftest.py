"""Fixtures for the K3s stand-in tests: a scratch MariaDB, scratch hosts, the artifact server.

Everything listens on 127.73.x.x addresses; the session-wide servers on addresses of this test
process's own (tests/support/xdist.py); leftovers of crashed runs are removed first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.k3s.artifacts import ArtifactServer
from sandbox.k3s.binary import write_binary
from sandbox.k3s.testing import ScratchHost, ScratchMariaDB, cleanup_leftovers
from tests.support.k3s_nodes import Node
from tests.support.tools import require, require_root
from tests.support.xdist import session_address


@pytest.fixture(scope="session")
def mariadb() -> Iterator[ScratchMariaDB]:
    require_root("mount namespaces, tmpfs")
    require("mariadbd", "mariadb-install-db", "unshare", "nsenter", "kubectl")
    cleanup_leftovers()
    db = ScratchMariaDB(session_address(1))
    yield db
    db.close()


@pytest.fixture(scope="session")
def artifacts() -> Iterator[ArtifactServer]:
    with ArtifactServer(session_address(2)) as server:
        yield server


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


