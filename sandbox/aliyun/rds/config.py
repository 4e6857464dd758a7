"""RDS parameters (templates, modification, restart) and manual backups.

Why: `innodb_large_prefix=ON` is the fix the K3s-on-RDS recipe needs on MySQL 5.6/5.7. As on
RDS, ModifyParameter returns at once with the instance still Running; the new value shows
in ConfigParameters first and reaches RunningParameters (and the real server) only after a
while, so a client must poll DescribeParameters, not the instance status (Terraform's
WaitForDBParameter does exactly that). A parameter that needs a restart is applied only
with Forcerestart=true: the instance is Rebooting meanwhile and clients are cut off.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.clock import iso_utc, parse_iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import parameters, rules
from sandbox.aliyun.rds.product import (
    BACKUP_SECONDS,
    PARAMETER_SECONDS,
    PRODUCT,
    RESTART_SECONDS,
    find_instance,
    running_instance,
)
from sandbox.aliyun.rds.runtime import ParameterRefused, runtime_of

log = logging.getLogger(__name__)
# DescribeModifyParameterLog `Status`: the docs list Applied and Syncing; "Failed" for a task
# the server refused is chosen (no documented value found).
APPLIED, SYNCING, FAILED = "Applied", "Syncing", "Failed"


# ----- parameters -------------------------------------------------------------------------


@PRODUCT.action("DescribeParameterTemplates", (
    Param("Engine", required=True), Param("EngineVersion", required=True),
    Param("DBInstanceId"), Param("Category"), Param("RegionId"),
))
def describe_parameter_templates(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    if params["Engine"].lower() != "mysql":
        raise errors.ApiError(400, "InvalidEngine.Malformed",
                              "The specified parameter Engine is not valid.")
    version = params["EngineVersion"]
    if version not in rules.ENGINE_VERSIONS:
        raise rules.ENGINE_VERSION_MALFORMED
    records = [
        {"ParameterName": t.name, "ParameterValue": t.default_for(version),
         "ForceModify": "true", "ForceRestart": "true" if t.force_restart else "false",
         "CheckingCode": t.checking_code, "ParameterDescription": t.description}
        for t in parameters.templates_for(version)
    ]
    return {"Engine": "mysql", "EngineVersion": version, "ParameterCount": str(len(records)),
            "Parameters": {"TemplateRecord": records}}


@PRODUCT.action("DescribeParameters", (
    Param("DBInstanceId", required=True), Param("ClientToken"),
))
def describe_parameters(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    version = record["engine_version"]
    running = [
        {"ParameterName": t.name, "ParameterValue": record["parameters"][t.name],
         "ParameterDescription": t.description, "ParameterDefaultValue": t.default_for(version),
         "ParameterValueRange": t.checking_code}
        for t in parameters.templates_for(version)
    ]
    pending = [
        {"ParameterName": name, "ParameterValue": value,
         "ParameterDescription": parameters.template(version, name).description}  # type: ignore[union-attr]
        for name, value in record["pending_parameters"].items()
    ]
    return {
        "Engine": record.get("engine", "MySQL"), "EngineVersion": version,
        "ConfigParameters": {"DBInstanceParameter": pending},
        "RunningParameters": {"DBInstanceParameter": running},
        "ParamGroupInfo": {"ParamGroupId": "", "ParameterGroupName": "",
                           "ParameterGroupDesc": "", "ParameterGroupType": ""},
    }


def _requested_parameters(raw: str, version: str) -> dict[str, str]:
    try:
        requested = json.loads(raw)
    except ValueError:
        raise errors.invalid_parameter("Parameters") from None
    if not isinstance(requested, dict) or not requested:
        raise errors.invalid_parameter("Parameters")
    refused = {}
    for name, value in requested.items():
        entry = parameters.template(version, name)
        if entry is None or not isinstance(value, str) or not entry.accepts(value):
            refused[name] = str(value)
    if refused:
        raise rules.parameter_format(refused)
    return requested


@PRODUCT.action("ModifyParameter", (
    Param("DBInstanceId", required=True), Param("Parameters", required=True),
    Param("Forcerestart", "boolean", default=False), Param("ParameterGroupId"),
    Param("SwitchTimeMode", enum=("Immediate", "MaintainTime", "ScheduleTime")),
    Param("SwitchTime"),
))
def modify_parameter(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    requested = _requested_parameters(params.raw["Parameters"], record["engine_version"])
    changed = {name: value for name, value in requested.items()
               if record["parameters"][name] != value
               or record["pending_parameters"].get(name, value) != value}
    record["pending_parameters"].update(changed)
    log_entries = record.setdefault("parameter_log", [])
    for name, value in changed.items():
        log_entries.append({"name": name, "old": record["parameters"][name], "new": value,
                            "at": ctx.clock.now(), "status": SYNCING})
    needs_restart = any(
        parameters.template(record["engine_version"], name).force_restart  # type: ignore[union-attr]
        for name in record["pending_parameters"]
    )
    if needs_restart and params["Forcerestart"]:
        record["status"], record["due"] = "Rebooting", ctx.clock.after(RESTART_SECONDS)
    elif changed:
        record["parameters_due"] = ctx.clock.after(PARAMETER_SECONDS)
    return {}


def _apply_dynamic(cloud: Cloud, record: dict[str, Any]) -> None:
    """The parameter task: every dynamic pending value reaches the server, or none does.

    Why all or nothing: a value MariaDB refuses used to stay pending and be retried every
    tick forever, while DescribeParameters already showed the new values running. On RDS
    the modification task fails and the running values stay what they were; the parameter
    log (DescribeModifyParameterLog) shows the entries as failed.
    """
    version = record["engine_version"]
    dynamic = {
        name: value for name, value in record["pending_parameters"].items()
        if not parameters.template(version, name).force_restart  # type: ignore[union-attr]
    }
    try:
        runtime_of(cloud).apply_parameters(record, dynamic)
    except ParameterRefused as exc:
        log.warning("RDS %s: parameter task failed, %s", record["id"], exc)
        _settle_log(record, dynamic, FAILED)
    else:
        record["parameters"].update(dynamic)
        _settle_log(record, dynamic, APPLIED)
    for name in dynamic:
        del record["pending_parameters"][name]
    record["parameters_due"] = None


def _settle_log(record: dict[str, Any], names: dict[str, str], status: str) -> None:
    for entry in record.get("parameter_log", []):
        if entry["status"] == SYNCING and entry["name"] in names:
            entry["status"] = status


def finish_restart(cloud: Cloud, record: dict[str, Any]) -> None:
    """The Rebooting instance comes back with every pending parameter in force."""
    runtime = runtime_of(cloud)
    _apply_dynamic(cloud, record)
    _settle_log(record, record["pending_parameters"], APPLIED)
    record["parameters"].update(record["pending_parameters"])
    record["pending_parameters"] = {}
    runtime.restart_server(record)
    record["status"], record["due"] = "Running", None


def _log_window_edge(params: Params, name: str) -> float:
    """StartTime/EndTime in `yyyy-MM-ddTHH:mmZ` (the API reference's form; seconds accepted)."""
    text = params[name]
    for candidate in (text, text.replace("Z", ":00Z")):
        try:
            return parse_iso_utc(candidate)
        except ValueError:
            continue
    raise errors.ApiError(400, f"Invalid{name}.Format",
                          f"Specified {name} is not valid.")  # code chosen: none documented


# StartTime and EndTime are required (V2 DescribeModifyParameterLogRequest, checked by
# tests/conformance): the log is always asked for a window.
@PRODUCT.action("DescribeModifyParameterLog", (
    Param("DBInstanceId", required=True), Param("StartTime", required=True),
    Param("EndTime", required=True),
    Param("PageNumber", "integer", default=1, minimum=1),
    Param("PageSize", "integer", default=30, minimum=30, maximum=100),
))
def describe_modify_parameter_log(
    state: State, params: Params, ctx: RequestContext,
) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    start, end = _log_window_edge(params, "StartTime"), _log_window_edge(params, "EndTime")
    entries = sorted((e for e in record.get("parameter_log", []) if start <= e["at"] <= end),
                     key=lambda e: -e["at"])
    shown = page(entries, params["PageNumber"], params["PageSize"])
    return {
        "DBInstanceId": record["id"], "Engine": record.get("engine", "MySQL"), "EngineVersion":
        record["engine_version"], "PageNumber": params["PageNumber"],
        "PageRecordCount": len(shown), "TotalRecordCount": len(entries),
        "Items": {"ParameterChangeLog": [
            {"ModifyTime": iso_utc(e["at"]), "ParameterName": e["name"],
             "OldParameterValue": e["old"], "NewParameterValue": e["new"],
             "Status": e["status"]} for e in shown]},
    }


# ----- backups ----------------------------------------------------------------------------


@PRODUCT.action("CreateBackup", (
    Param("DBInstanceId", required=True),
    Param("BackupMethod", enum=("Physical", "Logical", "Snapshot"), default="Physical"),
    Param("BackupType", enum=("Auto", "FullBackup"), default="Auto"),
    Param("BackupStrategy", enum=("db", "instance")), Param("DBName"),
))
def create_backup(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    method = _backup_method(record, params)
    if any(b["status"] == "Running" for b in record["backups"]):
        raise errors.ApiError(403, "BackupJobExists", "Backup job already exists.")
    job_id = str(secrets.randbelow(10**9) + 10**9)
    backup = {"job_id": job_id, "id": str(secrets.randbelow(10**10) + 10**10),
              "method": method, "status": "Running",
              "started_at": ctx.clock.now(), "due": ctx.clock.after(BACKUP_SECONDS),
              "finished_at": None, "size": 0, "dump_done": False}
    record["backups"].append(backup)
    home = runtime_of(ctx.cloud).home(record["id"])
    threading.Thread(target=_dump, args=(ctx.cloud, record["id"], home, backup["id"]),
                     daemon=True).start()
    return {"BackupJobId": job_id}


# CreateBackup error table: 400 InvalidBackupMethod.ValueNotSupport.
BACKUP_METHOD_NOT_SUPPORTED = errors.ApiError(
    400, "InvalidBackupMethod.ValueNotSupport", 'The specified parameter "BackupMethod" is not '
    "valid.")


def _backup_method(record: dict[str, Any], params: Params) -> str:
    """Physical backups for local SSDs, snapshots for cloud disks.

    Alibaba help "Back up individual databases and tables of an ApsaraDB RDS for MySQL
    instance": instances that use standard or enhanced SSDs (cloud disks) support only
    snapshot backups; the V2 CreateBackupRequest docstring lists Logical, Physical, Snapshot.
    An explicit mismatch is refused; without BackupMethod the storage's own method is used.
    """
    local = record.get("storage_type") == "local_ssd"
    native = "Physical" if local else "Snapshot"
    if not params.given("BackupMethod"):
        return native
    method = params["BackupMethod"]
    if method == "Logical" and record["databases"]:
        return method
    if method != native:
        raise BACKUP_METHOD_NOT_SUPPORTED
    return method


def _dump(cloud: Cloud, instance_id: str, home: Path, backup_id: str) -> None:
    """A real logical dump of every database (so a backup has a real size and content)."""
    target = home / "backups" / f"{backup_id}.sql"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        result = subprocess.run(
            ["mariadb-dump", f"--defaults-extra-file={home / 'admin.cnf'}", "--all-databases",
             "--single-transaction", "--skip-lock-tables"],
            stdout=out, stderr=subprocess.PIPE, timeout=600, check=False,
        )
    with cloud.lock:
        record = cloud.state.table("rds", "instances").get(instance_id)
        for backup in record["backups"] if record else []:
            if backup["id"] == backup_id:
                backup["dump_done"] = True
                backup["size"] = target.stat().st_size if result.returncode == 0 else 0
                backup["dump_failed"] = result.returncode != 0
        cloud.state.save()
    if result.returncode != 0:
        log.error("backup %s of %s failed: %s", backup_id, instance_id, result.stderr[-500:])


@PRODUCT.action("DescribeBackups", (
    Param("DBInstanceId", required=True), Param("BackupId"), Param("BackupStatus"),
    Param("BackupMode"), Param("StartTime"), Param("EndTime"),
    Param("PageNumber", "integer", default=1, minimum=1),
    Param("PageSize", "integer", default=30, minimum=30, maximum=100),
))
def describe_backups(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    finished = [
        b for b in record["backups"] if b["status"] != "Running"
        and (not params["BackupId"] or b["id"] == params["BackupId"])
        and (not params["BackupStatus"] or b["status"] == params["BackupStatus"])
        and (not params["BackupMode"] or params["BackupMode"] == "Manual")
    ]
    shown = page(finished, params["PageNumber"], params["PageSize"])
    return {
        "Items": {"Backup": [_backup_view(record, b) for b in shown]},
        "TotalRecordCount": str(len(finished)), "PageNumber": str(params["PageNumber"]),
        "PageRecordCount": str(len(shown)),
    }  # no TotalBackupSize: not in the V2 model (alibabacloud-rds20140815 16.0.2)


def _backup_view(record: dict[str, Any], backup: dict[str, Any]) -> dict[str, Any]:
    return {
        "BackupId": backup["id"], "DBInstanceId": record["id"],
        "BackupStatus": backup["status"], "BackupStartTime": iso_utc(backup["started_at"]),
        "BackupEndTime": iso_utc(backup["finished_at"]), "BackupType": "FullBackup",
        "BackupMode": "Manual", "BackupMethod": backup["method"], "BackupSize": backup["size"],
        "BackupDownloadURL": "", "BackupIntranetDownloadURL": "",
        "BackupInitiator": "User", "HostInstanceID": "1", "StoreStatus": "Disabled",
        "ConsistentTime": int(backup["finished_at"]), "IsAvail": 1,
    }  # BackupLocation/BackupDBNames: not in the V2 model (alibabacloud-rds20140815 16.0.2)


# ----- the ticker part --------------------------------------------------------------------


def advance_parameters_and_backups(cloud: Cloud, record: dict[str, Any]) -> None:
    if record["parameters_due"] is not None and cloud.clock.is_due(record["parameters_due"]):
        _apply_dynamic(cloud, record)
    for backup in record["backups"]:
        if backup["status"] == "Running" and backup["dump_done"] and cloud.clock.is_due(
            backup["due"],
        ):
            backup["status"] = "Failed" if backup.get("dump_failed") else "Success"
            backup["finished_at"] = cloud.clock.now()
