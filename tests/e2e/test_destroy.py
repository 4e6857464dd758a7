"""Destroy: whatever create left behind, nothing stays on the bill or on the hosts."""

from __future__ import annotations

import time

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest

from clusters import operations
from clusters.adapters import cloud
from clusters.models import (
    RUN_ACTIVE,
    AuditEvent,
    CloudResource,
    Cluster,
    ClusterStatus,
    LogLine,
    Node,
    ResourceState,
    Run,
    RunKind,
    RunStatus,
    StepStatus,
)
from clusters.operations import create
from tests.e2e.day2 import assert_succeeded, cloud_left, failures_of, k3s_traces
from tests.e2e.test_day2_nodes import host_entry, slb_backends
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

CRASHY = {"PANEL_STEP_LEASE_SECONDS": "4", "PANEL_SWEEP_INTERVAL_SECONDS": "1"}
# Create is stopped at every step of its plan in turn (2 servers, 1 agent: 13 steps). The
# step's key holds a node id, so a step is named by its position in the plan.
PLAN_LENGTH = 13
STARTED = (StepStatus.RUNNING, StepStatus.WAITING, StepStatus.SUCCEEDED)


def step_key(cluster: Cluster, position: int) -> str:
    keys = [spec.key for spec in create.create_plan(cluster)]
    assert len(keys) == PLAN_LENGTH, keys
    return keys[position]


def destroy(cluster: Cluster, **options) -> Run:
    run = operations.start_destroy(cluster, confirm_name=cluster.name, **options)
    return runs.wait_finished(run, timeout=180)


def assert_clean(world, cluster: Cluster, hosts=None) -> None:
    """Nothing of the cluster left in the cloud or the database, and no K3s on `hosts`
    (every host of the world unless told)."""
    assert cloud_left(world, cluster) == []
    for host in world.lab.hosts if hosts is None else hosts:
        assert k3s_traces(world, host) == [], host.ip
    assert not CloudResource.objects.filter(cluster=cluster).exclude(
        state=ResourceState.DELETED).exists()
    assert all(row.deleted_at for row in CloudResource.objects.filter(cluster=cluster))
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.DESTROYED
    assert set(cluster.nodes.values_list("status", flat=True)) == {"removed"}


# The stop points run in lanes at once, each lane on 3 hosts of its own that it reuses point
# after point (so every later create on a lane's hosts proves the destroy before it left
# nothing): the run takes as long as the longest lane, not as the sum of all points.
LANES = 4
HOSTS_PER_CLUSTER = 3


def lanes_of_points() -> list[list[int]]:
    """Every point of the plan in exactly one lane; a late (long) point shares a lane with
    early (short) ones, so the lanes take about as long as each other."""
    lanes: list[list[int]] = [[] for _ in range(LANES)]
    for point in reversed(range(PLAN_LENGTH)):
        min(lanes, key=lambda lane: sum(p + 4 for p in lane)).append(point)
    assert sorted(p for lane in lanes for p in lane) == list(range(PLAN_LENGTH)), lanes
    return lanes


def until(condition, timeout: float, what: str):
    """Yield (let the other lanes go on) until condition() holds; fail after timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        yield


def finished(run: Run):
    return lambda: Run.objects.get(pk=run.pk).status not in RUN_ACTIVE


def stop_then_destroy(world, lane: int, points: list[int], stopped_at: dict):
    """One lane: for each point, create stops at it, destroy cleans up, and the next create on
    the same hosts starts from nothing (preflight would refuse a host with K3s on 6443). The
    prints are the lanes' timeline, shown when the test fails."""
    first_host = lane * HOSTS_PER_CLUSTER
    hosts = world.lab.hosts[first_host:first_host + HOSTS_PER_CLUSTER]
    for point in points:
        cluster = make_world_cluster(world, servers=2, agents=1, name=f"stop-at-{point}",
                                     first_host=first_host)
        key = step_key(cluster, point)
        create = operations.start_create(cluster)
        try:
            yield from until(lambda create=create, key=key: runs.step(create, key).status in
                             STARTED or Run.objects.get(pk=create.pk).status not in RUN_ACTIVE,
                             240, f"step {key} to start")
        except AssertionError as exc:
            steps = create.steps.values_list("key", "status", "wait_reason", "error")
            raise AssertionError(f"{exc}: {list(steps)}") from None
        print(f"{time.monotonic():.1f} lane {lane} point {point} reached", flush=True)
        operations.cancel(create)
        yield from until(finished(create), 240, f"create {create.pk} (point {point}) to end")
        create.refresh_from_db()
        # The last step may finish the run before the cancel lands: then a ready cluster is
        # destroyed, which is a case worth covering too.
        assert create.status in (RunStatus.CANCELLED, RunStatus.SUCCEEDED), (
            point, failures_of(create))
        stopped_at[point] = runs.step(create, key).status

        print(f"{time.monotonic():.1f} lane {lane} point {point} stopped", flush=True)
        run = operations.start_destroy(cluster, confirm_name=cluster.name)
        yield from until(finished(run), 240, f"destroy {run.pk} (point {point}) to end")
        run.refresh_from_db()
        assert_succeeded(run)
        assert_clean(world, cluster, hosts)
        print(f"{time.monotonic():.1f} lane {lane} point {point} destroyed", flush=True)


@pytest.mark.world_hosts(LANES * HOSTS_PER_CLUSTER)
def test_destroy_after_create_stopped_at_each_point(world, start_worker):
    """Every point of the create plan: create stops there, destroy cleans up, and the next
    create on the same hosts starts from nothing. The lanes share one world, one worker and
    one cloud, so a destroy also proves it touches no other cluster's resources."""
    start_worker(concurrency=2 * LANES, beat=True, **world_env(world))
    stopped_at: dict[int, str] = {}
    active = [stop_then_destroy(world, lane, points, stopped_at)
              for lane, points in enumerate(lanes_of_points())]
    while active:
        for lane in list(active):
            try:
                next(lane)
            except StopIteration:
                active.remove(lane)
        time.sleep(0.1)
    assert sorted(stopped_at) == list(range(PLAN_LENGTH)), stopped_at
    # Each step was really reached: it ran (and was stopped after it) or was waiting.
    assert set(stopped_at.values()) <= {StepStatus.SUCCEEDED, StepStatus.CANCELLED}, stopped_at
    for host in world.lab.hosts:
        assert k3s_traces(world, host) == [], host.ip


def test_destroy_survives_a_worker_kill_and_refuses_a_second_time(world, start_worker,
                                                                   tmp_path):
    env = {**world_env(world), **CRASHY}
    first = start_worker(concurrency=2, beat=True, **env)
    cluster = make_world_cluster(world, servers=2, agents=1)
    assert_succeeded(runs.wait_finished(operations.start_create(cluster), timeout=300))
    assert all(k3s_traces(world, host) for host in world.lab.hosts[:3])

    with pytest.raises(operations.OperationRefused, match="Type the cluster's name"):
        operations.start_destroy(cluster, confirm_name="not-" + cluster.name)
    run = operations.start_destroy(cluster, confirm_name=cluster.name)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYING
    cleaning = LogLine.objects.filter(step__run=run, step__key="uninstall",
                                      text__contains="running /usr/local/bin/k3s")
    runs.wait_until(cleaning.exists, 120, "K3s to be coming off a host")
    first.kill_hard()

    start_worker(concurrency=2, beat=True, **env)
    run = runs.wait_finished(run, timeout=180)
    assert_succeeded(run)
    assert_clean(world, cluster)
    assert run.steps.get(key="uninstall").attempts >= 2, "the kill landed mid-step"

    cluster.refresh_from_db()
    assert cluster.kubeconfig == ""
    assert set(cluster.runs.values_list("kind", "status")) == {
        (RunKind.CREATE, RunStatus.SUCCEEDED), (RunKind.DESTROY, RunStatus.SUCCEEDED)}
    with pytest.raises(operations.OperationRefused, match="already destroyed"):
        operations.start_destroy(cluster, confirm_name=cluster.name)
    with pytest.raises(operations.OperationRefused):
        operations.start_add_nodes(cluster, list(Node.objects.filter(cluster=cluster)))
    with pytest.raises(operations.OperationRefused, match="destroyed"):
        operations.retry(cluster.runs.get(kind=RunKind.CREATE))
    assert not AuditEvent.objects.exists()  # the operations API writes none; views do


def test_unreachable_host_fails_clearly_retry_finishes_and_the_database_is_kept(
        world, start_worker):
    start_worker(concurrency=2, beat=True, **world_env(world))
    cluster = make_world_cluster(world, servers=1, agents=1)
    assert_succeeded(runs.wait_finished(operations.start_create(cluster), timeout=300))
    rds = CloudResource.objects.get(cluster=cluster, kind="rds_instance")
    agent = cluster.nodes.get(role="agent")
    Node.objects.filter(pk=agent.pk).update(ssh_port=1)  # as if the host were unreachable

    run = destroy(cluster, keep_database=True)
    assert run.status == RunStatus.FAILED
    error = run.steps.get(key="uninstall").error
    assert f"Could not remove K3s from 1 host(s) ({agent.private_ip}:" in error, error
    assert "1 of 2 host(s) are done. Make the host reachable and press Retry." in error
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.FAILED
    assert k3s_traces(world, world.lab.hosts[0]) == []
    assert CloudResource.objects.get(cluster=cluster, kind="slb").state == ResourceState.DELETED

    Node.objects.filter(pk=agent.pk).update(ssh_port=agent.ssh_port)
    assert operations.retry(run)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYING
    assert_succeeded(runs.wait_finished(run, timeout=120))
    assert k3s_traces(world, world.lab.hosts[1]) == []
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYED

    left = cloud_left(world, cluster)
    assert [(r["type"], r["id"], r["state"]) for r in left] == [
        ("rds_instance", rds.provider_id, "Running")]
    rds.refresh_from_db()
    assert rds.state == ResourceState.PRESENT
    assert LogLine.objects.filter(text__contains="was kept, as asked").exists()


def test_a_cluster_with_a_pay_by_spec_clb_bought_before_the_cutoff_keeps_working_and_destroys(
        world, start_worker):
    """A cluster from before 2025-06-01: its ledger holds a pay-by-specification CLB, which
    can no longer be bought but still runs. The run uses it (nothing new is bought), the
    cluster comes up healthy through it, a server is added behind it and removed again, and
    destroy leaves no SLB behind."""
    start_worker(concurrency=2, beat=True, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0, slb_charge_type="PayBySpec",
                                 slb_spec="slb.s1.small")
    legacy = world.emulator.control.seed_legacy_load_balancer(
        region_id=world.region, vswitch_id=world.vswitch_id, spec="slb.s1.small",
        name=f"k3s-{cluster.name}", tags=cloud.tags(cluster))
    CloudResource.objects.create(
        cluster=cluster, kind="slb", provider_id=legacy["load_balancer_id"],
        client_token=f"k3s-{cluster.code.hex}-slb"[:64], region=world.region,
        state=ResourceState.PRESENT, attributes={"address": legacy["address"],
                                                 "instance_charge_type": "PayBySpec",
                                                 "spec": "slb.s1.small"})
    assert_succeeded(runs.wait_finished(operations.start_create(cluster), timeout=300))
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.READY and cluster.slb_address == legacy["address"]
    assert (cluster.slb_charge_type, cluster.slb_spec) == ("PayBySpec", "slb.s1.small")
    (balancer,) = [r for r in cloud_left(world, cluster) if r["type"] == "slb_load_balancer"]
    assert (balancer["id"], balancer["instance_charge_type"], balancer["spec"]) == (
        legacy["load_balancer_id"], "PayBySpec", "slb.s1.small")
    assert not [c for c in world.emulator.control.calls()
                if c["action"] == "CreateLoadBalancer"], "nothing new was bought"
    # Buying another one like it today is refused, as Alibaba Cloud does since 2025-06-01.
    again = CreateLoadBalancerRequest()
    again.set_VSwitchId(world.vswitch_id)
    again.set_LoadBalancerSpec("slb.s1.small")
    again.set_InstanceChargeType("PayBySpec")
    with pytest.raises(ServerException) as refused:
        world.emulator.call(again)
    assert refused.value.get_error_code() == "IllegalParam.InstanceChargeType"

    # Day 2 on the old CLB: a third server joins behind it, then leaves it again.
    h1, h2, h3 = world.lab.hosts
    assert_succeeded(runs.wait_finished(operations.start_add_nodes(
        cluster, [host_entry(h3, "server")]), timeout=300))
    servers = {world.instance_ids[h.ip] for h in (h1, h2, h3)}
    assert slb_backends(world, cluster) == servers
    node = Node.objects.get(cluster=cluster, private_ip=h3.ip)
    assert_succeeded(runs.wait_finished(operations.start_remove_node(cluster, node),
                                        timeout=120))
    assert slb_backends(world, cluster) == servers - {world.instance_ids[h3.ip]}

    run = destroy(cluster)
    assert_succeeded(run)
    assert_clean(world, cluster)
    assert legacy["load_balancer_id"] not in {
        r["id"] for r in world.emulator.control.resources()}
