"""Small typed views of what the Alibaba Cloud APIs return, for the provisioning steps.

Why: steps should read `rds.status`, not `body["Items"]["DBInstanceAttribute"][0]
["DBInstanceStatus"]`; the JSON wrapping (`Items.X[]`, string-typed ports) stays here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def items(body: dict[str, Any], outer: str, inner: str) -> list[Any]:
    """`body[outer][inner]` as a list, tolerating the absent/empty wrappers Aliyun returns.

    The entries are objects (dicts) or plain values (IpAddress lists hold strings)."""
    wrapper = body.get(outer) or {}
    value = wrapper.get(inner) if isinstance(wrapper, dict) else None
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def tags_of(entry: dict[str, Any]) -> dict[str, str]:
    """`Tags.Tag[]` with TagKey/TagValue or Key/Value → a dict."""
    result = {}
    for tag in items(entry, "Tags", "Tag"):
        key = tag.get("TagKey", tag.get("Key"))
        if key:
            result[str(key)] = str(tag.get("TagValue", tag.get("Value", "")))
    return result


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class Region:
    region_id: str
    local_name: str = ""


@dataclass(frozen=True)
class Zone:
    zone_id: str
    local_name: str = ""


@dataclass(frozen=True)
class Vpc:
    vpc_id: str
    cidr: str
    name: str = ""
    status: str = ""


@dataclass(frozen=True)
class VSwitch:
    vswitch_id: str
    vpc_id: str
    zone_id: str
    cidr: str
    name: str = ""
    status: str = ""
    available_ips: int = 0


@dataclass(frozen=True)
class Instance:
    """An ECS instance: found by the private IP a person typed in the wizard, or listed on the
    hosts page for them to pick (name, OS, tags: what tells one host from another)."""

    instance_id: str
    hostname: str
    status: str
    private_ips: tuple[str, ...]
    vpc_id: str = ""
    vswitch_id: str = ""
    zone_id: str = ""
    name: str = ""
    os_name: str = ""
    instance_type: str = ""
    cpu: int = 0
    memory_mib: int = 0
    tags: tuple[tuple[str, str], ...] = ()
    security_group_ids: tuple[str, ...] = ()
    # The Internet address: RunInstances with InternetMaxBandwidthOut > 0 assigns one
    # (PublicIpAddress.IpAddress of DescribeInstances), or an EIP bound later (EipAddress).
    public_ip: str = ""

    @property
    def private_ip(self) -> str:
        """The primary private address (the one SSH and K3s use); "" when it has none."""
        return self.private_ips[0] if self.private_ips else ""

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> Instance:
        vpc = entry.get("VpcAttributes") or {}
        ips = list(items(vpc, "PrivateIpAddress", "IpAddress"))
        for nic in items(entry, "NetworkInterfaces", "NetworkInterface"):
            for ip in [nic.get("PrimaryIpAddress")] + [
                    s.get("PrivateIpAddress") for s in items(nic, "PrivateIpSets", "PrivateIpSet")]:
                if ip and ip not in ips:
                    ips.append(ip)
        return cls(entry["InstanceId"], entry.get("HostName", ""), entry.get("Status", ""),
                   tuple(ips), vpc.get("VpcId", ""), vpc.get("VSwitchId", ""),
                   entry.get("ZoneId", ""), name=str(entry.get("InstanceName") or ""),
                   # OSName is localised by Alibaba ("Ubuntu  22.04 64位"); OSNameEn when given.
                   os_name=" ".join(str(entry.get("OSNameEn") or entry.get("OSName")
                                        or "").split()),
                   instance_type=str(entry.get("InstanceType") or ""),
                   cpu=_int(entry.get("Cpu")), memory_mib=_int(entry.get("Memory")),
                   tags=tuple(sorted(tags_of(entry).items())),
                   security_group_ids=tuple(str(g) for g in items(
                       entry, "SecurityGroupIds", "SecurityGroupId")),
                   public_ip=_public_ip(entry))


def _public_ip(entry: dict[str, Any]) -> str:
    """DescribeInstances' public address: the one RunInstances assigned, else a bound EIP."""
    assigned = [str(a) for a in items(entry, "PublicIpAddress", "IpAddress") if a]
    if assigned:
        return assigned[0]
    eip = entry.get("EipAddress") or {}
    return str(eip.get("IpAddress") or "") if isinstance(eip, dict) else ""


@dataclass(frozen=True)
class RdsSpec:
    """What the panel asks RDS for (CreateDBInstance)."""

    engine_version: str
    instance_class: str
    storage_gb: int
    vpc_id: str
    vswitch_id: str
    zone_id: str
    security_ips: tuple[str, ...] = ("127.0.0.1",)
    storage_type: str | None = None
    category: str | None = None
    zone_id_slave: str | None = None
    description: str | None = None
    pay_type: str = "Postpaid"
    engine: str = "MySQL"  # CreateDBInstance Engine: MySQL | PostgreSQL


@dataclass(frozen=True)
class RdsCreated:
    instance_id: str
    connection_string: str
    port: int
    order_id: str = ""


@dataclass(frozen=True)
class RdsInstance:
    instance_id: str
    status: str
    engine_version: str = ""
    instance_class: str = ""
    connection_string: str = ""
    port: int = 3306
    vpc_id: str = ""
    vswitch_id: str = ""
    zone_id: str = ""
    pay_type: str = ""
    lock_mode: str = ""
    description: str = ""
    security_ips: tuple[str, ...] = ()
    storage_type: str = ""  # DBInstanceStorageType: local_ssd, cloud_essd, ...
    storage_gb: int = 0  # DBInstanceStorage

    @property
    def running(self) -> bool:
        return self.status == "Running"

    @classmethod
    def from_api(cls, entry: dict[str, Any], *, listing: bool = False) -> RdsInstance:
        """A DescribeDBInstanceAttribute item, or (`listing`) a DescribeDBInstances one.

        A listing entry has no Port, SecurityIPList or DBInstanceStorage, and neither answer
        carries tags (Alibaba's V2 models, checked by tests/conformance): they are not read
        there, so a default can never pass for a value the cloud gave.
        """
        ips = "" if listing else entry.get("SecurityIPList") or ""
        return cls(
            instance_id=entry["DBInstanceId"], status=entry.get("DBInstanceStatus", ""),
            engine_version=str(entry.get("EngineVersion", "")),
            instance_class=entry.get("DBInstanceClass", ""),
            connection_string=entry.get("ConnectionString", ""),
            port=3306 if listing else _int(entry.get("Port"), 3306),
            vpc_id=entry.get("VpcId", ""),
            vswitch_id=entry.get("VSwitchId", ""), zone_id=entry.get("ZoneId", ""),
            pay_type=entry.get("PayType", ""), lock_mode=entry.get("LockMode", ""),
            description=entry.get("DBInstanceDescription", ""),
            security_ips=tuple(ip for ip in ips.split(",") if ip),
            storage_type=entry.get("DBInstanceStorageType", ""),
            storage_gb=0 if listing else _int(entry.get("DBInstanceStorage")))


@dataclass(frozen=True)
class RdsClassOffer:
    """One DescribeAvailableClasses item: a class a zone sells and its storage range (GB)."""

    instance_class: str
    storage_min: int
    storage_max: int
    storage_step: int

    def storage_problem(self, storage_gb: int) -> str | None:
        """"range" or "step" when `storage_gb` cannot be bought with this class, else None."""
        if not self.storage_min <= storage_gb <= self.storage_max:
            return "range"
        if self.storage_step > 1 and (storage_gb - self.storage_min) % self.storage_step:
            return "step"
        return None

    @classmethod
    def from_api(cls, entry: dict[str, Any]) -> RdsClassOffer:
        storage = entry.get("DBInstanceStorageRange") or {}
        return cls(entry.get("DBInstanceClass", ""), _int(storage.get("MinValue")),
                   _int(storage.get("MaxValue")), _int(storage.get("Step"), 1) or 1)


@dataclass(frozen=True)
class RdsZoneOffer:
    """One DescribeAvailableZones item: what a zone sells, as {version: {category: types}}."""

    zone_id: str
    versions: dict[str, dict[str, tuple[str, ...]]]

    def sells(self, version: str, category: str, storage_type: str) -> bool:
        return storage_type in self.versions.get(version, {}).get(category, ())

    @classmethod
    def from_api(cls, entry: dict[str, Any], engine_name: str = "MySQL") -> RdsZoneOffer:
        versions: dict[str, dict[str, tuple[str, ...]]] = {}
        for engine in entry.get("SupportedEngines") or []:
            if str(engine.get("Engine", "")).lower() != engine_name.lower():
                continue
            for version in engine.get("SupportedEngineVersions") or []:
                categories = versions.setdefault(str(version.get("Version", "")), {})
                for category in version.get("SupportedCategorys") or []:
                    categories[str(category.get("Category", ""))] = tuple(
                        str(t.get("StorageType", ""))
                        for t in category.get("SupportedStorageTypes") or [])
        return cls(entry.get("ZoneId", ""), versions)


@dataclass(frozen=True)
class NetInfo:
    connection_string: str
    ip_address: str
    port: int
    ip_type: str
    vpc_id: str = ""
    vswitch_id: str = ""


@dataclass(frozen=True)
class RdsSsl:
    """DescribeDBInstanceSSL, for MySQL: SSLEnabled Yes/No, the one protected address."""

    enabled: bool
    connection_string: str = ""
    expire_time: str = ""
    force_encryption: bool = False
    require_update: bool = False


@dataclass(frozen=True)
class Account:
    name: str
    status: str
    privileges: dict[str, str] = field(default_factory=dict)  # database → privilege

    @property
    def available(self) -> bool:
        return self.status == "Available"


@dataclass(frozen=True)
class Database:
    name: str
    status: str
    charset: str = ""
    accounts: dict[str, str] = field(default_factory=dict)  # account → privilege

    @property
    def running(self) -> bool:
        return self.status == "Running"


@dataclass(frozen=True)
class Parameters:
    """RunningParameters (in effect) and ConfigParameters (modified, being applied)."""

    engine_version: str
    running: dict[str, str]
    pending: dict[str, str]

    def value(self, name: str) -> str | None:
        return self.pending.get(name, self.running.get(name))


@dataclass(frozen=True)
class ParameterTemplate:
    """One modifiable parameter of an engine version (DescribeParameterTemplates)."""

    name: str
    default: str
    force_restart: bool  # changing it restarts the instance
    checking_code: str = ""  # allowed values, e.g. "[ON|OFF]"


@dataclass(frozen=True)
class Backup:
    backup_id: str
    status: str
    started: str = ""
    finished: str = ""
    method: str = ""
    size: int = 0


# CLB instance charge types (CreateLoadBalancer `InstanceChargeType`). Pay-by-specification
# can no longer be bought since 2025-06-01 00:00 UTC+8 (CreateLoadBalancer API reference, slb
# 2014-05-15, and help doc-detail/127268; the China site gives 2026-01-01); instances bought
# before keep working. The V2 SDK docstrings still call PayBySpec the default: stale.
PAY_BY_LCU = "PayByCLCU"
PAY_BY_SPEC = "PayBySpec"
# What DescribeLoadBalancerAttribute reports as LoadBalancerSpec for a pay-by-LCU instance
# (alibabacloud-slb20140515 response model: "slb.lcu.elastic is returned by default").
LCU_SPEC = "slb.lcu.elastic"


@dataclass(frozen=True)
class SlbSpec:
    """What the panel asks SLB for (CreateLoadBalancer): a pay-as-you-go, pay-by-LCU CLB.

    No specification: an LCU instance takes none. An Internet-facing LCU instance can only
    bill data transfer by traffic (InternetChargeType=paybytraffic, per the same API doc).
    """

    name: str
    vswitch_id: str
    vpc_id: str | None = None
    address_type: str = "intranet"
    master_zone_id: str | None = None
    slave_zone_id: str | None = None


@dataclass(frozen=True)
class SlbCreated:
    load_balancer_id: str
    address: str
    name: str = ""


@dataclass(frozen=True)
class BackendServer:
    server_id: str
    weight: int = 100
    server_ip: str = ""


@dataclass(frozen=True)
class LoadBalancer:
    load_balancer_id: str
    status: str
    address: str
    name: str = ""
    address_type: str = ""
    vpc_id: str = ""
    vswitch_id: str = ""
    spec: str = ""
    instance_charge_type: str = ""
    listener_ports: tuple[int, ...] = ()
    backend_servers: tuple[BackendServer, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_api(cls, entry: dict[str, Any], *, listing: bool = False) -> LoadBalancer:
        """A DescribeLoadBalancerAttribute answer, or (`listing`) a DescribeLoadBalancers entry,
        which has no ListenerPorts/BackendServers (V2 model; checked by tests/conformance)."""
        if listing:
            return cls(
                load_balancer_id=entry["LoadBalancerId"],
                status=entry.get("LoadBalancerStatus", ""), address=entry.get("Address", ""),
                name=entry.get("LoadBalancerName", ""),
                address_type=entry.get("AddressType", ""), vpc_id=entry.get("VpcId", ""),
                vswitch_id=entry.get("VSwitchId", ""), spec=entry.get("LoadBalancerSpec", ""),
                tags=tags_of(entry))
        return cls(
            load_balancer_id=entry["LoadBalancerId"], status=entry.get("LoadBalancerStatus", ""),
            address=entry.get("Address", ""), name=entry.get("LoadBalancerName", ""),
            address_type=entry.get("AddressType", ""), vpc_id=entry.get("VpcId", ""),
            vswitch_id=entry.get("VSwitchId", ""), spec=entry.get("LoadBalancerSpec", ""),
            instance_charge_type=entry.get("InstanceChargeType", ""),
            listener_ports=tuple(_int(p) for p in items(entry, "ListenerPorts", "ListenerPort")),
            backend_servers=tuple(
                BackendServer(b["ServerId"], _int(b.get("Weight"), 100), b.get("ServerIp", ""))
                for b in items(entry, "BackendServers", "BackendServer")),
            tags=tags_of(entry))


@dataclass(frozen=True)
class AccessControlList:
    """A CLB ACL: its IP entries (CIDR blocks) and the (load balancer, port) it guards."""

    acl_id: str
    name: str
    entries: tuple[str, ...]
    listeners: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class TcpListener:
    port: int
    backend_port: int
    status: str
    health_check: str = "on"
    acl_status: str = "off"
    acl_type: str = ""
    acl_id: str = ""

    @property
    def running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class BackendHealth:
    server_id: str
    server_ip: str
    port: int
    listener_port: int
    status: str  # normal / abnormal / unavailable

    @property
    def healthy(self) -> bool:
        return self.status == "normal"


@dataclass(frozen=True)
class HourlyPrice:
    """A pay-as-you-go price quote: what one hour costs, before and after discounts."""

    amount: float  # what will be charged per hour (after discounts)
    currency: str
    original: float | None = None
    request_id: str = ""


@dataclass(frozen=True)
class PriceModule:
    """One pricing module of a BSS GetPayAsYouGoPrice request (ModuleList.N.*)."""

    code: str
    config: str
    price_type: str = "Hour"


@dataclass(frozen=True)
class ResourceUsage:
    """RDS DescribeResourceUsage (bytes; -1 = "no data" per the API reference)."""

    disk_used: int   # DataSize + LogSize
    data_size: int
    log_size: int
    backup_size: int

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> ResourceUsage:
        def number(name: str) -> int:
            value = body.get(name)
            return int(value) if value not in (None, "") else -1

        return cls(number("DiskUsed"), number("DataSize"), number("LogSize"),
                   number("BackupSize"))


