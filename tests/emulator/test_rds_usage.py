"""DescribeResourceUsage follows the real MariaDB behind the instance, as the panel reads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alibabacloud_rds20140815.models import DescribeResourceUsageResponseBody
from aliyunsdkrds.request.v20140815.DescribeResourceUsageRequest import (
    DescribeResourceUsageRequest,
)

from clusters.adapters.aliyun import AliyunCloud
from sandbox.aliyun.testing import Emulator
from tests.emulator.test_rds_api import (
    api_error,
    connect,
    create_instance,
    prepare_k3s_datastore,
    wait_running,
)
from tests.support.emulator_calls import call

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROW_BYTES = 4096
ROWS = 800  # ~3 MB: far above InnoDB's empty-table pages


def usage(emu: Emulator, instance_id: str) -> dict:
    return call(emu, DescribeResourceUsageRequest(), DBInstanceId=instance_id)


def test_resource_usage_grows_with_the_data_and_parses_as_alibabas_model(tmp_path: Path) -> None:
    with Emulator(tmp_path / "state", time_scale=0.01) as emu:
        created = create_instance(emu, version="8.0")
        instance_id = created["DBInstanceId"]
        wait_running(emu, instance_id)
        prepare_k3s_datastore(emu, instance_id)
        before = usage(emu, instance_id)

        conn = connect(created["ConnectionString"], int(created["Port"]))
        with conn, conn.cursor() as cursor:
            cursor.execute("CREATE TABLE filler (id INT PRIMARY KEY, payload MEDIUMBLOB)")
            cursor.executemany("INSERT INTO filler VALUES (%s, %s)",
                               [(i, b"x" * ROW_BYTES) for i in range(ROWS)])
            cursor.execute("ANALYZE TABLE filler")
            cursor.execute("SELECT data_length + index_length FROM information_schema.TABLES "
                           "WHERE table_schema = 'k3s' AND table_name = 'filler'")
            (table_bytes,) = cursor.fetchone()
        after = usage(emu, instance_id)

        # Alibaba's V2 model reads every figure the panel uses, at the same names and types.
        model = DescribeResourceUsageResponseBody().from_map(after)
        assert model.dbinstance_id == instance_id and model.engine == "MySQL"
        assert model.disk_used == model.data_size + model.log_size
        assert model.log_size > 0, "the redo log is on the instance's disk"
        assert after["DataSize"] - before["DataSize"] >= ROWS * ROW_BYTES * 0.9
        assert after["DataSize"] >= table_bytes >= ROWS * ROW_BYTES
        assert set(after) - {"RequestId"} <= set(DescribeResourceUsageResponseBody().from_map(
            after).to_map()), "a field the V2 model does not know"

        # The adapter's view: the same bytes, against the instance's 20 GB.
        api = AliyunCloud(emu.access_key_id, emu.access_key_secret, emu.region_id,
                          emu.endpoint)
        read = api.describe_resource_usage(instance_id)
        assert (read.disk_used, read.data_size) == (after["DiskUsed"], after["DataSize"])
        described = api.describe_rds(instance_id)
        assert described is not None and described.storage_gb == 20

        assert api_error(emu, DescribeResourceUsageRequest(), DBInstanceId="rm-nosuch") == (
            400, "InvalidDBInstanceId.NotFound")
