"""RDS accounts, databases and privileges, created for real in the instance's MariaDB.

Why: kine logs in with the account the panel created and needs ReadWrite (CREATE, INDEX,
ALTER) on the database; a missing grant or a wrong password must fail exactly as it would
on RDS. Accounts are created at once but locked until they turn Available (so no password
is ever stored by the emulator); databases appear in MariaDB when they turn Running.
"""

from __future__ import annotations

import logging
from typing import Any

from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.paging import page
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import engines, rules
from sandbox.aliyun.rds.product import (
    ACCOUNT_QUOTA,
    ACCOUNT_SECONDS,
    DATABASE_SECONDS,
    DB_QUOTA,
    PRODUCT,
    find_instance,
    running_instance,
)
from sandbox.aliyun.rds.runtime import runtime_of

log = logging.getLogger(__name__)


# ----- accounts ---------------------------------------------------------------------------


@PRODUCT.action("CreateAccount", (
    Param("DBInstanceId", required=True), Param("AccountName", required=True),
    Param("AccountPassword", required=True),
    Param("AccountType", enum=("Normal", "Super"), default="Normal"),
    Param("AccountDescription"), Param("CheckPolicy", "boolean"),  # V2: bool
))
def create_account(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    name = params["AccountName"]
    engines.engine_of(record).check_account_name(name, record["engine_version"])
    if any(existing.lower() == name.lower() for existing in record["accounts"]):
        raise rules.ACCOUNT_DUPLICATE
    rules.check_password(params["AccountPassword"])
    rules.check_description(params["AccountDescription"] or "",
                            rules.ACCOUNT_DESCRIPTION_FORMAT)
    if len(record["accounts"]) >= ACCOUNT_QUOTA:
        raise rules.ACCOUNT_LIMIT
    account = {"name": name, "type": params["AccountType"],
               "description": params["AccountDescription"] or "", "status": "Unavailable",
               "due": ctx.clock.after(ACCOUNT_SECONDS), "privileges": {}}
    runtime_of(ctx.cloud).create_account(record["id"], account, params["AccountPassword"])
    record["accounts"][name] = account
    return {}


@PRODUCT.action("DescribeAccounts", (
    Param("DBInstanceId", required=True), Param("AccountName"),
    Param("PageNumber", "integer", default=1, minimum=1),
    Param("PageSize", "integer", default=30, minimum=1, maximum=200),
))
def describe_accounts(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    accounts = [a for a in record["accounts"].values()
                if not params["AccountName"] or a["name"] == params["AccountName"]]
    shown = page(accounts, params["PageNumber"], params["PageSize"])
    return {
        "Accounts": {"DBInstanceAccount": [_account_view(record, a) for a in shown]},
        "PageNumber": params["PageNumber"], "TotalRecordCount": len(accounts),
    }


def _account_view(record: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    privileges = [
        {"DBName": db, "AccountPrivilege": privilege,
         "AccountPrivilegeDetail": rules.privilege_detail(privilege)}
        for db, privilege in account["privileges"].items()
    ]
    return {
        "DBInstanceId": record["id"], "AccountName": account["name"],
        "AccountStatus": account["status"], "AccountType": account["type"],
        "AccountDescription": account["description"], "PrivExceeded": "0",
        "DatabasePrivileges": {"DatabasePrivilege": privileges},
    }


# ----- databases --------------------------------------------------------------------------


@PRODUCT.action("CreateDatabase", (
    Param("DBInstanceId", required=True), Param("DBName", required=True),
    Param("CharacterSetName", required=True), Param("DBDescription"),
    # V2 CreateDatabaseRequest also carries AccountName / AccountPrivilege (the account that
    # gets the new database, e.g. its PostgreSQL owner: AccountPrivilege=DBOwner).
    Param("AccountName"), Param("AccountPrivilege"),
))
def create_database(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    engine = engines.engine_of(record)
    name = params["DBName"]
    engine.check_db_name(name)
    if name in record["databases"]:
        raise rules.DB_DUPLICATE
    charset = engine.parse_charset(params["CharacterSetName"])
    rules.check_description(params["DBDescription"] or "", rules.DB_DESCRIPTION_FORMAT)
    owner = None
    if params["AccountName"] or params["AccountPrivilege"]:
        owner = record["accounts"].get(params["AccountName"] or "")
        if owner is None:
            raise rules.ACCOUNT_NOT_FOUND
        if params["AccountPrivilege"] not in engine.privileges:
            raise rules.PRIVILEGE_MALFORMED
    if len(record["databases"]) >= DB_QUOTA:
        raise rules.DB_LIMIT
    record["databases"][name] = {
        "name": name, "charset": engine.format_charset(charset),
        "description": params["DBDescription"] or "", "status": "Creating",
        "due": ctx.clock.after(DATABASE_SECONDS),
    }
    if owner is not None:  # applied when the database is made (the ticker)
        owner["privileges"][name] = params["AccountPrivilege"]
    return {}


@PRODUCT.action("DescribeDatabases", (
    Param("DBInstanceId", required=True), Param("DBName"), Param("DBStatus"),
    Param("PageNumber", "integer", default=1, minimum=1),
    Param("PageSize", "integer", default=30, minimum=1, maximum=100),
))
def describe_databases(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    databases = [
        d for d in record["databases"].values()
        if (not params["DBName"] or d["name"] == params["DBName"])
        and (not params["DBStatus"] or d["status"] == params["DBStatus"])
    ]
    shown = page(databases, params["PageNumber"], params["PageSize"])
    # Paged by PageNumber/PageSize, yet the answer carries no paging fields (V2 model
    # DescribeDatabasesResponseBody, alibabacloud-rds20140815 16.0.2: RequestId, Databases).
    return {"Databases": {"Database": [_database_view(record, d) for d in shown]}}


def _database_view(record: dict[str, Any], database: dict[str, Any]) -> dict[str, Any]:
    holders = [
        {"Account": account["name"], "AccountPrivilege": account["privileges"][database["name"]],
         "AccountPrivilegeDetail": rules.privilege_detail(
             account["privileges"][database["name"]])}
        for account in record["accounts"].values() if database["name"] in account["privileges"]
    ]
    return {
        "DBName": database["name"], "DBStatus": database["status"],
        "CharacterSetName": database["charset"], "DBDescription": database["description"],
        "Engine": record.get("engine", "MySQL"), "DBInstanceId": record["id"],
        "Accounts": {"AccountPrivilegeInfo": holders},
    }


# ----- privileges -------------------------------------------------------------------------


@PRODUCT.action("GrantAccountPrivilege", (
    Param("DBInstanceId", required=True), Param("AccountName", required=True),
    Param("DBName", required=True), Param("AccountPrivilege", required=True),
))
def grant_account_privilege(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    account = record["accounts"].get(params["AccountName"])
    if account is None:
        raise rules.ACCOUNT_NOT_FOUND
    names = params["DBName"].split(",")
    privileges = params["AccountPrivilege"].split(",")
    if any(p not in engines.engine_of(record).privileges for p in privileges):
        raise rules.PRIVILEGE_MALFORMED
    if len(privileges) != len(names):
        raise rules.PRIVILEGE_MISMATCH
    for name in names:
        if name not in record["databases"]:
            raise rules.DB_NOT_FOUND
    runtime = runtime_of(ctx.cloud)
    for name, privilege in zip(names, privileges, strict=True):
        account["privileges"][name] = privilege
        if record["databases"][name]["status"] == "Running":
            runtime.grant(record["id"], account["name"], name, privilege)
    return {}


# ----- removal and password reset ------------------------------------------------------


@PRODUCT.action("ResetAccountPassword", (
    Param("DBInstanceId", required=True), Param("AccountName", required=True),
    Param("AccountPassword", required=True),
))
def reset_account_password(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    if params["AccountName"] not in record["accounts"]:
        raise rules.ACCOUNT_NOT_FOUND
    rules.check_password(params["AccountPassword"])
    runtime_of(ctx.cloud).set_password(record["id"], params["AccountName"],
                                       params["AccountPassword"])
    return {}


@PRODUCT.action("DeleteAccount", (
    Param("DBInstanceId", required=True), Param("AccountName", required=True),
))
def delete_account(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    if params["AccountName"] not in record["accounts"]:
        raise rules.ACCOUNT_NOT_FOUND
    runtime_of(ctx.cloud).drop_account(record["id"], params["AccountName"])
    del record["accounts"][params["AccountName"]]
    return {}


@PRODUCT.action("DeleteDatabase", (
    Param("DBInstanceId", required=True), Param("DBName", required=True),
))
def delete_database(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    name = params["DBName"]
    if name not in record["databases"]:
        raise rules.DB_NOT_FOUND
    runtime = runtime_of(ctx.cloud)
    runtime.drop_database(record["id"], name)
    del record["databases"][name]
    for account in record["accounts"].values():
        if account["privileges"].pop(name, None):
            runtime.revoke(record["id"], account["name"], name)
    return {}


# ----- the ticker part --------------------------------------------------------------------


def advance_accounts_and_databases(cloud: Cloud, record: dict[str, Any]) -> None:
    """Unlock accounts and create databases whose time has come, then apply their grants."""
    runtime = runtime_of(cloud)
    for account in record["accounts"].values():
        if account["status"] == "Unavailable" and cloud.clock.is_due(account["due"]):
            runtime.unlock_account(record["id"], account["name"])
            account["status"], account["due"] = "Available", None
    for database in record["databases"].values():
        if database["status"] == "Creating" and cloud.clock.is_due(database["due"]):
            runtime.create_database(record["id"], database["name"], database["charset"])
            database["status"], database["due"] = "Running", None
            for account in record["accounts"].values():
                privilege = account["privileges"].get(database["name"])
                if privilege:
                    runtime.grant(record["id"], account["name"], database["name"], privilege)
