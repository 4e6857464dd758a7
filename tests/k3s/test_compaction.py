"""The stand-in's kine compacts as kine does, and its compaction can break as kine's does."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import pytest

from sandbox.k3s.testing import ScratchMariaDB
from tests.support.k3s_nodes import Node

pytestmark = [pytest.mark.slow, pytest.mark.lab]

RETAIN = 5
FAST = {"K3S_STANDIN_COMPACT_INTERVAL": "500ms", "K3S_STANDIN_COMPACT_MIN_RETAIN": str(RETAIN)}
# What kine logs on MariaDB 11.8+ with innodb_snapshot_isolation ON (k3s-io/kine#745).
ERROR_1020 = ("Error 1020 (HY000): Record has changed since last read in table 'kine'; try "
              "restarting transaction")


def revisions(mariadb: ScratchMariaDB, database: str) -> tuple[int, int, int]:
    """(rows, newest revision, compacted revision), read as the panel reads them."""
    ((rows, newest, compacted),) = mariadb.sql(
        "SELECT COUNT(*), MAX(id), (SELECT MAX(prev_revision) FROM kine WHERE name = "
        "'compact_rev_key') FROM kine", database)
    return int(rows), int(newest), int(compacted or 0)


def server(start_k3s: Callable[..., Node], mariadb: ScratchMariaDB, name: str, *,
           database: str, ip: str, env: dict[str, str]) -> Node:
    node = start_k3s(name, ["server", "--token", "t0ken", "--bind-address", ip,
                            "--datastore-endpoint", mariadb.endpoint(database),
                            # a lease write every 0.1 s: revisions pile up quickly
                            "--kubelet-arg=node-status-update-frequency=0.1s"],
                     env={**os.environ, **env})
    node.wait_for("k3s is up and running")
    return node


def test_compaction_keeps_a_window_and_records_compact_rev_key(
        mariadb: ScratchMariaDB, start_k3s: Callable[..., Node]) -> None:
    node = server(start_k3s, mariadb, "compacting", database="k3s_compact", ip="127.73.7.21",
                  env=FAST)
    time.sleep(4)
    rows, newest, compacted = revisions(mariadb, "k3s_compact")
    assert newest > 30, "the leases were written"
    assert compacted > 0, "compact_rev_key moved"
    # Each pass compacts up to what the previous pass saw, never the newest RETAIN.
    assert newest - compacted <= RETAIN + 2 * 0.5 * 10 + 10
    assert rows < newest / 2, "superseded lease rows were deleted"
    assert "COMPACT deleted" in node.journal() and "Compact failed" not in node.journal()
    (count,) = mariadb.sql("SELECT COUNT(*) FROM kine WHERE name = 'compact_rev_key'",
                           "k3s_compact")[0]
    assert count == 1, "one compact_rev_key row, updated in place"


def test_broken_compaction_lets_the_table_grow(
        mariadb: ScratchMariaDB, start_k3s: Callable[..., Node]) -> None:
    node = server(start_k3s, mariadb, "stalled", database="k3s_stalled", ip="127.73.7.22",
                  env={**FAST, "K3S_STANDIN_COMPACT_ERROR": ERROR_1020})
    time.sleep(4)
    rows, newest, compacted = revisions(mariadb, "k3s_stalled")
    assert compacted == 0 and newest > 30
    assert rows >= newest - 1, "nothing was deleted"
    assert f"Compact failed: failed to get current revision: {ERROR_1020}" in node.journal()
