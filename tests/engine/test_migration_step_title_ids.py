"""Migration 0008: steps written before titles had ids keep showing in the reader's language
(the values in the four patterned titles are parsed once, into arguments)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import translation

from clusters.models import Step

BEFORE = [("clusters", "0007_rds_today")]
AFTER = [("clusters", "0008_step_title_ids")]



@pytest.mark.django_db(transaction=True)
def test_old_rows_get_ids_and_show_in_chinese(back_to_latest: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    owner = old.get_model("auth", "User").objects.create(username="before-ids")
    account = old.get_model("clusters", "CloudAccount").objects.create(
        owner=owner, name="a", access_key_id="LTAI5tOld", access_key_secret="x" * 30)
    cluster = old.get_model("clusters", "Cluster").objects.create(
        owner_id=owner.pk, cloud_account_id=account.pk, name="old", region="cn-hangzhou",
        zone="cn-hangzhou-h", vpc_id="vpc-1", vswitch_id="vsw-1")
    run = old.get_model("clusters", "Run").objects.create(cluster=cluster, kind="create")
    titles = ["Install K3s server 2 (10.0.0.2)", "Upgrade K3s agent (10.0.0.3) to v1.32.5+k3s1",
              "Fetch and rewrite the kubeconfig", "Something 100% custom"]
    for index, text in enumerate(titles):
        old.get_model("clusters", "Step").objects.create(run=run, key=f"s{index}", title=text,
                                                          handler="test.work", position=index)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    # Later migrations add columns the model reads: go all the way before reading rows.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    steps = list(Step.objects.filter(run_id=run.pk).order_by("position"))
    assert (steps[0].title_id, steps[0].title_args) == (
        "Install K3s server %(n)s (%(ip)s)", {"n": "2", "ip": "10.0.0.2"})
    with translation.override("zh-hans"):
        shown = [step.display_title for step in steps]
    assert shown == ["安装 K3s 服务器 2（10.0.0.2）",  # noqa: RUF001 - Chinese punctuation
                     "将 K3s 代理节点（10.0.0.3）升级到 v1.32.5+k3s1",  # noqa: RUF001
                     "获取并改写 kubeconfig", "Something 100% custom"]
