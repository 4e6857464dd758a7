"""The conformance machinery itself, on hand-made inputs: each rule can fail.

Why: a suite whose checks silently pass proves nothing; these feed the checks a request, an
answer and a read pattern with one known defect each and expect it to be named.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.conformance import checks, v2
from tests.conformance.adapter_actions import AdapterAction, adapter_actions
from tests.conformance.recording import Observation, wrap

SLB, RDS = ("Slb", "2014-05-15"), ("Rds", "2014-08-15")


def slb_model(name: str) -> type:
    model = v2.model_class(*SLB, name)
    assert model is not None
    return model


def rds_model(name: str) -> type:
    model = v2.model_class(*RDS, name)
    assert model is not None
    return model


def test_schema_reads_wire_keys_types_and_the_required_flag() -> None:
    fields = v2.schema_of(rds_model("CreateDBInstanceRequest")).fields
    assert fields["DBInstanceStorage"].type.kind == "int"
    assert fields["VPCId"].attr == "vpcid"  # the wire key, not the attribute name
    tag = fields["Tag"].type
    assert tag.kind == "list" and tag.item is not None and tag.item.kind == "model"
    required = {key for key, f in fields.items() if f.required}
    assert {"Engine", "EngineVersion", "DBInstanceClass", "DBInstanceStorage"} <= required
    assert "ClientToken" not in required


def test_request_rules_name_the_parameter() -> None:
    model = slb_model("CreateLoadBalancerRequest")
    good = {"RegionId": "cn-hangzhou", "Bandwidth": "5", "Tag.1.Key": "k", "Tag.1.Value": "v",
            "Action": "CreateLoadBalancer", "Signature": "x"}
    assert v2.check_request(model, None, good) == []
    problems = v2.check_request(model, None, {
        "RegionId": "cn-hangzhou", "LoadBalancerSpecc": "slb.s1.small", "Bandwidth": "wide",
        "Tag.Key": "k", "Tag.1.Kee": "v", "AutoPay": "yes"})
    text = "\n".join(problems)
    for name in ("LoadBalancerSpecc", "Bandwidth", "Tag.Key", "Tag.1.Kee", "AutoPay"):
        assert f"parameter {name}:" in text, name
    assert v2.check_request(model, None, {"Tag": "k=v", "RegionId": "r"})  # a list, flattened
    missing = v2.check_request(model, None, {"LoadBalancerName": "x"})
    assert missing == ["parameter RegionId: V2 marks it required, the panel does not send it"]


def test_json_string_parameters_follow_the_shrink_model() -> None:
    request, shrink = rds_model("CreateDBInstanceRequest"), rds_model(
        "CreateDBInstanceShrinkRequest")
    base = {"RegionId": "r", "Engine": "MySQL", "EngineVersion": "8.0", "PayType": "Postpaid",
            "DBInstanceClass": "c", "DBInstanceStorage": "20", "DBInstanceNetType": "Intranet",
            "SecurityIPList": "127.0.0.1"}
    assert v2.check_request(request, shrink, {**base, "ServerlessConfig": json.dumps(
        {"MaxCapacity": 8})}) == []
    assert v2.check_request(request, shrink, {**base, "ServerlessConfig": "max=8"})


def test_a_string_v2_describes_as_json_must_be_json() -> None:
    model = v2.model_class("Ecs", "2014-05-26", "DescribeInstancesRequest")
    assert model is not None and v2.schema_of(model).fields["PrivateIpAddresses"].json_text
    sent = {"RegionId": "cn-hangzhou", "InstanceNetworkType": "vpc"}
    assert v2.check_request(model, None, {**sent, "PrivateIpAddresses": '["10.0.0.1"]'}) == []
    assert v2.check_request(model, None, {**sent, "PrivateIpAddresses": "['10.0.0.1']"}) == [
        "parameter PrivateIpAddresses: V2 describes it as JSON text, the panel sends "
        "\"['10.0.0.1']\""]


def test_answer_rules_report_invented_misnamed_and_mistyped_fields() -> None:
    body_model = slb_model("DescribeHealthStatusResponseBody")
    good = {"RequestId": "r", "BackendServers": {"BackendServer": [
        {"ServerId": "i-1", "ServerIp": "10.0.0.1", "Port": 6443, "ServerHealthStatus": "normal"}]}}
    assert v2.unknown_fields(body_model, good) == []
    bad = {"RequestId": "r", "BackendServers": {"BackendServer": [
        {"ServerId": "i-1", "Port": "6443", "EniHost": ""}]}}
    problems = "\n".join(v2.unknown_fields(body_model, bad))
    assert "BackendServers.BackendServer[].EniHost: V2" in problems
    assert "BackendServers.BackendServer[].Port: V2 types it int" in problems
    not_a_list = {"BackendServers": {"BackendServer": {"ServerId": "i-1"}}}
    assert "V2 types it list" in "\n".join(v2.unknown_fields(body_model, not_a_list))


def observe(product_version: tuple[str, str], action: str, body: dict, reader) -> Observation:
    observation = Observation(*product_version, action, json.loads(json.dumps(body)))
    reader(wrap(body, (), observation.reads))
    return observation


def test_reads_are_recorded_with_their_nesting() -> None:
    body = {"Items": {"DBInstance": [{"DBInstanceId": "rm-1"}, {"DBInstanceId": "rm-2"}]},
            "TotalRecordCount": 2}
    observation = observe(RDS, "DescribeDBInstances", body, lambda b: (
        [e["DBInstanceId"] for e in b.get("Items", {}).get("DBInstance", [])],
        b.get("TotalCount", b.get("TotalRecordCount")), "Port" in b["Items"]["DBInstance"][0]))
    assert {v2.dotted(p) for p in observation.reads} == {
        "Items", "Items.DBInstance", "Items.DBInstance[].DBInstanceId", "TotalCount",
        "TotalRecordCount", "Items.DBInstance[].Port"}


def test_a_read_v2_does_not_know_fails_unless_it_is_a_known_fallback() -> None:
    body = {"Items": {"DBInstance": [{"DBInstanceId": "rm-1"}]}, "TotalRecordCount": 1}
    observation = observe(RDS, "DescribeDBInstances", body, lambda b: (
        b.get("TotalCount", b.get("TotalRecordCount")),
        [e.get("Port") for e in b["Items"]["DBInstance"]]))
    problems = checks.check_answers(*RDS, "DescribeDBInstances", [observation])
    assert problems == ["the panel reads Items.DBInstance[].Port: V2 "
                        "DescribeDBInstancesResponseBodyItemsDBInstance has no field 'Port'"]


def test_a_field_lost_in_the_v2_round_trip_is_named() -> None:
    # A dict where V2 has a list: from_map cannot keep what the panel read.
    body = {"Items": {"DBInstanceAttribute": {"DBInstanceId": "rm-1"}}}
    observation = observe(RDS, "DescribeDBInstanceAttribute", body,
                          lambda b: b["Items"]["DBInstanceAttribute"]["DBInstanceId"])
    problems = "\n".join(checks.check_answers(*RDS, "DescribeDBInstanceAttribute",
                                              [observation]))
    assert "the panel reads Items.DBInstanceAttribute.DBInstanceId" in problems
    assert "V2 types it list" in problems


def test_discovery_reads_sdk_imports_and_common_requests(tmp_path: Path) -> None:
    (tmp_path / "clusters" / "adapters" / "aliyun").mkdir(parents=True)
    (tmp_path / "clusters" / "adapters" / "aliyun" / "billing.py").write_text(textwrap.dedent('''
        from aliyunsdkcore.request import CommonRequest
        from aliyunsdkrds.request.v20140815.DescribePriceRequest import DescribePriceRequest
        BSS_VERSION = "2017-12-14"

        def price(client):
            request = CommonRequest(domain="x", version=BSS_VERSION, product="BssOpenApi")
            request.set_action_name("GetPayAsYouGoPrice")

        def dynamic(client, action):
            request = CommonRequest(product="Slb", version="2014-05-15")
            request.set_action_name(action)
    '''))
    actions, problems = adapter_actions(tmp_path / "clusters" / "adapters" / "aliyun")
    assert [(a.product, a.version, a.action) for a in actions] == [
        ("BssOpenApi", "2017-12-14", "GetPayAsYouGoPrice"), ("Rds", "2014-08-15", "DescribePrice")]
    assert len(problems) == 1 and "dynamic" in problems[0]
    missing = checks.missing_scenarios(actions, {("Rds", "DescribePrice")})
    assert missing == ["BssOpenApi GetPayAsYouGoPrice (version 2017-12-14, used at "
                       "clusters/adapters/aliyun/billing.py:6)"]


def test_an_uncovered_action_is_named() -> None:
    action = AdapterAction("Rds", "2014-08-15", "DescribeAvailableZones",
                           "clusters/adapters/aliyun/x.py:1")
    assert checks.missing_scenarios([action], {}) == [
        "Rds DescribeAvailableZones (version 2014-08-15, used at clusters/adapters/aliyun/x.py:1)"]
