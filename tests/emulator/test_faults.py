"""Injected faults look exactly like the real failures, and the SDK reacts to them as usual."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ClientException, ServerException
from aliyunsdkecs.request.v20140526.DescribeRegionsRequest import DescribeRegionsRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import (
    DescribeLoadBalancersRequest,
)
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from sandbox.aliyun.testing import ControlError, Emulator


@pytest.fixture(autouse=True)
def no_faults_left(emu: Emulator) -> None:
    emu.control.clear_faults()
    emu.control.clear_calls()


def test_counted_throttling_is_retried_by_the_sdk_for_ecs(emu: Emulator) -> None:
    emu.control.add_fault(action="DescribeRegions", code="Throttling", count=2)
    assert emu.call(DescribeRegionsRequest())["Regions"]["Region"]
    outcomes = [(c["status"], c["code"]) for c in emu.control.calls()]
    assert outcomes == [(400, "Throttling"), (400, "Throttling"), (200, "")]
    assert emu.control.faults() == []


def test_slb_is_not_retried_and_sees_the_real_error_shape(emu: Emulator) -> None:
    emu.control.add_fault(product="Slb", code="ServiceUnavailable", count=1)
    with pytest.raises(ServerException) as caught:
        emu.call(DescribeLoadBalancersRequest())
    assert caught.value.get_http_status() == 503
    assert caught.value.get_error_code() == "ServiceUnavailable"
    assert caught.value.get_error_msg() == (
        "The request has failed due to a temporary failure of the server.")
    # The fault was spent on one call (the SDK does not retry SLB), and the next one answers.
    answer = emu.call(DescribeLoadBalancersRequest())
    assert answer["RequestId"] and isinstance(answer["TotalCount"], int)
    outcomes = [(c["status"], c["code"]) for c in emu.control.calls()]
    assert outcomes == [(503, "ServiceUnavailable"), (200, "")]
    assert emu.control.faults() == []


def test_probability_applies_to_every_action(tmp_path: Path) -> None:
    with Emulator(tmp_path, fault_seed=7) as emulator:
        emulator.control.add_fault(action="*", code="Throttling", probability=0.3)
        failures = 0
        for _ in range(60):
            try:
                emulator.call(DescribeVpcsRequest())  # VPC: no SDK retries
            except ServerException as exc:
                assert exc.get_error_code() == "Throttling"
                failures += 1
        assert 8 <= failures <= 32


def test_dropped_connection_is_an_sdk_http_error(emu: Emulator) -> None:
    emu.control.add_fault(action="DescribeLoadBalancers", drop=True, count=1)
    with pytest.raises(ClientException) as caught:
        emu.call(DescribeLoadBalancersRequest())
    assert caught.value.get_error_code() == "SDK.HttpError"


def test_delay_beyond_read_timeout(emu: Emulator) -> None:
    emu.control.add_fault(action="DescribeVpcs", delay=1.5, count=1)
    request = DescribeVpcsRequest()
    request.set_read_timeout(1)
    started = time.monotonic()
    with pytest.raises(ClientException) as caught:
        emu.call(request)
    assert caught.value.get_error_code() == "SDK.HttpError"
    assert time.monotonic() - started >= 1


def test_custom_code_and_clearing(emu: Emulator) -> None:
    emu.control.add_fault(action="DescribeVpcs", code="Forbidden.RAM", http_status=403,
                          message="User not authorized to operate on the specified resource.")
    for _ in range(2):
        with pytest.raises(ServerException) as caught:
            emu.call(DescribeVpcsRequest())
        assert (caught.value.get_http_status(), caught.value.get_error_code()) == (
            403, "Forbidden.RAM")
    emu.control.clear_faults()
    assert emu.call(DescribeVpcsRequest())["Vpcs"]["Vpc"]


def _create_lb(emu: Emulator, token: str) -> dict[str, Any]:
    request = CreateLoadBalancerRequest()
    request.set_AddressType("intranet")
    request.set_VSwitchId(emu.vswitch["vswitch_id"])
    request.set_InstanceChargeType("PayByCLCU")
    request.set_ClientToken(token)
    return emu.call(request)


def test_a_lost_answer_carries_the_call_out_and_the_token_answers_it_until_forgotten(
        emu: Emulator) -> None:
    emu.control.add_fault(action="CreateLoadBalancer", lose_answer=True, count=1)
    before = {r["id"] for r in emu.control.resources() if r["type"] == "slb_load_balancer"}
    with pytest.raises(ClientException) as caught:
        _create_lb(emu, "lost-answer-token")
    assert caught.value.get_error_code() == "SDK.HttpError"
    (bought,) = {r["id"] for r in emu.control.resources()
                 if r["type"] == "slb_load_balancer"} - before
    assert [(c["action"], c["status"]) for c in emu.control.calls()] == [
        ("CreateLoadBalancer", 0)]
    # The same ClientToken answers with what the lost call bought ...
    assert _create_lb(emu, "lost-answer-token")["LoadBalancerId"] == bought
    # ... until the cloud forgets its tokens: then the same request buys again.
    assert emu.control.forget_client_tokens() >= 1
    assert _create_lb(emu, "lost-answer-token")["LoadBalancerId"] != bought


def test_a_lost_answer_takes_no_error_code(emu: Emulator) -> None:
    with pytest.raises(ControlError, match="lose_answer carries the call out"):
        emu.control.add_fault(action="CreateLoadBalancer", lose_answer=True,
                              code="Throttling")
