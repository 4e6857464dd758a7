"""The emulator's STS and RAM are as strict as Alibaba Cloud's: AssumeRole's parameter rules
and error codes, the trust policy's sts:ExternalId, session policies as an intersection, and
STS keys refused without their token or after their expiry (help doc-detail/42775)."""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.auth.credentials import StsTokenCredential
from aliyunsdkcore.client import AcsClient
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdkecs.request.v20140526.DescribeZonesRequest import DescribeZonesRequest
from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from sandbox.aliyun.testing import NO_PROXY, Emulator

ALLOW_ECS = {"Version": "1", "Statement": [
    {"Effect": "Allow", "Action": "ecs:*", "Resource": "*"}]}


def assume(emu: Emulator, arn: str, client: Any = None, **params: Any) -> dict[str, Any]:
    request = AssumeRoleRequest()
    request.set_protocol_type("http")
    request.set_RoleArn(arn)
    request.set_RoleSessionName(params.pop("RoleSessionName", "panel"))
    for name, value in params.items():
        request.add_query_param(name, value)
    return emu.call(request, client)


def code_of(emu: Emulator, arn: str, **params: Any) -> str:
    with pytest.raises(ServerException) as refused:
        assume(emu, arn, **params)
    return str(refused.value.get_error_code())


def sts_client(emu: Emulator, credentials: dict[str, str], token: str | None = None) -> AcsClient:
    client = AcsClient(region_id=emu.region_id, proxy=dict(NO_PROXY), credential=(
        StsTokenCredential(credentials["AccessKeyId"], credentials["AccessKeySecret"],
                           credentials["SecurityToken"] if token is None else token)))
    client.add_endpoint(emu.region_id, "Ecs", emu.endpoint)
    return client


def new_role(emu: Emulator, **fields: Any) -> str:
    return emu.control.create_role("role-" + secrets.token_hex(3), **fields)


def test_assume_role_answers_the_v2_shape(emu: Emulator) -> None:
    arn = new_role(emu, policy=ALLOW_ECS)
    answer = assume(emu, arn, DurationSeconds=900)
    credentials = answer["Credentials"]
    assert credentials["AccessKeyId"].startswith("STS.")
    assert set(credentials) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    assert answer["AssumedRoleUser"]["Arn"] == f"{arn}/panel"
    assert answer["AssumedRoleUser"]["AssumedRoleId"].endswith(":panel")


@pytest.mark.parametrize(("params", "code"), [
    ({"RoleSessionName": "a"}, "InvalidParameter.RoleSessionName"),
    ({"RoleSessionName": "has space"}, "InvalidParameter.RoleSessionName"),
    ({"RoleSessionName": "x" * 65}, "InvalidParameter.RoleSessionName"),
    ({"DurationSeconds": 899}, "InvalidParameter.DurationSeconds"),
    ({"DurationSeconds": 3601}, "InvalidParameter.DurationSeconds"),
    ({"Policy": "{not json"}, "InvalidParameter.PolicyGrammar"),
    ({"Policy": json.dumps({"Version": "1", "Statement": []})}, "InvalidParameter.PolicyGrammar"),
])
def test_parameter_rules(emu: Emulator, params: dict[str, Any], code: str) -> None:
    assert code_of(emu, new_role(emu), **params) == code


def test_a_role_with_a_longer_max_session_allows_it(emu: Emulator) -> None:
    arn = new_role(emu, max_session_duration=7200)
    assert assume(emu, arn, DurationSeconds=7200)["Credentials"]
    assert code_of(emu, arn, DurationSeconds=7201) == "InvalidParameter.DurationSeconds"


def test_unknown_and_malformed_roles(emu: Emulator) -> None:
    assert code_of(emu, "acs:ram::1865023457093187:role/nobody") == "EntityNotExist.Role"
    assert code_of(emu, "acs:ram::999:role/" + new_role(emu).rsplit("/", 1)[1]) == (
        "EntityNotExist.Role")  # another account's
    assert code_of(emu, "arn:aws:iam::1:role/x") == "InvalidParameter.RoleArn"


def test_the_trust_policy_external_id_must_match(emu: Emulator) -> None:
    arn = new_role(emu, external_id="abc-123")
    assert code_of(emu, arn) == "NoPermission"
    assert code_of(emu, arn, ExternalId="abc-124") == "NoPermission"
    assert assume(emu, arn, ExternalId="abc-123")["Credentials"]


def test_who_may_call_assume_role(emu: Emulator) -> None:
    arn = new_role(emu)
    root_key, root_secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    emu.control.add_account(root_key, root_secret, root=True)
    with pytest.raises(ServerException, match="root accounts"):
        assume(emu, arn, emu.client(access_key_id=root_key, access_key_secret=root_secret))
    reader_key, reader_secret = "LTAI" + secrets.token_hex(8), secrets.token_urlsafe(22)
    emu.control.add_account(reader_key, reader_secret, ALLOW_ECS)  # no sts:AssumeRole
    with pytest.raises(ServerException) as denied:
        assume(emu, arn, emu.client(access_key_id=reader_key, access_key_secret=reader_secret))
    assert denied.value.get_error_code() == "NoPermission"


def test_sts_keys_need_their_token_obey_the_intersection_and_expire(emu: Emulator) -> None:
    arn = new_role(emu, policy=ALLOW_ECS)
    session = {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": ["ecs:DescribeRegions", "rds:*"], "Resource": "*"}]}
    credentials = assume(emu, arn, Policy=json.dumps(session))["Credentials"]
    client = sts_client(emu, credentials)
    assert emu.call(DescribeRegionsRequest(), client)["Regions"]
    with pytest.raises(ServerException) as denied:  # role yes, session policy no
        emu.call(DescribeZonesRequest(), client)
    assert denied.value.get_error_code() == "Forbidden.RAM"
    with pytest.raises(ServerException) as mismatch:
        emu.call(DescribeRegionsRequest(), sts_client(emu, credentials, token="CAISforged"))
    assert mismatch.value.get_error_code() == "InvalidSecurityToken.MismatchWithAccessKey"
    plain = emu.client(access_key_id=credentials["AccessKeyId"],
                       access_key_secret=credentials["AccessKeySecret"])
    with pytest.raises(ServerException) as missing:
        emu.call(DescribeRegionsRequest(), plain)
    assert missing.value.get_error_code() == "MissingSecurityToken"
    emu.control.expire_sts_tokens(arn.rsplit("/", 1)[1])
    with pytest.raises(ServerException) as expired:
        emu.call(DescribeRegionsRequest(), client)
    assert expired.value.get_error_code() == "InvalidSecurityToken.Expired"


def test_the_metadata_stand_in_is_hardened(emu: Emulator) -> None:
    name = "ecs-" + secrets.token_hex(3)
    emu.control.create_role(name, policy=ALLOW_ECS, ecs=True)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    url = f"http://{emu.endpoint}/latest/meta-data/ram/security-credentials/{name}"
    with pytest.raises(urllib.error.HTTPError) as no_token:
        opener.open(url, timeout=5)
    assert no_token.value.code == 401
    token = opener.open(urllib.request.Request(
        f"http://{emu.endpoint}/latest/api/token", method="PUT",
        headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "60"}), timeout=5).read().decode()
    answer = json.loads(opener.open(urllib.request.Request(
        url, headers={"X-aliyun-ecs-metadata-token": token}), timeout=5).read())
    assert answer["Code"] == "Success" and answer["AccessKeyId"].startswith("STS.")
    assert emu.call(DescribeRegionsRequest(), sts_client(emu, answer))["Regions"]
