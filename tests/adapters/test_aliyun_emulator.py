"""The Alibaba Cloud facade against the offline emulator (sandbox/aliyun), end to end:
the official SDK signs, the emulator verifies, real MariaDB/TCP stand behind RDS and SLB."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from clusters.adapters.aliyun import AliyunCloud, PriceModule, RdsSpec, SlbSpec
from clusters.adapters.credentials import generate_rds_password
from clusters.adapters.datastore import KEY_TOO_LONG, SchemaRejected, check_datastore
from clusters.core.errors import PermanentError, TransientError
from clusters.k3s import parse_endpoint
from clusters.k3s.dsn import build_endpoint
from sandbox.aliyun.testing import Emulator

T = TypeVar("T")
TAG = "k3s-panel-test"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(Path(tmp_path_factory.mktemp("emulator")), time_scale=0.01) as emu:
        yield emu


@pytest.fixture
def cloud(emulator: Emulator) -> AliyunCloud:
    return AliyunCloud(emulator.access_key_id, emulator.access_key_secret, emulator.region_id,
                       emulator.endpoint)


def eventually(probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except TransientError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_lookups_for_the_wizard(cloud: AliyunCloud, emulator: Emulator) -> None:
    assert [r.region_id for r in cloud.describe_regions()] == [emulator.region_id]
    assert {z.zone_id for z in cloud.describe_zones()} == {
        s["zone_id"] for s in emulator.vpc["vswitches"]}
    assert [v.vpc_id for v in cloud.describe_vpcs()] == [emulator.vpc["vpc_id"]]
    vswitches = cloud.describe_vswitches(emulator.vpc["vpc_id"])
    assert {s.vswitch_id for s in vswitches} == {s["vswitch_id"] for s in emulator.vpc["vswitches"]}
    ip = emulator.vswitch["cidr"].rsplit(".", 1)[0] + ".21"
    instance_id = emulator.register_instance("lookup-1", ip)
    found = cloud.describe_instances_by_private_ips([ip, "10.255.255.254"])
    assert [(i.instance_id, i.private_ips, i.status) for i in found] == [
        (instance_id, (ip,), "Running")]


def test_what_rds_sells_comes_from_the_cloud(cloud: AliyunCloud, emulator: Emulator) -> None:
    zone = emulator.vswitch["zone_id"]
    (offer,) = cloud.describe_rds_zones(zone_id=zone)
    assert offer.zone_id == zone
    assert all(offer.sells(v, "HighAvailability", "cloud_essd") for v in ("5.7", "8.0", "8.4"))
    assert "5.6" not in offer.versions  # no longer sold
    classes = {c.instance_class: c for c in cloud.describe_rds_classes(zone, "8.0")}
    medium = classes["mysql.n2.medium.2c"]
    assert (medium.storage_min, medium.storage_max, medium.storage_step) == (20, 32000, 5)
    assert medium.storage_problem(20) is None and medium.storage_problem(22) == "step"
    assert medium.storage_problem(10) == "range"
    emulator.control.set_rds_classes(emulator.region_id, zone, "8.0", [])
    try:
        assert cloud.describe_rds_classes(zone, "8.0") == []
        assert not any(z.sells("8.0", "HighAvailability", "cloud_essd")
                       for z in cloud.describe_rds_zones("8.0", zone_id=zone))
    finally:
        emulator.control.set_rds_classes(emulator.region_id, zone, "8.0", None)


def test_parameter_templates_say_what_needs_a_restart(cloud: AliyunCloud) -> None:
    on_57 = cloud.describe_parameter_templates("5.7")
    prefix = on_57["innodb_large_prefix"]
    # ON by default on RDS 5.7, OFF on 5.6; gone on 8.x.
    assert prefix.default == "ON" and not prefix.force_restart and "ON" in prefix.checking_code
    assert cloud.describe_parameter_templates("5.6")["innodb_large_prefix"].default == "OFF"
    assert "innodb_large_prefix" not in cloud.describe_parameter_templates("8.0")  # removed


def test_credentials_problems_are_permanent_and_explained(emulator: Emulator) -> None:
    wrong_secret = AliyunCloud(emulator.access_key_id, "not-the-secret", emulator.region_id,
                               emulator.endpoint)
    with pytest.raises(PermanentError, match="secret is wrong"):
        wrong_secret.describe_regions()
    unknown = AliyunCloud("LTAIunknown", "whatever", emulator.region_id, emulator.endpoint)
    with pytest.raises(PermanentError, match="does not know this AccessKey ID"):
        unknown.describe_regions()


def test_throttling_is_transient_and_the_next_call_works(cloud: AliyunCloud,
                                                         emulator: Emulator) -> None:
    emulator.control.add_fault(action="DescribeZones", code="Throttling", http_status=400,
                               count=1)
    with pytest.raises(TransientError) as caught:
        cloud.describe_zones()
    assert caught.value.code == "Throttling" and caught.value.request_id
    assert cloud.describe_zones()


def test_load_balancer_lifecycle(cloud: AliyunCloud, emulator: Emulator) -> None:
    vswitch = emulator.vswitch
    token, tags = uuid.uuid4().hex, {TAG: "slb-1"}
    spec = SlbSpec("k3s-api", vswitch["vswitch_id"], emulator.vpc["vpc_id"])
    created = cloud.create_slb(spec, client_token=token, tags=tags)
    assert cloud.create_slb(spec, client_token=token, tags=tags) == created  # no second SLB
    assert [lb.load_balancer_id for lb in cloud.find_slb_by_tag(TAG, "slb-1")] == [
        created.load_balancer_id]
    lb_id = created.load_balancer_id
    cloud.create_tcp_listener(lb_id)
    assert cloud.describe_tcp_listener(lb_id).status == "stopped"  # type: ignore[union-attr]
    ip = vswitch["cidr"].rsplit(".", 1)[0] + ".31"
    server = emulator.register_instance("slb-m1", ip)
    cloud.add_backend_servers(lb_id, [server])
    cloud.start_listener(lb_id)
    eventually(lambda: cloud.describe_tcp_listener(lb_id).running)  # type: ignore[union-attr]
    health = eventually(lambda: cloud.describe_health_status(lb_id))
    assert [(h.server_id, h.server_ip, h.port) for h in health] == [(server, ip, 6443)]
    described = cloud.describe_slb(lb_id)
    assert described is not None and described.address == created.address
    assert described.listener_ports == (6443,) and described.tags == tags
    # Bought as today's CLB is sold: pay-as-you-go, pay-by-LCU, no specification.
    assert (described.instance_charge_type, described.spec) == ("PayByCLCU", "slb.lcu.elastic")
    sent = [c["params"] for c in emulator.control.calls()
            if c["action"] == "CreateLoadBalancer" and c["params"].get("ClientToken") == token]
    assert sent and all((p.get("InstanceChargeType"), p.get("PayType")) == (
        "PayByCLCU", "PayOnDemand") and "LoadBalancerSpec" not in p for p in sent), sent
    assert [b.server_id for b in described.backend_servers] == [server]
    cloud.remove_backend_servers(lb_id, [server])
    assert cloud.delete_slb(lb_id) is True
    assert cloud.delete_slb(lb_id) is False  # already gone: a retried delete is done
    assert cloud.describe_slb(lb_id) is None


def test_prices_of_a_new_cluster(cloud: AliyunCloud, emulator: Emulator) -> None:
    listed = emulator.control.request("GET", "prices")
    rds = cloud.describe_rds_price(engine_version="8.0", instance_class="mysql.n2.medium.1",
                                   storage_gb=20, zone_id=emulator.vswitch["zone_id"])
    rds_list = listed["rds"]
    assert (rds.amount, rds.currency) == (round(
        rds_list["classes"]["mysql.n2.medium.1"] + rds_list["storage_per_gb"]["cloud_essd"] * 20,
        4), "CNY")
    assert rds.request_id
    slb = cloud.get_pay_as_you_go_price("slb", [PriceModule("InstanceRent", "InstanceRent:1")])
    assert slb["InstanceRent"].amount == listed["bss"]["slb"]["InstanceRent"]["1"][0]
    with pytest.raises(PermanentError) as caught:
        cloud.describe_rds_price(engine_version="8.0", instance_class="mysql.madeup.colossal.99",
                                 storage_gb=20)
    assert caught.value.code == "InvalidDBInstanceClass.NotFound" and caught.value.request_id


@pytest.mark.slow
def test_rds_lifecycle_and_the_large_prefix_fix(cloud: AliyunCloud, emulator: Emulator) -> None:
    """RDS 5.7 with innodb_large_prefix OFF rejects the old kine schema until it is fixed."""
    vswitch = emulator.vswitch
    # The K3s recipe's story: an account whose 5.7 template has it OFF.
    emulator.control.set_rds_parameter_defaults("5.7", {"innodb_large_prefix": "OFF"})
    spec = RdsSpec("5.7", "mysql.n2.medium.2c", 20, emulator.vpc["vpc_id"],
                   vswitch["vswitch_id"], vswitch["zone_id"], storage_type="cloud_essd")
    token = uuid.uuid4().hex
    try:
        created = cloud.create_rds(spec, client_token=token, tags={TAG: "rds-1"})
    finally:
        emulator.control.set_rds_parameter_defaults("5.7", {})
    assert cloud.create_rds(spec, client_token=token, tags={TAG: "rds-1"}) == created
    assert [i.instance_id for i in cloud.find_rds_by_tag(TAG, "rds-1")] == [created.instance_id]
    rds_id = created.instance_id
    eventually(lambda: cloud.describe_rds(rds_id).running, 60)  # type: ignore[union-attr]

    cloud.modify_security_ips(rds_id, ["127.0.0.1"])  # the panel itself, on loopback
    password = generate_rds_password()
    cloud.create_account(rds_id, "k3s", password)
    cloud.create_database(rds_id, "k3s")
    eventually(lambda: cloud.describe_account(rds_id, "k3s").available)  # type: ignore[union-attr]
    eventually(lambda: cloud.describe_database(rds_id, "k3s").running)  # type: ignore[union-attr]
    eventually(lambda: cloud.grant_privilege(rds_id, "k3s", "k3s") or True)
    account = eventually(lambda: cloud.describe_account(rds_id, "k3s"))
    assert account.privileges == {"k3s": "ReadWrite"}

    net = cloud.net_info(rds_id)
    host, port = net[0].connection_string, net[0].port
    endpoint = parse_endpoint(build_endpoint("k3s", password, host, port, database="k3s"))
    assert cloud.describe_parameters(rds_id).value("innodb_large_prefix") == "OFF"
    with pytest.raises(SchemaRejected) as caught:
        eventually(lambda: check_datastore(endpoint, "v1.23.8+k3s1"))
    assert caught.value.code == KEY_TOO_LONG
    assert check_datastore(endpoint, "v1.33.1+k3s1").statements_run  # ascii names fit

    cloud.modify_parameters(rds_id, {"innodb_large_prefix": "ON"})
    eventually(lambda: cloud.describe_parameters(rds_id).running.get(
        "innodb_large_prefix") == "ON", 60)
    eventually(lambda: cloud.describe_rds(rds_id).running, 60)  # type: ignore[union-attr]
    assert eventually(lambda: check_datastore(endpoint, "v1.23.8+k3s1"), 60).statements_run

    job = cloud.create_backup(rds_id)
    assert job
    backups = eventually(lambda: cloud.describe_backups(rds_id), 60)
    assert backups[0].status == "Success" and backups[0].size > 0
    assert backups[0].method == "Snapshot"  # cloud disks (ESSD) take snapshot backups

    assert cloud.delete_rds(rds_id) is True
    eventually(lambda: cloud.describe_rds(rds_id) is None, 60)
    assert cloud.delete_rds(rds_id) is False
