"""Calling the emulator's NLB (Nlb 2022-04-30) as the panel will: aliyun-python-sdk-core's
CommonRequest, RPC style, POST form, signature v1 (HMAC-SHA1); every answer is checked
against the V2 response model (no field V2 lacks, every type V2's)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest

from sandbox.aliyun.testing import Emulator
from tests.conformance import v2

VERSION = "2022-04-30"


def nlb(emu: Emulator, action: str, client: Any = None, **params: Any) -> dict[str, Any]:
    request = CommonRequest(domain=emu.endpoint, version=VERSION, action_name=action,
                            product="Nlb")
    request.set_method("POST")
    request.set_protocol_type("http")
    for key, value in params.items():
        request.add_body_params(key, value if isinstance(value, str) else json.dumps(value)
                                if isinstance(value, dict | list) else str(value).lower()
                                if isinstance(value, bool) else str(value))
    body = json.loads((client or emu.client()).do_action_with_exception(request))
    model = v2.model_class("Nlb", VERSION, f"{action}ResponseBody")
    assert model is not None, action
    problems = v2.unknown_fields(model, body)
    assert not problems, "\n".join(problems)
    return body


def nlb_error(emu: Emulator, action: str, **params: Any) -> str:
    """The error code of a refused call."""
    with pytest.raises(ServerException) as caught:
        nlb(emu, action, **params)
    return str(caught.value.get_error_code())


def zone_mappings(emu: Emulator, count: int = 2) -> dict[str, str]:
    params = {}
    for index, vsw in enumerate(emu.vpc["vswitches"][:count], 1):
        params[f"ZoneMappings.{index}.VSwitchId"] = vsw["vswitch_id"]
        params[f"ZoneMappings.{index}.ZoneId"] = vsw["zone_id"]
    return params


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def create_nlb(emu: Emulator, wait: Any = True, **params: Any) -> str:
    params = {"AddressType": "Intranet", "VpcId": emu.vpc["vpc_id"], **zone_mappings(emu),
              **params}
    lb_id = str(nlb(emu, "CreateLoadBalancer", **params)["LoadbalancerId"])
    if wait:
        wait_for(lambda: lb_status(emu, lb_id) == "Active", what=f"{lb_id} Active")
    return lb_id


def lb_status(emu: Emulator, lb_id: str) -> str:
    return str(nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)["LoadBalancerStatus"])


def job_done(emu: Emulator, job_id: str) -> bool:
    return nlb(emu, "GetJobStatus", JobId=job_id)["Status"] == "Succeeded"


def create_group(emu: Emulator, wait: Any = True, **params: Any) -> str:
    params = {"ServerGroupName": "k3s-api", "VpcId": emu.vpc["vpc_id"],
              "HealthCheckConfig.HealthCheckInterval": 1,
              "HealthCheckConfig.HealthCheckConnectTimeout": 1, **params}
    body = nlb(emu, "CreateServerGroup", **params)
    if wait:
        wait_for(lambda: job_done(emu, body["JobId"]), what="server group Available")
    return str(body["ServerGroupId"])


def add_servers(emu: Emulator, group_id: str, servers: list[tuple[str, int]],
                wait: bool = True) -> str:
    params: dict[str, Any] = {}
    for index, (server_id, port) in enumerate(servers, 1):
        params.update({f"Servers.{index}.ServerId": server_id,
                       f"Servers.{index}.ServerType": "Ecs", f"Servers.{index}.Port": port})
    job = str(nlb(emu, "AddServersToServerGroup", ServerGroupId=group_id, **params)["JobId"])
    if wait:
        wait_for(lambda: job_done(emu, job), what="servers Available")
    return job


def create_listener(emu: Emulator, lb_id: str, group_id: str, port: int = 6443,
                    wait: bool = True) -> str:
    body = nlb(emu, "CreateListener", LoadBalancerId=lb_id, ServerGroupId=group_id,
               ListenerProtocol="TCP", ListenerPort=port)
    if wait:
        wait_for(lambda: job_done(emu, body["JobId"]), what="listener Running")
    return str(body["ListenerId"])


def zone_addresses(emu: Emulator, lb_id: str) -> list[str]:
    body = nlb(emu, "GetLoadBalancerAttribute", LoadBalancerId=lb_id)
    return [a["PrivateIPv4Address"] for z in body["ZoneMappings"]
            for a in z["LoadBalancerAddresses"]]
