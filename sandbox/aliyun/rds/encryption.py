"""RDS SSL: ModifyDBInstanceSSL, DescribeDBInstanceSSL, and the restart that applies them.

Why: a careful user turns SSL on for the K3s datastore and makes clients verify the server.
As on RDS (help.aliyun.com "Configure the SSL encryption feature"): SSL is off by default;
turning it on issues a server certificate for ONE connection string (365 days, signed by the
ApsaraDB CA that the console offers for download) and restarts the instance; "forced SSL
encryption" (ForceEncryption=1, MySQL 5.7/8.0/8.4 only) then refuses every unencrypted
client. Meanwhile the instance reads `SSLModifying` (RDS's DBInstanceStatus for an SSL change,
from Alibaba's "Instance states" table) and refuses other changes; clients are cut off.

Parameters and the response follow the V2 models ModifyDBInstanceSSLRequest and
DescribeDBInstanceSSLResponseBody (alibabacloud_rds20140815). Forced encryption is enforced
by the whitelist gate (a proxied unix-socket connection counts as "secure transport" to
MariaDB, so require_secure_transport alone would let plain clients in), with MySQL 8.0's
error 3159. Chosen where nothing is documented: a ConnectionString the instance does not
have, or ForceEncryption on 5.6, is InvalidParameter.
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.clock import iso_utc
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds.product import PRODUCT, RESTART_SECONDS, find_instance, running_instance
from sandbox.aliyun.rds.runtime import runtime_of

SSL_MODIFYING = "SSLModifying"
FORCE_VERSIONS = ("5.7", "8.0", "8.4")


def ssl_of(record: dict[str, Any]) -> dict[str, Any]:
    """The instance's SSL settings (off for an instance that never had any)."""
    return record.setdefault("ssl", {"enabled": False})


@PRODUCT.action("ModifyDBInstanceSSL", (
    Param("DBInstanceId", required=True), Param("ConnectionString", required=True),
    Param("SSLEnabled", "integer", enum=("0", "1")), Param("CAType", enum=("aliyun", "custom")),
    Param("ServerCert"), Param("ServerKey"), Param("ForceEncryption", enum=("0", "1")),
    Param("TlsVersion"), Param("ACL"), Param("ReplicationACL"), Param("ClientCACert"),
    Param("ClientCAEnabled", "integer"), Param("ClientCertRevocationList"),
    Param("ClientCrlEnabled", "integer"), Param("Certificate"), Param("PassWord"),
))
def modify_db_instance_ssl(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = running_instance(state, params["DBInstanceId"])
    if record.get("engine") == "PostgreSQL":
        # NOT EMULATED YET: RDS PostgreSQL does offer SSL; the emulator's postgres serves its
        # gate over a unix socket, where PostgreSQL never negotiates TLS. Refused plainly,
        # so nothing pretends to be encrypted.
        raise errors.ApiError(403, "IncorrectDBInstanceType",
                              "Current DB instance type does not support this operation.")
    if params["ConnectionString"] != record["address"]:
        raise errors.invalid_parameter("ConnectionString")
    enable = params["SSLEnabled"] != 0 if params.given("SSLEnabled") else True
    wanted: dict[str, Any] = {"enabled": enable}
    if enable:
        ca_type = params["CAType"]
        if not ca_type:  # "This parameter is required when SSLEnabled is set to 1."
            raise errors.missing_parameter("CAType")
        if ca_type == "custom" and not (params["ServerCert"] and params["ServerKey"]):
            raise errors.missing_parameter("ServerCert" if not params["ServerCert"]
                                           else "ServerKey")
        force = params["ForceEncryption"] == "1"
        if force and record["engine_version"] not in FORCE_VERSIONS:
            raise errors.invalid_parameter("ForceEncryption")
        wanted.update(connection_string=params["ConnectionString"], ca_type=ca_type,
                      force=force)
        if ca_type == "custom":
            wanted.update(server_cert=params["ServerCert"], server_key=params["ServerKey"])
    record["pending_ssl"] = wanted
    record["status"], record["due"] = SSL_MODIFYING, ctx.clock.after(RESTART_SECONDS)
    runtime_of(ctx.cloud).cut_off(record)  # the restart starts now: clients drop
    return {}


@PRODUCT.action("DescribeDBInstanceSSL", (Param("DBInstanceId", required=True),))
def describe_db_instance_ssl(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    record = find_instance(state, params["DBInstanceId"])
    ssl = ssl_of(record)
    if not ssl["enabled"]:
        return {"ConnectionString": "", "SSLEnabled": "No", "SSLExpireTime": "",
                "RequireUpdate": "No", "RequireUpdateReason": "", "CAType": "",
                "ForceEncryption": "0"}
    return {"ConnectionString": ssl["connection_string"], "SSLEnabled": "Yes",
            "SSLExpireTime": ssl["expire_time"], "SSLCreateTime": ssl["create_time"],
            "RequireUpdate": "No", "RequireUpdateReason": "", "CAType": ssl["ca_type"],
            "ForceEncryption": "1" if ssl["force"] else "0"}


def finish_ssl_change(cloud: Cloud, record: dict[str, Any]) -> None:
    """The SSLModifying instance comes back with the new certificate (or without SSL)."""
    wanted = record.pop("pending_ssl", None) or {"enabled": False}
    if wanted["enabled"]:
        expires = runtime_of(cloud).apply_ssl(record, wanted)
        wanted.update(expire_time=iso_utc(expires.timestamp()),
                      create_time=iso_utc(cloud.clock.now()))
        wanted.pop("server_key", None)
    else:
        runtime_of(cloud).apply_ssl(record, None)
    record["ssl"] = wanted
    record["status"], record["due"] = "Running", None
