"""ECS 2014-05-26: buying instances. RunInstances, Start/Stop/DeleteInstance(s),
DescribeInstanceStatus, Join/LeaveSecurityGroup.

Why: the panel buys its hosts. Each instance bought here becomes a real lab host
(sandbox/lab/machines.py: network namespace, OpenSSH, the image's /etc/os-release, the key
pair's public key for root or the password) when the emulator runs with
`--lab-state-dir`; without it instances are records only (the emulator's own fast tests).

Sources (V2 alibabacloud_ecs20140526 7.11.8 request docstrings unless said):
- RunInstances: Amount and MinAmount 1-100 ("If MinAmount is not specified ... If the
  inventory is insufficient ... no instances are created"; with MinAmount, as many as there
  is room for, at least MinAmount); InternetMaxBandwidthOut 0-100 (> 0 assigns a public IP:
  RunInstances usage notes, alibabacloud.com/help/en/ecs/developer-reference/api-runinstances);
  SystemDisk.Size bounds per category ("Other disk categories: 20 to 2048", ESSD PL1 20 to
  2048, cloud_auto 1 to 2048, and at least the image size; default max{40, image size});
  Password 8-30 characters, three of four classes; HostName 2-64 characters, segments of
  letters, digits and hyphens, `${instance_id}` placeholder; InstanceName 2-128, default the
  InstanceId; UniqueSuffix appends 001..999; `name_prefix[begin,bits]name_suffix`
  (help.aliyun.com doc 196048); VSwitchId decides the zone (ZoneId must match it);
  PrivateIpAddress in the vSwitch, the first and the last three addresses reserved; the
  security group and the vSwitch in the same VPC; ClientToken <= 64 ASCII characters
  (idempotence, doc 25693: same token, same parameters: the same answer, nothing bought).
  DryRun: 400 `DryRunOperation` once every check passed.
- "After an instance is created, the instance enters the Starting state and then
  transitions to the Running state" (RunInstances usage notes); terraform-provider-alicloud
  resource_alicloud_instance.go waits Pending/Starting -> Running after RunInstances,
  Pending/Running/Stopping -> Stopped after StopInstance, and for an instance to vanish
  after DeleteInstance (Force=true), retrying `IncorrectInstanceStatus`,
  `IncorrectInstanceStatus.Initializing`.
- DeleteInstance(s): Force "false: releases ECS instance only when it is in the Stopped
  state" (a Running instance without Force: 403 `IncorrectInstanceStatus`).
- Error codes and messages from the ECS API references (StartInstance error table):
  403 `OperationDenied.NoStock` "The requested resource is sold out in the specified zone;
  try other types of resources or other regions and zones.", 403 `QuotaExceed.ElasticQuota`
  "No additional quota is available for the specified ECS instance type.", 404
  `InvalidInstanceId.NotFound` "The specified InstanceId does not exist.", 403
  `IncorrectInstanceStatus` "The current status of the resource does not support this
  operation.". Codes chosen without a source naming them for the case (README lists them):
  `InvalidImageId.NotFound`, `InvalidInstanceType.ValueNotSupported`,
  `InvalidVSwitchId.NotFound`, `InvalidKeyPairName.NotFound`, `InvalidPassword.Malformed`,
  `InvalidHostName.Malformed`, `InvalidInstanceName.Malformed`,
  `InvalidSystemDiskCategory.ValueNotSupported`, `InvalidSystemDiskSize.ValueNotSupported`,
  `InvalidSecurityGroupId.VPCMismatch`, `InvalidParameter.Mismatch` (zone vs vSwitch),
  `InvalidVSwitchId.IpNotEnough`, `InvalidPrivateIpAddress.Duplicated`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import subprocess
import sys
import threading
import traceback
from typing import Any

from sandbox.aliyun import ecs_catalogue as catalogue
from sandbox.aliyun import ecs_firewall as firewall
from sandbox.aliyun import ecs_keypairs as keypairs
from sandbox.aliyun.ecs import (
    ECS,
    IDEMPOTENCE_MISMATCH,
    SECURITY_GROUP_NOT_FOUND,
    instances,
    security_groups,
)
from sandbox.aliyun.gateway import errors, ids, network, tags
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.paging import page, page_params
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import ClientTokenPolicy, control_route
from sandbox.aliyun.gateway.state import State

PENDING_SECONDS = 5.0     # realistic seconds, times the time scale
STARTING_SECONDS = 15.0
STOPPING_SECONDS = 10.0
# Releasing is asynchronous (DeleteSecurityGroup's page: "operations of releasing ECS
# instances and ENIs are asynchronous"; V2 DeleteInstanceRequest.force_stop: a release "takes
# several minutes" with a graceful stop; terraform waits for the instance to vanish, above).
# How long a forced one takes: chosen.
RELEASE_SECONDS = 10.0

INCORRECT_STATUS = errors.ApiError(
    403, "IncorrectInstanceStatus",
    "The current status of the resource does not support this operation.")
NOT_FOUND = errors.ApiError(404, "InvalidInstanceId.NotFound",
                            "The specified InstanceId does not exist.")
NO_STOCK = errors.ApiError(
    403, "OperationDenied.NoStock",
    "The requested resource is sold out in the specified zone; try other types of resources "
    "or other regions and zones.")
QUOTA_EXCEEDED = errors.ApiError(403, "QuotaExceed.ElasticQuota",
                                 "No additional quota is available for the specified ECS "
                                 "instance type.")
DRY_RUN = errors.ApiError(400, "DryRunOperation",
                          "Request validation has been passed with DryRun flag set.")
# "When you associate an ECS instance ... with multiple security groups, the security groups
# must all be of the same type" (help doc "Basic and advanced security groups",
# alibabacloud.com/help/en/ecs/user-guide/basic-security-groups-and-advanced-security-groups).
# No source names the code: chosen (README).
MIXED_GROUP_TYPES = errors.ApiError(
    400, "InvalidSecurityGroupType.Mismatch",
    "The security groups of one instance must all be basic or all be advanced.")
_PASSWORD_SPECIALS = set("()`~!@#$%^&*-_+=|{}[]:;\"<>,.?/\\")  # V2 Password docstring
_HOST_SEGMENT = re.compile(r"[A-Za-z0-9-]+")
_INSTANCE_NAME = re.compile(r"[^\W\d_][\w.:\-\[\],]{1,127}", re.UNICODE)
_BRACKETS = re.compile(r"\[(\d+),(\d+)\]")


def _bad(code: str, name: str) -> errors.ApiError:
    return errors.ApiError(400, code, f"The specified parameter {name} is not valid.")


# ---- parameter rules -----------------------------------------------------------------------
def _check_password(password: str) -> None:
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password),
                   any(c in _PASSWORD_SPECIALS for c in password)))
    allowed = all((c.isalnum() and c.isascii()) or c in _PASSWORD_SPECIALS for c in password)
    if not 8 <= len(password) <= 30 or classes < 3 or not allowed:
        raise _bad("InvalidPassword.Malformed", "Password")


def _check_hostname(hostname: str) -> None:
    ok = (2 <= len(hostname) <= 64 and not hostname.startswith((".", "-"))
          and not hostname.endswith((".", "-")) and ".." not in hostname
          and "--" not in hostname
          and all(_HOST_SEGMENT.fullmatch(s) for s in hostname.split(".")))
    if not ok:
        raise _bad("InvalidHostName.Malformed", "HostName")


def _sequence(template: str, index: int, count: int, unique_suffix: bool) -> str:
    """The index-th (0-based) of `count` names from a template (doc 196048)."""
    match = _BRACKETS.search(template)
    if match:
        begin, bits = int(match.group(1)), int(match.group(2))
        return template[:match.start()] + str(begin + index).zfill(bits) + template[match.end():]
    if unique_suffix and count > 1:
        return f"{template}{index + 1:03d}"
    return template


def _system_disk(params: Params, image: dict[str, Any]) -> dict[str, Any]:
    category = params.raw.get("SystemDisk.Category") or "cloud_efficiency"
    if category not in catalogue.SYSTEM_DISKS:
        raise errors.ApiError(400, "InvalidSystemDiskCategory.ValueNotSupported",
                              f"The specified parameter SystemDisk.Category {category} is "
                              "not supported.")
    level, low, high = catalogue.system_disk_level(
        category, params.raw.get("SystemDisk.PerformanceLevel") or "")
    text = params.raw.get("SystemDisk.Size") or str(max(40, image["Size"], low))
    what = f"{category} {level}".strip()
    if not text.isdigit() or not max(low, image["Size"]) <= int(text) <= high:
        raise errors.ApiError(400, "InvalidSystemDiskSize.ValueNotSupported",
                              f"The specified parameter SystemDisk.Size is not valid: "
                              f"{max(low, image['Size'])} to {high} GiB for {what}.")
    return {"category": category, "size": int(text), "performance_level": level}


def _security_groups(state: State, ctx: RequestContext, params: Params,
                     vpc_id: str) -> list[str]:
    single = params["SecurityGroupId"]
    many = params.repeat_list("SecurityGroupIds")
    if single and many:
        raise errors.ApiError(400, "InvalidParameter.Conflict",
                              "SecurityGroupId and SecurityGroupIds cannot be set together.")
    wanted = [single] if single else many
    if not wanted:
        raise errors.missing_parameter("SecurityGroupId")
    kinds = set()
    for group_id in wanted:
        group = security_groups(state).get(group_id)
        if group is None or group["region_id"] != ctx.region_id:
            raise SECURITY_GROUP_NOT_FOUND
        if group["vpc_id"] != vpc_id:
            raise errors.ApiError(400, "InvalidSecurityGroupId.VPCMismatch",
                                  "Specified security group and virtual switch are not in "
                                  "the same VPC.")
        kinds.add(group.get("type", "normal"))
    if len(kinds) > 1:
        raise MIXED_GROUP_TYPES
    return list(dict.fromkeys(wanted))


def _lab_addresses(cloud: Cloud) -> set[str]:
    """Addresses the lab itself uses (its gateway, the cloud namespace, hosts it made):
    never handed to an instance."""
    if not cloud.lab_state_dir:
        return set()
    from sandbox.lab.machines import load_lab  # noqa: PLC0415 - only with a lab

    lab = load_lab(cloud.lab_state_dir)
    return {lab.gateway_ip, lab.cloud_ip, *(h.ip for h in lab.hosts)}


def _free_private(state: State, cloud: Cloud, vswitch: dict[str, Any],
                  taken: set[str]) -> str | None:
    net = ipaddress.ip_network(vswitch["cidr"])
    hosts = list(net.hosts())[:-2]  # the last three of the block are reserved (.253-.255)
    used = network.addresses_in_use(state) | taken | _lab_addresses(cloud)
    # An address a released instance had comes last: its host may still be going away, and
    # the lab's neighbours remember its MAC address for a while.
    released = state.table("ecs", "released_addresses")
    free = [str(c) for c in reversed(hosts) if str(c) not in used]
    free.sort(key=lambda a: released.get(a, 0.0))
    return free[0] if free else None


# ---- RunInstances --------------------------------------------------------------------------
@ECS.action("RunInstances", (
    Param("RegionId", required=True), Param("ZoneId"), Param("VSwitchId"), Param("ImageId"),
    Param("ImageFamily", max_length=128), Param("InstanceType"), Param("SecurityGroupId"),
    Param("KeyPairName"), Param("Password"), Param("PasswordInherit", "boolean"),
    Param("InternetMaxBandwidthOut", "integer", default=0, minimum=0, maximum=100),
    Param("InternetMaxBandwidthIn", "integer", minimum=1, maximum=200),
    Param("InternetChargeType", enum=("PayByBandwidth", "PayByTraffic"),
          default="PayByTraffic"),
    Param("InstanceChargeType", enum=("PrePaid", "PostPaid"), default="PostPaid"),
    Param("InstanceName"), Param("HostName"), Param("Description", max_length=256),
    Param("UniqueSuffix", "boolean", default=False),
    Param("Amount", "integer", default=1, minimum=1, maximum=100),
    Param("MinAmount", "integer", minimum=1, maximum=100), Param("DryRun", "boolean"),
    Param("PrivateIpAddress"), Param("DeletionProtection", "boolean", default=False),
    Param("ClientToken", max_length=64), Param("ResourceGroupId"), Param("IoOptimized"),
    Param("SecurityEnhancementStrategy", enum=("Active", "Deactive")),
), client_token=ClientTokenPolicy(IDEMPOTENCE_MISMATCH))
def run_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Everything is checked before anything is bought; stock and quota are checked for the
    whole request, so a failure buys nothing."""
    region = ctx.require_region()
    if params["ClientToken"] and not params["ClientToken"].isascii():
        raise errors.invalid_parameter("ClientToken")
    if params["InstanceChargeType"] == "PrePaid":
        raise errors.ApiError(403, "InvalidInstanceChargeType.NotSupported",
                              "The emulator sells pay-as-you-go (PostPaid) instances only.")
    image = _image_of(params)
    instance_type = _type_of(params)
    vsw = _vswitch_of(state, params, ctx, region)
    groups = _security_groups(state, ctx, params, vsw["vpc_id"])
    login = _login_of(state, params, ctx)
    disk = _system_disk(params, image)
    _check_names(params)
    count = _how_many(state, params, ctx, vsw["zone_id"], instance_type["InstanceTypeId"])
    private_ips = _private_addresses(state, params, ctx, vsw, count)
    if params["DryRun"]:
        raise DRY_RUN
    bought = [_buy(state, params, ctx, index, private_ip, count=count, image=image,
                   instance_type=instance_type, vsw=vsw, groups=groups, login=login, disk=disk)
              for index, private_ip in enumerate(private_ips)]
    for instance_id in bought:
        _boot_later(ctx.cloud, instance_id)
    firewall.apply_all(ctx.cloud)
    return {"InstanceIdSets": {"InstanceIdSet": bought}, "OrderId": "", "TradePrice": 0.0}


def _image_of(params: Params) -> dict[str, Any]:
    if params["ImageId"] and params["ImageFamily"]:
        raise errors.ApiError(400, "InvalidParameter.Conflict",
                              "ImageId and ImageFamily cannot be set together.")
    if params["ImageId"]:
        image = catalogue.image(params["ImageId"])
    elif params["ImageFamily"]:
        image = catalogue.latest_of_family(params["ImageFamily"])
    else:
        raise errors.missing_parameter("ImageId")
    if image is None:
        raise errors.ApiError(404, "InvalidImageId.NotFound",
                              "The specified ImageId does not exist.")
    return image


def _type_of(params: Params) -> dict[str, Any]:
    if not params["InstanceType"]:
        raise errors.missing_parameter("InstanceType")
    instance_type = catalogue.INSTANCE_TYPES.get(params["InstanceType"])
    if instance_type is None:
        raise errors.ApiError(400, "InvalidInstanceType.ValueNotSupported",
                              "The specified InstanceType beyond the permitted range.")
    return instance_type


def _vswitch_of(state: State, params: Params, ctx: RequestContext,
                region: dict[str, Any]) -> dict[str, Any]:
    if not params["VSwitchId"]:
        raise errors.missing_parameter("VSwitchId")
    vsw = network.vswitch(state, params["VSwitchId"])
    if vsw is None or vsw["region_id"] != ctx.region_id:
        raise errors.ApiError(404, "InvalidVSwitchId.NotFound",
                              "Specified virtual switch does not exist.")
    if vsw.get("status", "Available") != "Available":
        raise errors.ApiError(403, "IncorrectVSwitchStatus",
                              "The current status of virtual switch does not support this "
                              "operation.")
    if params["ZoneId"] and params["ZoneId"] != vsw["zone_id"]:
        raise errors.ApiError(400, "InvalidParameter.Mismatch",
                              "The specified ZoneId does not match the zone of the VSwitch.")
    if vsw["zone_id"] not in region["zones"]:
        raise errors.ApiError(404, "InvalidZoneId.NotFound", "The specified zone does not exist.")
    return vsw


def _login_of(state: State, params: Params, ctx: RequestContext) -> dict[str, str]:
    key_pair = None
    if params["KeyPairName"]:
        key_pair = keypairs.find(state, ctx.region_id, params["KeyPairName"])
        if key_pair is None:
            raise errors.ApiError(404, "InvalidKeyPairName.NotFound",
                                  "The specified KeyPairName does not exist.")
    if params["Password"]:
        if params["PasswordInherit"]:
            raise errors.ApiError(400, "InvalidParameter.Conflict",
                                  "Password and PasswordInherit cannot be set together.")
        _check_password(params["Password"])
    return {"public_key": key_pair["public_key"] if key_pair else "",
            "password_hash": _password_hash(params["Password"]) if params["Password"] else ""}


def _password_hash(password: str) -> str:
    """SHA-512 crypt with a random salt (what /etc/shadow holds; `chpasswd -e` sets it):
    the emulator keeps no password in clear, only what a real host would. openssl reads
    the password on stdin, never on its command line."""
    done = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password + "\n",
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _check_names(params: Params) -> None:
    if params["MinAmount"] is not None and params["MinAmount"] > params["Amount"]:
        raise errors.ApiError(400, "InvalidParameter.MinAmount",
                              "The specified MinAmount must not be greater than Amount.")
    if params["InstanceName"] and not _INSTANCE_NAME.fullmatch(params["InstanceName"]):
        raise _bad("InvalidInstanceName.Malformed", "InstanceName")
    if params["HostName"]:
        _check_hostname(_sequence(params["HostName"].replace("${instance_id}", "i-x"), 0,
                                  params["Amount"], params["UniqueSuffix"]))


def _how_many(state: State, params: Params, ctx: RequestContext, zone: str,
              type_id: str) -> int:
    """Amount, or (MinAmount given) as many as the quota leaves room for, at least
    MinAmount; otherwise the request fails whole."""
    if not catalogue.has_stock(catalogue.stock(state, zone, type_id)):
        raise NO_STOCK
    amount = params["Amount"]
    limit = catalogue.quota(state, ctx.region_id)
    room = amount if limit is None else max(0, limit - sum(
        1 for i in instances(state).values() if i["region_id"] == ctx.region_id))
    count = min(amount, room)
    if count < (params["MinAmount"] or amount):
        raise QUOTA_EXCEEDED
    return count


def _private_addresses(state: State, params: Params, ctx: RequestContext,
                       vsw: dict[str, Any], count: int) -> list[str]:
    if not params["PrivateIpAddress"]:
        taken: set[str] = set()
        for _ in range(count):
            found = _free_private(state, ctx.cloud, vsw, taken)
            if found is None:
                raise errors.ApiError(403, "InvalidVSwitchId.IpNotEnough",
                                      "The specified VSwitch has not enough IpAddress.")
            taken.add(found)
        return sorted(taken, key=ipaddress.ip_address, reverse=True)
    try:
        first = ipaddress.ip_address(params["PrivateIpAddress"])
    except ValueError:
        raise errors.invalid_parameter("PrivateIpAddress") from None
    net = ipaddress.ip_network(vsw["cidr"])
    used = network.addresses_in_use(state) | _lab_addresses(ctx.cloud)
    chosen = []
    for n in range(count):
        candidate = first + n
        reserved = candidate == net.network_address or \
            int(net.broadcast_address) - int(candidate) < 3
        if candidate not in net or reserved:
            raise errors.invalid_parameter("PrivateIpAddress")
        if str(candidate) in used:
            raise errors.ApiError(400, "InvalidPrivateIpAddress.Duplicated",
                                  "Specified private IP address is duplicated.")
        chosen.append(str(candidate))
    return chosen


def _mac(instance_id: str) -> str:
    """00:16:3e (Alibaba's OUI, what ECS ENIs carry) + 3 bytes of the instance id's hash."""
    digest = hashlib.sha256(instance_id.encode()).digest()
    return "00:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])


def _buy(state: State, params: Params, ctx: RequestContext, index: int, private_ip: str, *,
         count: int, image: dict[str, Any], instance_type: dict[str, Any],
         vsw: dict[str, Any], groups: list[str], login: dict[str, str],
         disk: dict[str, Any]) -> str:
    instance_id = ids.resource_id("i-", 20)
    public_ip = ""
    if params["InternetMaxBandwidthOut"] > 0:
        try:
            public_ip = network.allocate_public(state, owner=instance_id)
        except network.AddressExhausted:
            raise errors.ApiError(403, "InvalidParameter.PublicIpNotEnough",
                                  "No public IP address is left in the region.") from None
        state.bucket("addresses")[public_ip]["on_host"] = True
    unique = params["UniqueSuffix"]
    name = _sequence(params["InstanceName"] or "", index, count, unique) or instance_id
    hostname = (_sequence(params["HostName"], index, count, unique)
                .replace("${instance_id}", instance_id)
                if params["HostName"] else "iZ" + instance_id[2:] + "Z")
    instances(state)[instance_id] = {
        "instance_id": instance_id, "hostname": hostname, "instance_name": name,
        "private_ip": private_ip, "region_id": ctx.region_id, "zone_id": vsw["zone_id"],
        "vpc_id": vsw["vpc_id"], "vswitch_id": vsw["vswitch_id"], "status": "Pending",
        "instance_type": instance_type["InstanceTypeId"], "cpu": instance_type["CpuCoreCount"],
        "memory": int(instance_type["MemorySize"] * 1024), "created_at": ctx.clock.now(),
        "security_group_ids": list(groups), "tags": tags.from_repeat_list(params.raw),
        "eni_id": ids.resource_id("eni-", 20),
        "mac": _mac(instance_id), "bought": True, "image_id": image["ImageId"],
        "key_pair_name": params["KeyPairName"] or "", "public_ip": public_ip,
        "internet_max_bandwidth_out": params["InternetMaxBandwidthOut"],
        "internet_charge_type": params["InternetChargeType"],
        "description": params["Description"] or "", "system_disk": disk,
        "deletion_protection": params["DeletionProtection"],
        "pending_until": ctx.clock.after(PENDING_SECONDS),
        "starting_until": ctx.clock.after(PENDING_SECONDS + STARTING_SECONDS),
        "host_ready": False, "machine": None, "login": dict(login),
    }
    return instance_id


# ---- the lab side --------------------------------------------------------------------------
def _machines(cloud: Cloud) -> dict[str, Any]:
    return cloud.runtime.setdefault("ecs_machines", {})


def _boot_later(cloud: Cloud, instance_id: str) -> None:
    """Start the host in a thread (never under the lock): the handler's state is committed
    first (the thread waits for the lock), then the machine is launched."""
    if not cloud.lab_state_dir:
        return
    threading.Thread(target=_boot, args=(cloud, instance_id), daemon=True,
                     name=f"boot-{instance_id}").start()


def _spec(cloud: Cloud, instance: dict[str, Any]) -> Any:
    from sandbox.lab import machines  # noqa: PLC0415 - only with a lab

    vsw = network.vswitch(cloud.state, instance["vswitch_id"]) or {}
    prefix = ipaddress.ip_network(vsw.get("cidr", instance["private_ip"] + "/32")).prefixlen
    lab = machines.load_lab(str(cloud.lab_state_dir))
    lab_net = ipaddress.ip_network(lab.subnet)
    addresses = [f"{instance['private_ip']}/{prefix}"]
    if instance.get("public_ip"):
        addresses.append(f"{instance['public_ip']}/{lab_net.prefixlen}")
    image = catalogue.image(instance["image_id"]) or {}
    return machines.MachineSpec(
        key=instance["instance_id"], hostname=instance["hostname"], addresses=addresses,
        os_release=image.get("os_release", ""),
        root_public_key=instance["login"]["public_key"],
        root_password_hash=instance["login"].get("password_hash", ""), mac=instance["mac"])


# Whose host may boot: one being bought or started, or a Running one whose host died while
# the emulator was away (bring_back).
_BOOTABLE = ("Pending", "Starting", "Running")


def _boot(cloud: Cloud, instance_id: str) -> None:
    """Launch the host, load its firewall, wait for SSH. Nothing is launched for an
    instance that is not (or no longer: a failed call rolled back) Pending, Starting or
    Running (a host that died while the emulator was away), or
    that has a host already. A failed boot leaves nothing behind (namespace, veth, init
    powered off) and the instance Stopped: of the documented states (Pending, Starting,
    Running, Stopping, Stopped) the only one from which it can be started again or
    released; `boot_error` keeps why (DescribeInstances does not show it)."""
    from sandbox.lab import machines  # noqa: PLC0415 - only with a lab

    machine = None
    try:
        halting = cloud.runtime.get("ecs_halts", {}).get(instance_id)
        if halting is not None:  # a Start right after a Stop: the old host goes first
            halting.join(timeout=60)
        with cloud.lock:
            instance = instances(cloud.state).get(instance_id)
            if instance is None or instance["status"] not in _BOOTABLE \
                    or instance_id in _machines(cloud):
                return
            spec = _spec(cloud, instance)
            private_ip = instance["private_ip"]
            _machines(cloud)[instance_id] = None  # booting: no second boot meanwhile
        machine = machines.launch(str(cloud.lab_state_dir), spec)
        _route_to_lab(machine, private_ip, cloud)
        with cloud.lock:  # the firewall first: no moment with an open host
            current = instances(cloud.state).get(instance_id)
            if current is None:  # deleted meanwhile (Force): nothing of it stays
                _machines(cloud).pop(instance_id, None)
                machines.destroy(machine)
                return
            _machines(cloud)[instance_id] = machine
            current["machine"] = _machine_record(machine)
            firewall.apply_one(cloud, current)
            cloud.state.save()
        machine.init_pid = machines.wait_ready(str(cloud.lab_state_dir), machine, private_ip,
                                               timeout=cloud.runtime.get(
                                                   "ecs_ready_timeout",
                                                   machines.ready_timeout()))
        with cloud.lock:
            current = instances(cloud.state).get(instance_id)
            if current is None or _machines(cloud).get(instance_id) is not machine:
                return  # deleted (or stopped) while booting: its halt removes the host
            current["machine"] = _machine_record(machine)
            current["host_ready"] = True
            current.pop("boot_error", None)
            cloud.state.save()
    except Exception:
        traceback.print_exc(file=sys.stderr)
        if machine is not None:
            machines.power_off(machine)
        with cloud.lock:
            if _machines(cloud).get(instance_id, machine) is machine:
                _machines(cloud).pop(instance_id, None)
            current = instances(cloud.state).get(instance_id)
            if current is not None and current["status"] in _BOOTABLE:
                current["boot_error"] = traceback.format_exc(limit=3)
                current["status"] = "Stopped"
                current["machine"] = None
                current["host_ready"] = False
                cloud.state.save()


def _route_to_lab(machine: Any, private_ip: str, cloud: Cloud) -> None:
    """A host whose private address is outside the lab's subnet (a vSwitch the panel
    created) still reaches the cloud namespace (DNS, RDS, SLB): a device route to the lab
    subnet from its private address, inside its own namespace only."""
    from sandbox.lab import machines  # noqa: PLC0415 - only with a lab
    from sandbox.lab import network as lab_network  # noqa: PLC0415 - only with a lab

    lab = machines.load_lab(str(cloud.lab_state_dir))
    if ipaddress.ip_address(private_ip) in ipaddress.ip_network(lab.subnet):
        return
    lab_network.ip("-n", machine.netns, "route", "replace", lab.subnet, "dev", "eth0",
                   "src", private_ip, check=False)


def _machine_record(machine: Any) -> dict[str, Any]:
    return {"index": machine.index, "netns": machine.netns, "veth": machine.veth,
            "host_dir": machine.host_dir, "init_pid": machine.init_pid}


def _halt_later(cloud: Cloud, instance: dict[str, Any], *, destroy: bool) -> None:
    """Power the instance's host off (and, with `destroy`, delete its disk) in a thread.
    Only a live host is touched: a Stopped instance's old namespace name may belong to
    another host by now, so what is left of it is its disk, found by the instance id."""
    if not cloud.lab_state_dir:
        return
    from sandbox.lab import machines, processes  # noqa: PLC0415 - only with a lab

    machine = _machines(cloud).pop(instance["instance_id"], None)
    record = instance.get("machine")
    if machine is None and record and record.get("init_pid") \
            and processes.is_alive(record["init_pid"]):
        machine = machines.Machine(**record)  # a host from before an emulator restart
    instance["machine"] = None
    instance["host_ready"] = False
    state_dir, key = str(cloud.lab_state_dir), instance["instance_id"]

    def halt() -> None:
        if machine is not None:
            machines.power_off(machine)
        if destroy:
            machines.remove_disk(state_dir, key)

    thread = threading.Thread(target=halt, daemon=True, name=f"halt-{key}")
    cloud.runtime.setdefault("ecs_halts", {})[key] = thread
    thread.start()


# ---- status transitions --------------------------------------------------------------------
@ECS.ticker
def advance(cloud: Cloud) -> None:
    clock = cloud.clock
    for instance in list(instances(cloud.state).values()):
        if not instance.get("bought"):
            continue
        status = instance["status"]
        if status == "Pending" and clock.is_due(instance["pending_until"]):
            instance["status"] = "Starting"
        elif status == "Starting" and clock.is_due(instance["starting_until"]) and (
                instance["host_ready"] or not cloud.lab_state_dir):
            instance["status"] = "Running"
            instance["started_at"] = clock.now()
        elif status == "Stopping" and clock.is_due(instance.get("stopping_until")):
            instance["status"] = "Stopped"
            _halt_later(cloud, instance, destroy=False)
    released = [i for i in instances(cloud.state).values()
                if clock.is_due(i.get("releasing_until"))]
    for instance in released:
        _forget(cloud.state, instance, clock.now())
    if released:
        firewall.apply_all(cloud)  # SourceGroupId rules name the members' addresses


@ECS.on_start
def bring_back(cloud: Cloud) -> None:
    """After an emulator restart: hosts kept running (the API going away does not power
    instances off); a host that died meanwhile is booted again."""
    if not cloud.lab_state_dir:
        return
    from sandbox.lab import processes  # noqa: PLC0415 - only with a lab

    for instance in instances(cloud.state).values():
        if not instance.get("bought") or instance["status"] in ("Stopped", "Stopping"):
            continue
        machine = instance.get("machine")
        if machine and machine.get("init_pid") and processes.is_alive(machine["init_pid"]):
            continue
        if machine:  # what is left of a host that died: its namespace and veth
            from sandbox.lab import machines  # noqa: PLC0415 - only with a lab

            machines.power_off(machines.Machine(**machine))
        instance["machine"] = None
        instance["host_ready"] = False
        _boot_later(cloud, instance["instance_id"])


@ECS.on_reset
def remove_all(cloud: Cloud) -> None:
    for instance in instances(cloud.state).values():
        if instance.get("bought"):
            _halt_later(cloud, instance, destroy=True)


@control_route("POST", "ecs/ready-timeout")
def set_ready_timeout(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """`{seconds}`: how long a booting host may take to answer SSH before its start fails
    (null: machines.ready_timeout(), scaled by the load). A fault tests use to see a
    failed start end in Stopped with nothing left running."""
    seconds = body.get("seconds")
    if seconds is not None and (not isinstance(seconds, int | float) or seconds < 0):
        raise ControlError(400, "seconds must be a number >= 0, or null")
    with cloud.lock:
        if seconds is None:
            cloud.runtime.pop("ecs_ready_timeout", None)
        else:
            cloud.runtime["ecs_ready_timeout"] = float(seconds)
    return 200, {"seconds": seconds}


# ---- Start / Stop / Delete -----------------------------------------------------------------
def _instance(state: State, ctx: RequestContext, instance_id: str) -> dict[str, Any]:
    found = instances(state).get(instance_id)
    if found is None or found["region_id"] != ctx.region_id:
        raise NOT_FOUND
    return found


def _check_stop(instance: dict[str, Any]) -> None:
    if instance["status"] != "Running" or instance.get("releasing_until"):
        raise INCORRECT_STATUS


def _check_start(instance: dict[str, Any]) -> None:
    if instance["status"] != "Stopped" or instance.get("releasing_until"):
        raise INCORRECT_STATUS


def _stop(ctx: RequestContext, instance: dict[str, Any]) -> None:
    _check_stop(instance)
    instance["status"] = "Stopping"
    instance["stopping_until"] = ctx.clock.after(STOPPING_SECONDS)


def _start(ctx: RequestContext, instance: dict[str, Any]) -> None:
    """Starting; the host boots once the whole call has succeeded (`_boot_started`)."""
    _check_start(instance)
    instance["status"] = "Starting"
    instance["starting_until"] = ctx.clock.after(STARTING_SECONDS)
    instance["host_ready"] = False


def _boot_started(ctx: RequestContext, started: list[dict[str, Any]]) -> None:
    for instance in started:
        if instance.get("bought") and instance["status"] == "Starting":
            _boot_later(ctx.cloud, instance["instance_id"])


def _delete(state: State, ctx: RequestContext, instance: dict[str, Any], force: bool) -> None:
    if instance.get("releasing_until"):
        return  # being released already: asked again, nothing changes (chosen)
    status = instance["status"]
    if status in ("Pending", "Starting", "Stopping") or (status == "Running" and not force):
        raise INCORRECT_STATUS
    if instance.get("deletion_protection"):
        raise errors.ApiError(403, "InvalidOperation.DeletionProtection",
                              "The instance is protected from release.")


def _release(state: State, ctx: RequestContext, instance: dict[str, Any]) -> None:
    """The host powers off now; the instance stays listed for RELEASE_SECONDS (scaled),
    Stopping if it was Running, else Stopped (chosen: DescribeInstances documents no
    releasing status), still in its security groups (DeleteSecurityGroup answers
    DependencyViolation) and holding its addresses (DeleteVSwitch too), then is gone."""
    if instance.get("releasing_until"):
        return
    _halt_later(ctx.cloud, instance, destroy=True)
    if instance["status"] == "Running":
        instance["status"] = "Stopping"
    instance["stopping_until"] = None
    instance["releasing_until"] = ctx.clock.after(RELEASE_SECONDS)


def _forget(state: State, instance: dict[str, Any], now: float) -> None:
    """The release completes: the addresses are free and the instance is not listed."""
    if instance.get("public_ip"):
        network.release(state, instance["public_ip"])
    state.table("ecs", "released_addresses")[instance["private_ip"]] = now
    del instances(state)[instance["instance_id"]]


def _batch(params: Params) -> list[str]:
    found = params.repeat_list("InstanceId")
    if not found:
        raise errors.missing_parameter("InstanceId")
    if len(found) > 100:
        raise errors.invalid_parameter("InstanceId")
    return found


@ECS.action("StopInstance", (
    Param("InstanceId", required=True), Param("ForceStop", "boolean"),
    Param("StoppedMode", enum=("KeepCharging", "StopCharging")), Param("DryRun", "boolean"),
    Param("ConfirmStop", "boolean"), Param("Hibernate", "boolean"),
))
def stop_instance(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    found = instances(state).get(params["InstanceId"])
    if found is None:
        raise NOT_FOUND
    _check_stop(found)  # DryRun checks the business limitations too (the status)
    if params["DryRun"]:
        raise DRY_RUN
    _stop(ctx, found)
    return {}


@ECS.action("StartInstance", (
    Param("InstanceId", required=True), Param("DryRun", "boolean"),
    Param("InitLocalDisk", "boolean"),
))
def start_instance(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    found = instances(state).get(params["InstanceId"])
    if found is None:
        raise NOT_FOUND
    _check_start(found)  # DryRun checks the business limitations too (the status)
    if params["DryRun"]:
        raise DRY_RUN
    _start(ctx, found)
    _boot_started(ctx, [found])
    return {}


def _batch_answer(ctx: RequestContext, params: Params, check: Any, act: Any) -> dict[str, Any]:
    """StopInstances/StartInstances: with BatchOptimization=SuccessFirst each one gets its
    own Code; otherwise (AllTogether, the documented default) every instance is checked
    before any changes, so one failure changes nothing. Hosts boot only after the whole
    call has succeeded (a failed call rolls the state back: no host for a Stopped one)."""
    ctx.require_region()
    wanted_ids = _batch(params)
    if len(set(wanted_ids)) != len(wanted_ids):
        raise errors.invalid_parameter("InstanceId")  # one instance twice in one call
    chosen = [instances(ctx.cloud.state).get(i) for i in wanted_ids]
    success_first = params["BatchOptimization"] == "SuccessFirst"
    if not success_first:
        if any(c is None or c["region_id"] != ctx.region_id for c in chosen):
            raise NOT_FOUND
        for instance in chosen:
            check(instance)
    if params["DryRun"]:
        raise DRY_RUN
    answers, changed = [], []
    for wanted, instance in zip(wanted_ids, chosen, strict=True):
        if instance is None or instance["region_id"] != ctx.region_id:
            answers.append({"InstanceId": wanted, "Code": "InvalidInstanceId.NotFound",
                            "Message": NOT_FOUND.message, "PreviousStatus": "",
                            "CurrentStatus": ""})
            continue
        before = instance["status"]
        try:
            act(ctx, instance)
        except errors.ApiError as error:
            answers.append({"InstanceId": wanted, "Code": error.code, "Message": error.message,
                            "PreviousStatus": before, "CurrentStatus": before})
            continue
        changed.append(instance)
        answers.append({"InstanceId": wanted, "Code": "200", "Message": "success",
                        "PreviousStatus": before, "CurrentStatus": instance["status"]})
    _boot_started(ctx, changed)
    return {"InstanceResponses": {"InstanceResponse": answers}}


@ECS.action("StopInstances", (
    Param("RegionId", required=True), Param("ForceStop", "boolean"),
    Param("StoppedMode", enum=("KeepCharging", "StopCharging")), Param("DryRun", "boolean"),
    Param("BatchOptimization", enum=("SuccessFirst", "AllTogether")),
))
def stop_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    return _batch_answer(ctx, params, _check_stop, _stop)


@ECS.action("StartInstances", (
    Param("RegionId", required=True), Param("DryRun", "boolean"),
    Param("BatchOptimization", enum=("SuccessFirst", "AllTogether")),
))
def start_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    return _batch_answer(ctx, params, _check_start, _start)


@ECS.action("DeleteInstance", (
    Param("InstanceId", required=True), Param("Force", "boolean", default=False),
    Param("ForceStop", "boolean"), Param("DryRun", "boolean"),
    Param("TerminateSubscription", "boolean"),
))
def delete_instance(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    found = instances(state).get(params["InstanceId"])
    if found is None:
        raise NOT_FOUND
    _delete(state, ctx, found, params["Force"])
    if params["DryRun"]:
        raise DRY_RUN
    _release(state, ctx, found)
    firewall.apply_all(ctx.cloud)
    return {}


@ECS.action("DeleteInstances", (
    Param("RegionId", required=True), Param("Force", "boolean", default=False),
    Param("ForceStop", "boolean"), Param("DryRun", "boolean"),
    Param("TerminateSubscription", "boolean"), Param("ClientToken", max_length=64),
), client_token=ClientTokenPolicy(IDEMPOTENCE_MISMATCH))
def delete_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """All or nothing: every instance must exist and be releasable."""
    ctx.require_region()
    chosen = [_instance(state, ctx, i) for i in _batch(params)]
    for instance in chosen:
        _delete(state, ctx, instance, params["Force"])
    if params["DryRun"]:
        raise DRY_RUN
    for instance in chosen:
        _release(state, ctx, instance)
    firewall.apply_all(ctx.cloud)
    return {}


@ECS.action("DescribeInstanceStatus", (
    Param("RegionId", required=True), Param("ZoneId"), Param("ClusterId"),
    *page_params(10, 50),
))
def describe_instance_status(state: State, params: Params,
                             ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    wanted = params.repeat_list("InstanceId")
    found = [
        i for i in sorted(instances(state).values(), key=lambda i: i["created_at"])
        if i["region_id"] == ctx.region_id
        and (not wanted or i["instance_id"] in wanted)
        and (not params["ZoneId"] or i["zone_id"] == params["ZoneId"])
    ]
    chosen = page(found, params["PageNumber"], params["PageSize"])
    return {"TotalCount": len(found), "PageNumber": params["PageNumber"],
            "PageSize": params["PageSize"], "InstanceStatuses": {"InstanceStatus": [
                {"InstanceId": i["instance_id"], "Status": i["status"]} for i in chosen]}}


# ---- membership ----------------------------------------------------------------------------
@ECS.action("JoinSecurityGroup", (
    Param("SecurityGroupId", required=True), Param("InstanceId"),
    Param("NetworkInterfaceId"),
))
def join_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Codes from JoinSecurityGroup's error table (help.aliyun.com/zh/ecs/api-joinsecuritygroup,
    the English page api-ecs-2014-05-26-joinsecuritygroup): the instance must be Stopped or
    Running (403 IncorrectInstanceStatus), in the group's VPC (400
    InvalidInstanceId.Mismatch), not in it already (403 InvalidInstanceId.AlreadyExists),
    with groups of one type (400 InvalidOperation.MultiGroupType), in at most five groups
    (400 InstanceSecurityGroupLimitExceeded)."""
    instance = instances(state).get(params["InstanceId"] or "")
    if instance is None:
        raise NOT_FOUND
    group = security_groups(state).get(params["SecurityGroupId"])
    if group is None or group["region_id"] != instance["region_id"]:
        raise SECURITY_GROUP_NOT_FOUND
    _check_membership_change(instance)
    if group["vpc_id"] != instance["vpc_id"]:
        raise errors.ApiError(400, "InvalidInstanceId.Mismatch",
                              "Specified instance and security group are not in the same VPC.")
    if params["SecurityGroupId"] in instance["security_group_ids"]:
        raise errors.ApiError(403, "InvalidInstanceId.AlreadyExists",
                              "The specified instance already exists in the specified "
                              "security group.")
    kinds = {(security_groups(state).get(g) or {}).get("type", "normal")
             for g in instance["security_group_ids"]}
    if kinds and kinds != {group.get("type", "normal")}:
        raise errors.ApiError(400, "InvalidOperation.MultiGroupType",
                              "The specified instance can't join different types of security "
                              "group.")
    if len(instance["security_group_ids"]) >= 5:
        raise errors.ApiError(400, "InstanceSecurityGroupLimitExceeded",
                              "Exceeding the allowed amount of security groups that an "
                              "instance can be in.")
    instance["security_group_ids"].append(params["SecurityGroupId"])
    firewall.apply_all(ctx.cloud)
    return {}


def _check_membership_change(instance: dict[str, Any]) -> None:
    """Join/LeaveSecurityGroup: "the instance must be in the Stopped or Running state"
    (both pages); one being released is in neither any more."""
    if instance["status"] not in ("Running", "Stopped") or instance.get("releasing_until"):
        raise INCORRECT_STATUS


@ECS.action("LeaveSecurityGroup", (
    Param("SecurityGroupId", required=True), Param("InstanceId"),
    Param("NetworkInterfaceId"),
))
def leave_security_group(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """Since July 8, 2024 leaving a group the instance is not in is an error, 400
    InvalidSecurityGroupAssociation.NotFound, not a success; its last group is 403
    InstanceLastSecurityGroup (LeaveSecurityGroup's page and error table,
    alibabacloud.com/help/en/ecs/developer-reference/api-ecs-2014-05-26-leavesecuritygroup)."""
    instance = instances(state).get(params["InstanceId"] or "")
    if instance is None:
        raise NOT_FOUND
    group = security_groups(state).get(params["SecurityGroupId"])
    if group is None or group["region_id"] != instance["region_id"]:
        raise SECURITY_GROUP_NOT_FOUND
    _check_membership_change(instance)
    if params["SecurityGroupId"] not in instance["security_group_ids"]:
        raise errors.ApiError(400, "InvalidSecurityGroupAssociation.NotFound",
                              "The specified ECS or ENI is not associated with the specified "
                              "security group.")
    if len(instance["security_group_ids"]) == 1:
        raise errors.ApiError(403, "InstanceLastSecurityGroup",
                              "The specified security group is the last security group for "
                              "the instance.")
    instance["security_group_ids"].remove(params["SecurityGroupId"])
    firewall.apply_all(ctx.cloud)
    return {}
