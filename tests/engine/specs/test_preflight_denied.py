"""A preflight refused by RAM fails its step with the RAM action that is missing, Alibaba's
code and the RequestId, and says which identity it tried (here: an assumed role whose policy
lacks vpc:*), before anything is bought."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import CloudAccount, CredentialKind, RunKind, Step, StepStatus
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine
from tests.support.factories import make_cluster

ONLY_ASSUME = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
NO_VPC = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}]}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(Path(tmp_path_factory.mktemp("preflight-emulator"))) as emu:
        yield emu


def test_a_denied_preflight_names_the_missing_ram_action_with_code_and_request_id(
        engine: InProcessEngine, emulator: Emulator, settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emulator.endpoint
    key_id, secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    emulator.control.add_account(key_id, secret, ONLY_ASSUME)
    arn = emulator.control.create_role("preflight-role", policy=NO_VPC)
    cluster = make_cluster(region=emulator.region_id, zone=emulator.vswitch["zone_id"],
                           vpc_id=emulator.vpc["vpc_id"],
                           vswitch_id=emulator.vswitch["vswitch_id"],
                           k3s_version="v1.32.5+k3s1")
    CloudAccount.objects.filter(pk=cluster.cloud_account_id).update(
        credential_kind=CredentialKind.RAM_ROLE, access_key_id=key_id,
        access_key_secret=secret, role_arn=arn)
    run = engine.act(pipeline.create_run, cluster, RunKind.CREATE,
                     [StepSpec("preflight_cloud", "Preflight", "preflight.cloud")])
    engine.deliver_all()

    step = Step.objects.get(run=run, key="preflight_cloud")
    assert step.status == StepStatus.FAILED
    assert "vpc:DescribeVpcs" in step.error and "code Forbidden.RAM" in step.error
    assert "RequestId " in step.error
    said = "\n".join(step.log_lines.values_list("text", flat=True))
    assert f"RAM role {arn} works" in said  # which identity got this far
    assert secret not in step.error and secret not in said
