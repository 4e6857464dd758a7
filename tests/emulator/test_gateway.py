"""The gateway is as strict as Alibaba Cloud's: signatures, nonces, timestamps, versions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkcore.auth.composer import rpc_signature_composer
from aliyunsdkcore.request import CommonRequest
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerAttributeRequest import (
    DescribeLoadBalancerAttributeRequest,
)

from sandbox.aliyun.gateway import signing
from sandbox.aliyun.testing import Emulator
from tests.emulator.rawapi import send, signed_params


def test_golden_signature_vector() -> None:
    params = {
        "Action": "DescribeDBInstanceAttribute", "Version": "2014-08-15", "Format": "JSON",
        "RegionId": "cn-hangzhou", "DBInstanceId": "rm-test 1*~/é", "AccessKeyId": "testid",
        "Timestamp": "2024-01-01T00:00:00Z",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "SignatureType": "",
        "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
    }
    assert signing.sign(signing.string_to_sign("POST", params), "testsecret") == (
        "FTjJeZZ/h2ysKbd3qD1MwqE81pU=")


def test_string_to_sign_is_the_sdks_own() -> None:
    """Awkward values (spaces, unicode, JSON, blanks) canonicalise exactly as the SDK does."""
    params = {"Name": "a b+c/d=é*~", "Json": json.dumps(["10.0.0.1", "x y"]), "Blank": ""}
    _, sdk_sts = rpc_signature_composer.get_signed_url(
        dict(params), "ak", "secret", "JSON", "POST", {"Body": "v w"})
    ours = dict(params, Body="v w")
    for name in ("Timestamp", "SignatureMethod", "SignatureType", "SignatureVersion",
                 "SignatureNonce", "AccessKeyId", "Format"):
        key = name + "%3D"
        start = sdk_sts.index(key) + len(key)
        end = sdk_sts.find("%26", start)
        ours[name] = sdk_sts[start:end if end != -1 else None].replace("%253A", ":")
    assert signing.string_to_sign("POST", ours) == sdk_sts


def test_signed_sdk_call_succeeds(emu: Emulator) -> None:
    body = emu.call(DescribeRegionsRequest())
    assert body["Regions"]["Region"][0]["RegionId"] == emu.region_id
    assert len(body["RequestId"]) == 36 and body["RequestId"] == body["RequestId"].upper()


def test_wrong_secret_surfaces_as_invalid_access_key_secret(emu: Emulator) -> None:
    client = emu.client(access_key_secret="not-the-secret")
    with pytest.raises(ServerException) as caught:
        client.do_action_with_exception(DescribeRegionsRequest())
    assert caught.value.get_http_status() == 400
    assert caught.value.get_error_code() == "InvalidAccessKeySecret"
    assert caught.value.get_request_id()


def test_unknown_access_key(emu: Emulator) -> None:
    client = emu.client(access_key_id="LTAInobody")
    with pytest.raises(ServerException) as caught:
        client.do_action_with_exception(DescribeRegionsRequest())
    assert caught.value.get_http_status() == 404
    assert caught.value.get_error_code() == "InvalidAccessKeyId.NotFound"


def test_replayed_nonce_is_refused(emu: Emulator) -> None:
    params = signed_params(emu, "DescribeRegions", "2014-05-26")
    first, _, _ = send(emu, params)
    status, body, _ = send(emu, params)
    assert first == 200
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


def test_tampered_parameter_fails_signature_with_parsable_message(emu: Emulator) -> None:
    params = signed_params(emu, "DescribeRegions", "2014-05-26")
    params["RegionId"] = "cn-beijing"
    status, body, _ = send(emu, params)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    assert body["Message"].split(":")[1].startswith("GET&%2F&AccessKeyId%3D")
    assert {"HostId", "Recommend", "RequestId"} <= set(body)


@pytest.mark.parametrize(("timestamp", "code"), [
    (-16 * 60, "InvalidTimeStamp.Expired"),
    (16 * 60, "InvalidTimeStamp.Expired"),
    ("2024-01-01 00:00:00", "InvalidTimeStamp.Format"),
])
def test_bad_timestamps(emu: Emulator, timestamp: str | int, code: str) -> None:
    if isinstance(timestamp, int):  # an offset from now, taken when the test runs
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + timestamp))
    status, body, _ = send(emu, signed_params(emu, "DescribeRegions", "2014-05-26",
                                              timestamp=timestamp))
    assert (status, body["Code"]) == (400, code)


def test_missing_signature_parameters(emu: Emulator) -> None:
    params = signed_params(emu, "DescribeRegions", "2014-05-26")
    del params["SignatureNonce"]
    status, body, _ = send(emu, params)
    assert (status, body["Code"]) == (400, "MissingSignatureNonce")


def test_post_body_parameters_are_signed(emu: Emulator) -> None:
    """Form-body parameters count in the signature; moving one to the query breaks it."""
    extra = {"AcceptLanguage": "en-US"}
    params = signed_params(emu, "DescribeRegions", "2014-05-26", method="POST", extra=extra)
    del params["AcceptLanguage"]
    status, _, _ = send(emu, params, method="POST", body=extra)
    assert status == 200
    params = signed_params(emu, "DescribeRegions", "2014-05-26", method="POST", extra=extra)
    status, body, _ = send(emu, params, method="GET")
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")


def test_unknown_version_and_action(emu: Emulator) -> None:
    bad_version = CommonRequest(domain=emu.endpoint, version="2099-01-01",
                                action_name="DescribeRegions")
    with pytest.raises(ServerException) as caught:
        emu.client().do_action_with_exception(bad_version)
    assert caught.value.get_error_code() == "NoSuchVersion"
    bad_action = CommonRequest(domain=emu.endpoint, version="2014-05-26",
                               action_name="DescribeUnicorns")
    with pytest.raises(ServerException) as caught:
        emu.client().do_action_with_exception(bad_action)
    assert (caught.value.get_http_status(), caught.value.get_error_code()) == (
        404, "InvalidAction.NotFound")


def test_missing_and_malformed_parameters(emu: Emulator) -> None:
    with pytest.raises(ServerException) as caught:
        emu.call(DescribeLoadBalancerAttributeRequest())
    assert caught.value.get_error_code() == "MissingParameter"
    assert '"LoadBalancerId"' in caught.value.get_error_msg()
    request = CommonRequest(domain=emu.endpoint, version="2014-05-15",
                            action_name="DescribeHealthStatus")
    request.add_query_param("LoadBalancerId", "lb-x")
    request.add_query_param("ListenerPort", "not-a-port")
    with pytest.raises(ServerException) as caught:
        emu.client().do_action_with_exception(request)
    assert caught.value.get_error_code() == "InvalidParameter"
    assert caught.value.get_error_msg() == 'The specified parameter "ListenerPort" is not valid.'


def test_xml_is_the_default_format(emu: Emulator) -> None:
    params = signed_params(emu, "DescribeRegions", "2014-05-26")
    params.pop("Signature")
    params.pop("Format")
    params["Signature"] = signing.sign(signing.string_to_sign("GET", params),
                                       emu.access_key_secret)
    status, _, text = send(emu, params)
    assert status == 200
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?><DescribeRegionsResponse>')


def test_environment_proxies_are_ignored(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads HTTP_PROXY itself; the harness's clients must still reach loopback."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert emu.call(DescribeRegionsRequest())["Regions"]["Region"]


def test_connection_refused_is_an_sdk_http_error(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path).start()
    client = emulator.client()
    emulator.stop()
    with pytest.raises(ClientException) as caught:
        client.do_action_with_exception(DescribeLoadBalancerAttributeRequest())
    assert caught.value.get_error_code() == "SDK.HttpError"


def test_call_log_hides_secrets(emu: Emulator) -> None:
    emu.control.clear_calls()
    emu.call(DescribeRegionsRequest())
    (entry,) = emu.control.calls()
    assert entry["action"] == "DescribeRegions" and entry["status"] == 200
    assert "Signature" not in entry["params"]
    assert emu.access_key_secret not in json.dumps(entry)
