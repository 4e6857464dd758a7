"""RDS 2014-08-15: MySQL instances backed by real MariaDB servers.

Why: the panel creates an RDS MySQL instance, whitelists its hosts, creates the account and
database, grants ReadWrite and fixes innodb_large_prefix before K3s touches it; each step has
to meet the same states, delays and refusals as on Alibaba Cloud, and the resulting database
has to be a real one that K3s (kine) can use or fail on.

This module holds the instance lifecycle (create, describe, delete, the ticker and the
runtime hooks); `rds_network`, `rds_accounts` and `rds_config` add the other actions.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from typing import Any

from sandbox.aliyun.gateway import errors, network, tags
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import ClientTokenPolicy, control_route
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import accounts as rds_accounts
from sandbox.aliyun.rds import catalogue, engines, parameters, pgserver, rules
from sandbox.aliyun.rds import config as rds_config
from sandbox.aliyun.rds import encryption as rds_encryption
from sandbox.aliyun.rds import network as rds_network
from sandbox.aliyun.rds import offer as rds_offer
from sandbox.aliyun.rds.mysqld import reap_orphans
from sandbox.aliyun.rds.product import (
    CREATE_SECONDS,
    DEFAULT_IP_ARRAY,
    DELETE_SECONDS,
    PRODUCT,
    find_instance,
    instances,
    running_instance,
)
from sandbox.aliyun.rds.runtime import RdsRuntime, port_for, runtime_of

log = logging.getLogger(__name__)
# Imported for their actions.
ACTION_MODULES = (rds_accounts, rds_config, rds_encryption, rds_network, rds_offer)

# Memory (MB), CPU cores and connection limit for the classes people use with K3s.
_CLASS_SIZES = {"small": (1024, 1, 300), "medium": (2048, 2, 600), "large": (4096, 2, 1200),
                "xlarge": (8192, 4, 2000), "2xlarge": (16384, 8, 4000)}
_ID_ALPHABET = string.ascii_lowercase + string.digits


def _new_instance_id(region_id: str) -> str:
    prefix = {"cn-hangzhou": "bp1", "cn-shanghai": "uf6", "cn-beijing": "2ze"}.get(region_id, "")
    body = "".join(secrets.choice(_ID_ALPHABET) for _ in range(17 - len(prefix)))
    return f"rm-{prefix}{body}"


def _class_size(instance_class: str) -> tuple[int, int, int]:
    for part in instance_class.split("."):
        if part in _CLASS_SIZES:
            return _CLASS_SIZES[part]
    return _CLASS_SIZES["medium"]


# ----- CreateDBInstance ------------------------------------------------------------------


@PRODUCT.action("CreateDBInstance", (
    Param("RegionId", required=True),
    Param("Engine", required=True),
    Param("EngineVersion", required=True),
    Param("DBInstanceClass", required=True),
    Param("DBInstanceStorage", "integer", required=True),
    Param("DBInstanceNetType", required=True, enum=("Intranet", "Internet")),
    Param("SecurityIPList", required=True),
    Param("PayType", required=True, enum=rules.PAY_TYPES),
    Param("DBInstanceStorageType", enum=rules.STORAGE_TYPES, default="cloud_essd"),
    Param("InstanceNetworkType", enum=("VPC", "Classic"), default="VPC"),
    Param("VPCId"), Param("VSwitchId"), Param("ZoneId"), Param("ZoneIdSlave1"),
    Param("Category", enum=rules.CATEGORIES, default="HighAvailability"),
    Param("DBInstanceDescription"), Param("Port", "integer", minimum=1000, maximum=65534),
    Param("PrivateIpAddress"), Param("DeletionProtection", "boolean", default=False),
    Param("ResourceGroupId"),
), client_token=ClientTokenPolicy(rules.TOKEN_REUSED))
def create_db_instance(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    engine = engines.engine_named(params["Engine"])
    engine.check_version(params["EngineVersion"])
    engine.check_port(params["Port"])
    rules.check_instance_class(params["DBInstanceClass"])
    storage = params["DBInstanceStorage"]
    if not 5 <= storage <= 64000 or storage % 5:
        raise rules.STORAGE_FORMAT
    whitelist = rules.parse_security_ips(params["SecurityIPList"])
    rules.check_description(params["DBInstanceDescription"] or "",
                            rules.INSTANCE_DESCRIPTION_FORMAT)
    vsw = _placement(state, params, ctx)
    # Only what the zone sells can be bought, within the class's own storage range.
    sold = catalogue.find_class(state, catalogue.Combination(
        ctx.region_id, vsw["zone_id"], params["EngineVersion"], params["Category"],
        params["DBInstanceStorageType"]), params["DBInstanceClass"])
    if not catalogue.storage_fits(sold, storage):
        raise rules.STORAGE_FORMAT
    instance_id = _new_instance_id(ctx.region_id)
    try:
        if params.given("PrivateIpAddress"):
            address = network.claim_private(state, vsw["vswitch_id"], params["PrivateIpAddress"],
                                            owner=instance_id)
        else:
            address = network.allocate_private(state, vsw["vswitch_id"], owner=instance_id)
    except network.AddressExhausted:
        raise rules.VSWITCH_EXHAUSTED from None
    except network.AddressUnavailable:
        raise errors.invalid_parameter("PrivateIpAddress") from None
    ctx.cloud.plumbing.bring_up(address)
    port = params["Port"] or port_for(address, ctx.netns, engine.name)
    version = params["EngineVersion"]
    record = {
        "id": instance_id, "region_id": ctx.region_id, "zone_id": vsw["zone_id"],
        "vpc_id": vsw["vpc_id"], "vswitch_id": vsw["vswitch_id"], "engine": engine.name,
        "engine_version": version, "instance_class": params["DBInstanceClass"],
        "class_spec": {"cpu": sold["cpu"], "memory_mb": sold["memory_mb"],
                       "max_connections": sold["max_connections"]},
        "storage": storage, "storage_type": params["DBInstanceStorageType"],
        "pay_type": params["PayType"], "net_type": params["DBInstanceNetType"],
        "category": params["Category"], "description": params["DBInstanceDescription"] or "",
        "tags": tags.from_repeat_list(params.raw), "created_at": ctx.clock.now(),
        "status": "Creating", "due": ctx.clock.after(CREATE_SECONDS),
        "address": address, "port": port,
        "security_groups": {DEFAULT_IP_ARRAY: {"ips": whitelist, "network_type": "MIX",
                                               "attribute": ""}},
        "accounts": {}, "databases": {},
        "parameters": {**parameters.defaults_for(version),
                       **rds_offer.parameter_defaults(state, version)},
        "pending_parameters": {}, "parameters_due": None, "backups": [],
        "deletion_protection": params["DeletionProtection"],
        "resource_group_id": params["ResourceGroupId"] or "rg-acfmemulator",
        "order_id": str(secrets.randbelow(10**14) + 10**14),
    }
    instances(state)[instance_id] = record
    runtime_of(ctx.cloud).provision(record)  # the server boots while the instance is Creating
    return {"DBInstanceId": instance_id, "ConnectionString": address, "Port": str(port),
            "OrderId": record["order_id"]}


def _placement(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    """The vSwitch the instance lives in; zone and VPC must agree with it."""
    if params["InstanceNetworkType"] != "VPC":
        raise errors.ApiError(400, "InvalidInstanceNetworkType.Malformed",
                              "Cloud disk instances support only the VPC network type.")
    if not params.given("VSwitchId"):
        raise errors.missing_named("VSwitchId")
    vsw = network.vswitch(state, params["VSwitchId"])
    if vsw is None or vsw["region_id"] != ctx.region_id or (
        params.given("VPCId") and vsw["vpc_id"] != params["VPCId"]
    ):
        raise rules.VSWITCH_NOT_FOUND
    zone = params["ZoneId"] or vsw["zone_id"]
    if not network.zone_exists(state, ctx.region_id, zone) or zone != vsw["zone_id"]:
        raise rules.ZONE_NOT_SUPPORTED
    return vsw


# ----- Describe ----------------------------------------------------------------------------


def _security_ip_list(record: dict[str, Any]) -> str:
    return ",".join(record["security_groups"].get(DEFAULT_IP_ARRAY, {}).get("ips", []))


def attribute_view(record: dict[str, Any]) -> dict[str, Any]:
    spec = record.get("class_spec")  # what the catalogue said when it was bought
    if spec:
        memory, cpu, connections = spec["memory_mb"], spec["cpu"], spec["max_connections"]
    else:  # instances bought before the catalogue existed
        memory, cpu, connections = _class_size(record["instance_class"])
    return {
        "DBInstanceId": record["id"], "DBInstanceDescription": record["description"],
        "DBInstanceStatus": record["status"], "Engine": record["engine"],
        "EngineVersion": record["engine_version"], "DBInstanceClass": record["instance_class"],
        "DBInstanceClassType": "x", "DBInstanceStorage": record["storage"],
        "DBInstanceStorageType": record["storage_type"], "DBInstanceNetType": record["net_type"],
        "InstanceNetworkType": "VPC", "ConnectionMode": "Standard",
        "ConnectionString": record["address"], "Port": str(record["port"]),
        "VpcId": record["vpc_id"], "VSwitchId": record["vswitch_id"],
        "ZoneId": record["zone_id"], "RegionId": record["region_id"],
        "PayType": record["pay_type"], "LockMode": "Unlock", "LockReason": "",
        "CreationTime": iso_utc(record["created_at"]), "ExpireTime": "",
        "SecurityIPList": _security_ip_list(record), "SecurityIPMode": "normal",
        "IPType": "IPv4", "DBInstanceType": "Primary", "Category": record["category"],
        "MaxConnections": connections, "MaxIOPS": 10000, "DBInstanceMemory": memory,
        "DBInstanceCPU": str(cpu), "AccountMaxQuantity": 500, "DBMaxQuantity": 500,
        "MaintainTime": "18:00Z-22:00Z", "AvailabilityValue": "100.0%",
        "DeletionProtection": record["deletion_protection"],
        "ResourceGroupId": record["resource_group_id"], "VpcCloudInstanceId": "",
        "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
        "SlaveZones": {"SlaveZone": [{"ZoneId": record["zone_id"]}]},
    }


@PRODUCT.action("DescribeDBInstanceAttribute", (
    Param("DBInstanceId", required=True), Param("Expired"),
))
def describe_db_instance_attribute(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    return {"Items": {"DBInstanceAttribute": [attribute_view(record)]}}


# DescribeDBInstances `Tags` (V2 DescribeDBInstancesRequest.tags): "You can specify up to 5
# tags in a single request. Format: {"key1":"value1","key2":"value2"...}. If an instance
# matches any of the specified tags, the instance information is returned."
MAX_FILTER_TAGS = 5


def _wanted_tags(raw: str) -> list[dict[str, str]]:
    """The `Tags` filter: a JSON object of at most 5 key/value pairs (the documented format;
    anything else is refused with InvalidParameter, CHOSEN: no code is documented for it)."""
    try:
        value = json.loads(raw)
    except ValueError:
        raise errors.invalid_parameter("Tags") from None
    if not isinstance(value, dict) or not value or len(value) > MAX_FILTER_TAGS:
        raise errors.invalid_parameter("Tags")
    return [{"Key": str(k), "Value": str(v)} for k, v in value.items()]


def _has_any_tag(record: dict[str, Any], wanted: list[dict[str, str]]) -> bool:
    """An instance matches when it carries ANY of the wanted key/value pairs (exactly)."""
    have = {(t["Key"], t["Value"]) for t in record["tags"]}
    return any((w["Key"], w["Value"]) in have for w in wanted)


@PRODUCT.action("DescribeDBInstances", (
    Param("RegionId", required=True), Param("DBInstanceId"), Param("DBInstanceStatus"),
    Param("Engine"), Param("EngineVersion"), Param("VpcId"), Param("VSwitchId"),
    Param("ZoneId"), Param("InstanceNetworkType"), Param("SearchKey"),
    Param("DBInstanceType"), Param("PayType"), Param("Tags"), Param("DBInstanceClass"),
    Param("PageNumber", "integer", default=1, minimum=1),
    Param("PageSize", "integer", default=30, minimum=1, maximum=100),
))
def describe_db_instances(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    # One instance ID, matched exactly: Alibaba documents DBInstanceId here as "The instance
    # ID." (V2 model DescribeDBInstancesRequest; API reference api-rds-2014-08-15-
    # describedbinstances), never as a list, so "a,b" names no instance. A caller that wants
    # many instances pages through the region (PageSize 1-100, as declared below).
    wanted_id = params["DBInstanceId"]
    wanted = _wanted_tags(params["Tags"]) if params["Tags"] else []
    exact = {"DBInstanceStatus": "status", "Engine": "engine", "EngineVersion": "engine_version",
             "VpcId": "vpc_id", "VSwitchId": "vswitch_id", "ZoneId": "zone_id",
             "PayType": "pay_type", "DBInstanceClass": "instance_class"}
    found = []
    for record in sorted(instances(state).values(), key=lambda r: -r["created_at"]):
        if record["region_id"] != ctx.region_id or (wanted_id and record["id"] != wanted_id):
            continue
        if any(params[p] and record[field] != params[p] for p, field in exact.items()):
            continue
        if params["InstanceNetworkType"] and params["InstanceNetworkType"] != "VPC":
            continue
        if params["DBInstanceType"] and params["DBInstanceType"] != "Primary":
            continue
        key = params["SearchKey"]
        if key and key not in record["id"] and key not in record["description"]:
            continue
        if wanted and not _has_any_tag(record, wanted):
            continue
        found.append(record)
    shown = page(found, params["PageNumber"], params["PageSize"])
    return {
        "Items": {"DBInstance": [_list_view(r) for r in shown]},
        "PageNumber": params["PageNumber"], "PageRecordCount": len(shown),
        "TotalRecordCount": len(found), "NextToken": "",
    }


def _list_view(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "DBInstanceId": record["id"], "DBInstanceDescription": record["description"],
        "DBInstanceStatus": record["status"], "DBInstanceType": "Primary",
        "Engine": record["engine"], "EngineVersion": record["engine_version"],
        "DBInstanceClass": record["instance_class"], "DBInstanceStorageType":
        record["storage_type"], "DBInstanceNetType": record["net_type"],
        "InstanceNetworkType": "VPC", "ConnectionMode": "Standard",
        "ConnectionString": record["address"], "VpcId": record["vpc_id"],
        "VSwitchId": record["vswitch_id"], "ZoneId": record["zone_id"],
        "RegionId": record["region_id"], "PayType": record["pay_type"], "LockMode": "Unlock",
        "LockReason": "", "CreateTime": iso_utc(record["created_at"]), "ExpireTime": "",
        "Category": record["category"], "MutriORsignle": False,
        "ResourceGroupId": record["resource_group_id"],
        "DeletionProtection": record["deletion_protection"],
        "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
    }


# ----- DeleteDBInstance -------------------------------------------------------------------


@PRODUCT.action("DeleteDBInstance", (
    Param("DBInstanceId", required=True), Param("ReleasedKeepPolicy"),
))
def delete_db_instance(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    record["status"] = "Deleting"
    # The data and the endpoint go away at once; the record lingers while Deleting.
    runtime_of(ctx.cloud).destroy(record["id"])
    record["due"] = ctx.clock.after(DELETE_SECONDS)
    return {"RegionId": record["region_id"]}


# ----- the ticker: things that happen on their own ----------------------------------------


@PRODUCT.ticker
def advance(cloud: Cloud) -> None:
    runtime = runtime_of(cloud)
    table = instances(cloud.state)
    for instance_id, record in list(table.items()):
        try:
            _advance_instance(cloud, runtime, table, record)
        except Exception:
            log.exception("RDS %s: could not advance", instance_id)


def _advance_instance(cloud: Cloud, runtime: RdsRuntime, table: dict[str, Any],
                      record: dict[str, Any]) -> None:
    clock = cloud.clock
    status = record["status"]
    if status == "Creating" and clock.is_due(record["due"]) and runtime.is_ready(record["id"]):
        runtime.open_gate(record)
        record["status"], record["due"] = "Running", None
    elif status == "Deleting" and clock.is_due(record["due"]):
        cloud.plumbing.take_down(record["address"])
        network.release(cloud.state, record["address"])
        del table[record["id"]]
        return
    elif status == "Rebooting" and clock.is_due(record["due"]):
        rds_config.finish_restart(cloud, record)
    elif status == rds_encryption.SSL_MODIFYING and clock.is_due(record["due"]):
        rds_encryption.finish_ssl_change(cloud, record)
    if record["status"] == "Running":
        runtime.revive_if_dead(record["id"])
        rds_accounts.advance_accounts_and_databases(cloud, record)
        rds_config.advance_parameters_and_backups(cloud, record)


# ----- API-only instances (scale benchmarks) -----------------------------------------------


@control_route("POST", "rds/api-only-instances")
def add_api_only_instances(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """`count` Running RDS MySQL records with no server behind them (benchmarks/
    health_scale.py: hundreds of live clusters' instances on a 2-core machine).

    Every API call reads and lists them as it does any instance; what only a server knows is
    "no data": DescribeResourceUsage answers -1 (the API's own "no data is available"), and
    nothing listens at their address. Bought through no API call, so no ClientToken, order
    or bill; they are what an account already holds, like the seeded VPCs."""
    count = int(body.get("count") or 0)
    if not 1 <= count <= 5000:
        return 400, {"error": "count must be 1-5000"}
    with cloud.lock:
        vsw = network.vswitch(cloud.state, str(body.get("vswitch_id") or ""))
        if vsw is None:
            return 400, {"error": "no such vswitch_id"}
        version = str(body.get("engine_version") or "8.0")
        made = []
        for _ in range(count):
            instance_id = _new_instance_id(vsw["region_id"])
            instances(cloud.state)[instance_id] = {
                "id": instance_id, "region_id": vsw["region_id"], "zone_id": vsw["zone_id"],
                "vpc_id": vsw["vpc_id"], "vswitch_id": vsw["vswitch_id"], "engine": "MySQL",
                "engine_version": version, "instance_class": "mysql.n2.medium.2c",
                "class_spec": {"cpu": 2, "memory_mb": 4096, "max_connections": 2000},
                "storage": int(body.get("storage") or 20), "storage_type": "cloud_essd",
                "pay_type": "Postpaid", "net_type": "Intranet", "category": "HighAvailability",
                "description": str(body.get("description") or ""), "tags": [],
                "created_at": cloud.clock.now(), "status": "Running", "due": None,
                "address": "", "port": 3306,
                "security_groups": {DEFAULT_IP_ARRAY: {"ips": "127.0.0.1",
                                                       "network_type": "MIX", "attribute": ""}},
                "accounts": {}, "databases": {},
                "parameters": parameters.defaults_for(version), "pending_parameters": {},
                "parameters_due": None, "backups": [], "deletion_protection": False,
                "resource_group_id": "rg-acfmemulator", "order_id": "", "api_only": True,
            }
            made.append(instance_id)
        cloud.state.save()
    return 200, {"instance_ids": made}


@control_route("POST", "rds/api-only-instances/change")
def change_api_only_instance(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """What Alibaba's back end does to an API-only instance during a class or storage change
    (ModifyDBInstanceSpec: the status goes to DBInstanceClassChanging, then Running again
    with the new DBInstanceStorage): `{instance_id, status?, storage?}`. API-only records
    only: a served instance's status follows its server."""
    with cloud.lock:
        record = instances(cloud.state).get(str(body.get("instance_id") or ""))
        if record is None or not record.get("api_only"):
            return 400, {"error": "no such API-only instance"}
        if body.get("status"):
            record["status"] = str(body["status"])
        if body.get("storage"):
            record["storage"] = int(body["storage"])
        cloud.state.save()
    return 200, {"status": record["status"], "storage": record["storage"]}


# ----- runtime hooks ----------------------------------------------------------------------


@PRODUCT.on_start
def resume(cloud: Cloud) -> None:
    """Bring back every instance's server (and its endpoint if it was serving)."""
    runtime = runtime_of(cloud)
    reap_orphans(runtime.root)  # servers a crashed emulator left behind
    pgserver.reap_orphans(runtime.root)
    for record in instances(cloud.state).values():
        if record.get("api_only"):  # no server to bring back (add_api_only_instances)
            continue
        if record["status"] == "Deleting":
            runtime.destroy(record["id"])
            continue
        runtime.provision(record, background=False)
        if record["status"] in ("Running", "Rebooting", rds_encryption.SSL_MODIFYING):
            runtime.open_gate(record)


@PRODUCT.on_stop
def shut_down(cloud: Cloud) -> None:
    runtime_of(cloud).stop_all()


@PRODUCT.on_reset
def reset(cloud: Cloud) -> None:
    runtime = runtime_of(cloud)
    for instance_id in list(instances(cloud.state)):
        runtime.destroy(instance_id)
    cloud.state.bucket("rds").clear()


@PRODUCT.resources
def list_resources(cloud: Cloud) -> list[dict[str, Any]]:
    runtime = runtime_of(cloud)
    listed = []
    for record in instances(cloud.state).values():
        pid = runtime.pid(record["id"])
        listed.append({
            "type": "rds_instance", "id": record["id"], "state": record["status"],
            "tags": record["tags"], "addresses": [record["address"]],
            "ports": [int(record["port"])], "pids": [pid] if pid else [],
            "listening": runtime.listening(record["id"]), "error": runtime.error_of(record["id"]),
            "engine_version": record["engine_version"],
        })
    return listed



from sandbox.aliyun.rds import usage  # noqa: E402, F401 - registers DescribeResourceUsage
