"""The soak harness (benchmarks/soak.py, tests/support/soak.py): it judges right, and it runs.

The full soak (`make soak`: 20 clusters, minutes) is not part of `make test`; this runs the
same command line at a tiny size (3 clusters, one SIGKILL, a 5 s broker outage) so the
harness cannot rot, and checks that its judge calls a duplicate purchase or a failed run a
violation (a soak whose verdict cannot fail proves nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.soak import BOUGHT, SoakPlan, SoakReport, purchases

ROOT = Path(__file__).resolve().parents[2]


def passing_report(plan: SoakPlan) -> SoakReport:
    return SoakReport(
        plan, runs_total=plan.clusters, runs_succeeded=plan.clusters, kills=2,
        outage_seconds=plan.outage_seconds, faults_injected=10, api_calls=40,
        inventory={f"c{i}": dict.fromkeys(BOUGHT, 1) for i in range(plan.clusters)})


def test_the_judge_passes_one_of_each_per_cluster_and_every_run_succeeded() -> None:
    report = passing_report(SoakPlan(clusters=3))
    assert report.violations() == []
    assert report.duplicates() == 0


def test_a_second_load_balancer_for_one_cluster_is_a_duplicate_purchase() -> None:
    report = passing_report(SoakPlan(clusters=3))
    report.inventory["c1"]["slb_load_balancer"] = 2
    assert report.duplicates() == 1
    assert report.violations() == [
        "cluster c1: the cloud holds {'slb_load_balancer': 2} (one of each expected)"]


def test_a_missing_rds_a_stray_purchase_and_a_failed_run_are_each_violations() -> None:
    report = passing_report(SoakPlan(clusters=3))
    report.inventory["c0"]["rds_instance"] = 0
    report.untagged = ["rds_instance rm-stray"]
    report.runs_succeeded = 2
    violations = report.violations()
    assert "1 of 3 runs did not succeed (3 clusters asked for)" in violations
    assert "cluster c0: the cloud holds {'rds_instance': 0} (one of each expected)" in violations
    assert "bought for no cluster of ours: rds_instance rm-stray" in violations
    assert report.duplicates() == 1


def test_a_create_replayed_counts_once_and_a_new_token_is_a_second_purchase() -> None:
    def call(action: str, status: int, token: str) -> dict:
        return {"action": action, "status": status, "params": {"ClientToken": token}}

    calls = [call("CreateLoadBalancer", 200, "k3s-a-slb"), call("CreateLoadBalancer", 200,
             "k3s-a-slb"), call("CreateLoadBalancer", 503, "k3s-b-slb"),
             call("CreateDBInstance", 200, "k3s-a-rds")]
    assert purchases(calls) == {"rds_instance": 1, "slb_load_balancer": 1}
    report = passing_report(SoakPlan(clusters=1))
    report.purchases = purchases([*calls, call("CreateLoadBalancer", 200, "k3s-a-slb-2")])
    assert report.purchases == {"rds_instance": 1, "slb_load_balancer": 2}
    # Released again, so the inventory looks right; the call log still shows two purchases.
    assert report.violations() == ["CreateLoadBalancer succeeded with 2 ClientTokens for 1 "
                                   "clusters"]
    assert report.duplicates() == 1


def test_a_soak_without_its_trouble_is_no_soak() -> None:
    report = passing_report(SoakPlan(clusters=3, outage_seconds=20))
    report.kills, report.faults_injected, report.outage_seconds = 0, 0, 3.0
    assert report.violations() == [
        "the worker was never killed: the soak did not soak",
        "the broker was down 3.0 s, not 20 s",
        "no fault was injected",
    ]


@pytest.mark.slow
@pytest.mark.lab
@pytest.mark.timeout(600)
def test_tiny_soak_passes(tmp_path: Path) -> None:
    """3 clusters at once, 30% faults, one SIGKILL after the broker was down for 5 s."""
    command = [
        sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--clusters", "3",
        "--kill-every", "15", "--max-kills", "1", "--outage", "5", "--outage-at", "3",
        "--time-scale", "0.01", "--timeout", "400", "--log-dir", str(tmp_path),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=560,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"}, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for line in ("runs succeeded: 3/3", "worker SIGKILLs: 1 (every 15 s)",
                 "inventory per cluster: 3 cluster(s) with "
                 "{'rds_instance': 1, 'slb_load_balancer': 1}",
                 "duplicate purchases: 0", "soak passed"):
        assert line in out, out
    assert "broker outage: 5." in out, out
    assert (tmp_path / "worker-02.log").exists()
