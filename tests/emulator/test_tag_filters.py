"""Finding resources by tag, as the panel does before it buys again (clusters/adapters/
purchase.py): the filters mean what Alibaba's V2 models say they mean."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkrds.request.v20140815.DescribeDBInstancesRequest import DescribeDBInstancesRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import (
    DescribeLoadBalancersRequest,
)

from sandbox.aliyun.testing import Emulator
from tests.emulator.test_rds_api import create_instance
from tests.emulator.test_slb import create_lb
from tests.support.emulator_calls import call


def rds_ids(emu: Emulator, tags: Any) -> list[str]:
    body = call(emu, DescribeDBInstancesRequest(), Tags=json.dumps(tags))
    return sorted(i["DBInstanceId"] for i in body["Items"]["DBInstance"])


def test_rds_tags_filter_matches_any_of_the_pairs_it_names(emu: Emulator) -> None:
    """V2 DescribeDBInstancesRequest.tags: "Format: {"key1":"value1",...}. If an instance
    matches any of the specified tags, the instance information is returned." """
    blue = create_instance(emu, version="8.0",
                           Tags=[{"Key": "tf-team", "Value": "blue"}])["DBInstanceId"]
    green = create_instance(emu, version="8.0", Tags=[{"Key": "tf-team", "Value": "green"},
                                                      {"Key": "tf-tier", "Value": "db"}])[
        "DBInstanceId"]
    assert rds_ids(emu, {"tf-team": "blue"}) == [blue]
    assert rds_ids(emu, {"tf-team": "blue", "tf-tier": "db"}) == sorted([blue, green])
    assert rds_ids(emu, {"tf-team": "red"}) == []
    assert rds_ids(emu, {"tf-team": ""}) == []  # a value is matched exactly, blank too
    for wrong in ([{"Key": "tf-team", "Value": "blue"}], {}, {f"k{n}": "v" for n in range(6)}):
        with pytest.raises(ServerException) as caught:
            rds_ids(emu, wrong)
        assert caught.value.get_error_code() == "InvalidParameter"


def test_slb_tag_repeat_list_filters_by_every_pair(emu: Emulator) -> None:
    """DescribeLoadBalancers Tag.N.Key/Value (V2 DescribeLoadBalancersRequestTag), the form
    terraform-provider-alicloud's alicloud_slb_load_balancers sends."""
    one = create_lb(emu, Tags=[{"Key": "tf-app", "Value": "api"}])["LoadBalancerId"]
    create_lb(emu, Tags=[{"Key": "tf-app", "Value": "web"}])
    request = DescribeLoadBalancersRequest()
    request.add_query_param("Tag.1.Key", "tf-app")
    request.add_query_param("Tag.1.Value", "api")
    body = emu.call(request)
    assert [lb["LoadBalancerId"] for lb in body["LoadBalancers"]["LoadBalancer"]] == [one]
    assert body["TotalCount"] == 1
