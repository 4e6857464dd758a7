"""The datastore thresholds: which measurement turns health degraded, and what it tells a person."""

from __future__ import annotations

import pytest
from django.utils import translation

from clusters.adapters.datastore_health import (
    GIB,
    KineMeasurement,
    Limits,
    StorageUsage,
    capacity_finding,
    connection_limit,
    evaluate,
    required_connections,
)
from clusters.k3s.versions import kine_max_idle_connections
from clusters.web.display import health_reason

LIMITS = Limits(compaction_gap=1000, kine_rows=5000, storage_percent=80,
                connections_percent=80)


def healthy(**changes) -> KineMeasurement:
    values = {"rows": 800, "newest_revision": 12_000, "compacted_revision": 11_400,
              "table_bytes": 2 << 20, "connections_in_use": 30, "max_connections": 300}
    return KineMeasurement(**{**values, **changes})


def codes(findings) -> list[str]:
    return [finding.code for finding in findings]


def judge(measured, storage=None, servers=2, idle=20):
    return evaluate(measured, limits=LIMITS, servers=servers, idle_per_server=idle,
                    storage=storage)


def test_a_compacting_kine_with_room_to_spare_is_healthy() -> None:
    assert judge(healthy(), StorageUsage(2 * GIB, 20 * GIB)) == []


def test_a_compaction_gap_beyond_the_limit_is_a_stalled_compaction() -> None:
    assert judge(healthy(compacted_revision=11_000)) == [], "a gap at the limit is still fine"
    (finding,) = judge(healthy(compacted_revision=10_999))
    assert finding.code == "compaction_stalled" and finding.degraded
    assert finding.params == {"newest": 12_000, "compacted": 10_999, "gap": 1001,
                              "limit": 1000}
    assert "1001 revisions behind" in finding.message
    assert 'Look for "Compact failed" in journalctl -u k3s' in finding.message
    assert "innodb_snapshot_isolation=OFF" in finding.message


def test_a_kine_that_never_compacted_counts_from_revision_zero() -> None:
    (finding,) = judge(healthy(newest_revision=4000, compacted_revision=0))
    assert finding.params["gap"] == 4000


def test_too_many_rows_and_too_many_connections_are_separate_reasons() -> None:
    findings = judge(healthy(rows=5001, rows_capped=True, connections_in_use=241))
    assert codes(findings) == ["rows_high", "connections_high"]
    assert "holds more than 5000 rows" in findings[0].message
    assert findings[1].params == {"used": 241, "max": 300, "percent": 80, "limit": 80}
    assert "Too many connections" in findings[1].message
    assert "datastore-max-open-connections" in findings[1].message
    assert judge(healthy(rows=5000, connections_in_use=240)) == [], "at the limits: fine"


def test_storage_above_its_share_of_the_instance_is_degraded() -> None:
    (finding,) = judge(healthy(), StorageUsage(int(16.5 * GIB), 20 * GIB))
    assert finding.code == "storage_high"
    assert finding.params == {"used": "16.5 GB", "total": "20.0 GB", "percent": 82,
                              "limit": 80}
    assert "Expand the storage" in finding.message
    assert judge(healthy(), StorageUsage(16 * GIB, 20 * GIB)) == []


@pytest.mark.parametrize(("servers", "idle", "needed"), [(3, 20, 100), (3, 2, 46), (1, 20, 40)])
def test_capacity_needs_every_pool_its_bursts_and_a_reserve(servers, idle, needed) -> None:
    assert required_connections(servers, idle) == needed
    assert capacity_finding(needed, servers, idle) is None
    finding = capacity_finding(needed - 1, servers, idle)
    assert finding is not None and finding.degraded
    assert f"about {needed} are needed" in finding.message
    assert "datastore-max-idle-connections" in finding.message


def test_mysqls_default_151_holds_three_old_servers_but_not_five_new_ones() -> None:
    assert capacity_finding(151, 3, kine_max_idle_connections("v1.33.1+k3s1")) is None
    assert capacity_finding(151, 5, kine_max_idle_connections("v1.36.4+k3s1")) is not None


def test_a_per_account_limit_binds_when_it_is_smaller() -> None:
    assert connection_limit(300, 0) == 300, "0: no per-account limit"
    assert connection_limit(300, 50) == 50
    assert connection_limit(300, 500) == 300


def test_an_unreadable_metric_is_unknown_and_the_others_still_count() -> None:
    measured = healthy(rows=None, connections_in_use=290,
                       unreadable={"kine_rows": "MySQL 2013: Lost connection during query"})
    findings = judge(measured)
    assert codes(findings) == ["unknown", "connections_high"]
    assert not findings[0].degraded
    assert findings[0].message == ("Not measured: kine row count (MySQL 2013: Lost connection "
                                   "during query).")


def test_no_measurement_at_all_still_judges_the_storage() -> None:
    (finding,) = judge(None, StorageUsage(19 * GIB, 20 * GIB))
    assert finding.code == "storage_high"


def test_the_page_shows_the_reason_in_chinese() -> None:
    (finding,) = judge(healthy(compacted_revision=0))
    reason = finding.as_reason()
    assert reason["message"] == finding.message and reason["severity"] == "degraded"
    with translation.override("zh-hans"):
        shown = health_reason(reason)
    assert shown.startswith("kine 没有压缩数据存储：最新修订版本为 12000")  # noqa: RUF001
    assert "落后 12000 个修订版本" in shown
    with translation.override("zh-hans"):
        unknown = health_reason(judge(healthy(rows=None, unreadable={"kine_rows": "x"}))[0]
                                .as_reason())
    assert unknown == "未能测量：kine 行数（x）。"  # noqa: RUF001
    assert health_reason("SLB backends unhealthy: 10.0.0.2") == (
        "SLB backends unhealthy: 10.0.0.2"), "older plain reasons show as stored"
