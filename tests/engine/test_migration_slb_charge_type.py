"""Migration 0006: clusters made before it keep their pay-by-specification CLB and its spec;
clusters made after it default to pay-by-LCU with no spec."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("clusters", "0005_node_audit_actions")]
AFTER = [("clusters", "0006_slb_charge_type")]



@pytest.mark.django_db(transaction=True)
def test_existing_clusters_keep_pay_by_spec_and_new_ones_are_pay_by_lcu(
        back_to_latest: Any) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    owner = old.get_model("auth", "User").objects.create(username="before-2025")
    account = old.get_model("clusters", "CloudAccount").objects.create(
        owner=owner, name="a", access_key_id="LTAI5tOld", access_key_secret="x" * 30)
    fields: dict[str, Any] = {"owner_id": owner.pk, "cloud_account_id": account.pk,
                              "region": "cn-hangzhou",
                              "zone": "cn-hangzhou-h", "vpc_id": "vpc-1", "vswitch_id": "vsw-1"}
    cluster = old.get_model("clusters", "Cluster").objects.create(
        name="old", slb_spec="slb.s2.small", **fields)
    resource = old.get_model("clusters", "CloudResource")
    resource.objects.create(cluster=cluster, kind="slb", provider_id="lb-old",
                            client_token="t-old", region="cn-hangzhou", state="present",
                            attributes={"address": "10.0.0.9"})
    resource.objects.create(cluster=cluster, kind="rds_instance", provider_id="rm-old",
                            client_token="t-rds", region="cn-hangzhou", state="present")

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    clusters = new.get_model("clusters", "Cluster")
    migrated = clusters.objects.get(pk=cluster.pk)
    assert (migrated.slb_charge_type, migrated.slb_spec) == ("PayBySpec", "slb.s2.small")
    rows = {r.kind: r.attributes for r in new.get_model("clusters", "CloudResource").objects.all()}
    assert rows["slb"] == {"address": "10.0.0.9", "instance_charge_type": "PayBySpec",
                           "spec": "slb.s2.small"}
    assert rows["rds_instance"] == {}
    fresh = clusters.objects.create(name="new", **fields)
    assert (fresh.slb_charge_type, fresh.slb_spec) == ("PayByCLCU", "")
