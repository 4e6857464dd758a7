"""Migration 0010: nodes the install step had already reached are marked as holding this
cluster's K3s (so destroy keeps trusting them after a Retry); pending, removing and removed
ones are not (their config.yaml's token still decides)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("clusters", "0009_step_heartbeat_reclaims")]
AFTER = [("clusters", "0010_node_k3s_installed")]
STATUSES = ("pending", "installing", "ready", "not_ready", "failed", "removing", "removed")


@pytest.mark.django_db(transaction=True)
def test_nodes_past_install_are_marked_installed(back_to_latest: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    owner = old.get_model("auth", "User").objects.create(username="before-installed")
    account = old.get_model("clusters", "CloudAccount").objects.create(
        owner=owner, name="a", access_key_id="LTAI5tOld", access_key_secret="x" * 30)
    cluster = old.get_model("clusters", "Cluster").objects.create(
        owner_id=owner.pk, cloud_account_id=account.pk, name="old", region="cn-hangzhou",
        zone="cn-hangzhou-h", vpc_id="vpc-1", vswitch_id="vsw-1")
    for index, status in enumerate(STATUSES):
        old.get_model("clusters", "Node").objects.create(
            cluster=cluster, role="server", private_ip=f"10.0.0.{index + 1}", status=status)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    marked = dict(new.get_model("clusters", "Node").objects.values_list("status",
                                                                         "k3s_installed"))
    assert marked == {"pending": False, "installing": True, "ready": True, "not_ready": True,
                      "failed": True, "removing": False, "removed": False}
