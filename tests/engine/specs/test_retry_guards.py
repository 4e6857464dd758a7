"""Rules of Retry on a real cluster's runs: only the newest run of its kind resumes, never
beside another active run, and only when the kind's own rules (ready, version, node state)
still hold; a refused Retry changes nothing, and the page's button asks the same question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clusters import operations
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, ClusterStatus, Node, NodeStatus, Run, RunKind, RunStatus
from tests.support.engine_specs import InProcessEngine
from tests.support.factories import make_cluster

OLD, PATCH, NEXT = "v1.31.4+k3s1", "v1.31.6+k3s1", "v1.32.5+k3s1"


@pytest.fixture
def cluster(db: Any) -> Cluster:
    return make_cluster(nodes=3, status=ClusterStatus.READY, k3s_version=OLD)


def finished_run(engine: InProcessEngine, cluster: Cluster, kind: str, marker: Path,
                 params: dict[str, Any] | None = None) -> Run:
    """A run of `kind` that stops at its only step until `marker` exists (else succeeds),
    started and finished as an operation's would be (the cluster is updating meanwhile)."""
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.UPDATING)
    run = engine.act(pipeline.create_run, cluster, kind,
                     [StepSpec("change", "Change", "test.fail_first",
                               args={"fixed_marker": str(marker)})], params=params)
    engine.deliver_all()
    run.refresh_from_db()
    return run


def upgrade_run(engine: InProcessEngine, cluster: Cluster, to: str, marker: Path,
                start: str = OLD) -> Run:
    return finished_run(engine, cluster, RunKind.UPGRADE, marker,
                        {"from_version": start, "to_version": to, "channel": "",
                         "rollback": False})


def refused(run: Run) -> str:
    """Retry's refusal, checked to be the page's reason too and to change nothing."""
    before = Cluster.objects.get(pk=run.cluster_id).status
    status = Run.objects.get(pk=run.pk).status
    with pytest.raises(operations.OperationRefused) as caught:
        operations.retry(run)
    shown = Run.objects.select_related("cluster").get(pk=run.pk)
    assert operations.retry_refusal(shown) == str(caught.value)
    assert Cluster.objects.get(pk=run.cluster_id).status == before
    assert Run.objects.get(pk=run.pk).status == status
    return str(caught.value)


def test_an_older_upgrade_is_refused_after_a_newer_one_succeeded(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    old = upgrade_run(engine, cluster, PATCH, tmp_path / "never")
    assert old.status == RunStatus.FAILED
    newer = upgrade_run(engine, cluster, NEXT, tmp_path / "fixed", start=OLD)
    (tmp_path / "fixed").touch()
    engine.act(operations.retry, newer)
    engine.deliver_all()
    assert Run.objects.get(pk=newer.pk).status == RunStatus.SUCCEEDED
    Cluster.objects.filter(pk=cluster.pk).update(k3s_version=NEXT)  # as its steps record
    assert f"Upgrade K3s #{newer.pk} was started after this run" in refused(old)
    assert engine.take() == []


def test_an_upgrade_whose_target_became_a_downgrade_is_refused(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    """The newest upgrade, but the cluster runs a later release now: the form's own rule."""
    run = upgrade_run(engine, cluster, PATCH, tmp_path / "never")
    Cluster.objects.filter(pk=cluster.pk).update(k3s_version=NEXT)
    assert "older than the running v1.32.5+k3s1: K3s cannot be downgraded" in refused(run)


def test_an_upgrade_stopped_part_way_resumes(engine: InProcessEngine, cluster: Cluster,
                                             tmp_path: Path) -> None:
    """One server already on the target (the cluster's version says so): Retry continues."""
    run = upgrade_run(engine, cluster, NEXT, tmp_path / "fixed")
    Cluster.objects.filter(pk=cluster.pk).update(k3s_version=NEXT)
    assert operations.retry_refusal(Run.objects.select_related("cluster").get(pk=run.pk)) == ""


def test_an_add_node_run_for_a_host_removed_since_is_refused(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    host = {"role": "agent", "private_ip": "10.0.9.9", "ssh_password": "pw-9"}
    added = engine.act(operations.start_add_nodes, cluster, [host])
    engine.take()  # its preflight stops at once: the host never answered
    added.steps.filter(key="preflight_cloud").update(status="failed", error="no route")
    engine.act(pipeline.advance, added.pk)
    assert Run.objects.get(pk=added.pk).status == RunStatus.FAILED
    node = Node.objects.get(cluster=cluster, private_ip="10.0.9.9")

    removal = engine.act(operations.start_remove_node, cluster, node)
    engine.take()
    removal.steps.update(status="succeeded")
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.REMOVED)  # as node.forget does
    engine.act(pipeline.advance, removal.pk)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY

    assert "10.0.9.9 is not part of this cluster any more" in refused(added)
    assert engine.take() == []


def test_retry_while_another_run_is_active_is_refused(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    """A stale tab's Retry while something else changes the cluster."""
    stopped = finished_run(engine, cluster, RunKind.ADD_NODE, tmp_path / "never")
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY
    engine.act(operations.start_kubeconfig_renewal, cluster)
    engine.take()
    assert "has a run in progress" in refused(stopped)


def test_a_second_retry_of_the_same_run_is_refused(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    """Two tabs press Retry: the first resumes the run, the second finds it running."""
    run = finished_run(engine, cluster, RunKind.ADD_NODE, tmp_path / "never")
    engine.act(operations.retry, run)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.UPDATING
    assert "Only a failed or cancelled run can be retried" in refused(run)


@pytest.mark.parametrize("kind", [RunKind.UPGRADE, RunKind.CREATE, RunKind.ADD_NODE])
def test_retry_of_a_run_that_did_not_stop_is_refused_and_the_status_stays(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path, kind: str) -> None:
    """It used to set the cluster updating (or provisioning) for good."""
    (tmp_path / "fixed").touch()
    run = finished_run(engine, cluster, kind, tmp_path / "fixed",
                       {"from_version": OLD, "to_version": PATCH})
    assert run.status == RunStatus.SUCCEEDED
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY
    assert "Only a failed or cancelled run can be retried" in refused(run)
    assert operations.start_kubeconfig_renewal(cluster).kind == RunKind.RENEW_KUBECONFIG


def test_a_newest_stopped_run_resumes_with_its_status_and_finishes(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    run = finished_run(engine, cluster, RunKind.ADD_NODE, tmp_path / "fixed")
    assert run.status == RunStatus.FAILED
    (tmp_path / "fixed").touch()
    resumed = engine.act(operations.retry, run)
    assert (resumed.pk, resumed.status) == (run.pk, RunStatus.RUNNING)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.UPDATING
    engine.deliver_all()
    assert Run.objects.get(pk=run.pk).status == RunStatus.SUCCEEDED
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY


def test_only_destroy_may_continue_once_it_started(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    upgrade = upgrade_run(engine, cluster, PATCH, tmp_path / "never")
    destroy = finished_run(engine, cluster, RunKind.DESTROY, tmp_path / "never")
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.FAILED
    assert "only the destroy run can be retried" in refused(upgrade)
    (tmp_path / "never").touch()
    engine.act(operations.retry, destroy)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYING
    engine.deliver_all()
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYED


def test_a_removal_is_refused_once_its_host_was_added_back(
        engine: InProcessEngine, cluster: Cluster, tmp_path: Path) -> None:
    agent = cluster.nodes.get(name="node2")
    removal = engine.act(operations.start_remove_node, cluster, agent)
    engine.take()
    removal.steps.exclude(key="health").update(status="succeeded")
    removal.steps.filter(key="health").update(status="failed", error="API timeout")
    Node.objects.filter(pk=agent.pk).update(status=NodeStatus.REMOVED)  # as node.forget does
    engine.act(pipeline.advance, removal.pk)
    assert Run.objects.get(pk=removal.pk).status == RunStatus.FAILED
    assert operations.retry_refusal(Run.objects.select_related("cluster").get(pk=removal.pk)) \
        == ""

    engine.act(operations.start_add_nodes, cluster, [
        {"role": "agent", "private_ip": agent.private_ip, "ssh_password": "pw"}])
    engine.take()
    Run.objects.filter(kind=RunKind.ADD_NODE).update(status=RunStatus.SUCCEEDED)
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    assert f"{agent.private_ip} was added to the cluster again" in refused(removal)
