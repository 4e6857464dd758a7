"""Adding and removing nodes of a live cluster: kubectl, the SLB and the RDS whitelist agree."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aliyunsdkrds.request.v20140815.DescribeDBInstanceIPArrayListRequest import (
    DescribeDBInstanceIPArrayListRequest,
)

from clusters import operations
from clusters.adapters.aliyun.rds import WHITELIST_GROUP
from clusters.models import (
    CloudResource,
    Cluster,
    ClusterStatus,
    LogLine,
    Node,
    NodeRole,
    NodeStatus,
    RunKind,
)
from sandbox.world import World, running_world
from tests.e2e.day2 import assert_succeeded, k3s_traces, kubectl_nodes
from tests.support import runs
from tests.support.ssh_login import ssh, ssh_run
from tests.support.world_clusters import (
    TEST_K3S_WARMUP_SECONDS,
    WORLD_TIME_SCALE,
    k3s_warmup,
    make_world_cluster,
    world_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Four hosts: two servers to start with, one server and one agent to add."""
    with running_world(hosts=4, time_scale=WORLD_TIME_SCALE,
                       state_dir=tmp_path / "world") as started:
        k3s_warmup(started, TEST_K3S_WARMUP_SECONDS)
        yield started


def host_entry(host, role: str) -> dict:
    return {"role": role, "private_ip": host.ip, "ssh_port": host.ssh_port, "ssh_user": "root",
            "ssh_private_key": Path(host.private_key_path).read_text()}


def slb_backends(world: World, cluster: Cluster) -> set[str]:
    slb_id = CloudResource.objects.get(cluster=cluster, kind="slb").provider_id
    (balancer,) = [r for r in world.emulator.control.resources() if r["id"] == slb_id]
    return set(balancer["backends"])


def rds_whitelist(world: World, cluster: Cluster) -> set[str]:
    request = DescribeDBInstanceIPArrayListRequest()
    request.set_accept_format("json")
    request.set_DBInstanceId(CloudResource.objects.get(cluster=cluster,
                                                       kind="rds_instance").provider_id)
    groups = world.emulator.call(request)["Items"]["DBInstanceIPArray"]
    (ours,) = [g for g in groups if g["DBInstanceIPArrayName"] == WHITELIST_GROUP]
    return set(ours["SecurityIPList"].split(","))


def assert_cluster_matches(world: World, cluster: Cluster, tmp_path: Path,
                           members: list) -> None:
    """kubectl through the SLB lists exactly `members` (hosts), all Ready; the SLB backends
    and the RDS whitelist are exactly the servers among them."""
    nodes = {node.private_ip: node for node in cluster.nodes.exclude(status=NodeStatus.REMOVED)}
    assert set(nodes) == {host.ip for host in members}
    shown = kubectl_nodes(cluster, tmp_path)
    assert shown == {nodes[host.ip].name: "Ready" for host in members}
    servers = [node for node in nodes.values() if node.role == NodeRole.SERVER]
    assert slb_backends(world, cluster) == {world.instance_ids[n.private_ip] for n in servers}
    assert rds_whitelist(world, cluster) == {node.private_ip for node in servers}


def remove(world: World, cluster: Cluster, host) -> None:
    node = Node.objects.get(cluster=cluster, private_ip=host.ip)
    run = runs.wait_finished(operations.start_remove_node(cluster, node), timeout=120)
    assert_succeeded(run)
    node.refresh_from_db()
    assert node.status == NodeStatus.REMOVED
    assert k3s_traces(world, host) == []


def test_add_a_server_and_an_agent_then_remove_them(world, start_worker, tmp_path):
    start_worker(concurrency=2, beat=True, **world_env(world))
    h1, h2, h3, h4 = world.lab.hosts
    # A cluster as the panel made them before agent tokens: its servers run without one (a
    # create retried from FAILED gets none) and no CA hash was recorded.
    cluster = make_world_cluster(world, servers=2, agents=0, status=ClusterStatus.FAILED)
    assert_succeeded(runs.wait_finished(operations.start_create(cluster), timeout=300))
    assert_cluster_matches(world, cluster, tmp_path, [h1, h2])
    assert Cluster.objects.get(pk=cluster.pk).k3s_agent_token == ""
    Cluster.objects.filter(pk=cluster.pk).update(k3s_ca_hash="")

    add = operations.start_add_nodes(cluster, [host_entry(h3, "server"),
                                               host_entry(h4, "agent")])
    assert Cluster.objects.get(pk=cluster.pk).status == "updating"
    add = runs.wait_finished(add, timeout=300)
    assert_succeeded(add)
    assert add.kind == RunKind.ADD_NODE
    # The new server was whitelisted before its K3s was installed.
    steps = {step.key: step for step in add.steps.all()}
    server_key = next(key for key in steps if key.startswith("server_"))
    assert steps["rds_configure"].finished_at <= steps[server_key].started_at
    assert Cluster.objects.get(pk=cluster.pk).status == "ready"
    assert_cluster_matches(world, cluster, tmp_path, [h1, h2, h3, h4])
    # Both joined with the secure form of the server token (the CA read again from a running
    # server); the agent's step log says why it is not an agent token.
    ca_hash = Cluster.objects.get(pk=cluster.pk).k3s_ca_hash
    for host in (h3, h4):
        status, config, _ = ssh_run(ssh(host), "cat /etc/rancher/k3s/config.yaml")
        assert status == 0 and f"token: K10{ca_hash}::server:" in config, config
    assert LogLine.objects.filter(step__run=add, text__contains="created before the panel gave "
                                  "agents a token of their own").exists()

    with pytest.raises(operations.OperationRefused, match="already a node"):
        operations.start_add_nodes(cluster, [host_entry(h1, "agent")])

    remove(world, cluster, h4)
    assert_cluster_matches(world, cluster, tmp_path, [h1, h2, h3])
    remove(world, cluster, h3)
    assert_cluster_matches(world, cluster, tmp_path, [h1, h2])

    # Down to one server: allowed with a warning; the last one is refused.
    remove(world, cluster, h2)
    assert LogLine.objects.filter(step__run__kind=RunKind.REMOVE_NODE,
                                  text__contains="Only 1 server will remain").exists()
    assert_cluster_matches(world, cluster, tmp_path, [h1])
    last = Node.objects.get(cluster=cluster, private_ip=h1.ip)
    with pytest.raises(operations.OperationRefused, match="last server"):
        operations.start_remove_node(cluster, last)
