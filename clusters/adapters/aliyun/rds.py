"""RDS MySQL calls the datastore steps make (API 2014-08-15).

Creates carry a ClientToken chosen by the caller and recorded before the call, so a retry
after a lost answer returns the same instance instead of buying a second one. Lookups that
may legitimately find nothing return None / [] instead of raising.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aliyunsdkrds.request.v20140815.CreateAccountRequest import CreateAccountRequest
from aliyunsdkrds.request.v20140815.CreateBackupRequest import CreateBackupRequest
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
from aliyunsdkrds.request.v20140815.DescribeBackupsRequest import DescribeBackupsRequest
from aliyunsdkrds.request.v20140815.DescribeDatabasesRequest import DescribeDatabasesRequest
from aliyunsdkrds.request.v20140815.DescribeDBInstanceAttributeRequest import (
    DescribeDBInstanceAttributeRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstanceNetInfoRequest import (
    DescribeDBInstanceNetInfoRequest,
)
from aliyunsdkrds.request.v20140815.DescribeDBInstancesRequest import DescribeDBInstancesRequest
from aliyunsdkrds.request.v20140815.DescribeDBInstanceSSLRequest import (
    DescribeDBInstanceSSLRequest,
)
from aliyunsdkrds.request.v20140815.DescribeParametersRequest import DescribeParametersRequest
from aliyunsdkrds.request.v20140815.DescribeParameterTemplatesRequest import (
    DescribeParameterTemplatesRequest,
)
from aliyunsdkrds.request.v20140815.DescribeResourceUsageRequest import (
    DescribeResourceUsageRequest,
)
from aliyunsdkrds.request.v20140815.GrantAccountPrivilegeRequest import (
    GrantAccountPrivilegeRequest,
)
from aliyunsdkrds.request.v20140815.ModifyDBInstanceSSLRequest import (
    ModifyDBInstanceSSLRequest,
)
from aliyunsdkrds.request.v20140815.ModifyParameterRequest import ModifyParameterRequest
from aliyunsdkrds.request.v20140815.ModifySecurityIpsRequest import ModifySecurityIpsRequest

from clusters.adapters.aliyun.client import AliyunClient, check_client_token, pages, tag_list
from clusters.adapters.aliyun.errors import CloudNotFound
from clusters.adapters.aliyun.models import (
    Account,
    Backup,
    Database,
    NetInfo,
    Parameters,
    ParameterTemplate,
    RdsClassOffer,
    RdsCreated,
    RdsInstance,
    RdsSpec,
    RdsSsl,
    RdsZoneOffer,
    ResourceUsage,
    items,
)
from clusters.core.errors import PermanentError

WHITELIST_GROUP = "k3s"  # our own IP group, so the instance's default group is left alone
RDS_PAGE_SIZE = 100
# What the panel buys for K3s: the High-availability edition (a standby in the zone) on
# enhanced SSDs (cloud disks), pay-as-you-go. The wizard asks DescribeAvailableClasses for
# exactly this combination, so what it offers is what CreateDBInstance can buy.
RDS_CATEGORY = "HighAvailability"
RDS_STORAGE_TYPE = "cloud_essd"
RDS_PAY_TYPE = "Postpaid"
LOCAL_SSD = "local_ssd"


def backup_method_for(storage_type: str) -> str:
    """CreateBackup's BackupMethod for an instance's DBInstanceStorageType.

    Local SSD instances take physical backups; cloud-disk instances (cloud_ssd, cloud_essd*,
    general_essd) support only snapshot backups (Alibaba help, "Back up individual databases
    and tables of an ApsaraDB RDS for MySQL instance"; V2 CreateBackupRequest: Logical |
    Physical | Snapshot, default Physical).
    """
    return "Physical" if storage_type == LOCAL_SSD else "Snapshot"


class RdsApi:
    client: AliyunClient

    def create_rds(self, spec: RdsSpec, *, client_token: str,
                   tags: Mapping[str, str] | None = None) -> RdsCreated:
        check_client_token(client_token)
        request = CreateDBInstanceRequest()
        request.set_Engine(spec.engine)
        request.set_EngineVersion(spec.engine_version)
        request.set_DBInstanceClass(spec.instance_class)
        request.set_DBInstanceStorage(spec.storage_gb)
        request.set_DBInstanceNetType("Intranet")
        request.set_InstanceNetworkType("VPC")
        request.set_VPCId(spec.vpc_id)
        request.set_VSwitchId(spec.vswitch_id)
        request.set_ZoneId(spec.zone_id)
        request.set_SecurityIPList(",".join(spec.security_ips))
        request.set_PayType(spec.pay_type)
        request.set_ClientToken(client_token)
        if spec.storage_type:
            request.set_DBInstanceStorageType(spec.storage_type)
        if spec.category:
            request.set_Category(spec.category)
        if spec.zone_id_slave:
            request.set_ZoneIdSlave1(spec.zone_id_slave)
        if spec.description:
            request.set_DBInstanceDescription(spec.description)
        if tags:
            request.set_Tags(tag_list(tags))
        body = self.client.call(request)
        default_port = 5432 if spec.engine == "PostgreSQL" else 3306
        return RdsCreated(body["DBInstanceId"], body.get("ConnectionString", ""),
                          int(body.get("Port") or default_port), str(body.get("OrderId", "")))

    def describe_rds(self, instance_id: str) -> RdsInstance | None:
        """The instance, or None once it no longer exists."""
        request = DescribeDBInstanceAttributeRequest()
        request.set_DBInstanceId(instance_id)
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        found = items(body, "Items", "DBInstanceAttribute")
        return RdsInstance.from_api(found[0]) if found else None

    def find_rds_by_tag(self, key: str, value: str) -> list[RdsInstance]:
        """Instances carrying the tag: how a crashed create is found again."""
        def make(page: int) -> DescribeDBInstancesRequest:
            request = DescribeDBInstancesRequest()
            request.set_Tags(json.dumps({key: value}))
            request.set_PageSize(RDS_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [RdsInstance.from_api(e, listing=True)
                for e in pages(self.client, make, ("Items", "DBInstance"))]

    def list_rds(self, *, page_size: int = RDS_PAGE_SIZE) -> list[RdsInstance]:
        """Every instance of the region, page by page: what the health checks read many
        instances' status from at once (clusters/adapters/health.py, `prefetch`).

        Why not `DBInstanceId=a,b,c`: Alibaba documents DescribeDBInstances' DBInstanceId as
        one instance ID (V2 model `DescribeDBInstancesRequest.dbinstance_id`: "The instance
        ID."; API reference alibabacloud.com/help/en/rds/developer-reference/
        api-rds-2014-08-15-describedbinstances), and DescribeDBInstanceAttribute warns "Do
        not specify multiple instance IDs for batch queries" (its V2 model). PageSize is
        1-100 (same model). Terraform's alicloud_db_instances lists the same way and filters
        ids on its side (data_source_alicloud_db_instances.go).
        """
        def make(page: int) -> DescribeDBInstancesRequest:
            request = DescribeDBInstancesRequest()
            request.set_PageSize(page_size)
            request.set_PageNumber(page)
            return request

        return [RdsInstance.from_api(e, listing=True)
                for e in pages(self.client, make, ("Items", "DBInstance"))]

    def modify_security_ips(self, instance_id: str, ips: Iterable[str], *,
                            group: str = WHITELIST_GROUP) -> None:
        """Replace the IPs of our whitelist group (Cover mode: idempotent)."""
        unique = list(dict.fromkeys(ip.strip() for ip in ips if ip.strip()))
        if not unique:
            raise PermanentError("The RDS whitelist needs at least one address.")
        request = ModifySecurityIpsRequest()
        request.set_DBInstanceId(instance_id)
        request.set_SecurityIps(",".join(unique))
        request.set_DBInstanceIPArrayName(group)
        request.set_ModifyMode("Cover")
        self.client.call(request)

    def create_account(self, instance_id: str, name: str, password: str,
                       description: str | None = None) -> None:
        request = CreateAccountRequest()
        request.set_DBInstanceId(instance_id)
        request.set_AccountName(name)
        request.set_AccountPassword(password)
        request.set_AccountType("Normal")
        if description:
            request.set_AccountDescription(description)
        self.client.call(request, secrets=[password])

    def describe_account(self, instance_id: str, name: str) -> Account | None:
        request = DescribeAccountsRequest()
        request.set_DBInstanceId(instance_id)
        request.set_AccountName(name)
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        for entry in items(body, "Accounts", "DBInstanceAccount"):
            if entry.get("AccountName") == name:
                privileges = {p["DBName"]: p.get("AccountPrivilege", "")
                              for p in items(entry, "DatabasePrivileges", "DatabasePrivilege")}
                return Account(name, entry.get("AccountStatus", ""), privileges)
        return None

    def create_database(self, instance_id: str, name: str, charset: str = "utf8mb4",
                        description: str | None = None) -> None:
        request = CreateDatabaseRequest()
        request.set_DBInstanceId(instance_id)
        request.set_DBName(name)
        request.set_CharacterSetName(charset)
        if description:
            request.set_DBDescription(description)
        self.client.call(request)

    def describe_database(self, instance_id: str, name: str) -> Database | None:
        request = DescribeDatabasesRequest()
        request.set_DBInstanceId(instance_id)
        request.set_DBName(name)
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        for entry in items(body, "Databases", "Database"):
            if entry.get("DBName") == name:
                accounts = {a["Account"]: a.get("AccountPrivilege", "")
                            for a in items(entry, "Accounts", "AccountPrivilegeInfo")}
                return Database(name, entry.get("DBStatus", ""),
                                entry.get("CharacterSetName", ""), accounts)
        return None

    def grant_privilege(self, instance_id: str, account: str, database: str,
                        privilege: str = "ReadWrite") -> None:
        request = GrantAccountPrivilegeRequest()
        request.set_DBInstanceId(instance_id)
        request.set_AccountName(account)
        request.set_DBName(database)
        request.set_AccountPrivilege(privilege)
        self.client.call(request)

    def describe_parameters(self, instance_id: str) -> Parameters:
        request = DescribeParametersRequest()
        request.set_DBInstanceId(instance_id)
        body = self.client.call(request)

        def as_dict(outer: str) -> dict[str, str]:
            return {p["ParameterName"]: str(p.get("ParameterValue", ""))
                    for p in items(body, outer, "DBInstanceParameter")}

        return Parameters(str(body.get("EngineVersion", "")), as_dict("RunningParameters"),
                          as_dict("ConfigParameters"))

    def describe_parameter_templates(self, engine_version: str) -> dict[str, ParameterTemplate]:
        """What may be changed on MySQL `engine_version`, and whether it forces a restart."""
        request = DescribeParameterTemplatesRequest()
        request.set_Engine("mysql")
        request.set_EngineVersion(engine_version)
        body = self.client.call(request)
        return {t["ParameterName"]: ParameterTemplate(
                    t["ParameterName"], str(t.get("ParameterValue", "")),
                    str(t.get("ForceRestart", "")).lower() == "true", t.get("CheckingCode", ""))
                for t in items(body, "Parameters", "TemplateRecord")}

    def modify_parameters(self, instance_id: str, values: Mapping[str, str], *,
                          force_restart: bool = False) -> None:
        """E.g. {"innodb_large_prefix": "ON"}; every value is sent as a string."""
        request = ModifyParameterRequest()
        request.set_DBInstanceId(instance_id)
        request.set_Parameters(json.dumps({k: str(v) for k, v in values.items()}))
        request.set_Forcerestart("true" if force_restart else "false")
        self.client.call(request)

    def describe_ssl(self, instance_id: str) -> RdsSsl:
        """The instance's SSL state (DescribeDBInstanceSSL; it never returns the CA: that is
        downloaded from the console, see clusters.adapters.datastore_tls)."""
        request = DescribeDBInstanceSSLRequest()
        request.set_DBInstanceId(instance_id)
        body = self.client.call(request)
        return RdsSsl(enabled=str(body.get("SSLEnabled", "")).lower() in ("yes", "on"),
                      connection_string=str(body.get("ConnectionString") or ""),
                      expire_time=str(body.get("SSLExpireTime") or ""),
                      force_encryption=str(body.get("ForceEncryption") or "") == "1",
                      require_update=str(body.get("RequireUpdate") or "").lower()
                      in ("yes", "1"))

    def enable_ssl(self, instance_id: str, connection_string: str, *,
                   force_encryption: bool = True) -> None:
        """SSL on for `connection_string` with Alibaba's cloud certificate (CAType aliyun),
        optionally refusing unencrypted clients. RDS restarts the instance (SSLModifying)."""
        request = ModifyDBInstanceSSLRequest()
        request.set_DBInstanceId(instance_id)
        request.set_ConnectionString(connection_string)
        request.set_SSLEnabled(1)
        request.set_CAType("aliyun")
        if force_encryption:
            request.set_ForceEncryption("1")
        self.client.call(request)

    def net_info(self, instance_id: str) -> list[NetInfo]:
        request = DescribeDBInstanceNetInfoRequest()
        request.set_DBInstanceId(instance_id)
        body = self.client.call(request)
        return [NetInfo(n.get("ConnectionString", ""), n.get("IPAddress", ""),
                        int(n.get("Port") or 3306), n.get("IPType", ""), n.get("VPCId", ""),
                        n.get("VSwitchId", ""))
                for n in items(body, "DBInstanceNetInfos", "DBInstanceNetInfo")]

    def delete_rds(self, instance_id: str) -> bool:
        """Release the instance; False when it was already gone."""
        request = DeleteDBInstanceRequest()
        request.set_DBInstanceId(instance_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True

    def create_backup(self, instance_id: str, storage_type: str | None = None) -> str:
        """Start a full backup with the method the storage supports; returns the job id.

        `storage_type` is DescribeDBInstanceAttribute's DBInstanceStorageType (looked up when
        not given). BackupType is not sent: the V2 docstring says it is for SQL Server only.
        """
        if storage_type is None:
            instance = self.describe_rds(instance_id)
            if instance is None:
                raise CloudNotFound(f"RDS instance {instance_id} does not exist.")
            storage_type = instance.storage_type
        request = CreateBackupRequest()
        request.set_DBInstanceId(instance_id)
        request.set_BackupMethod(backup_method_for(storage_type))
        body = self.client.call(request)
        return str(body.get("BackupJobId", ""))

    def describe_rds_zones(self, engine_version: str | None = None, *,
                           zone_id: str | None = None,
                           engine: str = "MySQL") -> list[RdsZoneOffer]:
        """DescribeAvailableZones for `engine` (MySQL | PostgreSQL): which zones sell which
        versions, editions and storage types (what the wizard may offer at all)."""
        request = DescribeAvailableZonesRequest()
        request.set_Engine(engine)
        if engine_version:
            request.set_EngineVersion(engine_version)
        if zone_id:
            request.set_ZoneId(zone_id)
        body = self.client.call(request)
        return [RdsZoneOffer.from_api(z, engine) for z in body.get("AvailableZones") or []]

    def describe_rds_classes(self, zone_id: str, engine_version: str, *,
                             category: str = RDS_CATEGORY, storage_type: str = RDS_STORAGE_TYPE,
                             pay_type: str = RDS_PAY_TYPE,
                             engine: str = "MySQL") -> list[RdsClassOffer]:
        """DescribeAvailableClasses: the classes (and each one's storage range) that zone
        sells for `engine` `engine_version` in that edition and storage type."""
        request = DescribeAvailableClassesRequest()
        request.set_ZoneId(zone_id)
        request.set_Engine(engine)
        request.set_EngineVersion(engine_version)
        request.set_Category(category)
        request.set_DBInstanceStorageType(storage_type)
        request.set_InstanceChargeType(pay_type)
        body = self.client.call(request)
        return [RdsClassOffer.from_api(c) for c in body.get("DBInstanceClasses") or []]

    def describe_backups(self, instance_id: str) -> list[Backup]:
        def make(page: int) -> DescribeBackupsRequest:
            request = DescribeBackupsRequest()
            request.set_DBInstanceId(instance_id)
            request.set_PageSize(RDS_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [Backup(str(b.get("BackupId", "")), b.get("BackupStatus", ""),
                       b.get("BackupStartTime", ""), b.get("BackupEndTime", ""),
                       b.get("BackupMethod", ""), int(b.get("BackupSize") or 0))
                for b in pages(self.client, make, ("Items", "Backup"))]

    def describe_resource_usage(self, instance_id: str) -> ResourceUsage:
        """Storage the instance uses (DescribeResourceUsage: DiskUsed = DataSize + LogSize)."""
        request = DescribeResourceUsageRequest()
        request.set_DBInstanceId(instance_id)
        return ResourceUsage.from_api(self.client.call(request))
