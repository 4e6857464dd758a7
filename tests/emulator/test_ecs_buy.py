"""Buying ECS instances without a lab (records only): catalogue, key pairs, RunInstances
rules, idempotence, status transitions, stock and quota faults."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sandbox.aliyun.testing import Emulator
from tests.emulator.ecs_calls import (
    UBUNTU_2404,
    api,
    api_error,
    instance,
    keypair,
    security_group,
    until,
    wait_released,
    wait_status,
)


def _run(emu: Emulator, group: str, **extra: object) -> list[str]:
    params = {"VSwitchId": emu.vswitch["vswitch_id"], "ImageId": UBUNTU_2404,
              "InstanceType": "ecs.g7.large", "SecurityGroupId": group, **extra}
    return list(api(emu, "RunInstances", **params)["InstanceIdSets"]["InstanceIdSet"])


def _settled_count(emu: Emulator) -> int:
    """How many instances the region has once the releases in flight (an earlier test's
    instances, listed as Stopping until their release completes) are done."""
    def settled() -> bool:
        listed = api(emu, "DescribeInstances", PageSize=100)["Instances"]["Instance"]
        return all(i["Status"] != "Stopping" for i in listed)
    until(settled, "releases still in flight")
    return int(api(emu, "DescribeInstances")["TotalCount"])


@pytest.fixture(scope="module")
def group(emu: Emulator) -> str:
    return security_group(emu, emu.vpc["vpc_id"])


def test_images_are_current_linux_releases(emu: Emulator) -> None:
    found = api(emu, "DescribeImages", ImageOwnerAlias="system", OSType="linux", PageSize=50)
    families = {i["ImageFamily"] for i in found["Images"]["Image"]}
    assert {"acs:ubuntu_24_04_x64", "acs:ubuntu_22_04_x64", "acs:debian_12_x64",
            "acs:alibaba_cloud_linux_3_2104_lts_x64"} <= families
    one = api(emu, "DescribeImages", ImageFamily="acs:debian_12_x64")["Images"]["Image"]
    assert [i["OSName"] for i in one] == ["Debian  12.11 64位"]
    assert api(emu, "DescribeImages", OSType="windows")["TotalCount"] == 0
    assert api(emu, "DescribeImages", ImageOwnerAlias="self")["TotalCount"] == 0


def test_instance_types_and_what_a_zone_sells(emu: Emulator) -> None:
    types = api(emu, "DescribeInstanceTypes", **{"InstanceTypes.1": "ecs.g7.large"})
    assert [(t["CpuCoreCount"], t["MemorySize"]) for t in
            types["InstanceTypes"]["InstanceType"]] == [(2, 8.0)]
    zone = emu.vswitch["zone_id"]
    emu.control.set_ecs_stock(zone, "ecs.c7.large", "WithoutStock")
    found = api(emu, "DescribeAvailableResource", DestinationResource="InstanceType",
                ZoneId=zone)
    (only,) = found["AvailableZones"]["AvailableZone"]
    sold = {r["Value"]: (r["Status"], r["StatusCategory"]) for r in
            only["AvailableResources"]["AvailableResource"][0]["SupportedResources"][
                "SupportedResource"]}
    assert sold["ecs.c7.large"] == ("SoldOut", "WithoutStock")
    assert sold["ecs.g7.large"] == ("Available", "WithStock")
    disks = api(emu, "DescribeAvailableResource", DestinationResource="SystemDisk",
                InstanceType="ecs.g7.large", ZoneId=zone)
    supported = disks["AvailableZones"]["AvailableZone"][0]["AvailableResources"][
        "AvailableResource"][0]["SupportedResources"]["SupportedResource"]
    assert {
        k: v for k, v in next(d for d in supported if d["Value"] == "cloud_essd").items()
        if k in ("Value", "Min", "Max")} == {"Value": "cloud_essd", "Min": 20, "Max": 2048}
    assert api_error(emu, "DescribeAvailableResource",
                     DestinationResource="SystemDisk") == "MissingParameter"
    emu.control.set_ecs_stock(zone, "ecs.c7.large", "WithStock")


def test_key_pairs_rsa_and_ecdsa_yes_ed25519_no(emu: Emulator, tmp_path: Path) -> None:
    _, rsa = keypair(tmp_path, "rsa")
    _, ecdsa = keypair(tmp_path, "ecdsa")
    _, ed25519 = keypair(tmp_path, "ed25519")
    made = api(emu, "ImportKeyPair", KeyPairName="panel-rsa", PublicKeyBody=rsa)
    assert len(made["KeyPairFingerPrint"].split(":")) == 16
    api(emu, "ImportKeyPair", KeyPairName="panel-ecdsa", PublicKeyBody=ecdsa)
    assert api_error(emu, "ImportKeyPair", KeyPairName="panel-ed", PublicKeyBody=ed25519) \
        == "InvalidPublicKeyBody.Malformed"
    assert api_error(emu, "ImportKeyPair", KeyPairName="panel-rsa", PublicKeyBody=rsa) \
        == "KeyPair.AlreadyExist"
    assert api_error(emu, "ImportKeyPair", KeyPairName="1bad", PublicKeyBody=rsa) \
        == "InvalidKeyPairName.Malformed"
    created = api(emu, "CreateKeyPair", KeyPairName="made-here")
    # Unencrypted PKCS#8 (V2 CreateKeyPairResponseBody.PrivateKeyBody, doc-detail/51792)
    assert created["PrivateKeyBody"].startswith("-----BEGIN PRIVATE KEY-----\n")
    listed = api(emu, "DescribeKeyPairs", KeyPairName="panel-*", IncludePublicKey=True)
    assert sorted(k["KeyPairName"] for k in listed["KeyPairs"]["KeyPair"]) == [
        "panel-ecdsa", "panel-rsa"]
    assert {k["PublicKey"] for k in listed["KeyPairs"]["KeyPair"]} == {rsa, ecdsa}
    api(emu, "DeleteKeyPairs", KeyPairNames=json.dumps(["panel-ecdsa", "made-here"]))
    left = api(emu, "DescribeKeyPairs")["KeyPairs"]["KeyPair"]
    assert [k["KeyPairName"] for k in left] == ["panel-rsa"]


def test_run_instances_names_addresses_and_status(tmp_path: Path) -> None:
    # 0.2: Pending 1 s, Starting 3 s, Stopping 2 s, a release 2 s: each seen whatever the load
    with Emulator(tmp_path / "state", time_scale=0.2) as emu:
        _names_addresses_and_status(emu, security_group(emu, emu.vpc["vpc_id"]))


def _names_addresses_and_status(emu: Emulator, group: str) -> None:
    bought = _run(emu, group, Amount=2, InstanceName="k3s-server", HostName="k3s-server",
                  UniqueSuffix=True, InternetMaxBandwidthOut=5, Tag__1__Key="cluster",
                  Tag__1__Value="c1", SystemDisk__Category="cloud_essd", SystemDisk__Size=40,
                  Password="Conf0rmance!")
    assert len(bought) == 2
    first = instance(emu, bought[0])
    assert first["Status"] == "Pending"
    assert first["InstanceName"] == "k3s-server001"
    assert instance(emu, bought[1])["HostName"] == "k3s-server002"
    assert first["ImageId"] == UBUNTU_2404 and first["OSName"] == "Ubuntu  24.04 64位"
    assert first["PublicIpAddress"]["IpAddress"], "InternetMaxBandwidthOut > 0: a public IP"
    by_public = api(emu, "DescribeInstances", PublicIpAddresses=json.dumps(
        first["PublicIpAddress"]["IpAddress"]))["Instances"]["Instance"]
    assert [i["InstanceId"] for i in by_public] == [bought[0]]
    assert first["Tags"]["Tag"] == [{"TagKey": "cluster", "TagValue": "c1"}]
    assert first["VpcAttributes"]["PrivateIpAddress"]["IpAddress"][0].startswith(
        emu.vswitch["cidr"].rsplit(".", 1)[0])
    wait_status(emu, bought[0], "Running")
    assert api_error(emu, "DeleteInstance", InstanceId=bought[0]) == "IncorrectInstanceStatus"
    api(emu, "StopInstance", InstanceId=bought[0])
    assert instance(emu, bought[0])["Status"] == "Stopping"
    wait_status(emu, bought[0], "Stopped")
    api(emu, "StartInstance", InstanceId=bought[0])
    wait_status(emu, bought[0], "Running")
    statuses = api(emu, "DescribeInstanceStatus", InstanceId__1=bought[0])
    assert statuses["InstanceStatuses"]["InstanceStatus"] == [
        {"InstanceId": bought[0], "Status": "Running"}]
    api(emu, "DeleteInstances", InstanceId__1=bought[0], InstanceId__2=bought[1], Force=True)
    # Releasing is asynchronous (DeleteSecurityGroup's page): still listed a while, a
    # Running one as Stopping (chosen), and nothing more can be done with it.
    listed = api(emu, "DescribeInstances", InstanceIds=json.dumps(bought))["Instances"]
    assert {i["Status"] for i in listed["Instance"]} <= {"Stopping", "Stopped"}, listed
    assert api_error(emu, "StartInstance", InstanceId=bought[0]) == "IncorrectInstanceStatus"
    api(emu, "DeleteInstances", InstanceId__1=bought[0], Force=True)  # asked again: accepted
    wait_released(emu, *bought)
    assert api_error(emu, "StopInstance", InstanceId=bought[0]) == "InvalidInstanceId.NotFound"


def test_bad_input_buys_nothing(emu: Emulator, group: str) -> None:
    before = _settled_count(emu)
    cases: dict[str, dict[str, object]] = {
        "InvalidImageId.NotFound": {"ImageId": "centos_6_x64.vhd"},
        "InvalidInstanceType.ValueNotSupported": {"InstanceType": "ecs.nope.large"},
        "InvalidPassword.Malformed": {"Password": "short"},
        "InvalidSystemDiskSize.ValueNotSupported": {"SystemDisk__Size": 10},
        "InvalidSystemDiskCategory.ValueNotSupported": {"SystemDisk__Category": "ephemeral"},
        "InvalidKeyPairName.NotFound": {"KeyPairName": "nobody"},
        "InvalidHostName.Malformed": {"HostName": "-bad-"},
        "InvalidParameter.Mismatch": {"ZoneId": emu.vpc["vswitches"][1]["zone_id"]},
        "DryRunOperation": {"DryRun": True},
        "InvalidParameter": {"Amount": 101},
    }
    for code, extra in cases.items():
        params = {"VSwitchId": emu.vswitch["vswitch_id"], "ImageId": UBUNTU_2404,
                  "InstanceType": "ecs.g7.large", "SecurityGroupId": group, **extra}
        assert api_error(emu, "RunInstances", **params) == code, extra
    assert api(emu, "DescribeInstances")["TotalCount"] == before


def test_client_token_replays_the_same_instances(emu: Emulator, group: str) -> None:
    token = "panel-run-1"
    first = _run(emu, group, Amount=2, ClientToken=token)
    again = _run(emu, group, Amount=2, ClientToken=token)
    assert again == first
    assert api(emu, "DescribeInstances", InstanceIds=json.dumps(first))["TotalCount"] == 2
    assert api_error(emu, "RunInstances", VSwitchId=emu.vswitch["vswitch_id"],
                     ImageId=UBUNTU_2404, InstanceType="ecs.g7.large", SecurityGroupId=group,
                     Amount=3, ClientToken=token) == "IdempotenceParamNotMatch"
    for instance_id in first:
        wait_status(emu, instance_id, "Running")
    api(emu, "DeleteInstances", InstanceId__1=first[0], InstanceId__2=first[1], Force=True)


def test_stock_and_quota_faults_buy_nothing(emu: Emulator, group: str) -> None:
    zone = emu.vswitch["zone_id"]
    emu.control.set_ecs_stock(zone, "ecs.g7.large")
    assert api_error(emu, "RunInstances", VSwitchId=emu.vswitch["vswitch_id"],
                     ImageId=UBUNTU_2404, InstanceType="ecs.g7.large",
                     SecurityGroupId=group) == "OperationDenied.NoStock"
    emu.control.set_ecs_stock(zone, "ecs.g7.large", "WithStock")
    have = _settled_count(emu)
    emu.control.set_ecs_quota(emu.region_id, have + 1)
    try:
        assert api_error(emu, "RunInstances", VSwitchId=emu.vswitch["vswitch_id"],
                         ImageId=UBUNTU_2404, InstanceType="ecs.g7.large",
                         SecurityGroupId=group, Amount=2) == "QuotaExceed.ElasticQuota"
        assert api(emu, "DescribeInstances")["TotalCount"] == have
        some = _run(emu, group, Amount=3, MinAmount=1)  # as many as fit, at least one
        assert len(some) == 1
        wait_status(emu, some[0], "Running")
        api(emu, "DeleteInstance", InstanceId=some[0], Force=True)
    finally:
        emu.control.set_ecs_quota(emu.region_id, None)


def test_a_lost_answer_then_the_same_client_token_buys_once(emu: Emulator, group: str) -> None:
    """Alibaba bought, the answer was lost (a dropped connection, a killed worker): the SDK's
    retry (or the panel's, after a crash) with the same ClientToken gets the same instances;
    nothing is bought twice."""
    emu.control.clear_calls()
    emu.control.add_fault(action="RunInstances", lose_answer=True, count=1)
    before = _settled_count(emu)
    bought = _run(emu, group, Amount=2, ClientToken="lost-answer-1")
    runs = [c for c in emu.control.calls() if c["action"] == "RunInstances"]
    assert [c["status"] for c in runs] == [0, 200], "the first answer was lost, then replayed"
    assert api(emu, "DescribeInstances")["TotalCount"] == before + 2
    assert _run(emu, group, Amount=2, ClientToken="lost-answer-1") == bought
    assert api(emu, "DescribeInstances")["TotalCount"] == before + 2
    for instance_id in bought:
        wait_status(emu, instance_id, "Running")
    api(emu, "DeleteInstances", InstanceId__1=bought[0], InstanceId__2=bought[1], Force=True)


def test_key_pair_certificates_no_and_unicode_letter_names_yes(emu: Emulator,
                                                              tmp_path: Path) -> None:
    """The current ImportKeyPair page lists rsa, dsa, ssh-rsa, ssh-dss, ecdsa only: an
    OpenSSH certificate is refused. Names start with any Unicode letter (V2
    ImportKeyPairRequest.KeyPairName), not only ASCII or Chinese ones."""
    ca, _ = keypair(tmp_path, "ecdsa")
    user, public = keypair(tmp_path, "rsa")
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "panel", "-n", "root",
                    str(user) + ".pub"], check=True, capture_output=True)
    certificate = Path(str(user) + "-cert.pub").read_text().strip()
    assert certificate.startswith("ssh-rsa-cert-v01@openssh.com ")
    assert api_error(emu, "ImportKeyPair", KeyPairName="cert-key",
                     PublicKeyBody=certificate) == "InvalidPublicKeyBody.Malformed"
    for name in ("Ключ-панели", "clé.k3s:1", "鍵_k3s"):
        api(emu, "ImportKeyPair", KeyPairName=name, PublicKeyBody=public)
    for bad in ("_key", "1key", "k", "key pair", "https://key"):
        assert api_error(emu, "ImportKeyPair", KeyPairName=bad, PublicKeyBody=public) \
            == "InvalidKeyPairName.Malformed", bad
    api(emu, "DeleteKeyPairs", KeyPairNames=json.dumps(["Ключ-панели", "clé.k3s:1", "鍵_k3s"]))


def test_system_disk_performance_level_and_its_sizes(emu: Emulator, group: str) -> None:
    """V2 RunInstancesRequest SystemDisk: PerformanceLevel PL0-PL3 of an ESSD, and the size
    bounds per level (PL0 1-2048, PL1 20-2048, PL2 461-2048, PL3 1261-2048, at least the
    image's 20 GiB)."""
    def run(level: str, size: int, category: str = "cloud_essd") -> str:
        return api_error(emu, "RunInstances", VSwitchId=emu.vswitch["vswitch_id"],
                         ImageId=UBUNTU_2404, InstanceType="ecs.g7.large",
                         SecurityGroupId=group, DryRun=True, SystemDisk__Category=category,
                         SystemDisk__PerformanceLevel=level, SystemDisk__Size=size)

    size_error = "InvalidSystemDiskSize.ValueNotSupported"
    level_error = "InvalidSystemDiskPerformanceLevel.ValueNotSupported"
    assert run("PL0", 20) == "DryRunOperation"
    assert run("PL1", 2048) == "DryRunOperation"
    assert run("PL2", 460) == size_error
    assert run("PL2", 461) == "DryRunOperation"
    assert run("PL3", 1260) == size_error
    assert run("PL3", 1261) == "DryRunOperation"
    assert run("PL3", 2049) == size_error
    assert run("PL4", 100) == level_error
    assert run("pl1", 100) == level_error
    assert run("PL1", 100, "cloud_efficiency") == level_error


def test_basic_and_advanced_groups_do_not_mix(emu: Emulator, group: str) -> None:
    """Help doc "Basic and advanced security groups": one instance's groups are all of
    one type; an advanced group can neither authorize a group nor be authorized as one,
    and its InnerAccessPolicy cannot be modified (ModifySecurityGroupPolicy reference)."""
    vpc_id = emu.vpc["vpc_id"]
    advanced = str(api(emu, "CreateSecurityGroup", VpcId=vpc_id,
                       SecurityGroupType="enterprise")["SecurityGroupId"])
    assert api_error(emu, "ModifySecurityGroupPolicy", SecurityGroupId=advanced,
                     InnerAccessPolicy="Accept") == "InvalidSecurityGroupType.NotSupported"
    (found,) = api(emu, "DescribeSecurityGroupAttribute", SecurityGroupId=advanced,
                   Direction="ingress")["InnerAccessPolicy"],
    assert found == "Drop"
    assert api_error(emu, "RunInstances", VSwitchId=emu.vswitch["vswitch_id"],
                     ImageId=UBUNTU_2404, InstanceType="ecs.g7.large",
                     SecurityGroupIds__1=group, SecurityGroupIds__2=advanced) \
        == "InvalidSecurityGroupType.Mismatch"
    (bought,) = _run(emu, group)
    wait_status(emu, bought, "Running")  # Join/Leave need Running or Stopped
    assert api_error(emu, "JoinSecurityGroup", SecurityGroupId=advanced,
                     InstanceId=bought) == "InvalidOperation.MultiGroupType"
    for target, source in ((group, advanced), (advanced, group), (advanced, advanced)):
        assert api_error(emu, "AuthorizeSecurityGroup", SecurityGroupId=target,
                         Permissions__1__IpProtocol="TCP",
                         Permissions__1__PortRange="10250/10250",
                         Permissions__1__SourceGroupId=source) \
            == "InvalidSecurityGroupType.NotSupported", (target, source)
    assert api_error(emu, "AuthorizeSecurityGroup", SecurityGroupId=group,
                     Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="22/22",
                     Permissions__1__SourceGroupId="sg-nobody") \
        == "InvalidSourceGroupId.NotFound"
    other = security_group(emu, vpc_id)
    api(emu, "JoinSecurityGroup", SecurityGroupId=other, InstanceId=bought)  # basic + basic
    api(emu, "DeleteInstance", InstanceId=bought, Force=True)


def test_rules_keep_what_narrows_them(emu: Emulator) -> None:
    """ICMPv6 with an IPv4 source is refused (it used to be stored and enforced as "every
    protocol"); SourcePortRange and DestCidrIp are kept, shown and part of a rule's
    identity (V2 AuthorizeSecurityGroupRequestPermissions)."""
    group = security_group(emu, emu.vpc["vpc_id"])
    assert api_error(emu, "AuthorizeSecurityGroup", SecurityGroupId=group,
                     Permissions__1__IpProtocol="ICMPv6", Permissions__1__PortRange="-1/-1",
                     Permissions__1__SourceCidrIp="10.0.0.0/8") \
        == "InvalidParam.Ipv6ProtocolConflictWithIpv4Address"
    assert api_error(emu, "AuthorizeSecurityGroup", SecurityGroupId=group,
                     Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="22/22",
                     Permissions__1__SourceCidrIp="10.0.0.0/8",
                     Permissions__1__SourcePortRange="0/5") == "InvalidParam.PortRange"
    assert api_error(emu, "AuthorizeSecurityGroup", SecurityGroupId=group,
                     Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="22/22",
                     Permissions__1__SourceCidrIp="fd00::/8") == "InvalidSourceCidrIp.Malformed"
    narrow = {"Permissions__1__IpProtocol": "TCP", "Permissions__1__PortRange": "6443/6443",
              "Permissions__1__SourceCidrIp": "10.0.0.0/8",
              "Permissions__1__SourcePortRange": "40000/50000",
              "Permissions__1__DestCidrIp": "10.1.0.0/16"}
    api(emu, "AuthorizeSecurityGroup", SecurityGroupId=group, **narrow)
    api(emu, "RevokeSecurityGroup", SecurityGroupId=group,  # the wider rule: not this one
        Permissions__1__IpProtocol="TCP", Permissions__1__PortRange="6443/6443",
        Permissions__1__SourceCidrIp="10.0.0.0/8")
    (rule,) = api(emu, "DescribeSecurityGroupAttribute", SecurityGroupId=group)[
        "Permissions"]["Permission"]
    assert (rule["SourcePortRange"], rule["DestCidrIp"]) == ("40000/50000", "10.1.0.0/16")
    api(emu, "RevokeSecurityGroup", SecurityGroupId=group, **narrow)
    assert api(emu, "DescribeSecurityGroupAttribute", SecurityGroupId=group)[
        "Permissions"]["Permission"] == []


def test_dry_run_stop_and_start_check_the_status(tmp_path: Path) -> None:
    """DryRun checks the business limitations (the status) before DryRunOperation, as
    DeleteInstance does: a Pending/Starting instance can be neither stopped nor started."""
    # 0.2: Pending 1 s then Starting 3 s: the checks run well inside, whatever the load
    with Emulator(tmp_path / "state", time_scale=0.2) as emu:
        _dry_runs(emu, security_group(emu, emu.vpc["vpc_id"]))


def _dry_runs(emu: Emulator, group: str) -> None:
    (bought,) = _run(emu, group)
    assert instance(emu, bought)["Status"] in ("Pending", "Starting")
    for action in ("StopInstance", "StartInstance"):
        assert api_error(emu, action, InstanceId=bought, DryRun=True) \
            == "IncorrectInstanceStatus", action
    assert api_error(emu, "StopInstances", InstanceId__1=bought, DryRun=True) \
        == "IncorrectInstanceStatus"
    wait_status(emu, bought, "Running")
    assert api_error(emu, "StopInstance", InstanceId=bought, DryRun=True) == "DryRunOperation"
    assert api_error(emu, "StartInstance", InstanceId=bought, DryRun=True) \
        == "IncorrectInstanceStatus"
    api(emu, "DeleteInstance", InstanceId=bought, Force=True)


def test_start_instances_all_together_changes_nothing_on_a_failure(
        emu: Emulator, group: str) -> None:
    """AllTogether (the default): one instance in the wrong status fails the call and no
    other instance moves; the same instance twice in one call is refused."""
    first, second = _run(emu, group, Amount=2)
    for instance_id in (first, second):
        wait_status(emu, instance_id, "Running")
    api(emu, "StopInstance", InstanceId=first)
    wait_status(emu, first, "Stopped")
    assert api_error(emu, "StartInstances", InstanceId__1=first, InstanceId__2=second) \
        == "IncorrectInstanceStatus"
    assert instance(emu, first)["Status"] == "Stopped"
    assert api_error(emu, "StartInstances", InstanceId__1=first, InstanceId__2=first) \
        == "InvalidParameter"
    answers = api(emu, "StartInstances", InstanceId__1=first, InstanceId__2=second,
                  BatchOptimization="SuccessFirst")["InstanceResponses"]["InstanceResponse"]
    assert [a["Code"] for a in answers] == ["200", "IncorrectInstanceStatus"]
    wait_status(emu, first, "Running")
    api(emu, "DeleteInstances", InstanceId__1=first, InstanceId__2=second, Force=True)


def test_the_password_is_not_kept_in_clear(tmp_path: Path) -> None:
    """RunInstances' Password: the emulator's state file holds a salted SHA-512 crypt hash
    (what /etc/shadow would), never the password."""
    with Emulator(tmp_path / "state", time_scale=0.01) as emu:
        group = security_group(emu, emu.vpc["vpc_id"])
        _run(emu, group, Password="Secr3t-Passw0rd", ClientToken="pw-1")
        text = (tmp_path / "state" / "state.json").read_text()
        assert "Secr3t-Passw0rd" not in text
        assert '"$6$' in text
