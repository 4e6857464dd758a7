"""The cluster page's "Add new instances": offered only to a cluster whose first instances
the panel bought (it reuses their order, security group and key pair), says what will be
billed, refuses a start without a count or the billing confirmed, and starts a run that buys
first (DryRun, then RunInstances per node) and then joins the nodes as Add a node does."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from clusters.models import AuditEvent, CloudResource, Cluster, ClusterStatus, Run, RunKind
from clusters.operations import nodes
from tests.support.factories import make_cluster

ORDER = {"servers": 2, "agents": 1, "instance_type": "ecs.g7.large",
         "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd", "system_disk_gb": 60,
         "public_bandwidth_mbps": 0, "key_pair": ""}


def bought(cluster: Cluster, kind: str, provider_id: str, **extra: Any) -> None:
    CloudResource.objects.create(cluster=cluster, kind=kind, provider_id=provider_id,
                                 client_token=f"tok-{cluster.pk}-{kind}",
                                 region=cluster.region, state="present", **extra)


@pytest.fixture
def cluster(user: Any) -> Cluster:
    """Ready, its three instances bought by the panel (slots s1, s2, a1)."""
    made = make_cluster(owner=user, nodes=3, name="bought", status=ClusterStatus.READY,
                        kubeconfig="apiVersion: v1\n", slb_address="10.0.9.9",
                        instance_order=ORDER)
    bought(made, "ecs_security_group", "sg-nodes")
    bought(made, "ecs_key_pair", "k3s-bought-key")
    for slot in ("s1", "s2", "a1"):
        bought(made, f"ecs_instance_{slot}", f"i-{slot}")
    return made


def url(cluster: Cluster) -> str:
    return reverse("clusters:node-add-instances", args=[cluster.code])


def page_of(client: Client, cluster: Cluster) -> str:
    response = client.get(reverse("clusters:cluster", args=[cluster.code]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_offers_new_instances_and_says_what_each_bills(cluster: Cluster,
                                                                owner_client: Client) -> None:
    page = page_of(owner_client, cluster)
    assert f'action="{url(cluster)}"' in page
    assert 'name="instances-servers"' in page and 'name="instances-confirm_billing"' in page
    assert ("1 ECS instance ecs.g7.large (image ubuntu_24_04_x64_20G_alibase_20250722.vhd, "
            "60 GiB ESSD system disk, no public address), pay-as-you-go") in page


def test_a_cluster_on_its_owners_hosts_is_not_offered_new_instances(
        user: Any, owner_client: Client) -> None:
    typed = make_cluster(owner=user, nodes=3, status=ClusterStatus.READY,
                         kubeconfig="apiVersion: v1\n")
    assert f'action="{url(typed)}"' not in page_of(owner_client, typed)
    response = owner_client.post(url(typed), {"instances-servers": "0", "instances-agents": "1",
                                              "instances-confirm_billing": "on"})
    assert response.status_code == 302 and not Run.objects.exists()
    followed = owner_client.get(response["Location"]).content.decode()
    assert "This cluster runs on hosts its owner already had" in followed


def test_no_count_or_no_billing_confirmation_buys_nothing(cluster: Cluster,
                                                         owner_client: Client) -> None:
    none = owner_client.post(url(cluster), {"instances-servers": "0", "instances-agents": "0",
                                            "instances-confirm_billing": "on"})
    assert none.status_code == 400
    assert "Add at least one server or agent." in none.content.decode()
    unconfirmed = owner_client.post(url(cluster), {"instances-servers": "1",
                                                   "instances-agents": "0"})
    assert unconfirmed.status_code == 400 and "This field is required." in (
        unconfirmed.content.decode())
    assert not Run.objects.exists()


def test_the_run_buys_new_slots_with_the_clusters_group_then_joins_them(
        cluster: Cluster, owner_client: Client) -> None:
    response = owner_client.post(url(cluster), {"instances-servers": "1",
                                                "instances-agents": "2",
                                                "instances-confirm_billing": "on"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"?run={run.pk}")
    assert run.kind == RunKind.ADD_NODE
    # New slots never reuse one the cluster used (a lost buy is adopted by its slot tag).
    assert run.params["slots"] == ["s3", "a2", "a3"]
    steps = {step.key: step for step in run.steps.all()}
    keys = [step.key for step in run.steps.order_by("position")]
    assert keys[:4] == ["ecs_check", "ecs_buy", "preflight_cloud", "preflight_hosts"]
    assert steps["ecs_buy"].args["slots"] == [["s3", "server"], ["a2", "agent"],
                                              ["a3", "agent"]]
    assert steps["preflight_hosts"].args == {"slots": ["s3", "a2", "a3"]}
    assert steps["server_s3"].args == {"slot": "s3"}
    assert {"agent_a2", "agent_a3", "slb_listener", "health"} <= set(keys)
    followed = owner_client.get(response["Location"]).content.decode()
    assert "Buying 3 ECS instances ecs.g7.large" in followed
    assert AuditEvent.objects.get().details == {"run": run.pk, "servers": 1, "agents": 2,
                                                "instance_type": "ecs.g7.large"}
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.UPDATING


def test_an_embedded_etcd_cluster_warns_when_the_servers_become_even(
        user: Any, owner_client: Client) -> None:
    etcd = make_cluster(owner=user, nodes=3, status=ClusterStatus.READY, datastore_kind="etcd",
                        kubeconfig="apiVersion: v1\n", instance_order=ORDER)
    bought(etcd, "ecs_security_group", "sg-etcd")
    bought(etcd, "ecs_key_pair", "k3s-etcd-key")
    # Three servers: one more makes four, which tolerates no more failures than three.
    etcd.nodes.filter(name="node2").update(role="server")
    response = owner_client.post(url(etcd), {"instances-servers": "1", "instances-agents": "0",
                                             "instances-confirm_billing": "on"}, follow=True)
    assert "With 4 servers, etcd tolerates 1 failed server(s)" in response.content.decode()


def test_the_form_and_the_plan_speak_chinese(cluster: Cluster, owner_client: Client) -> None:
    with translation.override("zh-hans"):
        response = owner_client.get(reverse("clusters:cluster", args=[cluster.code]),
                                    HTTP_ACCEPT_LANGUAGE="zh-hans")
        page = response.content.decode()
        assert "添加新实例" in page and "按量付费" in page
        assert "我知道新实例从创建起开始计费" in page
        specs = nodes.add_instances_plan(cluster, [("s3", "server"), ("a2", "agent")])
        untranslated = [spec.step_title.msgid for spec in specs
                        if spec.step_title.display() == spec.step_title.english()]
    assert not untranslated
