"""Several RDS instances created at the same moment all become usable.

Why: a panel that provisions clusters side by side creates their datastores within
milliseconds of each other. Their servers start together, and once one of them aborted its
first boot (its `mariadb-install-db` lost its temporary tables to another server starting)
and stayed Creating forever with nothing reported.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkrds.request.v20140815.CreateDBInstanceRequest import CreateDBInstanceRequest

from sandbox.aliyun.rds.mysqld import mariadbd_processes
from sandbox.aliyun.testing import Emulator
from tests.emulator.test_rds_api import connect, prepare_k3s_datastore, resource, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.slow]

INSTANCES = 6
CONVERGE_SECONDS = 25.0


def _create_request(emu: Emulator) -> CreateDBInstanceRequest:
    request = CreateDBInstanceRequest()
    request.set_Engine("MySQL")
    request.set_EngineVersion("5.7")
    request.set_DBInstanceClass("mysql.n2.medium.2c")
    request.set_DBInstanceStorage(20)
    request.set_DBInstanceNetType("Intranet")
    request.set_SecurityIPList("127.0.0.1")
    request.set_PayType("Postpaid")
    request.set_InstanceNetworkType("VPC")
    request.set_VPCId(emu.vpc["vpc_id"])
    request.set_VSwitchId(emu.vswitch["vswitch_id"])
    request.set_ZoneId(emu.vswitch["zone_id"])
    return request


def _create_together(emu: Emulator, count: int) -> list[dict[str, Any]]:
    """CreateDBInstance from `count` threads released at once, each with its own client."""
    barrier = threading.Barrier(count)
    created: list[dict[str, Any]] = []
    failures: list[BaseException] = []

    def create() -> None:
        client, request = emu.client(), _create_request(emu)
        barrier.wait(timeout=10)
        try:
            created.append(emu.call(request, client))
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    return created


def _wait_all_running(emu: Emulator, ids: set[str], timeout: float) -> None:
    """Every instance Running, and no start failure reported on the way (even retried)."""
    deadline = time.monotonic() + timeout
    errors: dict[str, str] = {}
    while True:
        listed = {entry["id"]: entry for entry in emu.control.resources() if entry["id"] in ids}
        errors.update({i: entry["error"] for i, entry in listed.items() if entry["error"]})
        states = {i: entry["state"] for i, entry in listed.items()}
        if len(states) == len(ids) and set(states.values()) == {"Running"}:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"not all Running after {timeout}s: {states}; errors: {errors}")
        time.sleep(0.2)
    assert not errors, f"servers failed to start: {errors}"


def test_concurrent_creations_all_become_running_and_serve(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Emulator(state, time_scale=0.02) as emu:
        created = _create_together(emu, INSTANCES)
        ids = {c["DBInstanceId"] for c in created}
        assert len(ids) == INSTANCES
        assert len({c["ConnectionString"] for c in created}) == INSTANCES

        _wait_all_running(emu, ids, CONVERGE_SECONDS)

        for instance in created:
            prepare_k3s_datastore(emu, instance["DBInstanceId"])
            conn = connect(instance["ConnectionString"], int(instance["Port"]))
            with conn, conn.cursor() as cursor:
                cursor.execute("CREATE TABLE kine (id INTEGER PRIMARY KEY, name VARCHAR(630))")
                cursor.execute("INSERT INTO kine VALUES (1, %s)", (instance["DBInstanceId"],))
                cursor.execute("SELECT name, USER() FROM kine")
                assert cursor.fetchone() == (instance["DBInstanceId"], "k3s@127.0.0.1")
    assert not mariadbd_processes(state)


def test_a_server_that_cannot_start_is_reported_and_retried(tmp_path: Path) -> None:
    """A start failure shows in the control API's `error`, and the start is retried until
    the cause is gone (here: a regular file where the server's tmpdir belongs)."""
    state = tmp_path / "state"
    with Emulator(state, time_scale=0.02) as emu:
        created = emu.call(_create_request(emu))
        instance_id = created["DBInstanceId"]
        _wait_all_running(emu, {instance_id}, CONVERGE_SECONDS)
        emu.stop()
        blocker = state / "rds" / instance_id / "tmp"
        blocker.rmdir()
        blocker.write_text("not a directory")

        emu.start()
        entry = wait_until(lambda: _resource_with_error(emu, instance_id), timeout=20,
                           what="the start failure reported")
        assert "start attempt" in entry["error"] and not entry["pids"]

        blocker.unlink()
        wait_until(lambda: _serving(emu, instance_id), timeout=20, what="the retried start")
        prepare_k3s_datastore(emu, instance_id)
        conn = connect(created["ConnectionString"], int(created["Port"]))
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
    assert not mariadbd_processes(state)


def _resource_with_error(emu: Emulator, instance_id: str) -> dict[str, Any] | None:
    entry = resource(emu, instance_id)
    return entry if entry is not None and entry["error"] else None


def _serving(emu: Emulator, instance_id: str) -> bool:
    entry = resource(emu, instance_id)
    return entry is not None and not entry["error"] and bool(entry["pids"])
