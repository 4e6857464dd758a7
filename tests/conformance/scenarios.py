"""One scenario per Alibaba Cloud action the adapter calls: adapter methods, valid input.

A scenario drives the real adapter (`world.cloud`, an `AliyunCloud` whose client records
what it reads) against the loopback emulator so that its action is called at least once and
succeeds. The suite then checks every call of *that* action the scenario made (calls of other
actions made on the way are checked by their own scenarios).

Adding a scenario for a new action (e.g. Rds DescribeAvailableZones, BssOpenApi
GetPayAsYouGoPrice) is a few lines here:

    @scenario("Rds", "DescribeAvailableZones")
    def _(world: World) -> None:
        world.cloud.describe_available_zones(world.zone_id, engine_version="8.0")

- the key is the SDK's product code and the action name, as `request.get_product()` /
  `get_action_name()` (or the CommonRequest's `product`/`action_name`) give them;
- stack several `@scenario(...)` on one function when one flow covers several actions;
- `world.rds()` / `world.slb()` give a shared, ready instance (built once per module);
  `world.new_slb()` a fresh load balancer; `world.host_ip(n)` an address of the vSwitch;
- `xfail="why"` marks a known mismatch (strict: the test fails once it is fixed);
- the V2 package of a new product must be installed (requirements-dev.txt): its import name
  is derived from product and version (`alibabacloud_bssopenapi20171214`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clusters.adapters.aliyun import AliyunCloud, IngressRule, RdsSpec, SlbSpec
from clusters.adapters.aliyun.models import RdsSsl
from clusters.adapters.pricing import SLB_INSTANCE_FEE, SLB_PRODUCT_CODE, SLB_TRAFFIC_OUT
from clusters.core.errors import StepError, TransientError
from sandbox.aliyun.testing import Emulator
from tests.conformance.recording import RecordingClient

T = TypeVar("T")
TAG = "k3s-panel-conformance"
RDS_PASSWORD = "Conf0rmance-Pass"


@dataclass(frozen=True)
class Scenario:
    product: str
    action: str
    run: Callable[[World], None]
    xfail: str = ""


SCENARIOS: dict[tuple[str, str], Scenario] = {}


def scenario(product: str, action: str, *,
             xfail: str = "") -> Callable[[Callable[[World], None]], Callable[[World], None]]:
    """Register `run(world)` as the scenario of (product, action)."""
    def register(run: Callable[[World], None]) -> Callable[[World], None]:
        if (product, action) in SCENARIOS:
            raise ValueError(f"two scenarios for {product} {action}")
        SCENARIOS[(product, action)] = Scenario(product, action, run, xfail)
        return run
    return register


@dataclass
class World:
    """The emulator, the recording adapter, and resources shared between scenarios."""

    emulator: Emulator
    client: RecordingClient
    cloud: AliyunCloud
    _shared: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, emulator: Emulator) -> World:
        cloud = AliyunCloud(emulator.access_key_id, emulator.access_key_secret,
                            emulator.region_id, emulator.endpoint)
        client = RecordingClient(emulator.access_key_id, emulator.access_key_secret,
                                 emulator.region_id, emulator.endpoint)
        cloud.client = client
        return cls(emulator, client, cloud)

    @property
    def vpc_id(self) -> str:
        return self.emulator.vpc["vpc_id"]

    @property
    def vswitch_id(self) -> str:
        return self.emulator.vswitch["vswitch_id"]

    @property
    def zone_id(self) -> str:
        return self.emulator.vswitch["zone_id"]

    def host_ip(self, last_octet: int) -> str:
        return self.emulator.vswitch["cidr"].rsplit(".", 1)[0] + f".{last_octet}"

    def once(self, name: str, build: Callable[[], T]) -> T:
        if name not in self._shared:
            self._shared[name] = build()
        return self._shared[name]

    # ---- SLB -------------------------------------------------------------------------------
    def new_slb(self, name: str, **spec: Any) -> str:
        created = self.cloud.create_slb(
            SlbSpec(name, self.vswitch_id, self.vpc_id, **spec),
            client_token=uuid.uuid4().hex, tags={TAG: name})
        return created.load_balancer_id

    def backend(self, name: str, last_octet: int) -> str:
        return self.once(f"ecs:{name}",
                         lambda: self.emulator.register_instance(name, self.host_ip(last_octet)))

    def slb(self) -> str:
        """A load balancer with a running TCP 6443 listener and one backend server."""
        def build() -> str:
            lb_id = self.new_slb("conformance-api")
            self.cloud.create_tcp_listener(lb_id)
            self.cloud.add_backend_servers(lb_id, [self.backend("conformance-s1", 41)])
            self.cloud.start_listener(lb_id)
            return lb_id
        return self.once("slb", build)

    # ---- RDS -------------------------------------------------------------------------------
    def rds_spec(self) -> RdsSpec:
        # 5.7: the panel's own story (innodb_large_prefix read and fixed there).
        return RdsSpec("5.7", "mysql.n2.medium.2c", 20, self.vpc_id, self.vswitch_id,
                       self.zone_id, storage_type="cloud_essd", description="conformance")

    def rds(self) -> dict[str, str]:
        """A Running RDS instance with account `k3s`, database `k3s` and the grant."""
        def build() -> dict[str, str]:
            token = uuid.uuid4().hex
            created = self.cloud.create_rds(self.rds_spec(), client_token=token,
                                            tags={TAG: "rds"})
            rds_id = created.instance_id
            eventually(lambda: self.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
                       "RDS instance Running", 90)
            self.cloud.modify_security_ips(rds_id, ["127.0.0.1"])
            self.cloud.create_account(rds_id, "k3s", RDS_PASSWORD, description="conformance")
            self.cloud.create_database(rds_id, "k3s", description="conformance")
            self.account_ready(rds_id, "k3s")
            self.cloud.grant_privilege(rds_id, "k3s", "k3s")
            return {"instance_id": rds_id, "client_token": token}
        return self.once("rds", build)

    def pg_rds(self) -> dict[str, str]:
        """A Running RDS PostgreSQL instance with account `k3s` owning database `k3s` (what
        the panel's engine interface does for PostgreSQL)."""
        def build() -> dict[str, str]:
            token = uuid.uuid4().hex
            created = self.cloud.create_rds(
                RdsSpec("17.0", "pg.n2.2c.2m", 20, self.vpc_id, self.vswitch_id, self.zone_id,
                        storage_type="cloud_essd", description="conformance",
                        engine="PostgreSQL"), client_token=token, tags={TAG: "rds-pg"})
            rds_id = created.instance_id
            eventually(lambda: self.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
                       "RDS PostgreSQL instance Running", 90)
            self.cloud.create_account(rds_id, "k3s", RDS_PASSWORD, description="conformance")
            self.cloud.create_database(rds_id, "k3s", "UTF8,C,en_US.utf8",
                                       description="conformance")
            self.account_ready(rds_id, "k3s")
            self.cloud.grant_privilege(rds_id, "k3s", "k3s", "DBOwner")
            return {"instance_id": rds_id, "client_token": token}
        return self.once("pg_rds", build)

    def account_ready(self, rds_id: str, name: str) -> None:
        eventually(lambda: self.cloud.describe_account(rds_id, name).available,  # type: ignore[union-attr]
                   f"account {name} Available")
        eventually(lambda: self.cloud.describe_database(rds_id, name).running,  # type: ignore[union-attr]
                   f"database {name} Running")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (TransientError, AttributeError):  # AttributeError: not found (None) yet
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not reached in {timeout} s")


# ---- ECS / VPC -------------------------------------------------------------------------------

@scenario("Ecs", "DescribeRegions")
def _regions(world: World) -> None:
    assert world.cloud.describe_regions()


@scenario("Ecs", "DescribeZones")
def _zones(world: World) -> None:
    assert world.cloud.describe_zones()


@scenario("Ecs", "DescribeInstances")
def _instances(world: World) -> None:
    ip = world.host_ip(21)
    world.backend("conformance-lookup", 21)
    found = world.cloud.describe_instances_by_private_ips([ip, "10.255.255.254"], world.vpc_id)
    assert [i.private_ips for i in found] == [(ip,)]
    # The hosts page's list: every instance of the VPC, paged with MaxResults/NextToken.
    listed = world.cloud.describe_vpc_instances(world.vpc_id)
    assert ip in [i.private_ip for i in listed]
    assert all(i.vpc_id == world.vpc_id and i.status for i in listed)


@scenario("Vpc", "DescribeVpcs")
def _vpcs(world: World) -> None:
    assert world.cloud.describe_vpcs()


@scenario("Vpc", "DescribeVSwitches")
def _vswitches(world: World) -> None:
    assert world.cloud.describe_vswitches(world.vpc_id, world.zone_id)


@scenario("Vpc", "CreateVpc")
@scenario("Vpc", "CreateVSwitch")
@scenario("Vpc", "DeleteVSwitch")
@scenario("Vpc", "DeleteVpc")
def _created_network(world: World) -> None:
    """The VPC and vSwitch the panel creates (steps/network.py): tagged in the create, found
    by the tag, Available after Pending, deleted vSwitch first."""
    name = f"conformance-net-{uuid.uuid4().hex[:6]}"
    vpc = world.cloud.create_vpc(cidr="10.77.0.0/16", name=name, description="conformance",
                                 client_token=uuid.uuid4().hex, tags={TAG: name})
    assert [v.vpc_id for v in world.cloud.vpcs_by_tag(TAG, name)] == [vpc]
    _until(lambda: [v.status for v in world.cloud.vpcs_by_tag(TAG, name)] == ["Available"])
    vswitch = world.cloud.create_vswitch(
        vpc_id=vpc, zone_id=world.zone_id, cidr="10.77.1.0/24", name=name,
        description="conformance", client_token=uuid.uuid4().hex, tags={TAG: name})
    _until(lambda: [(s.vswitch_id, s.status) for s in world.cloud.vswitches_by_tag(TAG, name)]
           == [(vswitch, "Available")])
    assert world.cloud.delete_vswitch(vswitch) is True
    # Deletes are asynchronous (terraform's resource_alicloud_vpc.go waits for Deleted):
    # the VPC is deleted once its vSwitch is gone, and is gone itself a little later.
    _until(lambda: not world.cloud.vswitches_by_tag(TAG, name))
    assert world.cloud.delete_vpc(vpc) is True
    _until(lambda: not world.cloud.vpcs_by_tag(TAG, name))
    assert world.cloud.delete_vpc(vpc) is False  # gone: InvalidVpcId.NotFound


def _until(done: Callable[[], bool], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "still not Available"
        time.sleep(0.2)


# ---- SLB -------------------------------------------------------------------------------------

@scenario("Slb", "CreateLoadBalancer")
def _create_slb(world: World) -> None:
    # Stale V2 docstring: CreateLoadBalancerRequest.instance_charge_type still reads
    # "PayBySpec (default)", but pay-by-specification CLB can no longer be bought since
    # 2025-06-01 (Alibaba Cloud help doc-detail/127268 "Modify the configurations of
    # pay-as-you-go CLB instances"; ModifyLoadBalancerInstanceChargeType: "Only pay-by-LCU is
    # supported"): a create sends InstanceChargeType=PayByCLCU and no LoadBalancerSpec.
    # The suite checks names and types against V2, not that default.
    world.new_slb("conformance-intranet")
    world.new_slb("conformance-internet", address_type="internet")  # billed by traffic


@scenario("Slb", "DescribeLoadBalancerAttribute")
def _describe_slb(world: World) -> None:
    assert world.cloud.describe_slb(world.slb()) is not None


@scenario("Slb", "DescribeLoadBalancers")
def _find_slb(world: World) -> None:
    # Sent as Tag.1.Key/Tag.1.Value (the V2 Tag RepeatList): only the one carrying that pair.
    lb_id = world.slb()
    assert [lb.load_balancer_id for lb in world.cloud.find_slb_by_tag(TAG, "conformance-api")
            ] == [lb_id]


@scenario("Slb", "CreateLoadBalancerTCPListener")
@scenario("Slb", "StartLoadBalancerListener")
def _listener(world: World) -> None:
    lb_id = world.new_slb("conformance-listener")
    world.cloud.create_tcp_listener(lb_id)
    world.cloud.start_listener(lb_id)


@scenario("Slb", "DescribeLoadBalancerTCPListenerAttribute")
def _describe_listener(world: World) -> None:
    assert world.cloud.describe_tcp_listener(world.slb()) is not None


@scenario("Slb", "AddBackendServers")
@scenario("Slb", "RemoveBackendServers")
def _backends(world: World) -> None:
    lb_id = world.new_slb("conformance-backends")
    server = world.backend("conformance-s2", 42)
    world.cloud.add_backend_servers(lb_id, [server])
    world.cloud.remove_backend_servers(lb_id, [server])


@scenario("Slb", "DescribeHealthStatus")
def _health(world: World) -> None:
    lb_id = world.slb()
    eventually(lambda: world.cloud.describe_health_status(lb_id), "backend health reported")


@scenario("Slb", "DeleteLoadBalancer")
def _delete_slb(world: World) -> None:
    assert world.cloud.delete_slb(world.new_slb("conformance-delete"))


@scenario("Slb", "CreateAccessControlList")
@scenario("Slb", "DescribeAccessControlLists")
@scenario("Slb", "AddAccessControlListEntry")
@scenario("Slb", "RemoveAccessControlListEntry")
@scenario("Slb", "DescribeAccessControlListAttribute")
@scenario("Slb", "DeleteAccessControlList")
def _acl(world: World) -> None:
    # The API's allow-list: created tagged, found by tag and by name, entries in and out,
    # bound to a listener as a whitelist, refused deletion while bound, then deleted.
    name = f"conformance-acl-{uuid.uuid4().hex[:8]}"
    acl_id = world.cloud.create_acl(name, tags={TAG: "conformance-acl"})
    assert world.cloud.find_acls_by_tag(TAG, "conformance-acl") == [acl_id]
    assert world.cloud.find_acls_by_name(name) == [acl_id]
    world.cloud.add_acl_entries(acl_id, ["203.0.113.0/24", "198.51.100.7/32"], "conformance")
    world.cloud.remove_acl_entries(acl_id, ["198.51.100.7/32"])
    lb_id = world.new_slb("conformance-acl-listener")
    world.cloud.create_tcp_listener(lb_id, whitelist_acl_id=acl_id)
    described = world.cloud.describe_acl(acl_id)
    assert described is not None and described.entries == ("203.0.113.0/24",)
    assert described.listeners == ((lb_id, 6443),)
    listener = world.cloud.describe_tcp_listener(lb_id)
    assert listener is not None and (listener.acl_status, listener.acl_id) == ("on", acl_id)
    try:
        world.cloud.delete_acl(acl_id)
    except TransientError as exc:  # AclInUsed: its listener still holds it
        assert exc.code == "AclInUsed"
    else:
        raise AssertionError("an ACL bound to a listener was deleted")
    assert world.cloud.delete_slb(lb_id)
    assert world.cloud.delete_acl(acl_id)
    assert not world.cloud.delete_acl(acl_id)  # AclNotExist: already gone


# ---- RDS -------------------------------------------------------------------------------------

@scenario("Rds", "CreateDBInstance")
def _create_rds(world: World) -> None:
    shared = world.rds()  # the first create, if no scenario made it yet
    again = world.cloud.create_rds(world.rds_spec(), client_token=shared["client_token"],
                                   tags={TAG: "rds"})  # a replayed create answers the same
    assert again.instance_id == shared["instance_id"]
    assert world.cloud.describe_rds(world.pg_rds()["instance_id"]).engine_version == "17.0"  # type: ignore[union-attr]


@scenario("Rds", "DescribeDBInstanceAttribute")
def _describe_rds(world: World) -> None:
    assert world.cloud.describe_rds(world.rds()["instance_id"]) is not None


@scenario("Rds", "DescribeDBInstances")
def _find_rds(world: World) -> None:
    # Tags={"key":"value"} (the V2 format); how a lost CreateDBInstance is found again.
    rds_id = world.rds()["instance_id"]
    assert [i.instance_id for i in world.cloud.find_rds_by_tag(TAG, "rds")] == [rds_id]
    # The health round's batched form: the whole region, page by page (PageSize 1 here, so
    # PageNumber moves on), no DBInstanceId list (one ID only, per Alibaba's model).
    pg_id = world.pg_rds()["instance_id"]
    listed = {i.instance_id: i.status for i in world.cloud.list_rds(page_size=1)}
    assert {rds_id, pg_id} <= set(listed)
    assert listed[rds_id] == "Running"


@scenario("Rds", "ModifySecurityIps")
def _whitelist(world: World) -> None:
    world.cloud.modify_security_ips(world.rds()["instance_id"], ["127.0.0.1", world.host_ip(43)])


@scenario("Rds", "CreateAccount")
@scenario("Rds", "CreateDatabase")
@scenario("Rds", "GrantAccountPrivilege")
def _account_and_database(world: World) -> None:
    rds_id = world.rds()["instance_id"]
    name = f"conf_{uuid.uuid4().hex[:8]}"  # one set per action registered here
    world.cloud.create_account(rds_id, name, RDS_PASSWORD, description="extra")
    world.cloud.create_database(rds_id, name, description="extra")
    world.account_ready(rds_id, name)
    world.cloud.grant_privilege(rds_id, name, name)
    pg_id = world.pg_rds()["instance_id"]  # PostgreSQL: Charset[,Collate[,Ctype]], DBOwner
    world.cloud.create_account(pg_id, name, RDS_PASSWORD, description="extra")
    # Collate and Ctype left out: "If this parameter is not specified, the default value **C**
    # / **en_US.utf8** is used" (V2 CreateDatabaseRequest.character_set_name).
    world.cloud.create_database(pg_id, name, "UTF8", description="extra")
    world.account_ready(pg_id, name)
    world.cloud.grant_privilege(pg_id, name, name, "DBOwner")
    # DBName "must be 2 to 64 characters in length" for every engine, PostgreSQL included.
    longest = (name + "_" + "x" * 64)[:64]
    world.cloud.create_database(pg_id, longest, "UTF8,C", description="extra")
    eventually(lambda: world.cloud.describe_database(pg_id, longest).running,  # type: ignore[union-attr]
               f"database {longest} Running")


@scenario("Rds", "DescribeAccounts")
def _describe_account(world: World) -> None:
    account = world.cloud.describe_account(world.rds()["instance_id"], "k3s")
    assert account is not None and account.privileges == {"k3s": "ReadWrite"}


@scenario("Rds", "DescribeDatabases")
def _describe_database(world: World) -> None:
    database = world.cloud.describe_database(world.rds()["instance_id"], "k3s")
    assert database is not None and database.accounts == {"k3s": "ReadWrite"}


@scenario("Rds", "DescribeDBInstanceNetInfo")
def _net_info(world: World) -> None:
    assert world.cloud.net_info(world.rds()["instance_id"])


@scenario("Rds", "DescribeParameters")
def _parameters(world: World) -> None:
    assert world.cloud.describe_parameters(world.rds()["instance_id"]).value(
        "innodb_large_prefix")


@scenario("Rds", "DescribeParameterTemplates")
def _templates(world: World) -> None:
    assert "innodb_large_prefix" in world.cloud.describe_parameter_templates("5.7")
    assert world.cloud.describe_parameter_templates("8.0")


@scenario("Rds", "ModifyParameter")
def _modify_parameter(world: World) -> None:
    rds_id = world.rds()["instance_id"]
    world.cloud.modify_parameters(rds_id, {"innodb_large_prefix": "ON"})
    eventually(lambda: world.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
               "RDS instance Running after ModifyParameter", 60)


@scenario("Rds", "ModifyDBInstanceSSL")
def _enable_ssl(world: World) -> None:
    rds_id = world.rds()["instance_id"]
    eventually(lambda: world.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
               "RDS instance Running before SSL", 60)
    address = world.cloud.net_info(rds_id)[0].connection_string
    world.cloud.enable_ssl(rds_id, address)

    def enabled() -> RdsSsl | None:
        found = world.cloud.describe_ssl(rds_id)
        running = world.cloud.describe_rds(rds_id).running  # type: ignore[union-attr]
        return found if found.enabled and running else None

    ssl = eventually(enabled, "SSL enabled and the instance Running again", 90)
    assert ssl.connection_string == address and ssl.force_encryption and ssl.expire_time


@scenario("Rds", "DescribeDBInstanceSSL")
def _describe_ssl(world: World) -> None:
    state = world.cloud.describe_ssl(world.rds()["instance_id"])
    assert state.enabled or not state.connection_string


@scenario("Rds", "CreateBackup")
@scenario("Rds", "DescribeBackups")
def _backups(world: World) -> None:
    rds_id = world.rds()["instance_id"]
    eventually(lambda: world.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
               "RDS instance Running before a backup", 60)
    world.once("rds:backup", lambda: world.cloud.create_backup(rds_id))
    eventually(lambda: world.cloud.describe_backups(rds_id), "a backup listed", 60)


@scenario("Rds", "DeleteDBInstance")
def _delete_rds(world: World) -> None:
    # Its own instance, so the shared one outlives every other scenario.
    spec = world.rds_spec()
    created = world.cloud.create_rds(spec, client_token=uuid.uuid4().hex, tags={TAG: "delete"})
    rds_id = created.instance_id
    eventually(lambda: world.cloud.describe_rds(rds_id).running,  # type: ignore[union-attr]
               "RDS instance Running", 90)
    assert world.cloud.delete_rds(rds_id)


# ---- prices (review page) ---------------------------------------------------------------------

@scenario("Rds", "DescribePrice")
def _rds_price(world: World) -> None:
    price = world.cloud.describe_rds_price(
        engine_version="8.0", instance_class="mysql.n2.medium.2c", storage_gb=20,
        zone_id=world.zone_id, storage_type="cloud_essd")
    assert price.amount > 0
    assert world.cloud.describe_rds_price(
        engine_version="17.0", instance_class="pg.n2.2c.2m", storage_gb=20,
        zone_id=world.zone_id, storage_type="cloud_essd", engine="PostgreSQL").amount > 0


@scenario("BssOpenApi", "GetPayAsYouGoPrice")
def _bss_price(world: World) -> None:
    prices = world.cloud.get_pay_as_you_go_price(SLB_PRODUCT_CODE,
                                                 [SLB_INSTANCE_FEE, SLB_TRAFFIC_OUT])
    assert prices[SLB_INSTANCE_FEE.code].amount > 0


# ---- datastore health -------------------------------------------------------------------------

@scenario("Rds", "DescribeResourceUsage")
def _resource_usage(world: World) -> None:
    usage = world.cloud.describe_resource_usage(world.rds()["instance_id"])
    assert usage.data_size >= 0 and usage.disk_used >= usage.data_size


# ---- what RDS sells (wizard, preflight) -------------------------------------------------------

@scenario("Rds", "DescribeAvailableZones")
def _rds_zones(world: World) -> None:
    offers = world.cloud.describe_rds_zones("8.0", zone_id=world.zone_id)
    assert [o.zone_id for o in offers] == [world.zone_id]
    assert offers[0].sells("8.0", "HighAvailability", "cloud_essd")
    (pg,) = world.cloud.describe_rds_zones(zone_id=world.zone_id, engine="PostgreSQL")
    assert pg.sells("17.0", "HighAvailability", "cloud_essd") and "8.0" not in pg.versions


@scenario("Rds", "DescribeAvailableClasses")
def _rds_classes(world: World) -> None:
    offers = world.cloud.describe_rds_classes(world.zone_id, "8.0")
    assert "mysql.n2.medium.2c" in {o.instance_class for o in offers}
    assert all(o.storage_min <= o.storage_max for o in offers)
    pg = world.cloud.describe_rds_classes(world.zone_id, "17.0", engine="PostgreSQL")
    assert "pg.n2.2c.2m" in {o.instance_class for o in pg}


# ---- credentials without long-lived keys ------------------------------------------------------

@scenario("Sts", "AssumeRole")
def _assume_role(world: World) -> None:
    policy = {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "ecs:Describe*", "Resource": "*"}]}
    arn = world.once("role", lambda: world.emulator.control.create_role(
        "conformance-role", policy=policy, external_id="conformance-ext"))
    answer = world.cloud.assume_role({
        "RoleArn": arn, "RoleSessionName": "k3s-panel", "DurationSeconds": "900",
        "ExternalId": "conformance-ext", "Policy": json.dumps(policy)})
    assert answer["Credentials"]["AccessKeyId"].startswith("STS.")
    assert answer["Credentials"]["SecurityToken"] and answer["Credentials"]["Expiration"]


# ---- NLB -------------------------------------------------------------------------------------

def _nlb_zones(world: World) -> list[tuple[str, str]]:
    return [(v["zone_id"], v["vswitch_id"]) for v in world.emulator.vpc["vswitches"][:2]]


def _new_nlb(world: World, name: str) -> str:
    lb_id = world.cloud.create_nlb(name=name, vpc_id=world.vpc_id, address_type="Intranet",
                                   zones=_nlb_zones(world), client_token=uuid.uuid4().hex,
                                   tags={TAG: name})
    eventually(lambda: (world.cloud.describe_nlb(lb_id) or _NONE).status == "Active",
               "NLB Active", 60)
    return lb_id


class _None:
    status = ""


_NONE = _None()


def _job_done(world: World, job: str) -> None:
    eventually(lambda: world.cloud.job_status(job) == "Succeeded", f"NLB job {job}", 60)


def _build_nlb(world: World, name: str) -> dict[str, str]:
    """An Active NLB in two zones, its TCP server group with one ECS server, a Running TCP
    6443 listener, as the create run builds them (every job waited for)."""
    lb_id = _new_nlb(world, name)
    group, job = world.cloud.create_server_group(
        name=f"{name}-api", vpc_id=world.vpc_id, port=6443, client_token=uuid.uuid4().hex,
        preserve_client_ip=False, tags={TAG: name})
    _job_done(world, job)
    instance = world.backend("conformance-n1", 51)
    for added in world.cloud.add_servers(group, {instance: world.host_ip(51)}, 6443):
        _job_done(world, added)
    listener, job = world.cloud.create_listener(
        load_balancer_id=lb_id, server_group_id=group, port=6443,
        client_token=uuid.uuid4().hex, tags={TAG: name})
    _job_done(world, job)
    return {"lb": lb_id, "group": group, "listener": listener, "instance": instance}


def _nlb_api(world: World) -> dict[str, str]:
    """The shared one (built once per module), for the read-only actions."""
    return world.once("nlb", lambda: _build_nlb(world, "conformance-nlb"))


@scenario("Nlb", "CreateLoadBalancer")
@scenario("Nlb", "CreateServerGroup")
@scenario("Nlb", "AddServersToServerGroup")
@scenario("Nlb", "CreateListener")
@scenario("Nlb", "GetJobStatus")
def _create_nlb(world: World) -> None:
    built = _build_nlb(world, f"conformance-nlb-{uuid.uuid4().hex[:6]}")
    assert (world.cloud.describe_nlb(built["lb"]) or _NONE).status == "Active"


@scenario("Nlb", "DescribeZones")
def _zones_selling_nlb(world: World) -> None:
    """The wizard offers an NLB only in zones NLB's own DescribeZones lists."""
    zones = world.cloud.nlb_zones()
    region = world.emulator.region_id
    assert len(zones) >= 2 and all(zone.startswith(region) for zone in zones), zones


@scenario("Nlb", "GetLoadBalancerAttribute")
def _describe_nlb(world: World) -> None:
    lb_id = _nlb_api(world)["lb"]
    described = world.cloud.describe_nlb(lb_id)
    assert described is not None and described.dns_name and len(described.zones) == 2
    assert len(described.addresses) == 2


@scenario("Nlb", "ListLoadBalancers")
def _find_nlb(world: World) -> None:
    lb_id = _nlb_api(world)["lb"]
    assert [lb.load_balancer_id for lb in world.cloud.find_nlb_by_tag(TAG, "conformance-nlb")
            ] == [lb_id]


@scenario("Nlb", "ListServerGroups")
def _server_group(world: World) -> None:
    group = _nlb_api(world)["group"]
    assert [g.server_group_id for g in world.cloud.find_server_groups_by_tag(
        TAG, "conformance-nlb")] == [group]
    described = world.cloud.describe_server_group(group)
    assert described is not None and described.status == "Available"
    assert described.preserve_client_ip is False


@scenario("Nlb", "ListServerGroupServers")
@scenario("Nlb", "RemoveServersFromServerGroup")
def _servers(world: World) -> None:
    group = _nlb_api(world)["group"]
    extra = world.backend("conformance-n2", 52)
    for job in world.cloud.add_servers(group, {extra: world.host_ip(52)}, 6443):
        _job_done(world, job)
    assert extra in {s.server_id for s in world.cloud.list_servers(group)}
    # The health round's batched form: no ServerGroupId, every group of the region by id,
    # paged by NextToken (MaxResults 1 here, so every server is a page of its own).
    listing = world.cloud.list_region_servers(page_size=1)
    assert listing.complete
    assert extra in {s.server_id for s in listing.groups[group]}
    for job in world.cloud.remove_servers(group, {extra: world.host_ip(52)}, 6443):
        _job_done(world, job)
    assert extra not in {s.server_id for s in world.cloud.list_servers(group)}


@scenario("Nlb", "ListListeners")
@scenario("Nlb", "GetListenerAttribute")
def _nlb_listener(world: World) -> None:
    built = _nlb_api(world)
    listeners = world.cloud.find_listeners(built["lb"])
    assert [(x.listener_id, x.port, x.protocol) for x in listeners] == [
        (built["listener"], 6443, "TCP")]
    described = world.cloud.describe_listener(built["listener"])
    assert described is not None and described.status == "Running"
    assert described.server_group_id == built["group"]


@scenario("Nlb", "GetListenerHealthStatus")
def _nlb_health(world: World) -> None:
    built = _nlb_api(world)
    # Nothing listens on the backend's 6443 here: the one server is reported not normal.
    eventually(lambda: built["instance"] in world.cloud.listener_unhealthy(built["listener"]),
               "the unhealthy server reported")


@scenario("Nlb", "DeleteListener")
@scenario("Nlb", "DeleteServerGroup")
@scenario("Nlb", "DeleteLoadBalancer")
def _delete_nlb(world: World) -> None:
    lb_id = _new_nlb(world, "conformance-nlb-delete")
    group, job = world.cloud.create_server_group(
        name="conformance-nlb-delete", vpc_id=world.vpc_id, port=6443,
        client_token=uuid.uuid4().hex, preserve_client_ip=False)
    _job_done(world, job)
    listener, job = world.cloud.create_listener(
        load_balancer_id=lb_id, server_group_id=group, port=6443,
        client_token=uuid.uuid4().hex)
    _job_done(world, job)
    _job_done(world, world.cloud.delete_listener(listener) or "")
    _job_done(world, world.cloud.delete_server_group(group) or "")
    _job_done(world, world.cloud.delete_nlb(lb_id) or "")
    assert world.cloud.describe_listener(listener) is None
    assert world.cloud.delete_server_group(group) is None
    eventually(lambda: world.cloud.describe_nlb(lb_id) is None, "NLB gone")


# ---- the NLB's allow-list: an ECS security group joined to it --------------------------------

def _new_group(world: World, kind: str) -> tuple[str, str]:
    """A fresh security group in the world's VPC, tagged with its own name: (name, id)."""
    name = f"conformance-{kind}-{uuid.uuid4().hex[:6]}"
    return name, world.cloud.create_security_group(
        name=name, vpc_id=world.vpc_id, description="conformance",
        client_token=uuid.uuid4().hex, tags={TAG: name})


@scenario("Ecs", "CreateSecurityGroup")
@scenario("Ecs", "DescribeSecurityGroups")
@scenario("Ecs", "AuthorizeSecurityGroup")
@scenario("Ecs", "DescribeSecurityGroupAttribute")
@scenario("Ecs", "RevokeSecurityGroup")
@scenario("Nlb", "LoadBalancerJoinSecurityGroup")
@scenario("Nlb", "LoadBalancerLeaveSecurityGroup")
@scenario("Ecs", "DeleteSecurityGroup")
def _nlb_security_group(world: World) -> None:
    name, group = _new_group(world, "sg")
    assert world.cloud.find_security_groups_by_tag(TAG, name) == [group]
    accept = IngressRule("203.0.113.0/24", "6443/6443", "Accept", 1)
    drop = IngressRule("0.0.0.0/0", "6443/6443", "Drop", 100)
    world.cloud.authorize_ingress(group, [accept, drop], "conformance")
    assert set(world.cloud.ingress_rules(group) or []) == {accept, drop}
    # The nodes' group (steps/ecs.py): a rule from the group itself, with a ClientToken.
    inside = IngressRule("", "8472/8472", "Accept", 1, "UDP", group)
    world.cloud.authorize_ingress(group, [inside], client_token=uuid.uuid4().hex,
                                  descriptions={inside: "flannel VXLAN"})
    assert inside in (world.cloud.ingress_rules(group) or [])
    assert [g.name for g in world.cloud.security_groups_by_tag(TAG, name)] == [name]
    world.cloud.revoke_ingress(group, [inside])
    world.cloud.revoke_ingress(group, [accept])
    assert world.cloud.ingress_rules(group) == [drop]
    lb_id = _nlb_api(world)["lb"]
    _job_done(world, world.cloud.join_security_groups(lb_id, [group], uuid.uuid4().hex))
    assert (world.cloud.describe_nlb(lb_id) or _NONE_NLB).security_group_ids == (group,)
    _job_done(world, world.cloud.leave_security_groups(lb_id, [group], uuid.uuid4().hex))
    assert world.cloud.delete_security_group(group) is True
    assert world.cloud.ingress_rules(group) is None


class _NoNlb:
    security_group_ids: tuple[str, ...] = ()


_NONE_NLB = _NoNlb()


# ---- ECS: what the panel buys (clusters/adapters/aliyun/ecs_buy.py) ------------------------

_BUY_IMAGE = "ubuntu_24_04_x64_20G_alibase_20250722.vhd"


@scenario("Ecs", "DescribeImages")
def _public_images(world: World) -> None:
    images = world.cloud.describe_public_linux_images()
    assert any(i.family.startswith("acs:ubuntu_") for i in images)
    assert all(i.image_id and i.os_name for i in images)


@scenario("Ecs", "DescribeAvailableResource")
@scenario("Ecs", "DescribeInstanceTypes")
def _what_the_zone_sells(world: World) -> None:
    offers = world.cloud.available_instance_types(world.zone_id)
    assert offers and all(o.cores > 0 and o.memory_gib > 0 for o in offers)
    assert any(o.buyable for o in offers)


@scenario("Ecs", "DescribePrice")
def _ecs_price(world: World) -> None:
    """The review's price of one instance of an order, with and without a public address
    (V2 DescribePriceRequest/ResponseBody judge what is sent and read)."""
    plain = world.cloud.describe_instance_price(
        instance_type="ecs.g7.large", image_id="ubuntu_24_04_x64_20G_alibase_20250722.vhd",
        zone_id=world.zone_id, system_disk_category="cloud_essd", system_disk_gb=40)
    assert plain.amount > 0 and plain.currency == "CNY" and plain.request_id
    public = world.cloud.describe_instance_price(
        instance_type="ecs.g7.large", image_id="ubuntu_24_04_x64_20G_alibase_20250722.vhd",
        zone_id=world.zone_id, system_disk_category="cloud_essd", system_disk_gb=40,
        public_bandwidth_mbps=5)
    assert public.amount >= plain.amount


@scenario("Ecs", "ImportKeyPair")
@scenario("Ecs", "DescribeKeyPairs")
@scenario("Ecs", "DeleteKeyPairs")
def _key_pairs(world: World) -> None:
    from clusters.steps.ecs import generate_key_pair, md5_fingerprint  # noqa: PLC0415

    name = f"conformance-kp-{uuid.uuid4().hex[:6]}"
    _, public = generate_key_pair("conformance")
    assert world.cloud.key_pair_fingerprint(name) is None
    assert world.cloud.import_key_pair(name, public) == md5_fingerprint(public)
    assert world.cloud.key_pair_fingerprint(name) == md5_fingerprint(public)
    # The wizard's list of the region's key pairs (paged DescribeKeyPairs).
    assert (name, md5_fingerprint(public)) in world.cloud.key_pairs()
    world.cloud.delete_key_pairs([name])
    assert world.cloud.key_pair_fingerprint(name) is None


@scenario("Ecs", "JoinSecurityGroup")
@scenario("Ecs", "LeaveSecurityGroup")
def _owners_instance_joins_the_nodes_group(world: World) -> None:
    """The owner's instance into the nodes' group (steps/ecs.py join_group) and out."""
    _, group = _new_group(world, "join")
    instance = world.backend("conformance-join", 61)
    assert world.cloud.join_security_group(instance, group) is True
    assert world.cloud.join_security_group(instance, group) is False  # a member already
    (listed,) = world.cloud.describe_instances_by_ids([instance])
    assert group in listed.security_group_ids
    assert world.cloud.leave_security_group(instance, group) is True
    (listed,) = world.cloud.describe_instances_by_ids([instance])
    assert group not in listed.security_group_ids
    assert world.cloud.delete_security_group(group) is True


@scenario("Ecs", "ModifySecurityGroupPolicy")
@scenario("Ecs", "RunInstances")
@scenario("Ecs", "DeleteInstances")
def _run_and_release(world: World) -> None:
    from clusters.adapters.aliyun import InstanceOrder  # noqa: PLC0415

    name, group = _new_group(world, "buy")
    world.cloud.drop_inner_access(group, client_token=uuid.uuid4().hex)
    type_id = next(o.instance_type for o in world.cloud.available_instance_types(world.zone_id)
                   if o.buyable)
    order = InstanceOrder(_BUY_IMAGE, type_id, world.vswitch_id, group, 1, name)
    try:  # DryRunOperation is Alibaba's answer when the request would pass
        world.cloud.run_instances(order, client_token=uuid.uuid4().hex, tags={TAG: name},
                                  dry_run=True)
    except StepError as exc:
        assert exc.code == "DryRunOperation", exc
    (bought,) = world.cloud.run_instances(order, client_token=uuid.uuid4().hex,
                                          tags={TAG: name})
    assert [i.instance_id for i in world.cloud.find_instances_by_tag(TAG, name)] == [bought]
    eventually(lambda: [i for i in world.cloud.describe_instances_by_ids([bought])
                        if i.status == "Running"], "the bought instance Running")
    world.cloud.delete_instances([bought], client_token=uuid.uuid4().hex)
    eventually(lambda: not world.cloud.describe_instances_by_ids([bought]), "released")
    assert world.cloud.delete_security_group(group) is True
