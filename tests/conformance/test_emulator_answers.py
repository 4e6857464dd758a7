"""The emulator's ECS/VPC buying actions, called through the official SDK, against V2.

Why here and not in scenarios.py: those scenarios drive the panel's adapter, which does not
call these actions yet (the panel side adds its own scenarios there when it does). These
drive each action directly with valid input and judge, by the same rules
(`checks.check_requests`, `checks.check_answers`):
- every parameter sent exists on `<Action>Request` with a compatible type;
- every field of every answer exists in `<Action>ResponseBody` at the same nesting, with a
  compatible JSON type, and survives V2's from_map→to_map (as if the panel read it all).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aliyunsdkcore.request import CommonRequest

from sandbox.aliyun.testing import Emulator
from tests.conformance import checks
from tests.conformance.recording import Observation

VERSIONS = {"Ecs": "2014-05-26", "Vpc": "2016-04-28"}
IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"


class Driver:
    """Calls actions by name and keeps every answer as an Observation that reads it all."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.observations: list[Observation] = []
        self.shared: dict[str, Any] = {}

    def __call__(self, action: str, product: str = "Ecs", **params: Any) -> dict[str, Any]:
        request = CommonRequest(version=VERSIONS[product], action_name=action, product=product)
        request.set_method("POST")
        request.set_accept_format("json")
        for key, value in params.items():
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            request.add_query_param(key.replace("__", "."), text)
        body = json.loads(self.emu.client().do_action_with_exception(request))
        self.observations.append(Observation(product, VERSIONS[product], action, body,
                                             set(_leaf_paths(body))))
        return dict(body)

    def wait(self, instance_id: str, status: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = self("DescribeInstanceStatus", InstanceId__1=instance_id)
            if found["InstanceStatuses"]["InstanceStatus"][0]["Status"] == status:
                return
            time.sleep(0.05)
        raise AssertionError(f"{instance_id} not {status}")

    def group(self) -> str:
        if "group" not in self.shared:
            self.shared["group"] = self("CreateSecurityGroup", VpcId=self.emu.vpc["vpc_id"])[
                "SecurityGroupId"]
        return str(self.shared["group"])

    def instances(self, count: int = 1) -> list[str]:
        bought = self("RunInstances", VSwitchId=self.emu.vswitch["vswitch_id"], ImageId=IMAGE,
                      InstanceType="ecs.g7.large", SecurityGroupId=self.group(), Amount=count)
        ids = list(bought["InstanceIdSets"]["InstanceIdSet"])
        for instance_id in ids:
            self.wait(instance_id, "Running")
        return ids


def _leaf_paths(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_paths(item, (*path, "[]"))
    elif path:
        yield path


def _rsa_public_key() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "k"
        subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f",
                        str(key)], check=True)
        return key.with_suffix(".pub").read_text().strip()


SCENARIOS: dict[tuple[str, str], Callable[[Any], None]] = {}


Run = Callable[[Driver], None]


def scenario(*keys: tuple[str, str]) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        for key in keys:
            SCENARIOS[key] = run
        return run
    return register


@scenario(("Ecs", "DescribeImages"))
def _images(call: Driver) -> None:
    call("DescribeImages", ImageOwnerAlias="system", OSType="linux", PageSize=50)
    call("DescribeImages", ImageFamily="acs:ubuntu_24_04_x64")


@scenario(("Ecs", "DescribeInstanceTypes"))
def _types(call: Driver) -> None:
    call("DescribeInstanceTypes", InstanceTypes__1="ecs.g7.large",
         InstanceTypes__2="ecs.c7.large")
    call("DescribeInstanceTypes", MinimumCpuCoreCount=4, MaxResults=5)


@scenario(("Ecs", "DescribeAvailableResource"))
def _available(call: Driver) -> None:
    zone = call.emu.vswitch["zone_id"]
    call("DescribeAvailableResource", DestinationResource="InstanceType", ZoneId=zone,
         InstanceChargeType="PostPaid")
    call("DescribeAvailableResource", DestinationResource="SystemDisk", ZoneId=zone,
         InstanceType="ecs.g7.large")


@scenario(("Ecs", "ImportKeyPair"), ("Ecs", "CreateKeyPair"), ("Ecs", "DescribeKeyPairs"),
          ("Ecs", "DeleteKeyPairs"))
def _key_pairs(call: Driver) -> None:
    call("ImportKeyPair", KeyPairName="conf-rsa", PublicKeyBody=_rsa_public_key(),
         Tag__1__Key="k3s-panel", Tag__1__Value="conformance")
    call("CreateKeyPair", KeyPairName="conf-made")
    call("DescribeKeyPairs", KeyPairName="conf-*", IncludePublicKey=True, PageSize=50)
    call("DeleteKeyPairs", KeyPairNames=json.dumps(["conf-rsa", "conf-made"]))


@scenario(("Ecs", "RunInstances"), ("Ecs", "DescribeInstances"),
          ("Ecs", "DescribeInstanceStatus"))
def _run(call: Driver) -> None:
    bought = call("RunInstances", VSwitchId=call.emu.vswitch["vswitch_id"],
                  ZoneId=call.emu.vswitch["zone_id"], ImageId=IMAGE,
                  InstanceType="ecs.g7.large",
                  SecurityGroupIds__1=call.group(), InstanceName="conf-[1,2]", HostName="conf",
                  UniqueSuffix=True, Amount=2, MinAmount=1, InternetMaxBandwidthOut=5,
                  InternetChargeType="PayByTraffic", SystemDisk__Category="cloud_essd",
                  SystemDisk__Size=40, Password="Conf0rmance!", ClientToken=uuid.uuid4().hex,
                  Tag__1__Key="k3s-panel", Tag__1__Value="conformance",
                  InstanceChargeType="PostPaid")
    ids = bought["InstanceIdSets"]["InstanceIdSet"]
    call("DescribeInstances", InstanceIds=json.dumps(ids))
    call("DescribeInstanceStatus", InstanceId__1=ids[0], InstanceId__2=ids[1])
    for instance_id in ids:
        call.wait(instance_id, "Running")
    call("DeleteInstances", InstanceId__1=ids[0], InstanceId__2=ids[1], Force=True)


@scenario(("Ecs", "StopInstance"), ("Ecs", "StartInstance"), ("Ecs", "DeleteInstance"))
def _one_lifecycle(call: Driver) -> None:
    (instance_id,) = call.instances()
    call("StopInstance", InstanceId=instance_id, ForceStop=True)
    call.wait(instance_id, "Stopped")
    call("StartInstance", InstanceId=instance_id)
    call.wait(instance_id, "Running")
    call("DeleteInstance", InstanceId=instance_id, Force=True)


@scenario(("Ecs", "StopInstances"), ("Ecs", "StartInstances"), ("Ecs", "DeleteInstances"))
def _batch_lifecycle(call: Driver) -> None:
    ids = call.instances(2)
    pair = {"InstanceId__1": ids[0], "InstanceId__2": ids[1]}
    call("StopInstances", BatchOptimization="SuccessFirst", **pair)
    for instance_id in ids:
        call.wait(instance_id, "Stopped")
    call("StartInstances", **pair)
    for instance_id in ids:
        call.wait(instance_id, "Running")
    call("StopInstances", **pair)
    for instance_id in ids:
        call.wait(instance_id, "Stopped")
    call("DeleteInstances", ClientToken=uuid.uuid4().hex, **pair)


@scenario(("Ecs", "JoinSecurityGroup"), ("Ecs", "LeaveSecurityGroup"),
          ("Ecs", "ModifySecurityGroupPolicy"))
def _membership(call: Driver) -> None:
    (instance_id,) = call.instances()
    other = call("CreateSecurityGroup", VpcId=call.emu.vpc["vpc_id"])["SecurityGroupId"]
    call("ModifySecurityGroupPolicy", SecurityGroupId=other, InnerAccessPolicy="Drop")
    call("JoinSecurityGroup", SecurityGroupId=other, InstanceId=instance_id)
    call("LeaveSecurityGroup", SecurityGroupId=other, InstanceId=instance_id)
    call("DeleteInstance", InstanceId=instance_id, Force=True)


@scenario(("Vpc", "CreateVpc"), ("Vpc", "CreateVSwitch"), ("Vpc", "DescribeVpcs"),
          ("Vpc", "DescribeVSwitches"), ("Vpc", "DeleteVSwitch"), ("Vpc", "DeleteVpc"))
def _network(call: Driver) -> None:
    vpc_id = call("CreateVpc", "Vpc", CidrBlock="192.168.0.0/16", VpcName="conf",
                  Description="conformance", ClientToken=uuid.uuid4().hex,
                  Tag__1__Key="k3s-panel", Tag__1__Value="conformance")["VpcId"]
    _until(lambda: call("DescribeVpcs", "Vpc", VpcId=vpc_id)["Vpcs"]["Vpc"][0]["Status"]
           == "Available")
    vsw_id = call("CreateVSwitch", "Vpc", VpcId=vpc_id, ZoneId=call.emu.vswitch["zone_id"],
                  CidrBlock="192.168.1.0/24", VSwitchName="conf", ClientToken=uuid.uuid4().hex)[
        "VSwitchId"]
    _until(lambda: call("DescribeVSwitches", "Vpc", VpcId=vpc_id, ZoneId=call.emu.vswitch[
        "zone_id"])["VSwitches"]["VSwitch"][0]["Status"] == "Available")
    call("DeleteVSwitch", "Vpc", VSwitchId=vsw_id)
    # A deletion completes a little later (terraform waits for it): then the VPC may go.
    _until(lambda: not call("DescribeVSwitches", "Vpc", VSwitchId=vsw_id)["VSwitches"][
        "VSwitch"])
    call("DeleteVpc", "Vpc", VpcId=vpc_id)


def _until(probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.05)
    raise AssertionError("never became true")


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(Path(tmp_path_factory.mktemp("answers")), time_scale=0.01) as emulator:
        yield emulator


@pytest.mark.parametrize("key", sorted(SCENARIOS),
                         ids=[f"{p}-{a}" for p, a in sorted(SCENARIOS)])
def test_emulator_answers_conform_to_v2(emu: Emulator, key: tuple[str, str]) -> None:
    product, action = key
    version = VERSIONS[product]
    call = Driver(emu)
    calls_before = len(emu.control.calls())
    SCENARIOS[key](call)
    calls = [c for c in emu.control.calls()[calls_before:]
             if c["action"] == action and c["version"] == version and c["status"] == 200]
    observed = [o for o in call.observations if o.action == action]
    assert calls and observed, f"{product} {action}: the scenario made no successful call"
    problems = checks.dedupe(checks.check_requests(product, version, action, calls)
                             + checks.check_answers(product, version, action, observed))
    assert not problems, "\n".join(f"{product} {action}: {p}" for p in problems)


def test_every_new_buying_action_has_a_scenario() -> None:
    """The buying actions the emulator serves are all covered here."""
    buying = {("Ecs", a) for a in (
        "RunInstances", "DescribeImages", "DescribeInstanceTypes", "DescribeAvailableResource",
        "ImportKeyPair", "CreateKeyPair", "DescribeKeyPairs", "DeleteKeyPairs", "StopInstance",
        "StopInstances", "StartInstance", "StartInstances", "DeleteInstance", "DeleteInstances",
        "DescribeInstanceStatus", "JoinSecurityGroup", "LeaveSecurityGroup",
        "ModifySecurityGroupPolicy")} | {("Vpc", a) for a in (
            "CreateVpc", "CreateVSwitch", "DeleteVSwitch", "DeleteVpc")}
    assert buying <= set(SCENARIOS)
