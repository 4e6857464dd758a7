"""A cluster created with a RAM role credential: the ECS instance RAM role, read from the
emulator's metadata stand-in, with the README's least-privilege policy as the role's policy.

What it shows: the emulator's STS issues temporary keys, every API call of the run is signed
with them, and the stored cloud account holds no long-lived secret (only the role's name).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusters import operations
from clusters.models import CloudAccount, Cluster, ClusterStatus, CredentialKind, RunStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "ram" / "panel-policy.json"
ROLE = "k3s-panel"


def test_a_cluster_created_with_the_ecs_instance_role_stores_no_secret(world, start_worker,
                                                                        settings):
    world.emulator.control.create_role(ROLE, policy=json.loads(POLICY.read_text()), ecs=True)
    settings.ALIYUN_ECS_METADATA_ENDPOINT = world.endpoint  # this process's health checks
    settings.PANEL_ECS_ROLES = [ROLE]  # the operator offers the panel host's role
    cluster = make_world_cluster(world, servers=2, agents=0)
    CloudAccount.objects.filter(pk=cluster.cloud_account_id).update(
        credential_kind=CredentialKind.ECS_ROLE, ecs_role_name=ROLE, access_key_id="",
        access_key_secret="")
    world.emulator.control.clear_calls()
    start_worker(concurrency=2, **world_env(world), ALIYUN_ECS_METADATA_ENDPOINT=world.endpoint,
                 PANEL_ECS_ROLES=ROLE)

    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status="succeeded")]
    assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY

    # Every call of the run was signed with temporary keys STS issued for the role.
    calls = [c for c in world.emulator.control.calls() if c["status"] == 200]
    assert {"CreateDBInstance", "CreateLoadBalancer"} <= {c["action"] for c in calls}
    signers = {c["params"]["AccessKeyId"] for c in calls}
    issued = {t["access_key_id"]: t for t in world.emulator.control.sts_tokens()}
    assert signers <= set(issued), signers - set(issued)
    assert {issued[key]["source"] for key in signers} == {"ecs-metadata"}
    assert {issued[key]["role"] for key in signers} == {ROLE}
    assert world.access_key_id not in signers

    # The stored account holds no long-lived secret.
    account = CloudAccount.objects.get(pk=cluster.cloud_account_id)
    assert account.secret_values() == [] and account.access_key_id == ""
