"""Calling ECS/VPC actions by name through the official SDK's CommonRequest (RPC, signed)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest

from sandbox.aliyun.testing import Emulator

VERSIONS = {"Ecs": "2014-05-26", "Vpc": "2016-04-28"}
UBUNTU_2404 = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"


def api(emu: Emulator, action: str, product: str = "Ecs", **params: Any) -> dict[str, Any]:
    request = CommonRequest(version=VERSIONS[product], action_name=action, product=product)
    request.set_method("POST")
    request.set_accept_format("json")
    for key, value in params.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        request.add_query_param(key.replace("__", "."), text)
    return json.loads(emu.client().do_action_with_exception(request))


def api_error(emu: Emulator, action: str, product: str = "Ecs", **params: Any) -> str:
    """The error code of a call that must fail."""
    try:
        api(emu, action, product, **params)
    except ServerException as error:
        return str(error.get_error_code())
    raise AssertionError(f"{action} succeeded")


def keypair(tmp: Path, kind: str = "rsa") -> tuple[Path, str]:
    """(private key path, public key line) made by ssh-keygen."""
    path = tmp / f"id_{kind}"
    extra = ["-b", "2048"] if kind == "rsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", "", "-f",
                    str(path)], check=True)
    return path, path.with_suffix(".pub").read_text().strip()


def security_group(emu: Emulator, vpc_id: str) -> str:
    return str(api(emu, "CreateSecurityGroup", VpcId=vpc_id)["SecurityGroupId"])


def instance(emu: Emulator, instance_id: str) -> dict[str, Any]:
    found = api(emu, "DescribeInstances", InstanceIds=json.dumps([instance_id]))
    rows = found["Instances"]["Instance"]
    assert len(rows) == 1, rows
    return dict(rows[0])


def wait_status(emu: Emulator, instance_id: str, status: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = instance(emu, instance_id)["Status"]
        if seen == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"{instance_id} still {seen}, not {status}, after {timeout} s")


def until(done: Any, what: str, timeout: float = 30.0) -> None:
    """Poll `done()` until it is true (the emulator's clock runs on its own)."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} after {timeout} s")
        time.sleep(0.05)


def wait_released(emu: Emulator, *instance_ids: str) -> None:
    """A release is asynchronous: the instances are listed until it completes."""
    until(lambda: api(emu, "DescribeInstances",
                      InstanceIds=json.dumps(list(instance_ids)))["TotalCount"] == 0,
          f"{instance_ids} still listed")


def vpc_listed(emu: Emulator, vpc_id: str) -> bool:
    return bool(api(emu, "DescribeVpcs", "Vpc", VpcId=vpc_id)["Vpcs"]["Vpc"])


def vswitch_listed(emu: Emulator, vswitch_id: str) -> bool:
    return bool(api(emu, "DescribeVSwitches", "Vpc", VSwitchId=vswitch_id)["VSwitches"]["VSwitch"])
