"""Datastore health on the offline world: kine's compaction observed through the server hosts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from clusters import operations
from clusters.adapters import health
from clusters.adapters.kubeapi import KubeClient
from clusters.models import Cluster, DatastoreKind, LogLine, RunStatus, StepStatus
from sandbox.aliyun.rds.mysqld import MariaDBServer
from tests.e2e.test_own_mysql import mysql_made_by_hand
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

ENV_FILE = "/etc/systemd/system/k3s.service.env"  # install.sh's FILE_K3S_ENV
# kine's compaction scaled for a test: every 0.5 s, keeping the newest 5 revisions.
FAST_COMPACTION = {"K3S_STANDIN_COMPACT_INTERVAL": "500ms", "K3S_STANDIN_COMPACT_MIN_RETAIN": "5"}
# What kine logs on MariaDB 11.8+ with innodb_snapshot_isolation ON (k3s-io/kine#745).
ERROR_1020 = ("Error 1020 (HY000): Record has changed since last read in table 'kine'; try "
              "restarting transaction")
GAP_LIMIT = 40


def restart_servers_with(world, cluster: Cluster, env: dict[str, str]) -> None:
    """What an operator's change to the servers' K3s environment does: a restart each."""
    for server in cluster.nodes.filter(role="server"):
        host = world.lab.host(server.private_ip)
        kept = [line for line in world.lab.run(host, f"cat {ENV_FILE}", check=True)
                .stdout.splitlines() if not line.startswith("K3S_STANDIN_COMPACT")]
        text = "\n".join([*kept, *(f'{name}="{value}"' for name, value in env.items())])
        world.lab.run(host, f"cat > {ENV_FILE}", input=text + "\n", check=True)
        world.lab.run(host, "systemctl restart k3s", check=True)


def write_revisions(cluster: Cluster, kubeconfig, count: int) -> None:
    """Ordinary API writes through the SLB: each label change is one kine revision. Sent with
    the stored kubeconfig by the panel's own client: a kubectl process per write costs ~0.3 s
    of start-up and discovery, the same PATCH in-process a few milliseconds."""
    node = cluster.nodes.filter(role="server").order_by("pk").first()
    client = KubeClient(Path(kubeconfig).read_text(), timeout=30)
    for index in range(count):
        status, body = client.send("PATCH", f"/api/v1/nodes/{node.name}",
                                   {"metadata": {"labels": {"churn": str(index)}}},
                                   content_type="application/merge-patch+json")
        assert status == 200, body
        assert json.loads(body)["metadata"]["labels"]["churn"] == str(index), body


def compaction_fact(assessment: health.Assessment) -> str:
    return next((f for f in assessment.facts if f.startswith("Datastore: ")), "")


@pytest.mark.world_hosts(4)
def test_compaction_working_then_broken_and_a_small_max_connections_warned(
        world, start_worker, settings, tmp_path) -> None:
    """Two clusters created at once in one world (hosts 0-1 and 2-3): on a bought RDS, kine's
    compaction seen working then broken; on one's own MySQL with a lowered max_connections,
    the warning in the proof and the health reason."""
    # Own MySQL whose operator lowered max_connections (RDS lets one change it): 2 servers
    # need 2 x (2 idle + 10 burst) + 10 = 34 (clusters/adapters/datastore_health.py).
    _, instance, dsn = mysql_made_by_hand(world)
    # The hand-made instance's template said innodb_large_prefix OFF; the bought one gets
    # RDS's own parameters, as it would alone.
    world.emulator.control.set_rds_parameter_defaults("5.7", {})
    server = MariaDBServer.load(Path(world.emulator.state_dir) / "rds" / instance)
    server.execute("SET GLOBAL max_connections = 30")
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0)
    own = make_world_cluster(world, servers=2, agents=0, first_host=2,
                             datastore_kind=DatastoreKind.EXTERNAL, external_dsn=dsn)
    own_run = operations.start_create(own)
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    cluster = Cluster.objects.select_related("cloud_account").get(pk=cluster.pk)
    assert cluster.health == "healthy", cluster.health_reasons
    proof = run.steps.get(key="datastore_check")
    # The limit the server enforces is the class's, as RDS reports it (mysql.n2.medium.2c).
    assert proof.result["max_connections"] == 1200 and "warnings" not in proof.result
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    settings.PANEL_KINE_COMPACTION_GAP_LIMIT = GAP_LIMIT

    # Compaction working: kine keeps its window, the compacted revision follows the newest.
    restart_servers_with(world, cluster, FAST_COMPACTION)
    runs.wait_until(lambda: health.refresh(cluster).health == "healthy", 60,
                    "the servers to be back")
    write_revisions(cluster, kubeconfig, GAP_LIMIT + 10)
    assessment = None

    def compacted_recently() -> bool:
        nonlocal assessment
        assessment = health.refresh(cluster)
        fact = compaction_fact(assessment)
        return assessment.health == "healthy" and " compacted to 0 " not in fact and "gap" in fact

    runs.wait_until(compacted_recently, 30, "kine to compact")
    assert assessment is not None and assessment.reasons == [], assessment.reasons
    fact = compaction_fact(assessment)
    gap = int(fact.split("(gap ", 1)[1].split(")", 1)[0])
    assert gap <= GAP_LIMIT, fact
    assert "storage 0.0 GB/20.0 GB" in fact and "/1200 connections" in fact

    # Compaction broken (every pass fails, as on MariaDB 11.8 with snapshot isolation): the
    # gap grows with every write until health says so, and what to do.
    restart_servers_with(world, cluster, {**FAST_COMPACTION,
                                          "K3S_STANDIN_COMPACT_ERROR": ERROR_1020})
    runs.wait_until(lambda: health.refresh(cluster).health == "healthy", 60,
                    "the servers to be back")
    write_revisions(cluster, kubeconfig, GAP_LIMIT + 10)

    def stalled() -> bool:
        return health.refresh(cluster).health == "degraded"

    runs.wait_until(stalled, 60, "health to notice the stalled compaction")
    cluster.refresh_from_db()
    (reason,) = [r for r in cluster.health_reasons if isinstance(r, dict)]
    assert reason["code"] == "compaction_stalled" and reason["params"]["gap"] > GAP_LIMIT
    assert 'Look for "Compact failed" in journalctl -u k3s' in reason["message"]
    journal = world.lab.run(world.lab.host(cluster.nodes.filter(role="server").first()
                                           .private_ip), "journalctl -u k3s --no-pager",
                            check=True).stdout
    assert f"Compact failed: failed to get current revision: {ERROR_1020}" in journal

    client = Client()
    client.force_login(cluster.owner)
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "kine is not compacting the datastore" in page
    assert "Degraded" in page

    # --- own MySQL with max_connections 30: a warning, not a failure ------------------------
    run = runs.wait_finished(own_run, timeout=300)
    assert run.status == RunStatus.SUCCEEDED, "a warning, not a failure"
    proof = run.steps.get(key="datastore_check")
    (warning,) = proof.result["warnings"]
    assert warning.startswith("max_connections is 30, but 2 K3s servers keep up to 2 idle")
    said = list(LogLine.objects.filter(step=proof).values_list("text", flat=True))
    assert f"Warning: {warning}" in said

    own = Cluster.objects.get(pk=own.pk)
    assert own.health == "degraded"
    assert [r["code"] for r in own.health_reasons if isinstance(r, dict)] == [
        "connections_capacity"]
