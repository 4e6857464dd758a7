"""RDS DescribeResourceUsage (2014-08-15), answered from the real MariaDB behind the instance.

Why: the panel's health check compares the database's size with the instance's storage
(DBInstanceStorage of DescribeDBInstanceAttribute), so the figures must move when the data
does: DataSize is what information_schema says the user databases hold, LogSize is the redo
and binary logs in the server's datadir, DiskUsed their sum ("the sum of DataSize and
LogSize", V2 model `DescribeResourceUsageResponseBody`; API reference "Query storage usage",
alibabacloud.com/help/en/rds/api-query-storage-usage). Backup sizes come from the instance's
backups. "-1 indicates that no data is available" (same sources): an instance whose server is
not answering (Creating, Rebooting) reports -1 for what only the server knows.

Registered on the RDS product by importing this module from `sandbox.aliyun.rds.instances`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds.pgserver import PostgresServer
from sandbox.aliyun.rds.product import PRODUCT, find_instance
from sandbox.aliyun.rds.runtime import runtime_of

log = logging.getLogger(__name__)

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
_DATA_SQL = ("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES"
             " WHERE table_schema NOT IN (%s, %s, %s, %s)")
# Redo logs (ib_logfile*) and binary logs; MariaDB's Aria log too: what RDS counts as logs.
_LOG_PATTERNS = ("ib_logfile*", "*-bin.[0-9]*", "mysql-bin.[0-9]*", "aria_log.*")


def _log_bytes(datadir: Path) -> int:
    seen: set[Path] = set()
    for pattern in _LOG_PATTERNS:
        seen.update(path for path in datadir.glob(pattern) if path.is_file())
    return sum(path.stat().st_size for path in seen)


def _server_figures(ctx: RequestContext, instance_id: str) -> tuple[int, int]:
    """(DataSize, LogSize) from the running server, or (-1, -1) when it does not answer."""
    runtime = runtime_of(ctx.cloud)
    if not runtime.is_ready(instance_id):
        return -1, -1
    try:
        server = runtime.instances[instance_id].server
        if isinstance(server, PostgresServer):  # the user databases, and the WAL as logs
            ((data,),) = server.execute(
                "SELECT COALESCE(SUM(pg_database_size(datname)), 0) FROM pg_database"
                " WHERE datname NOT IN ('postgres', 'template0', 'template1')")
            logs = sum(p.stat().st_size for p in (server.datadir / "pg_wal").glob("0*")
                       if p.is_file())
        else:
            ((data,),) = runtime.sql(instance_id, _DATA_SQL, SYSTEM_SCHEMAS)
            logs = _log_bytes(server.datadir)
    except Exception as exc:  # the server went away mid-call: the API reports "no data"
        log.warning("RDS %s: DescribeResourceUsage could not read the server: %s",
                    instance_id, exc)
        return -1, -1
    return int(data), logs


@PRODUCT.action("DescribeResourceUsage", (
    Param("DBInstanceId", required=True), Param("ResourceGroupId"),
))
def describe_resource_usage(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    data, logs = _server_figures(ctx, record["id"])
    backups = sum(b.get("size", 0) for b in record.get("backups", []) if b["status"] != "Running")
    return {
        "DBInstanceId": record["id"], "Engine": record["engine"],
        "DiskUsed": data + logs if data >= 0 else -1, "DataSize": data, "LogSize": logs,
        "SQLSize": -1, "ColdBackupSize": -1, "BackupSize": backups,
        "BackupDataSize": backups, "BackupLogSize": 0, "BackupOssDataSize": 0,
        "BackupOssLogSize": 0, "ArchiveBackupSize": 0, "PaidBackupSize": 0,
    }
