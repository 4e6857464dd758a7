"""RDS 2014-08-15 DescribeAvailableZones / DescribeAvailableClasses, and the control API that
changes what a zone sells (see `rds_catalogue` for why)."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import control_route
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import catalogue, engines, parameters, rules
from sandbox.aliyun.rds.product import PRODUCT


def _check_engine(engine: str, version: str | None) -> engines.EngineRules:
    """The engine asked about, and its version if one was given (each engine its own)."""
    rules_of = engines.engine_named(engine)
    if version:
        rules_of.check_version(version)
    return rules_of


@PRODUCT.action("DescribeAvailableZones", (
    # V2 DescribeAvailableZonesRequest: RegionId and Engine required, the rest optional.
    Param("RegionId", required=True), Param("Engine", required=True),
    Param("EngineVersion"), Param("ZoneId"), Param("Category"), Param("DispenseMode"),
    Param("CommodityCode"), Param("DBInstanceName"),
))
def describe_available_zones(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    ctx.require_region()
    engine = _check_engine(params["Engine"], params["EngineVersion"] or None)
    zones = catalogue.available_zones(state, ctx.region_id, params["ZoneId"] or None,
                                      params["EngineVersion"] or None,
                                      params["Category"] or None, engine=engine.name)
    return {"AvailableZones": zones}


@PRODUCT.action("DescribeAvailableClasses", (
    # V2 DescribeAvailableClassesRequest marks these six required; the API reference also
    # lists InstanceChargeType as required, the V2 model does not (accepted either way).
    Param("RegionId", required=True), Param("ZoneId", required=True),
    Param("Engine", required=True), Param("EngineVersion", required=True),
    Param("DBInstanceStorageType", required=True, enum=rules.STORAGE_TYPES),
    Param("Category", required=True, enum=rules.CATEGORIES),
    Param("InstanceChargeType", enum=rules.PAY_TYPES), Param("OrderType"),
    Param("DBInstanceId"), Param("CommodityCode"),
))
def describe_available_classes(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    ctx.require_region()
    _check_engine(params["Engine"], params["EngineVersion"])
    entries = catalogue.offer(state, catalogue.Combination(
        ctx.region_id, params["ZoneId"], params["EngineVersion"], params["Category"],
        params["DBInstanceStorageType"]))
    # Chosen: a zone that sells nothing for the combination answers an empty list.
    return {"DBInstanceClasses": [catalogue.class_view(e) for e in entries]}


# ----- control API ---------------------------------------------------------------------------


def _combination(body: dict[str, Any]) -> catalogue.Combination:
    missing = [k for k in ("region_id", "zone_id", "engine_version") if not body.get(k)]
    if missing:
        raise ControlError(400, f"missing fields: {missing}")
    category = body.get("category", "HighAvailability")
    storage_type = body.get("storage_type", "cloud_essd")
    if category not in rules.CATEGORIES or storage_type not in rules.STORAGE_TYPES:
        raise ControlError(400, "unknown category or storage_type")
    return catalogue.Combination(str(body["region_id"]), str(body["zone_id"]),
                                 str(body["engine_version"]), category, storage_type)


@control_route("POST", "rds/catalogue")
def set_catalogue(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """{region_id, zone_id, engine_version, category?, storage_type?, classes: [{class, cpu,
    memory_gb, max_connections, storage_min, storage_max, storage_step}] | null (= seeded)}"""
    key = _combination(body)
    try:
        classes = None if body.get("classes") is None else catalogue.validate_classes(
            body["classes"])
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"bad classes: {exc}") from exc
    with cloud.lock:
        catalogue.set_offer(cloud.state, key, classes)
        cloud.state.save()
        return 200, {"classes": catalogue.offer(cloud.state, key)}


@control_route("POST", "rds/catalogue/show")
def show_catalogue(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    key = _combination(body)
    with cloud.lock:
        return 200, {"classes": catalogue.offer(cloud.state, key)}


def parameter_defaults(state: State, version: str) -> dict[str, str]:
    """Values new instances of `version` start with instead of RDS's defaults."""
    return dict(state.table("rds", "parameter_defaults").get(version, {}))


@control_route("POST", "rds/parameter-defaults")
def set_parameter_defaults(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """{engine_version, parameters: {name: value}}: what new instances start with (as if the
    account's default parameter template said so); `parameters: {}` restores RDS's."""
    version = str(body.get("engine_version", ""))
    values = body.get("parameters")
    if version not in rules.ENGINE_VERSIONS or not isinstance(values, dict):
        raise ControlError(400, "engine_version and a parameters object are required")
    for name, value in values.items():
        entry = parameters.template(version, name)
        if entry is None or not isinstance(value, str) or not entry.accepts(value):
            raise ControlError(400, f"{name}={value!r} is not a {version} parameter value")
    with cloud.lock:
        cloud.state.table("rds", "parameter_defaults")[version] = dict(values)
        cloud.state.save()
        return 200, {"engine_version": version, "parameters": values}
