"""RDS PostgreSQL through the official SDK: the catalogue, the PG rules, a real postgres.

One 16.0 instance (account `k3s`, database `k3s` it owns through GrantAccountPrivilege
DBOwner, RDS PostgreSQL's one privilege) serves the module; kine v0.16's own DDL runs on it
through the whitelist gate. Time scale 0.01: creating takes 3 s.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkrds.request.v20140815.CreateAccountRequest import CreateAccountRequest
from aliyunsdkrds.request.v20140815.CreateDatabaseRequest import CreateDatabaseRequest
from aliyunsdkrds.request.v20140815.CreateDBInstanceRequest import CreateDBInstanceRequest
from aliyunsdkrds.request.v20140815.DeleteDBInstanceRequest import DeleteDBInstanceRequest
from aliyunsdkrds.request.v20140815.DescribeAccountsRequest import DescribeAccountsRequest
from aliyunsdkrds.request.v20140815.DescribeAvailableClassesRequest import (
    DescribeAvailableClassesRequest,
)
from aliyunsdkrds.request.v20140815.DescribeAvailableZonesRequest import (
    DescribeAvailableZonesRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDatabasesRequest import DescribeDatabasesRequest
from aliyunsdkrds.request.v20140815.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest,
)
from aliyunsdkrds.request.v20140815.GrantAccountPrivilegeRequest import (
    GrantAccountPrivilegeRequest,
)
from aliyunsdkrds.request.v20140815.ModifySecurityIpsRequest import ModifySecurityIpsRequest

from sandbox.aliyun.rds.pgserver import PostgresServer
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.dsn import parse_pg_endpoint
from sandbox.k3s.kine import CompactSettings, DatastoreError, KeyExists
from sandbox.k3s.kine_pg import PostgresKine, pool_log_line
from sandbox.k3s.versions import release
from tests.support.emulator_calls import call

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PASSWORD = "K3s-Passw0rd"
# kine v0.16.4 pkg/drivers/pgsql/pgsql.go `schema`, statement for statement.
KINE_PG_SCHEMA = (
    'CREATE TABLE IF NOT EXISTS kine (id BIGSERIAL PRIMARY KEY, name text COLLATE "C", '
    "created INTEGER, deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, "
    "lease INTEGER, value bytea, old_value bytea)",
    "CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name)",
    "CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name,id)",
    "CREATE INDEX IF NOT EXISTS kine_id_deleted_index ON kine (id,deleted)",
    "CREATE INDEX IF NOT EXISTS kine_prev_revision_index ON kine (prev_revision)",
    "CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine "
    "(name, prev_revision)",
    "CREATE INDEX IF NOT EXISTS kine_list_query_index on kine(name, id DESC, deleted)",
)


def wait_until(check: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def api_error(emu: Emulator, request: Any, **setters: Any) -> tuple[int, str]:
    with pytest.raises(ServerException) as caught:
        call(emu, request, **setters)
    return caught.value.get_http_status(), caught.value.get_error_code()


def _create(emu: Emulator, **extra: Any) -> dict[str, Any]:
    settings = {"Engine": "PostgreSQL", "EngineVersion": "16.0",
                "DBInstanceClass": "pg.n2.2c.2m", "DBInstanceStorage": 20,
                "DBInstanceNetType": "Intranet", "SecurityIPList": "127.0.0.1",
                "PayType": "Postpaid", "InstanceNetworkType": "VPC",
                "VPCId": emu.vpc["vpc_id"], "VSwitchId": emu.vswitch["vswitch_id"],
                "ZoneId": emu.vswitch["zone_id"], **extra}
    return call(emu, CreateDBInstanceRequest(), **settings)


def _status(emu: Emulator, instance_id: str) -> str:
    body = call(emu, DescribeDBInstanceAttributeRequest(), DBInstanceId=instance_id)
    return body["Items"]["DBInstanceAttribute"][0]["DBInstanceStatus"]


def _connect(instance: dict[str, Any], *, user: str = "k3s",
             database: str = "k3s") -> psycopg.Connection[Any]:
    return psycopg.connect(host=instance["ConnectionString"], port=int(instance["Port"]),
                           user=user, password=PASSWORD, dbname=database, connect_timeout=5,
                           sslmode="disable", autocommit=True)


def _answers(address: str, port: int, source: str) -> bool:
    """An SSLRequest from `source`: a server answers one byte ('N' or 'S'); the whitelist gate
    holds an outsider silent."""
    sock = socket.create_connection((address, port), timeout=1.0, source_address=(source, 0))
    try:
        sock.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        try:
            return sock.recv(1) in (b"N", b"S")
        except TimeoutError:
            return False
    finally:
        sock.close()


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("rds-pg-emulator")
    with Emulator(state, time_scale=0.01) as emulator:
        yield emulator
    running = [home.name for home in (state / "rds").glob("rm-*")
               if PostgresServer(home).running]
    assert not running, f"the emulator left postgres running for {running}"


@pytest.fixture(scope="module")
def instance(emu: Emulator) -> dict[str, Any]:
    created = _create(emu, ClientToken="pg-token-1")
    assert _status(emu, created["DBInstanceId"]) == "Creating"
    wait_until(lambda: _status(emu, created["DBInstanceId"]) == "Running", what="Running")
    instance_id = created["DBInstanceId"]
    call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="k3s",
         AccountPassword=PASSWORD, AccountType="Normal")
    call(emu, CreateDatabaseRequest(), DBInstanceId=instance_id, DBName="k3s",
         CharacterSetName="UTF8,C,en_US.utf8")
    call(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance_id, AccountName="k3s",
         DBName="k3s", AccountPrivilege="DBOwner")

    def usable() -> bool:
        account = call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                       AccountName="k3s")["Accounts"]["DBInstanceAccount"][0]
        database = call(emu, DescribeDatabasesRequest(), DBInstanceId=instance_id,
                        DBName="k3s")["Databases"]["Database"][0]
        return account["AccountStatus"] == "Available" and database["DBStatus"] == "Running"

    wait_until(usable, what="account Available and database Running")
    return created


def test_the_catalogue_sells_postgresql_on_cloud_disks(emu: Emulator) -> None:
    zones = call(emu, DescribeAvailableZonesRequest(), Engine="PostgreSQL",
                 ZoneId=emu.vswitch["zone_id"])["AvailableZones"]
    engine = zones[0]["SupportedEngines"][0]
    assert engine["Engine"] == "PostgreSQL"
    assert [v["Version"] for v in engine["SupportedEngineVersions"]] == [
        "14.0", "15.0", "16.0", "17.0", "18.0"]
    classes = call(emu, DescribeAvailableClassesRequest(), ZoneId=emu.vswitch["zone_id"],
                   Engine="PostgreSQL", EngineVersion="16.0", DBInstanceStorageType="cloud_essd",
                   Category="HighAvailability", InstanceChargeType="Postpaid")
    names = [c["DBInstanceClass"] for c in classes["DBInstanceClasses"]]
    assert "pg.n2.2c.2m" in names and not any(n.startswith("mysql.") for n in names)
    # MySQL's list says nothing of PostgreSQL and the other way round.
    mysql = call(emu, DescribeAvailableZonesRequest(), Engine="MySQL",
                 ZoneId=emu.vswitch["zone_id"])["AvailableZones"][0]["SupportedEngines"][0]
    assert "16.0" not in [v["Version"] for v in mysql["SupportedEngineVersions"]]


@pytest.mark.parametrize(("setters", "code"), [
    ({"EngineVersion": "8.0"}, "InvalidEngineVersion.Malformed"),
    ({"DBInstanceClass": "mysql.n2.medium.2c"}, "InvalidDBInstanceClass.NotFound"),
    ({"Port": 6000}, "InvalidPort.Malformed"),
    ({"Engine": "Oracle"}, "InvalidEngine.Malformed"),
])
def test_create_refuses_what_rds_postgresql_does_not_sell(
        emu: Emulator, setters: dict[str, Any], code: str) -> None:
    with pytest.raises(ServerException) as caught:
        _create(emu, **setters)
    assert caught.value.get_error_code() == code


def test_client_token_answers_the_same_instance(emu: Emulator, instance: dict[str, Any]) -> None:
    again = _create(emu, ClientToken="pg-token-1")
    assert again["DBInstanceId"] == instance["DBInstanceId"]
    attribute = call(emu, DescribeDBInstanceAttributeRequest(),
                     DBInstanceId=instance["DBInstanceId"])["Items"]["DBInstanceAttribute"][0]
    assert (attribute["Engine"], attribute["EngineVersion"]) == ("PostgreSQL", "16.0")
    assert instance["Port"] == "5432"


def test_kine_schema_runs_as_the_database_owner(instance: dict[str, Any]) -> None:
    with _connect(instance) as conn:
        for statement in KINE_PG_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO kine (name, created, deleted, create_revision, prev_revision,"
                     " lease, value, old_value) VALUES ('/registry/x', 1, 0, 0, 0, 0, '', '')")
        ((collation,),) = conn.execute(
            "SELECT collation_name FROM information_schema.columns WHERE table_name = 'kine'"
            " AND column_name = 'name'").fetchall()
        assert collation == "C"
        ((owner, encoding),) = conn.execute(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding) FROM pg_database"
            " WHERE datname = 'k3s'").fetchall()
        assert (owner, encoding) == ("k3s", "UTF8")


def test_an_account_that_does_not_own_the_database_cannot_create_kine(
        emu: Emulator, instance: dict[str, Any]) -> None:
    """PostgreSQL 15+: `public` belongs to the database owner; others may not CREATE there."""
    instance_id = instance["DBInstanceId"]
    call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="reader",
         AccountPassword=PASSWORD)
    wait_until(lambda: call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                            AccountName="reader")["Accounts"]["DBInstanceAccount"][0][
                                "AccountStatus"] == "Available", what="reader Available")
    with _connect(instance, user="reader") as conn, pytest.raises(
            psycopg.errors.InsufficientPrivilege):
        conn.execute("CREATE TABLE kine_other (id BIGSERIAL PRIMARY KEY)")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=instance["ConnectionString"], port=int(instance["Port"]),
                        user="k3s", password="Wrong-Passw0rd", dbname="k3s", sslmode="disable",
                        connect_timeout=5).close()


@pytest.mark.parametrize(("request_type", "setters", "code"), [
    (CreateAccountRequest, {"AccountName": "K3sUpper"}, "InvalidAccountName.Format"),
    (CreateAccountRequest, {"AccountName": "pg_k3s"}, "InvalidAccountName.Format"),
    (CreateAccountRequest, {"AccountName": "postgres"}, "InvalidAccountName.Forbid"),
    (CreateDatabaseRequest, {"DBName": "other", "CharacterSetName": "utf8mb4"},
     "InvalidCharacterSetName.Format"),
    (CreateDatabaseRequest, {"DBName": "template1", "CharacterSetName": "UTF8,C,C"},
     "InvalidDBName.Forbid"),
    (GrantAccountPrivilegeRequest, {"AccountName": "k3s", "DBName": "k3s",
                                    "AccountPrivilege": "ReadWrite"},
     "InvalidAccountPrivilege.Malformed"),
])
def test_postgresql_rules(emu: Emulator, instance: dict[str, Any], request_type: type,
                          setters: dict[str, Any], code: str) -> None:
    extra = {"AccountPassword": PASSWORD} if request_type is CreateAccountRequest else {}
    status, found = api_error(emu, request_type(), DBInstanceId=instance["DBInstanceId"],
                              **extra, **setters)
    assert (status, found) == (400, code)


def test_whitelist_gate_holds_outsiders(emu: Emulator, instance: dict[str, Any]) -> None:
    address, port = instance["ConnectionString"], int(instance["Port"])
    assert _answers(address, port, "127.0.0.1")
    assert not _answers(address, port, "127.0.0.77")
    call(emu, ModifySecurityIpsRequest(), DBInstanceId=instance["DBInstanceId"],
         SecurityIps="127.0.0.77", ModifyMode="Append")
    assert _answers(address, port, "127.0.0.77")


def test_delete_stops_postgres_and_removes_its_data(emu: Emulator) -> None:
    created = _create(emu)
    instance_id = created["DBInstanceId"]
    wait_until(lambda: _status(emu, instance_id) == "Running", what="second Running")
    entry = next(r for r in emu.control.resources() if r["id"] == instance_id)
    assert entry["pids"] and entry["listening"]
    call(emu, DeleteDBInstanceRequest(), DBInstanceId=instance_id)
    server = PostgresServer(Path(emu.state_dir) / "rds" / instance_id)
    assert not server.running and not server.base.exists()


def test_the_k3s_stand_ins_kine_runs_on_it(emu: Emulator, instance: dict[str, Any]) -> None:
    """kine's pgsql driver as the stand-in plays it: the schema as the owner, the log,
    compare-and-swap and a compaction, through the gate; a wrong password fails with
    PostgreSQL's own message."""
    rel = release("v1.36.4+k3s1")
    address, port = instance["ConnectionString"], instance["Port"]
    endpoint = f"postgres://k3s:{quote(PASSWORD, safe='')}@{address}:{port}/k3s?sslmode=disable"
    kine = PostgresKine(parse_pg_endpoint(endpoint), rel)
    assert pool_log_line(rel) == ("Configuring pgx database connection pooling: maxIdle=20, "
                                  "maxOpen=0, maxLifetime=0s, maxIdleTime=0s")
    try:
        kine.setup()
        first = kine.create("/registry/a", b"1")
        with pytest.raises(KeyExists):
            kine.create("/registry/a", b"again")
        second = kine.update("/registry/a", b"2", first)
        with pytest.raises(KeyExists):
            kine.update("/registry/a", b"3", first)
        assert kine.get("/registry/a").value == b"2"  # type: ignore[union-attr]
        assert [r.name for r in kine.list("/registry/a")] == ["/registry/a"]
        assert kine.delete("/registry/a") and kine.get("/registry/a") is None
        compacted, _ = kine.compact_iter(0, second + 1, CompactSettings(min_retain=0))
        assert compacted > 0
    finally:
        kine.close()
    wrong = endpoint.replace(quote(PASSWORD, safe=""), "Wrong-Passw0rd")
    with pytest.raises(DatastoreError, match="password authentication failed"):
        PostgresKine(parse_pg_endpoint(wrong), rel).setup()


def test_postgresql_instances_survive_restart_and_crash(tmp_path: Path) -> None:
    """As MySQL's (test_rds_lifecycle): data and whitelist survive a graceful restart; after
    a crash the orphaned postgres is replaced, not adopted."""
    state = tmp_path / "state"
    emu = Emulator(state, time_scale=0.01)
    try:
        emu.start()
        created = _create(emu)
        instance_id = created["DBInstanceId"]
        wait_until(lambda: _status(emu, instance_id) == "Running", what="Running")
        call(emu, CreateAccountRequest(), DBInstanceId=instance_id, AccountName="k3s",
             AccountPassword=PASSWORD)
        call(emu, CreateDatabaseRequest(), DBInstanceId=instance_id, DBName="k3s",
             CharacterSetName="UTF8,C,C")
        call(emu, GrantAccountPrivilegeRequest(), DBInstanceId=instance_id, AccountName="k3s",
             DBName="k3s", AccountPrivilege="DBOwner")
        wait_until(lambda: call(emu, DescribeDatabasesRequest(), DBInstanceId=instance_id,
                                DBName="k3s")["Databases"]["Database"][0]["DBStatus"]
                   == "Running", what="database Running")
        wait_until(lambda: call(emu, DescribeAccountsRequest(), DBInstanceId=instance_id,
                                AccountName="k3s")["Accounts"]["DBInstanceAccount"][0][
                                    "AccountStatus"] == "Available", what="account Available")
        with _connect(created) as conn:
            conn.execute("CREATE TABLE survivors (name text)")
            conn.execute("INSERT INTO survivors VALUES ('before restart')")
        emu.stop()
        server = PostgresServer(state / "rds" / instance_id)
        assert not server.running
        emu.start()
        with _connect(created) as conn:
            assert conn.execute("SELECT name FROM survivors").fetchall() == [
                ("before restart",)]
        assert not _answers(created["ConnectionString"], int(created["Port"]), "127.0.0.99")
        orphan = server.pid
        assert emu.process is not None and orphan
        os.kill(emu.process.pid, signal.SIGKILL)
        emu.process.wait(timeout=10)
        emu.process = None
        assert server.pid == orphan  # left running by the crash
        emu.start()
        wait_until(lambda: server.pid not in (None, orphan), what="a new postgres")
        with _connect(created) as conn:
            assert conn.execute("SELECT COUNT(*) FROM survivors").fetchone() == (1,)
    finally:
        emu.stop()
    assert not PostgresServer(state / "rds" / instance_id).running
