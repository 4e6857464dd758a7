"""Netns mode: the instance address lives in the cloud namespace and serves MySQL there."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.aliyun.rds.mysqld import mariadbd_processes
from sandbox.aliyun.testing import Emulator
from tests.emulator.test_rds_api import (
    PASSWORD,
    create_instance,
    prepare_k3s_datastore,
    wait_running,
)

pytestmark = [pytest.mark.lab, pytest.mark.slow]

CLIENT = """
import sys, pymysql
host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3] or None
try:
    conn = pymysql.connect(host=host, port=port, user="k3s", password=sys.argv[4],
                           database="k3s", bind_address=source, connect_timeout=2,
                           read_timeout=2)
except pymysql.err.OperationalError as exc:
    print("refused", exc.args[0])
else:
    with conn.cursor() as cursor:
        cursor.execute("SELECT USER()")
        print("user", cursor.fetchone()[0])
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def cloud_netns() -> Iterator[str]:
    """A namespace with a veth pair standing in for the lab's cloud namespace and bridge."""
    name = f"rdst{os.getpid()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "cloud0", "type", "veth", "peer", "name", "cloud1")
        _ip("-n", name, "link", "set", "cloud0", "up")
        _ip("-n", name, "link", "set", "cloud1", "up")
        _ip("-n", name, "addr", "add", "10.252.0.5/32", "dev", "cloud0")  # an outsider
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _client(netns: str, host: str, port: int, source: str = "") -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", CLIENT, host, str(port), source,
         PASSWORD], capture_output=True, text=True, timeout=30, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return result.stdout.strip()


def test_instance_serves_inside_the_cloud_namespace(cloud_netns: str, tmp_path: Path) -> None:
    seed = {
        "regions": [{"region_id": "cn-hangzhou", "local_name": "Hangzhou",
                     "zones": ["cn-hangzhou-h"]}],
        "vpcs": [{"vpc_id": "vpc-netnstest", "region_id": "cn-hangzhou", "cidr": "10.251.0.0/16",
                  "vswitches": [{"vswitch_id": "vsw-netnstest", "zone_id": "cn-hangzhou-h",
                                 "cidr": "10.251.7.0/24"}]}],
    }
    state = tmp_path / "state"
    with Emulator(state, time_scale=0.01, netns=cloud_netns, netns_dev="cloud0",
                  seed=seed) as emu:
        created = create_instance(emu, whitelist="10.251.7.0/24")
        address, port = created["ConnectionString"], int(created["Port"])
        assert port == 3306 and address.startswith("10.251.7.")
        wait_running(emu, created["DBInstanceId"])
        prepare_k3s_datastore(emu, created["DBInstanceId"])
        assert _client(cloud_netns, address, port) == f"user k3s@{address}"
        assert _client(cloud_netns, address, port, source="10.252.0.5") == "refused 2013"
        addresses = subprocess.run(["ip", "-n", cloud_netns, "-o", "addr", "show", "cloud0"],
                                   capture_output=True, text=True, check=True).stdout
        assert f"{address}/32" in addresses
    assert not mariadbd_processes(state)
