"""Which nodes count for what: `present()` (still on its host) and `live()` (part of the
cluster from now on), and the bugs the two rules fixed where each place had its own."""

from __future__ import annotations

import pytest

from clusters.models import Node, NodeRole, NodeStatus, Run, RunKind, RunStatus
from clusters.steps.k3s import kubeconfig_server
from clusters.steps.slb import backend_servers
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db


def test_a_node_being_removed_is_present_but_not_live() -> None:
    cluster = make_cluster(nodes=4)
    first, second, third, agent = cluster.nodes.order_by("pk")
    Node.objects.filter(pk=second.pk).update(status=NodeStatus.REMOVING)
    Node.objects.filter(pk=third.pk).update(status=NodeStatus.REMOVED, role=NodeRole.SERVER)
    assert set(cluster.nodes.present()) == {first, second, agent}
    assert set(cluster.nodes.live()) == {first, agent}
    assert set(cluster.nodes.live().servers()) == {first}
    assert set(cluster.nodes.present().agents()) == {agent}


def test_another_run_does_not_put_a_half_removed_server_back_into_the_slb() -> None:
    """A removal that failed after slb.detach leaves the server REMOVING; an add-node run's
    slb.listener used to add it back as a backend (it excluded only REMOVED)."""
    cluster = make_cluster(nodes=2)
    kept, leaving = cluster.nodes.order_by("pk")
    Node.objects.filter(pk=kept.pk).update(ecs_instance_id="i-kept")
    Node.objects.filter(pk=leaving.pk).update(ecs_instance_id="i-leaving",
                                              status=NodeStatus.REMOVING)
    assert backend_servers(cluster) == {"i-kept": kept.private_ip}


def test_the_kubeconfig_is_not_read_from_a_server_being_removed() -> None:
    cluster = make_cluster(nodes=2)
    first, second = cluster.nodes.order_by("pk")
    Node.objects.filter(pk=first.pk).update(status=NodeStatus.REMOVING)
    assert kubeconfig_server(cluster) == second


def test_a_cluster_is_idle_until_a_run_is_pending_or_running() -> None:
    cluster = make_cluster(status="ready")
    Run.objects.create(cluster=cluster, kind=RunKind.TEST, status=RunStatus.FAILED)
    assert cluster.is_idle and cluster.can_change_nodes and cluster.can_destroy
    Run.objects.create(cluster=cluster, kind=RunKind.TEST, status=RunStatus.PENDING)
    fresh = type(cluster).objects.get(pk=cluster.pk)
    assert not fresh.is_idle and not fresh.can_change_nodes and not fresh.can_destroy
    assert list(Run.objects.active().values_list("status", flat=True)) == [RunStatus.PENDING]
