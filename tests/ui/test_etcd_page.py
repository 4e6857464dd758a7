"""The cluster page of an embedded-etcd cluster: members, leader, quorum, snapshots, the
restore guide, and a Remove button that says why it is not offered when it would break
quorum. In Chinese too (each string translated)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.test import Client
from django.urls import reverse

from clusters.models import ClusterStatus, DatastoreKind, EtcdSnapshot, Node, NodeRole
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
    # s1 and s2 are healthy: removing either would leave 1 healthy of 2. s3 (down) may go.
    assert page.count("would leave 1 healthy etcd member(s) of 2") == 2
    assert 'Remove s3' in page and 'Remove s1' not in page and 'Remove s2' not in page

    chinese = owner_client.get(reverse("clusters:cluster", args=[cluster.code]),
                               HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "法定人数有风险" in chinese and "如何从快照恢复集群" in chinese


def test_quorum_lost_is_said(owner_client: Client, user: Any) -> None:
    cluster = _cluster(user, [True, False, False])
    page = owner_client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert "Quorum lost: 1 of 3 members healthy, 2 needed" in page
