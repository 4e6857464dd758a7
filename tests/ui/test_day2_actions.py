"""The cluster page's membership actions: add a node, remove one, destroy; who may use them
and what they refuse."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudResource,
    Cluster,
    ClusterStatus,
    Node,
    NodeRole,
    NodeStatus,
    Run,
    RunKind,
)
from clusters.operations import destroy, nodes
from tests.support.factories import make_cluster, make_user


@pytest.fixture
def cluster(user: Any) -> Cluster:
    """Ready, two servers and one agent (make_cluster: the first two nodes are servers)."""
    return make_cluster(owner=user, nodes=3, name="edge", status=ClusterStatus.READY,
                        kubeconfig="apiVersion: v1\n", slb_address="10.0.9.9")


def page_of(client: Client, cluster: Cluster) -> str:
    response = client.get(reverse("clusters:cluster", args=[cluster.code]))
    assert response.status_code == 200
    return response.content.decode()


def remove_url(cluster: Cluster, node: Node) -> str:
    return reverse("clusters:node-remove", args=[cluster.code, node.pk])


def host(**fields: Any) -> dict[str, Any]:
    return {"node-role": "agent", "node-private_ip": "10.0.5.20", "node-ssh_port": "22",
            "node-ssh_user": "root", "node-auth": "password", "node-password": "s3cret-pw",
            **{f"node-{key}": value for key, value in fields.items()}}


def test_a_ready_cluster_offers_add_remove_and_destroy(cluster: Cluster,
                                                       owner_client: Client) -> None:
    page = page_of(owner_client, cluster)
    for node in cluster.nodes.all():
        assert f'action="{remove_url(cluster, node)}"' in page
    assert f'action="{reverse("clusters:node-add", args=[cluster.code])}"' in page
    assert 'name="node-private_ip"' in page and 'name="node-password"' in page
    assert f'action="{reverse("clusters:cluster-destroy", args=[cluster.code])}"' in page
    assert 'name="keep_database"' in page and 'name="confirm_name"' in page
    assert page.count('name="csrfmiddlewaretoken"') >= 5
    # Two servers: removing one leaves a single server, and the confirm text says so.
    assert "Only 1 server will remain" in page


def test_adding_a_node_checks_the_host_like_the_wizard(cluster: Cluster,
                                                       owner_client: Client) -> None:
    url = reverse("clusters:node-add", args=[cluster.code])
    bad = owner_client.post(url, host(private_ip="8.8.8.8", password=""))
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "8.8.8.8 is a public address" in text and "Enter the SSH password." in text
    taken = owner_client.post(url, host(private_ip="10.0.0.1"))
    assert "10.0.0.1 is already a node of this cluster." in taken.content.decode()
    assert not Run.objects.exists()

    response = owner_client.post(url, host(role="server"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    assert run.kind == RunKind.ADD_NODE
    added = Node.objects.get(cluster=cluster, private_ip="10.0.5.20")
    assert (added.role, added.status, added.ssh_password) == (NodeRole.SERVER, "pending",
                                                              "s3cret-pw")
    assert run.params["node_ids"] == [added.pk]
    assert [step.key for step in run.steps.order_by("position")][:3] == [
        "preflight_cloud", "preflight_hosts", "rds_configure"]
    event = AuditEvent.objects.get()
    assert (event.action, event.details["private_ip"]) == (AuditAction.NODE_ADD, "10.0.5.20")
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.UPDATING


def test_removing_the_last_server_is_refused(user: Any, owner_client: Client) -> None:
    cluster = make_cluster(owner=user, nodes=1, status=ClusterStatus.READY,
                           kubeconfig="apiVersion: v1\n")
    agent = Node.objects.create(cluster=cluster, role=NodeRole.AGENT, private_ip="10.0.7.7",
                                ssh_password="pw", name="worker")
    (server,) = cluster.nodes.filter(role=NodeRole.SERVER)
    assert "This is the last server: it cannot be removed." in page_of(owner_client, cluster)

    refused = owner_client.post(remove_url(cluster, server), follow=True)
    assert "is the cluster&#x27;s last server: without it there is no API" in \
        refused.content.decode()
    assert not Run.objects.exists() and not AuditEvent.objects.exists()

    owner_client.post(remove_url(cluster, agent))
    run = Run.objects.get()
    assert (run.kind, run.params["node_id"]) == (RunKind.REMOVE_NODE, agent.pk)
    agent.refresh_from_db()
    assert agent.status == NodeStatus.REMOVING
    assert AuditEvent.objects.get().action == AuditAction.NODE_REMOVE
    again = owner_client.post(remove_url(cluster, agent), follow=True)
    assert "has a run in progress" in again.content.decode()


def test_destroy_needs_the_typed_name_and_passes_keep_database(cluster: Cluster,
                                                               owner_client: Client) -> None:
    url = reverse("clusters:cluster-destroy", args=[cluster.code])
    wrong = owner_client.post(url, {"confirm_name": "edgy", "keep_database": "on"}, follow=True)
    assert "Type the cluster&#x27;s name to confirm" in wrong.content.decode()
    assert not Run.objects.exists()

    owner_client.post(url, {"confirm_name": "edge", "keep_database": "on"})
    run = Run.objects.get()
    assert (run.kind, run.params) == (RunKind.DESTROY, {"keep_database": True})
    assert "rds_delete" not in set(run.steps.values_list("key", flat=True))
    event = AuditEvent.objects.get()
    assert (event.action, event.details["keep_database"]) == (AuditAction.CLUSTER_DESTROY, True)
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.DESTROYING


def test_a_destroyed_cluster_offers_nothing_and_refuses_everything(
        cluster: Cluster, owner_client: Client) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYED)
    page = page_of(owner_client, cluster)
    assert "node-remove" not in page and 'name="node-private_ip"' not in page
    assert 'name="confirm_name"' not in page
    node = cluster.nodes.first()
    refused = owner_client.post(remove_url(cluster, node), follow=True).content.decode()
    assert "Nodes can only be removed from a ready cluster; this one is Destroyed." in refused
    destroy = owner_client.post(reverse("clusters:cluster-destroy", args=[cluster.code]),
                                {"confirm_name": "edge"}, follow=True).content.decode()
    assert "already destroyed" in destroy
    assert not Run.objects.exists()


def test_other_users_get_404(cluster: Cluster, client_for: Any) -> None:
    stranger = client_for(make_user())
    node = cluster.nodes.first()
    for url, data in ((reverse("clusters:node-add", args=[cluster.code]), host()),
                      (remove_url(cluster, node), {}),
                      (reverse("clusters:cluster-destroy", args=[cluster.code]),
                       {"confirm_name": "edge"})):
        assert stranger.post(url, data).status_code == 404
    other = make_cluster(nodes=1, status=ClusterStatus.READY)
    mine = client_for(cluster.owner)
    assert mine.post(remove_url(cluster, other.nodes.first())).status_code == 404
    assert mine.get(remove_url(cluster, node)).status_code == 405
    assert not Run.objects.exists()


def test_every_step_title_of_the_day2_plans_is_translated(cluster: Cluster) -> None:
    server, agent = cluster.nodes.get(name="node0"), cluster.nodes.get(name="node2")
    for kind in ("rds", "external"):
        Cluster.objects.filter(pk=cluster.pk).update(datastore_kind=kind)
        cluster.refresh_from_db()
        specs = [*destroy.destroy_plan(cluster), *nodes.add_nodes_plan(
            cluster, [server, agent]), *nodes.remove_node_plan(cluster, server)]
        with translation.override("zh-hans"):
            untranslated = [spec.step_title.msgid for spec in specs
                            if spec.step_title.display() == spec.step_title.english()]
        assert not untranslated


def test_the_actions_speak_chinese(cluster: Cluster, client_for: Any) -> None:
    client = client_for(cluster.owner, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    page = page_of(client, cluster)
    for text in ("添加节点", "移除 node2", "销毁集群", "保留 RDS 实例及其数据（将继续计费）",  # noqa: RUF001
                 "只会剩下 1 台服务器：集群将不再高可用。"):  # noqa: RUF001
        assert text in page, text


def test_the_address_of_a_node_still_being_removed_is_refused_on_the_form(
        cluster: Cluster, owner_client: Client) -> None:
    """A failed removal leaves the node REMOVING on its host; the form used to accept its
    address and the start refused it afterwards, away from the field."""
    agent = cluster.nodes.get(role=NodeRole.AGENT)
    Node.objects.filter(pk=agent.pk).update(status=NodeStatus.REMOVING)
    response = owner_client.post(reverse("clusters:node-add", args=[cluster.code]),
                                 host(**{"private_ip": agent.private_ip}))
    assert response.status_code == 400
    assert f"{agent.private_ip} is already a node of this cluster." in response.content.decode()
    assert not Run.objects.exists()


# --- accepting a node's new host key --------------------------------------------------------

NEW_KEY = "SHA256:" + "n" * 43


def host_key_url(cluster: Cluster, node: Node) -> str:
    return reverse("clusters:node-host-key", args=[cluster.code, node.pk])


def test_only_the_owner_may_accept_a_host_key_and_it_is_audited(
        cluster: Cluster, owner_client: Client, client_for: Any) -> None:
    node = cluster.nodes.first()
    assert node is not None
    Node.objects.filter(pk=node.pk).update(host_key="SHA256:" + "o" * 43)
    url = host_key_url(cluster, node)
    assert client_for(make_user()).post(url, {"fingerprint": NEW_KEY}).status_code == 404
    assert owner_client.get(url).status_code == 405
    bad = owner_client.post(url, {"fingerprint": "SHA256:short; rm -rf /"}, follow=True)
    assert "is not an SSH SHA256 fingerprint" in bad.content.decode()
    assert Node.objects.get(pk=node.pk).host_key == "SHA256:" + "o" * 43

    done = owner_client.post(url, {"fingerprint": NEW_KEY}, follow=True)
    assert f"host key {NEW_KEY} accepted" in done.content.decode()
    assert Node.objects.get(pk=node.pk).host_key == NEW_KEY
    event = AuditEvent.objects.get(action=AuditAction.NODE_HOST_KEY)
    assert event.details == {"private_ip": node.private_ip, "previous": "SHA256:" + "o" * 43,
                             "accepted": NEW_KEY}


def test_a_host_key_is_not_changed_while_a_run_goes(cluster: Cluster,
                                                    owner_client: Client) -> None:
    node = cluster.nodes.first()
    assert node is not None
    Run.objects.create(cluster=cluster, kind=RunKind.UPGRADE, status="running")
    assert 'class="node-host-key"' not in page_of(owner_client, cluster)
    refused = owner_client.post(host_key_url(cluster, node), {"fingerprint": NEW_KEY},
                                follow=True)
    assert "run in progress" in refused.content.decode()
    assert Node.objects.get(pk=node.pk).host_key == ""
    assert not AuditEvent.objects.filter(action=AuditAction.NODE_HOST_KEY).exists()


def test_a_scan_of_a_refused_address_dials_nothing(cluster: Cluster, owner_client: Client,
                                                   settings: Any) -> None:
    settings.PANEL_ALLOW_LOOPBACK_HOSTS = False
    node = cluster.nodes.first()
    assert node is not None
    Node.objects.filter(pk=node.pk).update(private_ip="127.0.0.1")
    page = owner_client.post(host_key_url(cluster, node)).content.decode()
    assert "127.0.0.1 is a loopback address" in page and 'name="fingerprint"' not in page
    added = owner_client.post(reverse("clusters:node-add", args=[cluster.code]),
                              host(private_ip="127.0.0.2"))
    assert added.status_code == 400 and "loopback" in added.content.decode()


def test_removing_a_bought_node_says_its_instance_is_released_and_offers_to_keep_it(
        cluster: Cluster, owner_client: Client) -> None:
    """A node whose instance the panel bought (its ledger row): the Remove confirmation says
    the instance is then released and billed until then, and offers "Keep the instance",
    which the run and the audit row carry; a host the owner had says nothing of it."""
    agent = cluster.nodes.get(role=NodeRole.AGENT)
    Node.objects.filter(pk=agent.pk).update(ecs_instance_id="i-bought0001")
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_a1",
                                 client_token=f"{cluster.code.hex}-a1", region="cn-hangzhou",
                                 provider_id="i-bought0001")
    page = page_of(owner_client, cluster)
    assert "Its ECS instance i-bought0001, which the panel bought, is then released" in page
    assert "billed until then" in page
    shown = html.unescape(page)
    assert "it stays in the cluster's security group, which admits it to the nodes'" in shown
    assert "it stays in the cluster's security group until you move it" in shown  # checkbox
    assert page.count('name="keep_instance"') == 1  # the bought agent only
    owner_client.post(remove_url(cluster, agent), {"keep_instance": "on"})
    run = Run.objects.get()
    assert (run.params["instance"], run.params["keep_instance"]) == ("i-bought0001", True)
    assert run.steps.get(key="ecs_instance_delete").args == {
        "node_id": agent.pk, "keep_instances": True}
    assert AuditEvent.objects.get().details["keep_instance"] is True
