"""RDS instances outlive the emulator process: graceful restarts and crashes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pymysql
import pytest
from aliyunsdkrds.request.v20140815.DescribeDBInstancesRequest import DescribeDBInstancesRequest

from sandbox.aliyun.rds.mysqld import mariadbd_processes
from sandbox.aliyun.testing import Emulator
from tests.emulator.test_rds_api import (
    connect,
    create_instance,
    prepare_k3s_datastore,
    resource,
    wait_running,
    wait_until,
)
from tests.support.emulator_calls import call

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_instances_survive_restart_and_crash(tmp_path: Path) -> None:
    state = tmp_path / "state"
    emu = Emulator(state, time_scale=0.01)
    try:
        emu.start()
        created = create_instance(emu)
        instance_id, address = created["DBInstanceId"], created["ConnectionString"]
        port = int(created["Port"])
        wait_running(emu, instance_id)
        prepare_k3s_datastore(emu, instance_id)
        conn = connect(address, port)
        with conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE survivors (name VARCHAR(20))")
            cursor.execute("INSERT INTO survivors VALUES ('before restart')")

        emu.stop()  # graceful: servers stop, state and datadirs stay
        assert not mariadbd_processes(state)
        with pytest.raises(pymysql.err.OperationalError):
            connect(address, port, timeout=1.0)

        emu.start()
        listed = call(emu, DescribeDBInstancesRequest())["Items"]["DBInstance"]
        assert [(i["DBInstanceId"], i["DBInstanceStatus"]) for i in listed] == [
            (instance_id, "Running")]
        conn = connect(address, port)
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT name FROM survivors")
            assert cursor.fetchall() == (("before restart",),)
        # The whitelist still holds after the restart.
        with pytest.raises(pymysql.err.OperationalError):
            connect(address, port, source="127.0.0.99", timeout=1.0)

        # A crash (SIGKILL) leaves mariadbd orphaned; the next start replaces it.
        orphan = resource(emu, instance_id)["pids"][0]  # type: ignore[index]
        assert emu.process is not None
        os.kill(emu.process.pid, signal.SIGKILL)
        emu.process.wait(timeout=10)
        emu.process = None
        assert mariadbd_processes(state) == [orphan]
        emu.start()
        assert not Path(f"/proc/{orphan}").exists() or orphan not in mariadbd_processes(state)
        entry = wait_until(lambda: resource(emu, instance_id), what="instance listed")
        assert entry["pids"] and entry["pids"][0] != orphan and entry["listening"]
        conn = connect(address, port)
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM survivors")
            assert cursor.fetchone() == (1,)
    finally:
        emu.stop()
    assert not mariadbd_processes(state)
