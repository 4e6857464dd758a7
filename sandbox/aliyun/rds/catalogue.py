"""What RDS MySQL and RDS PostgreSQL sell, per zone: versions, editions, storage types, classes.

Why: on Alibaba Cloud the classes a zone sells (and each class's storage range) come from
`DescribeAvailableZones` / `DescribeAvailableClasses` (rds 2014-08-15) and change over time;
CreateDBInstance refuses a class the zone does not sell with `InvalidDBInstanceClass.NotFound`
(404, "Specified DB instance class is not found." — RDS error table, e.g. the API reference
pages of ModifyDBProxyInstance / ModifyDBInstanceSpec). A panel that carries its own class
list breaks the day a class stops selling, so the emulator answers from a catalogue that a
test can change through the control API (`POST /_emulator/rds/catalogue`).

Response shapes follow the V2 SDK models (alibabacloud_rds20140815
`DescribeAvailableZonesResponseBody`, `DescribeAvailableClassesResponseBody`): lists with no
inner wrapper key, `DBInstanceStorageRange {MinValue, MaxValue, Step}`.

The default catalogue is modelled on Alibaba's "Primary ApsaraDB RDS for MySQL instance types"
table: HighAvailability cloud-disk classes end in `.2c`, Basic ones in `.1`, local-SSD ones are
`rds.mysql.*`. RDS PostgreSQL's cloud-disk classes follow the same table for PostgreSQL
(`pg.n2.2c.2m`: 2 cores, 4 GB, HighAvailability; `.1m`: Basic; the form Terraform's
alicloud_db_instance examples use). Cores and memory follow the class names; the connection
limits and storage ranges are plausible values chosen for the emulator, not copied from a
price sheet.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sandbox.aliyun.gateway import network
from sandbox.aliyun.gateway.errors import ApiError
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import engines

ENGINE = "MySQL"
PG_ENGINE = "PostgreSQL"
# 8.0 and 8.4 are sold; 5.7 is sold under RDS extended support (to ~2028-10); 5.6/5.5 are
# being retired and are not sold to new instances (Alibaba help, "Major version lifecycle",
# apsaradb-rds-for-mysql, updated 2026-03-28).
SOLD_VERSIONS = ("5.7", "8.0", "8.4")
# RDS PostgreSQL sells 14 to 18 to new instances (V2 CreateDBInstanceRequest lists 10.0-18.0;
# 10-13 are past their community end of life and in RDS's extended support only). K3s QA
# validated PostgreSQL 18.3; kine's CI tests 14-17 (today-2026.md).
PG_SOLD_VERSIONS = ("14.0", "15.0", "16.0", "17.0", "18.0")
SOLD = {ENGINE: SOLD_VERSIONS, PG_ENGINE: PG_SOLD_VERSIONS}
CLOUD_STORAGE = ("cloud_essd",)

CLASS_NOT_FOUND = ApiError(404, "InvalidDBInstanceClass.NotFound",
                           "Specified DB instance class is not found.")
# RDS error table: 400 InvalidInstanceLevel.DiskType "Specified instance level not support
# request disk type" (the class exists, but not with that storage type).
CLASS_DISK_TYPE = ApiError(400, "InvalidInstanceLevel.DiskType",
                           "Specified instance level not support request disk type")


def _cls(code: str, cpu: int, memory_gb: int, connections: int,
         storage: tuple[int, int, int], *, hourly_cny: float) -> dict[str, Any]:
    """One class; `hourly_cny` is its seeded pay-as-you-go price (DescribePrice), of our
    choosing like the rest, so that every class the catalogue sells has a price."""
    low, high, step = storage
    return {"class": code, "cpu": cpu, "memory_mb": memory_gb * 1024,
            "max_connections": connections, "storage_min": low, "storage_max": high,
            "storage_step": step, "hourly_cny": hourly_cny}


_HA_CLOUD = [
    _cls("mysql.n2.small.2c", 1, 2, 600, (20, 32000, 5), hourly_cny=0.58),
    _cls("mysql.n2.medium.2c", 2, 4, 1200, (20, 32000, 5), hourly_cny=1.17),
    _cls("mysql.n4.medium.2c", 2, 8, 2000, (20, 32000, 5), hourly_cny=1.73),
    _cls("mysql.n2.large.2c", 4, 8, 2500, (20, 32000, 5), hourly_cny=2.33),
    _cls("mysql.n4.large.2c", 4, 16, 4000, (20, 32000, 5), hourly_cny=3.45),
    _cls("mysql.n2.xlarge.2c", 8, 16, 5000, (20, 32000, 5), hourly_cny=4.66),
]
_BASIC_CLOUD = [
    _cls("mysql.n1.micro.1", 1, 1, 300, (20, 2000, 5), hourly_cny=0.12),
    _cls("mysql.n2.small.1", 1, 2, 600, (20, 2000, 5), hourly_cny=0.29),
    _cls("mysql.n2.medium.1", 2, 4, 1200, (20, 2000, 5), hourly_cny=0.58),
    _cls("mysql.n4.medium.1", 2, 8, 2000, (20, 2000, 5), hourly_cny=0.86),
]
_HA_LOCAL = [
    _cls("rds.mysql.s2.large", 2, 4, 1200, (5, 1000, 5), hourly_cny=1.25),
    _cls("rds.mysql.s3.large", 4, 8, 2000, (5, 1000, 5), hourly_cny=2.10),
    _cls("rds.mysql.m1.medium", 4, 16, 4000, (5, 2000, 5), hourly_cny=3.20),
]

_PG_HA_CLOUD = [
    _cls("pg.n2.2c.2m", 2, 4, 400, (20, 32000, 5), hourly_cny=1.21),
    _cls("pg.n4.2c.2m", 2, 8, 800, (20, 32000, 5), hourly_cny=1.79),
    _cls("pg.n2.4c.2m", 4, 8, 800, (20, 32000, 5), hourly_cny=2.41),
    _cls("pg.n4.4c.2m", 4, 16, 1600, (20, 32000, 5), hourly_cny=3.57),
]
_PG_BASIC_CLOUD = [
    _cls("pg.n2.2c.1m", 2, 4, 400, (20, 2000, 5), hourly_cny=0.60),
    _cls("pg.n4.2c.1m", 2, 8, 800, (20, 2000, 5), hourly_cny=0.89),
]


def class_prices(state: State) -> dict[str, float]:
    """{class: CNY per hour} of every class the catalogue sells (DescribePrice's list): the
    seeded classes, and those a test put on sale through the control API."""
    prices = {c["class"]: c["hourly_cny"] for c in (*_HA_CLOUD, *_BASIC_CLOUD, *_HA_LOCAL,
                                                     *_PG_HA_CLOUD, *_PG_BASIC_CLOUD)}
    for classes in _overrides(state).values():
        prices.update({c["class"]: c["hourly_cny"] for c in classes or []})
    return prices


def _default_hourly_price(cpu: int, memory_gb: int) -> float:
    """A class put on sale without a price: by its size, near the seeded classes' rates."""
    return round(0.25 * cpu + 0.08 * memory_gb, 2)


def default_offer(version: str, category: str, storage_type: str) -> list[dict[str, Any]]:
    """The seeded classes of one (version, edition, storage type) in any seeded zone."""
    if version in PG_SOLD_VERSIONS:  # cloud disks only (RDS PostgreSQL's local SSDs: legacy)
        seeded = {("HighAvailability", "cloud_essd"): _PG_HA_CLOUD,
                  ("Basic", "cloud_essd"): _PG_BASIC_CLOUD}.get((category, storage_type), [])
        return [dict(c) for c in seeded]
    if version not in SOLD_VERSIONS:
        return []
    if category == "HighAvailability" and storage_type == "cloud_essd":
        return [dict(c) for c in _HA_CLOUD]
    if category == "Basic" and storage_type == "cloud_essd":
        return [dict(c) for c in _BASIC_CLOUD]
    if category == "HighAvailability" and storage_type == "local_ssd" and version != "8.4":
        return [dict(c) for c in _HA_LOCAL]
    return []


COMBINATIONS = (("HighAvailability", "cloud_essd"), ("Basic", "cloud_essd"),
                ("HighAvailability", "local_ssd"))


class Combination(NamedTuple):
    """Where and what: one DescribeAvailableClasses question."""

    region_id: str
    zone_id: str
    version: str
    category: str
    storage_type: str


def _key(combination: Combination) -> str:
    return "|".join(combination)


def _overrides(state: State) -> dict[str, Any]:
    return state.table("rds", "catalogue")


def offer(state: State, combination: Combination) -> list[dict[str, Any]]:
    """The classes sold in that zone for that version, edition and storage type."""
    if not network.zone_exists(state, combination.region_id, combination.zone_id):
        return []
    overridden = _overrides(state).get(_key(combination))
    if overridden is not None:
        return [dict(c) for c in overridden]
    return default_offer(combination.version, combination.category, combination.storage_type)


def find_class(state: State, combination: Combination, instance_class: str) -> dict[str, Any]:
    """The catalogue entry CreateDBInstance buys, or the error RDS answers."""
    for entry in offer(state, combination):
        if entry["class"] == instance_class:
            return entry
    for category, storage_type in COMBINATIONS:
        other = combination._replace(storage_type=storage_type)
        if category != combination.category or other == combination:
            continue
        if any(e["class"] == instance_class for e in offer(state, other)):
            raise CLASS_DISK_TYPE
    raise CLASS_NOT_FOUND


def storage_fits(entry: dict[str, Any], storage_gb: int) -> bool:
    return (entry["storage_min"] <= storage_gb <= entry["storage_max"]
            and (storage_gb - entry["storage_min"]) % entry["storage_step"] == 0)


def set_offer(state: State, combination: Combination,
              classes: list[dict[str, Any]] | None) -> None:
    """Replace what the zone sells for that combination (None: back to the seeded list)."""
    key = _key(combination)
    if classes is None:
        _overrides(state).pop(key, None)
    else:
        _overrides(state)[key] = [dict(c) for c in classes]


def available_zones(state: State, region_id: str, zone_id: str | None, version: str | None,
                    category: str | None, *, engine: str = ENGINE) -> list[dict[str, Any]]:
    """DescribeAvailableZones' `AvailableZones`: only combinations with a class on sale."""
    sold = SOLD[engine]
    found = network.region(state, region_id)
    zones = list(found["zones"]) if found else []
    answer = []
    for zone in zones:
        if zone_id and zone != zone_id:
            continue
        versions = []
        for candidate in sold + tuple(sorted(_override_versions(state, engine) - set(sold))):
            if version and candidate != version:
                continue
            categories: dict[str, list[dict[str, str]]] = {}
            for cat, storage in COMBINATIONS:
                if category and cat != category:
                    continue
                if offer(state, Combination(region_id, zone, candidate, cat, storage)):
                    categories.setdefault(cat, []).append({"StorageType": storage})
            if categories:
                versions.append({"Version": candidate, "SupportedCategorys": [
                    {"Category": cat, "SupportedStorageTypes": types}
                    for cat, types in categories.items()]})
        if versions:
            answer.append({"RegionId": region_id, "ZoneId": zone, "SupportedEngines": [
                {"Engine": engine, "SupportedEngineVersions": versions}]})
    return answer


def _override_versions(state: State, engine: str) -> set[str]:
    """Versions a test put on sale for `engine` (PostgreSQL's are the `NN.0` ones)."""
    versions = {key.split("|")[2] for key, classes in _overrides(state).items() if classes}
    return {v for v in versions if engines.engine_of_version(v).name == engine}


def class_view(entry: dict[str, Any]) -> dict[str, Any]:
    """One `DBInstanceClasses` item as the V2 model names its fields."""
    return {"DBInstanceClass": entry["class"], "DBInstanceStorageRange": {
        "MinValue": entry["storage_min"], "MaxValue": entry["storage_max"],
        "Step": entry["storage_step"]}}


def validate_classes(classes: Any) -> list[dict[str, Any]]:
    """A control-API class list, checked so a test cannot seed something nonsensical."""
    if not isinstance(classes, list):
        raise ValueError("classes must be a list")
    checked = []
    for item in classes:
        if not isinstance(item, dict) or not isinstance(item.get("class"), str):
            raise ValueError("each class needs a 'class' code")
        cpu, memory_gb = int(item.get("cpu", 2)), int(item.get("memory_gb", 4))
        entry = _cls(item["class"], cpu, memory_gb, int(item.get("max_connections", 1200)),
                     (int(item.get("storage_min", 20)), int(item.get("storage_max", 32000)),
                      int(item.get("storage_step", 5))),
                     hourly_cny=float(item.get("hourly_cny",
                                               _default_hourly_price(cpu, memory_gb))))
        if entry["storage_step"] <= 0 or entry["storage_min"] > entry["storage_max"]:
            raise ValueError(f"bad storage range for {entry['class']}")
        checked.append(entry)
    return checked
