"""How the K3s datastore is doing: kine's compaction, its size, and the database's connections.

Why: no peer watches the datastore, and it is where K3s-on-SQL clusters die. kine keeps every
revision of every key as a row and deletes superseded rows only when it compacts; when
compaction stops (k3s#1311: a million rows in two days; k3s#10619; kine#745: MariaDB 11.8's
`Error 1020 ... Record has changed since last read`), the table grows until K3s slows down
and the disk fills. The servers also hold their connection pools open for the cluster's
lifetime, so an instance whose `max_connections` cannot hold them fails later, under load,
with "Too many connections".

What kine records (k3s-io/kine `pkg/drivers/generic/generic.go`, `pkg/logstructured/sqllog/
sql.go`): the newest revision is `MAX(id)`; the compacted revision is the `prev_revision` of
the `compact_rev_key` row (`compactRevSQL`), which every successful compaction updates in
place (`UpdateCompactSQL`). kine compacts every 5 minutes (the `compact-interval` default until
kine v0.16.1; since then the apiserver drives it at its own 5-minute
`--etcd-compaction-interval`) and never within the newest 1000 revisions
(`compact-min-retain`), each pass compacting up to the revision seen on the previous pass. So
a working kine's gap (newest - compacted) stays below about two intervals of writes: a few
thousand revisions for a small cluster (k3s#1311 measured ~5.7 writes/s: ~3,400). A gap far
beyond that means compaction is broken.

This module is pure apart from `measure` (which only runs queries on a connection it is
given): the thresholds are judged in `evaluate`, so they are unit-tested without a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pymysql
from django.utils.translation import gettext_noop

# ----- thresholds --------------------------------------------------------------------------

# A healthy gap is below ~2 x 5 min of writes (≤ a few thousand revisions, see above); 50,000
# is ~2.4 hours of k3s#1311's write rate without a compaction, and would take a sustained
# 80+ writes/s to reach with compaction working. Chosen; PANEL_KINE_COMPACTION_GAP_LIMIT.
DEFAULT_COMPACTION_GAP_LIMIT = 50_000
# kine's list queries group by name over the whole table: k3s#1311 (993,040 rows) and
# kine#213 (~750,000 superseded rows) are where clusters became unusable. Chosen from those;
# PANEL_KINE_ROWS_LIMIT.
DEFAULT_KINE_ROWS_LIMIT = 1_000_000
# RDS locks an instance whose storage is full (writes refused): K3s stops. 80 % leaves time
# to expand. PANEL_DATASTORE_STORAGE_PERCENT.
DEFAULT_STORAGE_PERCENT = 80.0
# Connections beyond max_connections fail with Error 1040; at 80 % a burst (an apiserver
# restart relisting everything) is one step away. PANEL_DATASTORE_CONNECTIONS_PERCENT.
DEFAULT_CONNECTIONS_PERCENT = 80.0

# Capacity: each server keeps kine's idle pool (clusters.k3s.versions.kine_max_idle_connections)
# and opens more under load: kine's max-open is unlimited by default, and kine's own profiling
# note at v0.16 says it "needs ~10-15 connections available under moderate load"
# (generic.go, defaultMaxIdleConns). So each server may burst ~10 beyond its idle pool.
KINE_BURST_CONNECTIONS = 10
# The panel's own checks (datastore proof, health: one connection each), an operator's
# console or DMS session, and monitoring. Chosen.
RESERVED_CONNECTIONS = 10

GIB = 1024 ** 3  # RDS sizes storage in GB; taken as GiB (chosen: the two differ by 7 %)


@dataclass(frozen=True)
class Limits:
    compaction_gap: int = DEFAULT_COMPACTION_GAP_LIMIT
    kine_rows: int = DEFAULT_KINE_ROWS_LIMIT
    storage_percent: float = DEFAULT_STORAGE_PERCENT
    connections_percent: float = DEFAULT_CONNECTIONS_PERCENT


# ----- what is measured ----------------------------------------------------------------------


@dataclass
class KineMeasurement:
    """What the queries read; None where a value could not be read (see `unreadable`)."""

    rows: int | None = None
    rows_capped: bool = False  # counting stopped at the cap: there are more than `rows`
    newest_revision: int | None = None
    compacted_revision: int | None = None
    table_bytes: int | None = None
    connections_in_use: int | None = None
    max_connections: int | None = None
    unreadable: dict[str, str] = field(default_factory=dict)

    @property
    def compaction_gap(self) -> int | None:
        if self.newest_revision is None or self.compacted_revision is None:
            return None
        return max(0, self.newest_revision - self.compacted_revision)


@dataclass(frozen=True)
class StorageUsage:
    """RDS DescribeResourceUsage DiskUsed against DescribeDBInstanceAttribute's storage."""

    used_bytes: int
    total_bytes: int

    @property
    def percent(self) -> float:
        return 100.0 * self.used_bytes / self.total_bytes if self.total_bytes > 0 else 0.0


# Metric keys (also the `metric` of an "unknown" finding).
ROWS, COMPACTION, TABLE_SIZE, CONNECTIONS, MAX_CONNECTIONS, STORAGE = (
    "kine_rows", "compaction", "table_size", "connections", "max_connections", "storage")
METRIC_NAMES: dict[str, str] = {
    ROWS: gettext_noop("kine row count"),
    COMPACTION: gettext_noop("kine compaction"),
    TABLE_SIZE: gettext_noop("kine table size"),
    CONNECTIONS: gettext_noop("connections in use"),
    MAX_CONNECTIONS: gettext_noop("max_connections"),
    STORAGE: gettext_noop("RDS storage usage"),
    "datastore": gettext_noop("the datastore"),
}

# Kine's own queries (generic.go revSQL / compactRevSQL, mysql.go GetSizeSQL): index-only,
# cheap even on a huge table; COUNT(*) is separate because it is the one that scans.
_REVISIONS_SQL = ("SELECT (SELECT MAX(rkv.id) FROM kine AS rkv), (SELECT MAX(crkv.prev_revision)"
                  " FROM kine AS crkv WHERE crkv.name = 'compact_rev_key')")
# Counting stops one row past the limit: a bloated table (the case that matters) costs no more
# than the limit to judge, every minute.
_ROWS_SQL = "SELECT COUNT(*) FROM (SELECT 1 FROM kine LIMIT %d) AS capped"
_SIZE_SQL = ("SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.TABLES"
             " WHERE table_schema = DATABASE() AND table_name = 'kine'")
_IN_USE_SQL = "SHOW GLOBAL STATUS LIKE 'Threads_connected'"
# RDS documents two limits, both modifiable ("Modify maximum connections",
# alibabacloud.com/help/apsaradb-for-rds/latest/modifyf-thef-maximumf-numberf-of-connections):
# max_connections for the instance, max_user_connections per account. kine's pools all use one
# account, so the smaller one binds; 0 means "no per-account limit" (MySQL/MariaDB).
CONNECTION_LIMITS_SQL = "SELECT @@GLOBAL.max_connections, @@GLOBAL.max_user_connections"


def connection_limit(max_connections: int, max_user_connections: int) -> int:
    """The limit kine's account meets first."""
    if max_user_connections > 0:
        return min(max_connections, max_user_connections)
    return max_connections


def _why(exc: pymysql.MySQLError) -> str:
    number = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    detail = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    if number == 1146:
        return "there is no kine table in this database (K3s has not started on it yet)"
    return f"MySQL {number}: {detail}" if number else detail


def measure(conn: pymysql.connections.Connection, *,
            rows_cap: int = DEFAULT_KINE_ROWS_LIMIT) -> KineMeasurement:
    """A few cheap queries on one connection; each failure leaves its value unknown only.
    Rows are counted up to `rows_cap` + 1 (enough to judge the row limit)."""
    found = KineMeasurement()

    def read(metric: str, statement: str) -> tuple | None:
        try:
            with conn.cursor() as cur:
                cur.execute(statement)
                return cur.fetchone()
        except pymysql.MySQLError as exc:
            found.unreadable[metric] = _why(exc)
            return None

    revisions = read(COMPACTION, _REVISIONS_SQL)
    if revisions is not None:
        newest, compacted = revisions
        found.newest_revision = int(newest or 0)
        # No compact_rev_key row: kine never started compacting here (it creates the row on
        # start), so nothing was ever compacted.
        found.compacted_revision = int(compacted or 0)
    counted = read(ROWS, _ROWS_SQL % (int(rows_cap) + 1))
    found.rows = int(counted[0]) if counted else None
    found.rows_capped = found.rows is not None and found.rows > rows_cap
    size = read(TABLE_SIZE, _SIZE_SQL)
    found.table_bytes = int(size[0]) if size else None
    in_use = read(CONNECTIONS, _IN_USE_SQL)
    found.connections_in_use = int(in_use[1]) if in_use else None
    limits = read(MAX_CONNECTIONS, CONNECTION_LIMITS_SQL)
    found.max_connections = connection_limit(int(limits[0]), int(limits[1])) if limits else None
    return found


# ----- findings ----------------------------------------------------------------------------

# What each finding means and what to do; %(name)s are the finding's params. Translated when
# shown (clusters.web.display.health_reason); stored in English with their params.
MESSAGES: dict[str, str] = {
    "compaction_stalled": gettext_noop(
        "kine is not compacting the datastore: its newest revision is %(newest)s but the "
        "compacted revision is %(compacted)s, %(gap)s revisions behind (limit %(limit)s; a "
        "working kine stays within a few thousand). The kine table only grows until K3s slows "
        "down and the database fills up. Look for \"Compact failed\" in journalctl -u k3s on "
        "the servers; on MariaDB 11.8 or newer set innodb_snapshot_isolation=OFF; then "
        "restart K3s on one server so that it compacts."),
    "rows_high": gettext_noop(
        "The kine table holds more than %(limit)s rows: K3s's list requests are getting "
        "slow. Check that kine compacts, and find the keys written most often with: SELECT "
        "name, COUNT(*) FROM kine GROUP BY name ORDER BY 2 DESC LIMIT 10."),
    "storage_high": gettext_noop(
        "The RDS instance uses %(used)s of its %(total)s storage (%(percent)s%%, limit "
        "%(limit)s%%). A full instance is locked and K3s stops. Expand the storage in the RDS "
        "console (or turn on automatic storage expansion), and check that kine compacts."),
    "connections_high": gettext_noop(
        "The database has %(used)s of its %(max)s connections in use (%(percent)s%%, limit "
        "%(limit)s%%). New connections will soon fail with \"Too many connections\" (Error "
        "1040), and K3s servers with them. Use an instance class with more connections, or cap "
        "each server's pool with the K3s flags datastore-max-open-connections and "
        "datastore-max-idle-connections."),
    "connections_capacity": gettext_noop(
        "max_connections is %(max)s, but %(servers)s K3s servers keep up to %(idle)s idle "
        "connections each (kine's pool) plus bursts of about %(burst)s, and the panel and "
        "operators need %(reserve)s: about %(needed)s are needed. Use an instance class with "
        "more connections, or set the K3s server flags datastore-max-idle-connections and "
        "datastore-max-open-connections so that servers x max-open stays below "
        "max_connections."),
    "unknown": gettext_noop("Not measured: %(metric)s (%(detail)s)."),
}


@dataclass(frozen=True)
class Finding:
    """One verdict on the datastore; `degraded` findings turn the cluster's health degraded,
    the others ("unknown") are shown without changing it."""

    code: str
    degraded: bool
    params: dict[str, Any]

    @property
    def message(self) -> str:
        params = dict(self.params)
        if self.code == "unknown":
            params["metric"] = METRIC_NAMES.get(params.get("metric", ""), params.get("metric"))
        return MESSAGES[self.code] % params

    def as_reason(self) -> dict[str, Any]:
        """The stored form (Cluster.health_reasons): English message plus what translates it."""
        return {"check": "datastore", "code": self.code, "params": self.params,
                "severity": "degraded" if self.degraded else "unknown",
                "message": self.message}


def unknown(metric: str, detail: str) -> Finding:
    return Finding("unknown", False, {"metric": metric, "detail": detail})


def required_connections(servers: int, idle_per_server: int) -> int:
    """Connections the cluster may hold at once: pools, their bursts, and a reserve."""
    return servers * (idle_per_server + KINE_BURST_CONNECTIONS) + RESERVED_CONNECTIONS


def capacity_finding(max_connections: int, servers: int,
                     idle_per_server: int) -> Finding | None:
    """The warning when max_connections cannot hold the servers' pools with headroom."""
    needed = required_connections(servers, idle_per_server)
    if servers <= 0 or max_connections >= needed:
        return None
    return Finding("connections_capacity", True, {
        "max": max_connections, "servers": servers, "idle": idle_per_server,
        "burst": KINE_BURST_CONNECTIONS, "reserve": RESERVED_CONNECTIONS, "needed": needed})


def _size(num_bytes: int) -> str:
    return f"{num_bytes / GIB:.1f} GB"


def evaluate(measured: KineMeasurement | None, *, limits: Limits, servers: int,
             idle_per_server: int, storage: StorageUsage | None = None) -> list[Finding]:
    """Every finding for what was measured; what could not be measured is `unknown`."""
    findings: list[Finding] = []
    if measured is not None:
        for metric, detail in measured.unreadable.items():
            findings.append(unknown(metric, detail))
        gap = measured.compaction_gap
        if gap is not None and gap > limits.compaction_gap:
            findings.append(Finding("compaction_stalled", True, {
                "newest": measured.newest_revision, "compacted": measured.compacted_revision,
                "gap": gap, "limit": limits.compaction_gap}))
        if measured.rows is not None and measured.rows > limits.kine_rows:
            findings.append(Finding("rows_high", True, {"limit": limits.kine_rows}))
        in_use, maximum = measured.connections_in_use, measured.max_connections
        if in_use is not None and maximum:
            percent = 100.0 * in_use / maximum
            if percent > limits.connections_percent:
                findings.append(Finding("connections_high", True, {
                    "used": in_use, "max": maximum, "percent": round(percent),
                    "limit": round(limits.connections_percent)}))
        if maximum:
            capacity = capacity_finding(maximum, servers, idle_per_server)
            if capacity is not None:
                findings.append(capacity)
    if storage is not None and storage.percent > limits.storage_percent:
        findings.append(Finding("storage_high", True, {
            "used": _size(storage.used_bytes), "total": _size(storage.total_bytes),
            "percent": round(storage.percent), "limit": round(limits.storage_percent)}))
    return findings


def facts(measured: KineMeasurement | None, storage: StorageUsage | None) -> list[str]:
    """One line of what was read, for the health step's log."""
    if measured is None and storage is None:
        return []
    parts = []
    if measured is not None:
        if measured.rows is not None:
            parts.append(f"kine more than {measured.rows - 1} rows" if measured.rows_capped
                         else f"kine {measured.rows} rows")
        if measured.compaction_gap is not None:
            parts.append(f"revision {measured.newest_revision}, compacted to "
                         f"{measured.compacted_revision} (gap {measured.compaction_gap})")
        if measured.connections_in_use is not None and measured.max_connections:
            parts.append(f"{measured.connections_in_use}/{measured.max_connections} "
                         "connections")
    if storage is not None:
        parts.append(f"storage {_size(storage.used_bytes)}/{_size(storage.total_bytes)} "
                     f"({storage.percent:.1f}%)")
    return ["Datastore: " + ", ".join(parts)] if parts else []
