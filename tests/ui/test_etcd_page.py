"""The cluster page of an embedded-etcd cluster: members, leader, quorum, snapshots, the
restore guide, and a Remove button that says why it is not offered when it would break
quorum. In Chinese too (each string translated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.models import (
    AuditAction,
    AuditEvent,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    EtcdSnapshot,
    Node,
    NodeRole,
)
from tests.support.engine_specs import in_process_engine
from tests.support.factories import make_cluster


def _member(node: Node, healthy: bool, leader: bool = False, error: str = "") -> dict:
    return {"node": node.private_ip, "name": node.name, "healthy": healthy, "leader": leader,
            "error": error}


def _cluster(user: Any, states: list[bool]) -> Any:
    cluster = make_cluster(owner=user, name="quorum", datastore_kind=DatastoreKind.ETCD,
                           status=ClusterStatus.READY, kubeconfig="apiVersion: v1\n",
                           slb_address="10.0.9.9")
    servers = [Node.objects.create(cluster=cluster, role=NodeRole.SERVER, name=f"s{i + 1}",
                                   private_ip=f"10.0.1.{11 + i}", status="ready")
               for i in range(len(states))]
    cluster.etcd_members = [_member(n, ok, leader=i == 0, error="" if ok else
                                    "etcd does not answer on 127.0.0.1:2381 (K3s stopped?)")
                            for i, (n, ok) in enumerate(zip(servers, states, strict=True))]
    cluster.save()
    EtcdSnapshot.objects.create(cluster=cluster, name="pre-upgrade-v1.33.1-k3s1-s1-1764590400",
                                node="s1", size=2125856,
                                taken_at=datetime(2026, 12, 1, 12, tzinfo=UTC))
    return cluster


def test_members_quorum_snapshots_and_the_restore_guide(owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, True, False])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Quorum at risk: 2 of 3 members healthy, exactly a majority" in page
    assert "etcd does not answer on 127.0.0.1:2381" in page
    assert "pre-upgrade-v1.33.1-k3s1-s1-1764590400" in page and "2.0\xa0MB" in page
    guide = reverse("clusters:etcd-restore-doc")
    assert guide in page
    text = owner_client.get(guide).content.decode()
    assert "--cluster-reset-restore-path" in text and "rm -rf /var/lib/rancher/k3s/server/db/" \
        in text
    # s1 and s2 are healthy: once either's K3s is stopped, 1 of 3 voters is healthy, below
    # the 2 needed. s3 (down) may go.
    assert page.count("1 of 3 etcd voting members would be healthy, fewer than the 2") == 2
    assert 'Remove s3' in page and 'Remove s1' not in page and 'Remove s2' not in page

    chinese = owner_client.get(reverse("clusters:cluster", args=[cluster.code]),
                               HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "法定人数有风险" in chinese and "如何从快照恢复集群" in chinese


def test_member_problems_are_shown_translated_and_learners_do_not_count(
        owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, True, True])
    s3 = cluster.nodes.get(name="s3")
    cluster.etcd_members[2] = _member(s3, False) | {
        "code": "no_answer", "params": {"where": "https://10.0.1.13:2379", "detail": "x"}}
    cluster.etcd_members.append({"node": "10.0.1.14", "name": "s4-ab12cd34", "healthy": True,
                                 "leader": False, "learner": True, "code": "learner",
                                 "params": {}, "error": "a learner"})
    cluster.save()
    url = reverse("clusters:cluster", args=[cluster.code])
    page = owner_client.get(url).content.decode()
    # 3 voters (the learner does not vote), 2 healthy.
    assert "Quorum at risk: 2 of 3 members healthy" in page
    assert "etcd does not answer on https://10.0.1.13:2379" in page and "Learner" in page
    chinese = owner_client.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "etcd 未在 https://10.0.1.13:2379 上应答" in chinese


def test_refresh_snapshots_is_queued_to_the_health_worker_and_audited(
        owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, True, True])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    action = reverse("clusters:etcd-snapshots-refresh", args=[cluster.code])
    assert f'action="{action}"' in page and "Refresh snapshots" in page
    with in_process_engine() as engine:
        answer = owner_client.post(action, follow=True)
        sent = [m for m in engine.take() if m.task == "clusters.refresh_etcd_snapshots"]
    assert [m.args[0] for m in sent] == [cluster.pk]
    assert "The snapshots are being listed on the servers again" in answer.content.decode()
    event = AuditEvent.objects.get(action=AuditAction.ETCD_SNAPSHOTS_REFRESH)
    assert (event.user, event.cluster) == (user, cluster)


def test_a_destroyed_cluster_shows_no_etcd_panel_nor_restore_link(
        owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, True, True])
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYED)
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert 'id="etcd-panel"' not in page
    assert reverse("clusters:etcd-restore-doc") not in page
    assert "pre-upgrade-v1.33.1-k3s1-s1-1764590400" not in page
    refused = owner_client.post(reverse("clusters:etcd-snapshots-refresh", args=[cluster.code]),
                                follow=True).content.decode()
    assert "The snapshots can be listed only while the cluster runs" in refused
    assert not AuditEvent.objects.filter(action=AuditAction.ETCD_SNAPSHOTS_REFRESH).exists()


def test_adding_a_fourth_server_is_warned_about(owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, True, True])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "With 4 servers, etcd tolerates 1 failed server(s), no more than with 3" in page


def test_quorum_lost_is_said(owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, False, False])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Quorum lost: 1 of 3 members healthy, 2 needed" in page
