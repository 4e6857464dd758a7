"""RDS through the official SDK: states, rules, response shapes, and a real MySQL behind it.

One 5.7 instance (account `k3s`, database `k3s`, ReadWrite) serves most tests of this
module; tests add to it (accounts, whitelist groups, parameters) without relying on each
other, except that the 767-byte test runs before anything turns innodb_large_prefix ON.
Time scale 0.01: creating takes 3 s.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkrds.request.v20140815.CreateAccountRequest import CreateAccountRequest
from aliyunsdkrds.request.v20140815.CreateBackupRequest import CreateBackupRequest
from aliyunsdkrds.request.v20140815.CreateDatabaseRequest import CreateDatabaseRequest
from aliyunsdkrds.request.v20140815.CreateDBInstanceRequest import CreateDBInstanceRequest
from aliyunsdkrds.request.v20140815.DeleteAccountRequest import DeleteAccountRequest
from aliyunsdkrds.request.v20140815.DeleteDatabaseRequest import DeleteDatabaseRequest
from aliyunsdkrds.request.v20140815.DeleteDBInstanceRequest import DeleteDBInstanceRequest
from aliyunsdkrds.request.v20140815.DescribeAccountsRequest import DescribeAccountsRequest
from aliyunsdkrds.request.v20140815.DescribeAvailableClassesRequest import (
    DescribeAvailableClassesRequest,
)
from aliyunsdkrds.request.v20140815.DescribeAvailableZonesRequest import (
    DescribeAvailableZonesRequest,
)
from aliyunsdkrds.request.v20140815.DescribeBackupsRequest import DescribeBackupsRequest
from aliyunsdkrds.request.v20140815.DescribeDatabasesRequest import DescribeDatabasesRequest
from aliyunsdkrds.request.v20140815.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstanceIPArrayListRequest import (
    DescribeDBInstanceIPArrayListRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstanceNetInfoRequest import (
    DescribeDBInstanceNetInfoRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstancesRequest import DescribeDBInstancesRequest
from aliyunsdkrds.request.v20140815.DescribeModifyParameterLogRequest import (
    DescribeModifyParameterLogRequest,
)
from aliyunsdkrds.request.v20140815.DescribeParametersRequest import DescribeParametersRequest
from aliyunsdkrds.request.v20140815.DescribeParameterTemplatesRequest import (
    DescribeParameterTemplatesRequest,
)
from aliyunsdkrds.request.v20140815.GrantAccountPrivilegeRequest import (
    GrantAccountPrivilegeRequest,
)
from aliyunsdkrds.request.v20140815.ModifyParameterRequest import ModifyParameterRequest
from aliyunsdkrds.request.v20140815.ModifySecurityIpsRequest import ModifySecurityIpsRequest
from aliyunsdkrds.request.v20140815.ResetAccountPasswordRequest import (
    ResetAccountPasswordRequest,
)

from sandbox.aliyun.rds.mysqld import mariadbd_processes
from sandbox.aliyun.testing import Emulator
from tests.emulator.shapes import assert_shape
from tests.support.emulator_calls import call

pytestmark = pytest.mark.lab

PASSWORD = "K3s-Passw0rd"
# kine v0.4.0 (k3s v1.18/1.19) on a utf8mb4 database: 630 x 4 bytes > 767.
KINE_OLD_TABLE = (
    "CREATE TABLE IF NOT EXISTS kine (id INTEGER AUTO_INCREMENT, name VARCHAR(630), "
    "created INTEGER, deleted INTEGER, create_revision INTEGER, prev_revision INTEGER, "
    "lease INTEGER, value MEDIUMBLOB, old_value MEDIUMBLOB, PRIMARY KEY (id))"
)
KINE_OLD_INDEXES = (
    "CREATE INDEX kine_name_index ON kine (name)",
    "CREATE INDEX kine_name_id_index ON kine (name,id)",
    "CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON kine (name, prev_revision)",
)


# ----- helpers (also used by test_rds_lifecycle) -------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def api_error(emu: Emulator, request: Any, **setters: Any) -> tuple[int, str]:
    with pytest.raises(ServerException) as caught:
        call(emu, request, **setters)
    return caught.value.get_http_status(), caught.value.get_error_code()


def create_instance(emu: Emulator, version: str = "5.7", whitelist: str = "127.0.0.1",
                    **extra: Any) -> dict[str, Any]:
    return call(
        emu, CreateDBInstanceRequest(), Engine="MySQL", EngineVersion=version,
        DBInstanceClass="mysql.n2.medium.2c", DBInstanceStorage=20,
        DBInstanceNetType="Intranet", SecurityIPList=whitelist, PayType="Postpaid",
        InstanceNetworkType="VPC", VPCId=emu.vpc["vpc_id"],
        VSwitchId=emu.vswitch["vswitch_id"], ZoneId=emu.vswitch["zone_id"], **extra,
    )


def status_of(emu: Emulator, instance_id: str) -> str:
    body = call(emu, DescribeDBInstanceAttributeRequest(), DBInstanceId=instance_id)
    return body["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"]


def wait_running(emu: Emulator, instance_id: str) -> None:
    wait_until(lambda: status_of(emu, instance_id) == "Running", what=f"{instance_id} Running")


def prepare_k3s_datastore(emu: Emulator, instance_id: str) -> None:
    """What the panel does: account, database, ReadWrite, then wait until usable."""
    call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="k3s",
         AccountPassword=PASSWORD)
    call(emu, CreateDatabaseRequest(), DBInstanceId=instance_id, DBName="k3s",
         CharacterSetName="utf8mb4")
    call(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance_id, AccountName="k3s",
         DBName="k3s", AccountPrivilege="ReadWrite")

    def usable() -> bool:
        account = call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                       AccountName="k3s")["Accounts"]["DBInstanceAccount"][0]
        database = call(emu, DescribeDatabasesRequest(), DBInstanceId=instance_id,
                        DBName="k3s")["Databases"]["Database"][0]
        return account["AccountStatus"] == "Available" and database["DBStatus"] == "Running"

    wait_until(usable, what="account Available and database Running")


def connect(address: str, port: int, *, user: str = "k3s", password: str = PASSWORD,
            database: str | None = "k3s", source: str | None = None,
            timeout: float = 5.0) -> pymysql.connections.Connection:
    return pymysql.connect(host=address, port=port, user=user, password=password,
                           database=database, bind_address=source, connect_timeout=timeout,
                           read_timeout=timeout, autocommit=True)


def resource(emu: Emulator, instance_id: str) -> dict[str, Any] | None:
    for entry in emu.control.resources():
        if entry["id"] == instance_id:
            return entry
    return None


# ----- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("rds-emulator")
    try:
        with Emulator(state, time_scale=0.01) as emulator:
            # This module's 5.7 instances start with innodb_large_prefix OFF (RDS's default
            # is ON): the K3s recipe's story, as if the account's template said so.
            emulator.control.set_rds_parameter_defaults("5.7", {"innodb_large_prefix": "OFF"})
            yield emulator
    finally:
        assert not mariadbd_processes(state), "the emulator left mariadbd running"


@pytest.fixture(scope="module")
def instance(emu: Emulator) -> dict[str, Any]:
    """A Running 5.7 instance prepared for K3s, with the create response and the tags."""
    created = create_instance(emu, DBInstanceDescription="k3s-datastore",
                              Tags=[{"Key": "k3s-panel", "Value": "cluster-1"}],
                              ClientToken="token-first-instance")
    status = status_of(emu, created["DBInstanceId"])
    assert status == "Creating"
    wait_running(emu, created["DBInstanceId"])
    prepare_k3s_datastore(emu, created["DBInstanceId"])
    return created


# ----- lifecycle and shapes --------------------------------------------------------------


@pytest.mark.slow
def test_create_answers_at_once_and_becomes_running_only_with_a_live_server(
    emu: Emulator,
) -> None:
    created = create_instance(emu)
    assert_shape(created, {"DBInstanceId": str, "ConnectionString": str, "Port": str,
                           "OrderId": str})
    instance_id = created["DBInstanceId"]
    assert instance_id.startswith("rm-")
    assert status_of(emu, instance_id) == "Creating"
    # Mutations are refused while Creating, as on RDS.
    assert api_error(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="abc",
                     AccountPassword=PASSWORD) == (403, "IncorrectDBInstanceState")
    wait_running(emu, instance_id)
    entry = resource(emu, instance_id)
    assert entry is not None and entry["pids"] and entry["listening"]
    call(emu, DeleteDBInstanceRequest(), DBInstanceId=instance_id)


def test_client_token_returns_the_same_instance_and_refuses_other_parameters(
    emu: Emulator, instance: dict[str, Any],
) -> None:
    again = create_instance(emu, DBInstanceDescription="k3s-datastore",
                            Tags=[{"Key": "k3s-panel", "Value": "cluster-1"}],
                            ClientToken="token-first-instance")
    assert again["DBInstanceId"] == instance["DBInstanceId"]
    with pytest.raises(ServerException) as caught:
        create_instance(emu, version="8.0", ClientToken="token-first-instance")
    assert caught.value.get_error_code() == "InvalidRequestId"
    listed = call(emu, DescribeDBInstancesRequest(), Tags=json.dumps({"k3s-panel": "cluster-1"}))
    assert [i["DBInstanceId"] for i in listed["Items"]["DBInstance"]] == [
        instance["DBInstanceId"]]


def test_describe_instance_attribute_shape(emu: Emulator, instance: dict[str, Any]) -> None:
    body = call(emu, DescribeDBInstanceAttributeRequest(), DBInstanceId=instance["DBInstanceId"])
    item = "Items.DBInstanceAttribute[]."
    assert_shape(body, {
        item + "DBInstanceId": str, item + "DBInstanceStatus": str, item + "Engine": str,
        item + "EngineVersion": str, item + "DBInstanceClass": str,
        item + "DBInstanceStorage": int, item + "DBInstanceStorageType": str,
        item + "DBInstanceNetType": str, item + "InstanceNetworkType": str,
        item + "ConnectionString": str, item + "Port": str, item + "VpcId": str,
        item + "VSwitchId": str, item + "ZoneId": str, item + "RegionId": str,
        item + "PayType": str, item + "LockMode": str, item + "CreationTime": str,
        item + "SecurityIPList": str, item + "SecurityIPMode": str,
        item + "DBInstanceType": str, item + "Category": str, item + "MaxConnections": int,
        item + "DBInstanceMemory": int, item + "DeletionProtection": bool,
        item + "ReadOnlyDBInstanceIds.ReadOnlyDBInstanceId": list,
        item + "SlaveZones.SlaveZone[].ZoneId": str,
    })
    attribute = body["Items"]["DBInstanceAttribute"][0]
    assert (attribute["EngineVersion"], attribute["VpcId"], attribute["SecurityIPList"]) == (
        "5.7", emu.vpc["vpc_id"], "127.0.0.1")
    assert time.strptime(attribute["CreationTime"], "%Y-%m-%dT%H:%M:%SZ")


def test_describe_instances_filters_and_pages(emu: Emulator, instance: dict[str, Any]) -> None:
    body = call(emu, DescribeDBInstancesRequest(), DBInstanceId=instance["DBInstanceId"])
    item = "Items.DBInstance[]."
    assert_shape(body, {
        item + "DBInstanceId": str, item + "DBInstanceStatus": str, item + "Engine": str,
        item + "EngineVersion": str, item + "VpcId": str, item + "VSwitchId": str,
        item + "ZoneId": str, item + "RegionId": str, item + "PayType": str,
        item + "CreateTime": str, item + "ConnectionString": str,
        "PageNumber": int, "PageRecordCount": int, "TotalRecordCount": int,
    })
    assert body["Items"]["DBInstance"][0]["DBInstanceDescription"] == "k3s-datastore"
    none = call(emu, DescribeDBInstancesRequest(), Tags=json.dumps({"k3s-panel": "other"}))
    assert none["TotalRecordCount"] == 0 and none["Items"]["DBInstance"] == []
    paged = call(emu, DescribeDBInstancesRequest(), PageSize=1, PageNumber=1)
    assert paged["PageRecordCount"] == 1 and paged["TotalRecordCount"] >= 1
    running = call(emu, DescribeDBInstancesRequest(), DBInstanceStatus="Running",
                   SearchKey="k3s-datastore")
    assert [i["DBInstanceId"] for i in running["Items"]["DBInstance"]] == [
        instance["DBInstanceId"]]


def test_describe_instances_takes_one_instance_id_and_at_most_100_a_page(
        emu: Emulator, instance: dict[str, Any]) -> None:
    """DBInstanceId is "The instance ID." (V2 DescribeDBInstancesRequest; the API reference
    says the same): a comma list names no instance, so nothing may rely on one. PageSize is
    1-100 (same model): 101 is refused, as the health round's 100-a-page listing relies on."""
    one = instance["DBInstanceId"]
    listed = call(emu, DescribeDBInstancesRequest(), DBInstanceId=f"{one},{one}")
    assert listed["TotalRecordCount"] == 0 and listed["Items"]["DBInstance"] == []
    assert call(emu, DescribeDBInstancesRequest(), DBInstanceId=one)["TotalRecordCount"] == 1
    status, code = api_error(emu, DescribeDBInstancesRequest(), PageSize=101)
    assert status == 400 and code.startswith("InvalidParameter"), code
    page_two = call(emu, DescribeDBInstancesRequest(), PageSize=1, PageNumber=2)
    total = page_two["TotalRecordCount"]
    assert page_two["PageNumber"] == 2 and page_two["PageRecordCount"] == min(1, total - 1)


def test_net_info_names_the_address_that_really_serves_mysql(
    emu: Emulator, instance: dict[str, Any],
) -> None:
    body = call(emu, DescribeDBInstanceNetInfoRequest(), DBInstanceId=instance["DBInstanceId"])
    item = "DBInstanceNetInfos.DBInstanceNetInfo[]."
    assert_shape(body, {
        "InstanceNetworkType": str, "SecurityIPMode": str, item + "ConnectionString": str,
        item + "IPAddress": str, item + "IPType": str, item + "Port": str, item + "VPCId": str,
        item + "VSwitchId": str, item + "ConnectionStringType": str,
        item + "SecurityIPGroups.securityIPGroup[].SecurityIPGroupName": str,
        item + "SecurityIPGroups.securityIPGroup[].SecurityIPs": str,
    })
    info = body["DBInstanceNetInfos"]["DBInstanceNetInfo"][0]
    assert info["ConnectionString"] == instance["ConnectionString"]
    assert info["ConnectionString"].startswith(emu.vswitch["cidr"].rsplit(".", 1)[0] + ".")
    with connect(info["ConnectionString"], int(info["Port"])) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT USER(), DATABASE(), VERSION()")
        assert cursor.fetchone() == ("k3s@127.0.0.1", "k3s", "5.7.44-log")


def test_missing_and_unknown_instance_codes(emu: Emulator) -> None:
    assert api_error(emu, DescribeDBInstanceAttributeRequest()) == (400, "MissingDBInstanceId")
    assert api_error(emu, DescribeDBInstanceAttributeRequest(),
                     DBInstanceId="rm-doesnotexist000") == (400, "InvalidDBInstanceId.NotFound")


@pytest.mark.parametrize(("setters", "code"), [
    ({"EngineVersion": "5.5"}, "InvalidEngineVersion.Malformed"),
    ({"DBInstanceClass": "huge"}, "InvalidDBInstanceClass.Malformed"),
    ({"SecurityIPList": "10.0.0.300"}, "InvalidSecurityIPList.Format"),
    ({"SecurityIPList": "10.0.0.1,10.0.0.1"}, "InvalidSecurityIPList.Duplicate"),
    ({"VSwitchId": "vsw-nowhere"}, "InvalidVSwitchId.NotFound"),
    ({"ZoneId": "cn-hangzhou-z"}, "InvalidZoneId.NotSupported"),
])
def test_create_refuses_bad_input(emu: Emulator, setters: dict[str, Any], code: str) -> None:
    request = CreateDBInstanceRequest()
    assert api_error(emu, request, **{**_create_defaults(emu), **setters})[1] == code


def _create_defaults(emu: Emulator) -> dict[str, Any]:
    return {"Engine": "MySQL", "EngineVersion": "5.7", "DBInstanceClass": "mysql.n2.medium.2c",
            "DBInstanceStorage": 20, "DBInstanceNetType": "Intranet",
            "SecurityIPList": "127.0.0.1", "PayType": "Postpaid",
            "VPCId": emu.vpc["vpc_id"], "VSwitchId": emu.vswitch["vswitch_id"],
            "ZoneId": emu.vswitch["zone_id"]}


# ----- what a zone sells --------------------------------------------------------------------

AVAILABLE_ZONE = "AvailableZones[]."
SUPPORTED = (AVAILABLE_ZONE + "SupportedEngines[].SupportedEngineVersions[]."
             "SupportedCategorys[].")


def _classes(emu: Emulator, version: str = "8.0", **extra: Any) -> dict[str, dict[str, Any]]:
    body = call(emu, DescribeAvailableClassesRequest(), ZoneId=emu.vswitch["zone_id"],
                Engine="MySQL", EngineVersion=version, Category="HighAvailability",
                DBInstanceStorageType="cloud_essd", InstanceChargeType="Postpaid", **extra)
    return {c["DBInstanceClass"]: c for c in body["DBInstanceClasses"]}


def test_available_zones_and_classes_answer_in_the_v2_shapes(emu: Emulator) -> None:
    zones = call(emu, DescribeAvailableZonesRequest(), Engine="MySQL")
    assert_shape(zones, {AVAILABLE_ZONE + "RegionId": str, AVAILABLE_ZONE + "ZoneId": str,
                         AVAILABLE_ZONE + "SupportedEngines[].Engine": str,
                         SUPPORTED[:-len("SupportedCategorys[].")] + "Version": str,
                         SUPPORTED + "Category": str,
                         SUPPORTED + "SupportedStorageTypes[].StorageType": str})
    mine = next(z for z in zones["AvailableZones"] if z["ZoneId"] == emu.vswitch["zone_id"])
    versions = [v["Version"] for v in mine["SupportedEngines"][0]["SupportedEngineVersions"]]
    assert versions == ["5.7", "8.0", "8.4"]  # 5.6 is no longer sold
    body = call(emu, DescribeAvailableClassesRequest(), ZoneId=emu.vswitch["zone_id"],
                Engine="MySQL", EngineVersion="8.0", Category="HighAvailability",
                DBInstanceStorageType="cloud_essd", InstanceChargeType="Postpaid")
    item = "DBInstanceClasses[]."
    assert_shape(body, {item + "DBInstanceClass": str,
                        item + "DBInstanceStorageRange.MinValue": int,
                        item + "DBInstanceStorageRange.MaxValue": int,
                        item + "DBInstanceStorageRange.Step": int})
    assert all(c.endswith(".2c") for c in _classes(emu))  # HA cloud-disk classes
    assert api_error(emu, DescribeAvailableClassesRequest(), ZoneId=emu.vswitch["zone_id"],
                     Engine="MySQL", EngineVersion="8.0",
                     DBInstanceStorageType="cloud_essd") == (400, "MissingCategory")


def test_create_buys_only_what_the_zone_sells(emu: Emulator) -> None:
    region, zone = emu.region_id, emu.vswitch["zone_id"]
    assert api_error(emu, CreateDBInstanceRequest(), **{
        **_create_defaults(emu), "DBInstanceClass": "mysql.madeup.colossal.99"}) == (
        404, "InvalidDBInstanceClass.NotFound")
    # A local-SSD class on cloud disks: the class exists, not with that storage.
    assert api_error(emu, CreateDBInstanceRequest(), **{
        **_create_defaults(emu), "DBInstanceClass": "rds.mysql.s2.large"}) == (
        400, "InvalidInstanceLevel.DiskType")
    assert api_error(emu, CreateDBInstanceRequest(), **{
        **_create_defaults(emu), "EngineVersion": "5.6"})[1] == "InvalidDBInstanceClass.NotFound"
    # The zone stops selling mysql.n2.medium.2c and starts selling a new class.
    emu.control.set_rds_classes(region, zone, "5.7", [
        {"class": "mysql.n8.brandnew.2c", "cpu": 8, "memory_gb": 64, "max_connections": 7777,
         "storage_min": 50, "storage_max": 100, "storage_step": 10}])
    try:
        assert list(_classes(emu, "5.7")) == ["mysql.n8.brandnew.2c"]
        assert api_error(emu, CreateDBInstanceRequest(), **_create_defaults(emu)) == (
            404, "InvalidDBInstanceClass.NotFound")
        for storage in (20, 55, 110):  # below, off-step, above the class's range
            assert api_error(emu, CreateDBInstanceRequest(), **{
                **_create_defaults(emu), "DBInstanceClass": "mysql.n8.brandnew.2c",
                "DBInstanceStorage": storage}) == (400, "InvalidDBInstanceStorage.Format")
        created = call(emu, CreateDBInstanceRequest(), **{
            **_create_defaults(emu), "DBInstanceClass": "mysql.n8.brandnew.2c",
            "DBInstanceStorage": 60})
    finally:
        emu.control.set_rds_classes(region, zone, "5.7", None)
    attribute = call(emu, DescribeDBInstanceAttributeRequest(),
                     DBInstanceId=created["DBInstanceId"])["Items"]["DBInstanceAttribute"][0]
    assert (attribute["MaxConnections"], attribute["DBInstanceCPU"],
            attribute["DBInstanceMemory"]) == (7777, "8", 65536)
    assert "mysql.n2.medium.2c" in _classes(emu, "5.7")  # the seeded list is back
    wait_running(emu, created["DBInstanceId"])
    call(emu, DeleteDBInstanceRequest(), DBInstanceId=created["DBInstanceId"])


# ----- accounts, databases, privileges ------------------------------------------------------


def test_accounts_and_databases_describe_the_grant(emu: Emulator, instance: dict[str, Any]) -> None:
    accounts = call(emu, DescribeAccountsRequest(), DBInstanceId=instance["DBInstanceId"])
    item = "Accounts.DBInstanceAccount[]."
    assert_shape(accounts, {
        item + "AccountName": str, item + "AccountStatus": str, item + "AccountType": str,
        item + "AccountDescription": str, item + "DBInstanceId": str,
        item + "DatabasePrivileges.DatabasePrivilege[].DBName": str,
        item + "DatabasePrivileges.DatabasePrivilege[].AccountPrivilege": str,
        item + "DatabasePrivileges.DatabasePrivilege[].AccountPrivilegeDetail": str,
    })
    databases = call(emu, DescribeDatabasesRequest(), DBInstanceId=instance["DBInstanceId"])
    item = "Databases.Database[]."
    assert_shape(databases, {
        item + "DBName": str, item + "DBStatus": str, item + "CharacterSetName": str,
        item + "Engine": str, item + "DBInstanceId": str,
        item + "Accounts.AccountPrivilegeInfo[].Account": str,
        item + "Accounts.AccountPrivilegeInfo[].AccountPrivilege": str,
    })
    info = databases["Databases"]["Database"][0]["Accounts"]["AccountPrivilegeInfo"][0]
    assert (info["Account"], info["AccountPrivilege"]) == ("k3s", "ReadWrite")


@pytest.mark.parametrize(("name", "password", "code"), [
    ("root", PASSWORD, "InvalidAccountName.Forbid"),
    ("9lives", PASSWORD, "InvalidAccountName.Format"),
    ("bad-name", PASSWORD, "InvalidAccountName.Format"),
    ("a" * 33, PASSWORD, "InvalidAccountName.Format"),
    ("K3S", PASSWORD, "InvalidAccountName.Duplicate"),
    ("newuser", "short1A", "InvalidAccountPassword.Format"),
    ("newuser", "alllowercase1", "InvalidAccountPassword.Format"),
    ("newuser", "Has Space12", "InvalidAccountPassword.Format"),
])
def test_account_rules(emu: Emulator, instance: dict[str, Any], name: str, password: str,
                       code: str) -> None:
    assert api_error(emu, CreateAccountRequest(), DBInstanceId=instance["DBInstanceId"],
                     AccountName=name, AccountPassword=password)[1] == code


@pytest.mark.parametrize(("name", "charset", "code"), [
    ("K3s", "utf8mb4", "InvalidDBName.Format"),
    ("1db", "utf8mb4", "InvalidDBName.Format"),
    ("mysql", "utf8mb4", "InvalidDBName.Forbid"),
    ("k3s", "utf8mb4", "InvalidDBName.Duplicate"),
    ("other", "utf16", "InvalidCharacterSetName.Format"),
])
def test_database_rules(emu: Emulator, instance: dict[str, Any], name: str, charset: str,
                        code: str) -> None:
    assert api_error(emu, CreateDatabaseRequest(), DBInstanceId=instance["DBInstanceId"],
                     DBName=name, CharacterSetName=charset)[1] == code


@pytest.mark.parametrize(("grant", "code"), [
    (("nobody", "k3s", "ReadWrite"), "InvalidAccountName.NotFound"),
    (("k3s", "nodb", "ReadWrite"), "InvalidDBName.NotFound"),
    (("k3s", "k3s", "Everything"), "InvalidAccountPrivilege.Malformed"),
    (("k3s", "k3s", "ReadWrite,ReadOnly"), "InvalidDBNameOrAccountPrivilege"),
])
def test_grant_rules(emu: Emulator, instance: dict[str, Any], grant: tuple[str, str, str],
                     code: str) -> None:
    account, db, privilege = grant
    assert api_error(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance["DBInstanceId"],
                     AccountName=account, DBName=db, AccountPrivilege=privilege)[1] == code


def test_read_only_grant_is_enforced_by_the_server(emu: Emulator, instance: dict[str, Any]) -> None:
    instance_id = instance["DBInstanceId"]
    call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="reader",
         AccountPassword=PASSWORD)
    # Until the account is Available it cannot log in.
    with pytest.raises(pymysql.err.OperationalError):
        connect(instance["ConnectionString"], int(instance["Port"]), user="reader")
    call(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance_id, AccountName="reader",
         DBName="k3s", AccountPrivilege="ReadOnly")
    wait_until(lambda: call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                            AccountName="reader")["Accounts"]["DBInstanceAccount"][0][
                                "AccountStatus"] == "Available", what="reader Available")
    reader = connect(instance["ConnectionString"], int(instance["Port"]), user="reader")
    with reader, reader.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.tables")
        with pytest.raises(pymysql.err.OperationalError) as denied:
            cursor.execute("CREATE TABLE nope (id INT)")
    assert denied.value.args[0] == 1142  # CREATE command denied
    with pytest.raises(pymysql.err.OperationalError) as wrong:
        connect(instance["ConnectionString"], int(instance["Port"]), password="Wrong-Passw0rd")
    assert wrong.value.args[0] == 1045


def test_reset_password_delete_database_and_account(
    emu: Emulator, instance: dict[str, Any],
) -> None:
    instance_id = instance["DBInstanceId"]
    address, port = instance["ConnectionString"], int(instance["Port"])
    call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="temp_user",
         AccountPassword=PASSWORD)
    call(emu, CreateDatabaseRequest(), DBInstanceId=instance_id, DBName="temp_db",
         CharacterSetName="utf8")
    call(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance_id, AccountName="temp_user",
         DBName="temp_db", AccountPrivilege="DMLOnly")
    wait_until(lambda: call(emu, DescribeDatabasesRequest(), DBInstanceId=instance_id,
                            DBName="temp_db")["Databases"]["Database"][0]["DBStatus"] == "Running"
               and call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                        AccountName="temp_user")["Accounts"]["DBInstanceAccount"][0][
                            "AccountStatus"] == "Available", what="temp_user and temp_db")
    call(emu, ResetAccountPasswordRequest(), DBInstanceId=instance_id, AccountName="temp_user",
         AccountPassword="New-Passw0rd")
    connect(address, port, user="temp_user", password="New-Passw0rd", database="temp_db").close()
    call(emu, DeleteDatabaseRequest(), DBInstanceId=instance_id, DBName="temp_db")
    assert call(emu, DescribeDatabasesRequest(), DBInstanceId=instance_id,
                DBName="temp_db")["Databases"]["Database"] == []
    privileges = call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                      AccountName="temp_user")["Accounts"]["DBInstanceAccount"][0]
    assert privileges["DatabasePrivileges"]["DatabasePrivilege"] == []
    call(emu, DeleteAccountRequest(), DBInstanceId=instance_id, AccountName="temp_user")
    with pytest.raises(pymysql.err.OperationalError) as gone:
        connect(address, port, user="temp_user", password="New-Passw0rd", database=None)
    assert gone.value.args[0] == 1045
    assert api_error(emu, DeleteAccountRequest(), DBInstanceId=instance_id,
                     AccountName="temp_user") == (404, "InvalidAccountName.NotFound")


def test_a_killed_server_comes_back(emu: Emulator, instance: dict[str, Any]) -> None:
    """Like an RDS HA switchover: connections drop, the endpoint serves again shortly."""
    old_pid = resource(emu, instance["DBInstanceId"])["pids"][0]  # type: ignore[index]
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: (resource(emu, instance["DBInstanceId"]) or {}).get("pids") not in (
        [], [old_pid]), what="a new mariadbd")
    conn = wait_until(lambda: _try_connect(instance), what="the endpoint serving again")
    conn.close()
    assert status_of(emu, instance["DBInstanceId"]) == "Running"


def _try_connect(instance: dict[str, Any]) -> pymysql.connections.Connection | None:
    try:
        return connect(instance["ConnectionString"], int(instance["Port"]))
    except pymysql.err.OperationalError:
        return None


# ----- whitelist ------------------------------------------------------------------------


def _refused(address: str, port: int, source: str) -> bool:
    try:
        connect(address, port, source=source, timeout=1.0).close()
    except pymysql.err.OperationalError as exc:
        assert exc.args[0] == 2013, exc  # connected, but no handshake ever came
        return True
    return False


def test_whitelist_is_enforced_for_real(emu: Emulator, instance: dict[str, Any]) -> None:
    instance_id, address = instance["DBInstanceId"], instance["ConnectionString"]
    port, outsider = int(instance["Port"]), "127.0.0.77"
    assert _refused(address, port, outsider)
    call(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id, SecurityIps="127.0.0.64/26",
         ModifyMode="Append")
    connect(address, port, source=outsider).close()
    groups = call(emu, DescribeDBInstanceIPArrayListRequest(), DBInstanceId=instance_id)
    item = "Items.DBInstanceIPArray[]."
    assert_shape(groups, {item + "DBInstanceIPArrayName": str, item + "SecurityIPList": str,
                          item + "SecurityIPType": str, item + "WhitelistNetworkType": str})
    assert groups["Items"]["DBInstanceIPArray"][0]["SecurityIPList"] == (
        "127.0.0.1,127.0.0.64/26")
    call(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id, SecurityIps="127.0.0.64/26",
         ModifyMode="Delete")
    assert _refused(address, port, outsider)
    assert api_error(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id,
                     SecurityIps="127.0.0.1", ModifyMode="Delete") == (400, "SecurityIPList.Format")
    assert api_error(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id,
                     SecurityIps="not-an-ip")[1] == "SecurityIPList.Format"
    # A second group grants the same access as the default one.
    call(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id, SecurityIps=outsider,
         DBInstanceIPArrayName="k3s_servers")
    connect(address, port, source=outsider).close()
    call(emu, ModifySecurityIpsRequest(), DBInstanceId=instance_id, SecurityIps="127.0.0.2",
         DBInstanceIPArrayName="k3s_servers")
    assert _refused(address, port, outsider)


# ----- parameters and the 767-byte key limit -----------------------------------------------


def _running_parameter(emu: Emulator, instance_id: str, name: str) -> str:
    body = call(emu, DescribeParametersRequest(), DBInstanceId=instance_id)
    return next(p["ParameterValue"] for p in body["RunningParameters"]["DBInstanceParameter"]
                if p["ParameterName"] == name)


def test_kine_old_schema_needs_innodb_large_prefix(
    emu: Emulator, instance: dict[str, Any],
) -> None:
    instance_id = instance["DBInstanceId"]
    assert _running_parameter(emu, instance_id, "innodb_large_prefix") == "OFF"
    with connect(instance["ConnectionString"], int(instance["Port"])) as conn:
        with conn.cursor() as cursor:
            cursor.execute(KINE_OLD_TABLE)
            with pytest.raises(pymysql.err.OperationalError) as too_long:
                cursor.execute(KINE_OLD_INDEXES[0])
        # What MySQL 5.7 (and so kine on RDS) prints, not MariaDB's 1709 wording.
        assert too_long.value.args == (
            1071, "Specified key was too long; max key length is 767 bytes")

    call(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
         Parameters=json.dumps({"innodb_large_prefix": "ON"}))
    # Accepted at once, still Running, but not yet in force: clients must poll the values.
    body = call(emu, DescribeParametersRequest(), DBInstanceId=instance_id)
    assert_shape(body, {
        "Engine": str, "EngineVersion": str,
        "ConfigParameters.DBInstanceParameter[].ParameterName": str,
        "ConfigParameters.DBInstanceParameter[].ParameterValue": str,
        "RunningParameters.DBInstanceParameter[].ParameterName": str,
        "RunningParameters.DBInstanceParameter[].ParameterValue": str,
        "RunningParameters.DBInstanceParameter[].ParameterDefaultValue": str,
        "RunningParameters.DBInstanceParameter[].ParameterValueRange": str,
    })
    assert body["ConfigParameters"]["DBInstanceParameter"][0]["ParameterValue"] == "ON"
    assert status_of(emu, instance_id) == "Running"
    wait_until(lambda: _running_parameter(emu, instance_id, "innodb_large_prefix") == "ON",
               what="innodb_large_prefix ON")
    conn = connect(instance["ConnectionString"], int(instance["Port"]))
    with conn, conn.cursor() as cursor:
        # kine retries its DDL on the table the failed attempt left behind.
        cursor.execute(KINE_OLD_TABLE)
        for statement in KINE_OLD_INDEXES:
            cursor.execute(statement)
        cursor.execute("DROP TABLE kine")


def test_modify_parameter_refuses_unknown_names_and_bad_values(
    emu: Emulator, instance: dict[str, Any],
) -> None:
    instance_id = instance["DBInstanceId"]
    for parameters in ({"no_such_parameter": "1"}, {"innodb_large_prefix": "MAYBE"},
                       {"wait_timeout": "0"}, {"wait_timeout": 100}):
        status, code = api_error(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
                                 Parameters=json.dumps(parameters))
        assert (status, code) == (400, "InvalidParameter.Format"), parameters


@pytest.mark.slow
def test_numeric_parameter_with_large_prefix_is_applied_to_the_server(emu: Emulator) -> None:
    """Both reach MariaDB: the number as a number (a quoted one is error 1232 there), and
    the 767-byte limit is lifted; the parameter log says Applied."""
    created = create_instance(emu)
    instance_id = created["DBInstanceId"]
    wait_running(emu, instance_id)
    prepare_k3s_datastore(emu, instance_id)
    assert _running_parameter(emu, instance_id, "innodb_large_prefix") == "OFF"
    call(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
         Parameters=json.dumps({"wait_timeout": "3600", "innodb_large_prefix": "ON"}))
    wait_until(lambda: _running_parameter(emu, instance_id, "innodb_large_prefix") == "ON",
               what="innodb_large_prefix ON")
    assert _running_parameter(emu, instance_id, "wait_timeout") == "3600"
    with connect(created["ConnectionString"], int(created["Port"])) as conn, \
            conn.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.wait_timeout")
        assert cursor.fetchone() == (3600,)
        cursor.execute(KINE_OLD_TABLE)
        for statement in KINE_OLD_INDEXES:
            cursor.execute(statement)
    log = call(emu, DescribeModifyParameterLogRequest(), DBInstanceId=instance_id,
               StartTime="2000-01-01T00:00Z", EndTime="2099-12-31T23:59Z")
    item = "Items.ParameterChangeLog[]."
    assert_shape(log, {item + "ParameterName": str, item + "OldParameterValue": str,
                       item + "NewParameterValue": str, item + "Status": str,
                       item + "ModifyTime": str})
    assert {(e["ParameterName"], e["OldParameterValue"], e["NewParameterValue"], e["Status"])
            for e in log["Items"]["ParameterChangeLog"]} == {
        ("wait_timeout", "86400", "3600", "Applied"),
        ("innodb_large_prefix", "OFF", "ON", "Applied")}
    call(emu, DeleteDBInstanceRequest(), DBInstanceId=instance_id)


def test_restart_parameter_waits_for_forcerestart(emu: Emulator, instance: dict[str, Any]) -> None:
    instance_id = instance["DBInstanceId"]
    call(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
         Parameters=json.dumps({"innodb_autoinc_lock_mode": "2"}))
    time.sleep(0.5)
    assert _running_parameter(emu, instance_id, "innodb_autoinc_lock_mode") == "1"
    call(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
         Parameters=json.dumps({"innodb_autoinc_lock_mode": "2"}), Forcerestart=True)
    assert status_of(emu, instance_id) == "Rebooting"
    assert api_error(emu, CreateDatabaseRequest(), DBInstanceId=instance_id, DBName="during",
                     CharacterSetName="utf8") == (403, "IncorrectDBInstanceState")
    wait_running(emu, instance_id)
    assert _running_parameter(emu, instance_id, "innodb_autoinc_lock_mode") == "2"
    conn = connect(instance["ConnectionString"], int(instance["Port"]))
    with conn, conn.cursor() as cursor:
        cursor.execute("SELECT @@innodb_autoinc_lock_mode")
        assert cursor.fetchone() == (2,)


def test_parameter_templates_per_version(emu: Emulator) -> None:
    body = call(emu, DescribeParameterTemplatesRequest(), Engine="mysql", EngineVersion="5.7")
    item = "Parameters.TemplateRecord[]."
    assert_shape(body, {"Engine": str, "EngineVersion": str, "ParameterCount": str,
                        item + "ParameterName": str, item + "ParameterValue": str,
                        item + "ForceModify": str, item + "ForceRestart": str,
                        item + "CheckingCode": str, item + "ParameterDescription": str})
    names_57 = {r["ParameterName"] for r in body["Parameters"]["TemplateRecord"]}
    body_80 = call(emu, DescribeParameterTemplatesRequest(), Engine="mysql", EngineVersion="8.0")
    names_80 = {r["ParameterName"] for r in body_80["Parameters"]["TemplateRecord"]}
    assert "innodb_large_prefix" in names_57 and "innodb_large_prefix" not in names_80


# ----- backups ------------------------------------------------------------------------


def test_backup_is_a_real_dump(emu: Emulator, instance: dict[str, Any]) -> None:
    instance_id = instance["DBInstanceId"]
    # ESSD (cloud disks) take snapshot backups, not physical ones.
    assert api_error(emu, CreateBackupRequest(), DBInstanceId=instance_id,
                     BackupMethod="Physical") == (400, "InvalidBackupMethod.ValueNotSupport")
    job = call(emu, CreateBackupRequest(), DBInstanceId=instance_id, BackupMethod="Logical")
    assert_shape(job, {"BackupJobId": str})

    def finished() -> dict[str, Any] | None:
        body = call(emu, DescribeBackupsRequest(), DBInstanceId=instance_id)
        return body if body["Items"]["Backup"] else None

    body = wait_until(finished, what="backup listed")
    item = "Items.Backup[]."
    assert_shape(body, {"TotalRecordCount": str, "PageNumber": str, "PageRecordCount": str,
                        item + "BackupId": str,
                        item + "BackupStatus": str, item + "BackupStartTime": str,
                        item + "BackupEndTime": str, item + "BackupSize": int})
    backup = body["Items"]["Backup"][0]
    assert backup["BackupStatus"] == "Success" and backup["BackupSize"] > 1000


# ----- 8.0 / 8.4 and deletion -----------------------------------------------------------


@pytest.mark.slow
def test_mysql84_instance_has_no_large_prefix_and_long_keys(emu: Emulator) -> None:
    created = create_instance(emu, version="8.4")
    instance_id = created["DBInstanceId"]
    wait_running(emu, instance_id)
    names = {p["ParameterName"] for p in call(emu, DescribeParametersRequest(),
             DBInstanceId=instance_id)["RunningParameters"]["DBInstanceParameter"]}
    assert "innodb_large_prefix" not in names and "wait_timeout" in names
    assert api_error(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
                     Parameters=json.dumps({"innodb_large_prefix": "ON"})) == (
        400, "InvalidParameter.Format")
    prepare_k3s_datastore(emu, instance_id)
    with connect(created["ConnectionString"], int(created["Port"])) as conn, \
            conn.cursor() as cursor:
        cursor.execute("SELECT VERSION()")
        assert cursor.fetchone() == ("8.4.5",)
        cursor.execute(KINE_OLD_TABLE)
        for statement in KINE_OLD_INDEXES:
            cursor.execute(statement)
    call(emu, DeleteDBInstanceRequest(), DBInstanceId=instance_id)


@pytest.mark.slow
def test_mysql80_instance_then_delete_leaves_nothing(emu: Emulator, tmp_path: Path) -> None:
    created = create_instance(emu, version="8.0")
    instance_id = created["DBInstanceId"]
    wait_running(emu, instance_id)
    assert api_error(emu, ModifyParameterRequest(), DBInstanceId=instance_id,
                     Parameters=json.dumps({"innodb_large_prefix": "ON"})) == (
        400, "InvalidParameter.Format")
    prepare_k3s_datastore(emu, instance_id)
    address, port = created["ConnectionString"], int(created["Port"])
    with connect(address, port) as conn, conn.cursor() as cursor:
        cursor.execute(KINE_OLD_TABLE)  # 3072-byte keys: the old schema just works on 8.0
        for statement in KINE_OLD_INDEXES:
            cursor.execute(statement)
    pid = resource(emu, instance_id)["pids"][0]  # type: ignore[index]

    call(emu, DeleteDBInstanceRequest(), DBInstanceId=instance_id)
    assert status_of(emu, instance_id) == "Deleting"
    assert api_error(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="late",
                     AccountPassword=PASSWORD) == (403, "IncorrectDBInstanceState")
    assert not Path(f"/proc/{pid}").exists()
    with pytest.raises(pymysql.err.OperationalError) as refused:
        connect(address, port, timeout=1.0)
    assert refused.value.args[0] == 2003  # nothing listens there any more
    wait_until(lambda: resource(emu, instance_id) is None, what="instance gone")
    assert api_error(emu, DescribeDBInstanceAttributeRequest(), DBInstanceId=instance_id)[1] == (
        "InvalidDBInstanceId.NotFound")
