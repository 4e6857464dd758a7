"""Datastore health reasons on the cluster page, in the reader's language."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from clusters.adapters.datastore_health import KineMeasurement, Limits, evaluate
from clusters.adapters.health import NOT_REFRESHED, cloud_reason
from tests.support.factories import make_cluster

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


def test_datastore_reasons_say_what_to_do_in_english_and_chinese(user: Any,
                                                                 client_for: Any) -> None:
    measured = KineMeasurement(rows=900, newest_revision=90_000, compacted_revision=1_000,
                               connections_in_use=10, max_connections=40,
                               unreadable={"table_size": "MySQL 1142: SELECT denied"})
    findings = evaluate(measured, limits=Limits(), servers=3, idle_per_server=20)
    assert [f.code for f in findings] == ["unknown", "compaction_stalled",
                                          "connections_capacity"]
    cluster = make_cluster(owner=user, nodes=3, name="kine", kubeconfig="apiVersion: v1\n",
                           health="degraded", health_reasons=[f.as_reason() for f in findings])
    url = reverse("clusters:cluster", args=[cluster.code])

    english = client_for(user).get(url).content.decode()
    assert "kine is not compacting the datastore" in english
    assert "89000 revisions behind" in english
    assert "max_connections is 40, but 3 K3s servers keep up to 20 idle" in english
    assert "Not measured: kine table size (MySQL 1142: SELECT denied)." in english

    chinese = client_for(user, **ZH).get(url).content.decode()
    assert "kine 没有压缩数据存储" in chinese and "落后 89000 个修订版本" in chinese
    assert "max_connections 为 40，但 3 台 K3s 服务器" in chinese  # noqa: RUF001
    assert "未能测量：kine 表大小" in chinese  # noqa: RUF001


def test_batched_cloud_reasons_read_in_the_viewers_language(user: Any, client_for: Any) -> None:
    """A throttled region-wide listing leaves the previous verdict with a coded reason
    (clusters.adapters.health.cloud_reason): the page renders it in the reader's language,
    with Alibaba's code and RequestId kept."""
    reason = cloud_reason(NOT_REFRESHED, action="DescribeDBInstances", region="cn-hangzhou",
                          code="Throttling.User", request_id="RQ-7F3A")
    cluster = make_cluster(owner=user, nodes=1, name="batched", kubeconfig="apiVersion: v1\n",
                           health="degraded", health_reasons=[reason])
    url = reverse("clusters:cluster", args=[cluster.code])
    english = client_for(user).get(url).content.decode()
    assert "Not refreshed: DescribeDBInstances for cn-hangzhou was busy or throttled" in english
    chinese = client_for(user, **ZH).get(url).content.decode()
    assert "Not refreshed" not in chinese
    assert "Throttling.User" in chinese and "RQ-7F3A" in chinese
