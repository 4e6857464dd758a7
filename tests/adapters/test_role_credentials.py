"""Credentials without long-lived keys, against the emulator's STS and metadata stand-in:
an assumed RAM role (ExternalId, session policy), the ECS instance role, a pasted STS token,
renewal after expiry, and no credential ever taken from the environment."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from clusters.adapters.aliyun import AliyunCloud, EcsInstanceRoleSource, StsTokenSource
from clusters.adapters.aliyun.auth import metadata_endpoint
from clusters.adapters.cloud import cloud_for_account, credentials_for
from clusters.core.errors import PermanentError, TransientError
from clusters.models import CloudAccount, CredentialKind
from sandbox.aliyun.testing import NO_PROXY, Emulator

ONLY_ASSUME = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}
READ_ECS = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": ["ecs:Describe*", "vpc:Describe*"], "Resource": "*"}]}
EXTERNAL_ID = "k3s-panel-ext-42"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(Path(tmp_path_factory.mktemp("sts-emulator")), time_scale=0.01) as emu:
        yield emu


@pytest.fixture
def pointed(settings: Any, emulator: Emulator) -> Emulator:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emulator.endpoint
    settings.ALIYUN_ECS_METADATA_ENDPOINT = emulator.endpoint
    return emulator


def assume_only_user(emulator: Emulator) -> tuple[str, str]:
    """A RAM user whose key may do nothing but sts:AssumeRole."""
    key_id, secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    emulator.control.add_account(key_id, secret, ONLY_ASSUME, name="panel-assumer")
    return key_id, secret


def role_account(emulator: Emulator, **fields: Any) -> CloudAccount:
    key_id, secret = assume_only_user(emulator)
    name = "panel-" + secrets.token_hex(4)
    arn = emulator.control.create_role(name, policy=READ_ECS, external_id=EXTERNAL_ID)
    return CloudAccount(credential_kind=CredentialKind.RAM_ROLE, access_key_id=key_id,
                        access_key_secret=secret, role_arn=arn, external_id=EXTERNAL_ID,
                        **fields)


def callers(emulator: Emulator, action: str) -> list[str]:
    return [c["params"]["AccessKeyId"] for c in emulator.control.calls()
            if c["action"] == action and c["status"] == 200]


def test_an_assumed_role_signs_with_sts_keys_the_source_key_may_only_assume(
        pointed: Emulator) -> None:
    account = role_account(pointed)
    pointed.control.clear_calls()
    cloud = cloud_for_account(account, pointed.region_id)
    assert [r.region_id for r in cloud.describe_regions()] == [pointed.region_id]
    assert callers(pointed, "AssumeRole") == [account.access_key_id]
    (signer,) = callers(pointed, "DescribeRegions")
    assert signer.startswith("STS.") and signer != account.access_key_id
    # The stored key itself can do nothing else: RAM names the action it lacks.
    with pytest.raises(PermanentError) as denied:
        AliyunCloud(account.access_key_id, account.access_key_secret, pointed.region_id,
                    pointed.endpoint).describe_regions()
    assert denied.value.code == "Forbidden.RAM" and denied.value.request_id
    assert "ecs:DescribeRegions" in denied.value.message


def test_the_session_policy_narrows_the_role_and_the_denied_action_is_named(
        pointed: Emulator) -> None:
    only_regions = {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:DescribeRegions", "Resource": "*"}]}
    account = role_account(pointed, session_policy=json.dumps(only_regions))
    cloud = cloud_for_account(account, pointed.region_id)
    cloud.describe_regions()
    with pytest.raises(PermanentError) as denied:
        cloud.describe_zones()  # the role allows it, the session policy does not
    assert denied.value.code == "Forbidden.RAM"
    assert "ecs:DescribeZones" in str(denied.value) and "RequestId" in str(denied.value)


def test_a_wrong_external_id_is_refused_by_the_trust_policy(pointed: Emulator) -> None:
    account = role_account(pointed)
    account.external_id = "someone-else"
    with pytest.raises(PermanentError) as refused:
        cloud_for_account(account, pointed.region_id).describe_regions()
    assert refused.value.code == "NoPermission" and "trust policy" in refused.value.message


def test_expired_role_keys_are_renewed_on_the_next_call(pointed: Emulator) -> None:
    account = role_account(pointed)
    cloud = cloud_for_account(account, pointed.region_id)
    cloud.describe_regions()
    first = cloud.client.credentials.keys().access_key_id
    assert pointed.control.expire_sts_tokens() >= 1
    with pytest.raises(TransientError) as expired:  # the engine retries the step
        cloud.describe_regions()
    assert expired.value.code == "InvalidSecurityToken.Expired"
    cloud.describe_regions()
    assert cloud.client.credentials.keys().access_key_id != first


def issue_token(emulator: Emulator) -> dict[str, str]:
    key_id, secret = assume_only_user(emulator)
    arn = emulator.control.create_role("pasted-" + secrets.token_hex(3), policy=READ_ECS)
    request = AssumeRoleRequest()
    request.set_RoleArn(arn)
    request.set_RoleSessionName("person")
    request.set_protocol_type("http")
    answer = emulator.call(request, emulator.client(access_key_id=key_id,
                                                    access_key_secret=secret))
    return dict(answer["Credentials"])


def test_a_pasted_sts_token_works_until_it_expires_and_is_never_renewed(
        pointed: Emulator) -> None:
    token = issue_token(pointed)
    expiry = datetime.strptime(token["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    account = CloudAccount(credential_kind=CredentialKind.STS_TOKEN,
                           access_key_id=token["AccessKeyId"],
                           access_key_secret=token["AccessKeySecret"],
                           security_token=token["SecurityToken"], token_expires_at=expiry)
    cloud = cloud_for_account(account, pointed.region_id)
    assert isinstance(cloud.client.credentials, StsTokenSource)
    cloud.describe_regions()
    pointed.control.expire_sts_tokens()
    with pytest.raises(PermanentError) as expired:
        cloud.describe_regions()
    assert expired.value.code == "InvalidSecurityToken.Expired"
    assert "paste a new one" in expired.value.message
    assert token["AccessKeySecret"] not in str(expired.value)
    assert token["SecurityToken"] not in str(expired.value)


def test_the_ecs_instance_role_comes_from_the_metadata_stand_in(pointed: Emulator,
                                                               settings: Any) -> None:
    name = "ecs-panel-" + secrets.token_hex(3)
    pointed.control.create_role(name, policy=READ_ECS, ecs=True)
    account = CloudAccount(credential_kind=CredentialKind.ECS_ROLE, ecs_role_name=name)
    with pytest.raises(PermanentError, match="PANEL_ECS_ROLES"):  # not offered: never used
        credentials_for(account, pointed.region_id)
    assert not [t for t in pointed.control.sts_tokens() if t["role"] == name]
    settings.PANEL_ECS_ROLES = [name]
    assert account.secret_values() == []  # nothing long-lived is stored
    cloud = cloud_for_account(account, pointed.region_id)
    assert isinstance(cloud.client.credentials, EcsInstanceRoleSource)
    cloud.describe_regions()
    issued = [t for t in pointed.control.sts_tokens() if t["role"] == name]
    assert [t["source"] for t in issued] == ["ecs-metadata"]
    with pytest.raises(PermanentError, match="no RAM role named"):
        EcsInstanceRoleSource("not-attached", pointed.endpoint).keys()


def test_the_metadata_address_is_never_guessed_while_the_api_is_overridden(
        settings: Any) -> None:
    settings.ALIYUN_ENDPOINT_OVERRIDE = "127.0.0.1:1"
    settings.ALIYUN_ECS_METADATA_ENDPOINT = ""
    settings.PANEL_ECS_ROLES = ["panel"]
    account = CloudAccount(credential_kind=CredentialKind.ECS_ROLE, ecs_role_name="panel")
    with pytest.raises(PermanentError, match="fail closed"):
        credentials_for(account, "cn-hangzhou")
    assert metadata_endpoint("", api_overridden=False) == "100.100.100.200"  # production only


ENV_NAMES = ("ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_ID",
             "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
             "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_ECS_METADATA")


def test_credentials_in_the_environment_are_never_used(
        pointed: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The host has a working key in every variable the SDKs read; the panel ignores it."""
    host_key, host_secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    pointed.control.add_account(host_key, host_secret, name="the-host")
    values = {"ALIYUN_ACCESS_KEY_ID": host_key, "ALIYUN_ACCESS_KEY_SECRET": host_secret,
              "ALIBABA_CLOUD_ACCESS_KEY_ID": host_key,
              "ALIBABA_CLOUD_ACCESS_KEY_SECRET": host_secret,
              "ALIBABA_CLOUD_SECURITY_TOKEN": "host-token",
              "ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1:role/host", "ALIBABA_CLOUD_ECS_METADATA": "x"}
    for name in ENV_NAMES:
        monkeypatch.setenv(name, values[name])
    token = issue_token(pointed)
    pointed.control.clear_calls()
    # The SDK's own trap, which the panel must avoid: credential= loses to the environment.
    trap = AcsClient(region_id=pointed.region_id, proxy=dict(NO_PROXY), credential=(
        StsTokenCredential(token["AccessKeyId"], token["AccessKeySecret"],
                           token["SecurityToken"])))
    trap.add_endpoint(pointed.region_id, "Ecs", pointed.endpoint)
    pointed.call(DescribeRegionsRequest(), trap)
    assert callers(pointed, "DescribeRegions") == [host_key]
    pointed.control.clear_calls()
    for account in (
        CloudAccount(credential_kind=CredentialKind.STS_TOKEN, access_key_id=token["AccessKeyId"],
                     access_key_secret=token["AccessKeySecret"],
                     security_token=token["SecurityToken"]),
        role_account(pointed),
        CloudAccount(credential_kind=CredentialKind.ACCESS_KEY,
                     access_key_id=pointed.access_key_id,
                     access_key_secret=pointed.access_key_secret),
    ):
        cloud_for_account(account, pointed.region_id).describe_regions()
    signers = callers(pointed, "DescribeRegions")
    assert len(signers) == 3 and host_key not in signers
    assert signers[0] == token["AccessKeyId"] and signers[2] == pointed.access_key_id


def test_steps_of_a_process_share_the_role_keys_until_they_need_renewing(
        pointed: Emulator) -> None:
    """Each step builds its own cloud; AssumeRole is not called again for each (STS
    throttles it), but an edited account is assumed anew."""
    account = role_account(pointed)
    pointed.control.clear_calls()
    for _ in range(3):
        cloud_for_account(account, pointed.region_id).describe_regions()
    assert len(callers(pointed, "AssumeRole")) == 1
    account.session_policy = json.dumps(READ_ECS)
    cloud_for_account(account, pointed.region_id).describe_regions()
    assert len(callers(pointed, "AssumeRole")) == 2
