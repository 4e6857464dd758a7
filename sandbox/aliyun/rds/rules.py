"""RDS input rules and the errors RDS answers when they are broken.

Why: the panel must meet the same refusals as on Alibaba Cloud (a 7-character password, an
account called `root`, a database name with upper case, a whitelist entry that is not an
address), with the same codes, or its error handling is never exercised before production.
Rules follow the CreateAccount / CreateDatabase / ModifySecurityIps documentation.
"""

from __future__ import annotations

import ipaddress
import re

from sandbox.aliyun.gateway.errors import ApiError

# Versions the API knows (templates, existing instances); which can be *bought* in a zone is
# the catalogue's business (rds_catalogue: 5.6 is no longer sold).
ENGINE_VERSIONS = ("5.6", "5.7", "8.0", "8.4")
PAY_TYPES = ("Postpaid", "Prepaid", "Serverless")
STORAGE_TYPES = ("local_ssd", "general_essd", "cloud_essd", "cloud_essd2", "cloud_essd3",
                 "cloud_ssd")
CATEGORIES = ("Basic", "HighAvailability", "cluster", "AlwaysOn", "Finance")
CHARACTER_SETS = ("utf8", "gbk", "latin1", "utf8mb4")
PRIVILEGES = ("ReadWrite", "ReadOnly", "DDLOnly", "DMLOnly")
MAX_WHITELIST_ENTRIES = 1000
MAX_WHITELIST_GROUPS = 200
PASSWORD_SPECIALS = "!@#$%^&*()_+-="  # noqa: S105 - a character class, not a secret
# Names RDS keeps for itself (doc 26317 "forbidden keywords", the ones a MySQL user meets).
RESERVED_ACCOUNT_NAMES = frozenset({
    "root", "admin", "administrator", "aurora", "replicator", "mysql", "mysql.sys",
    "mysql.session", "mysql.infoschema", "mariadb.sys", "sys", "system", "test", "aliyun_root",
    "aliyun_admin", "dba", "public", "user", "guest", "information_schema",
})
RESERVED_DB_NAMES = frozenset({
    "mysql", "information_schema", "performance_schema", "sys", "test", "__recycle_bin__",
    "root", "admin", "aliyun", "rds",
})

# DBInstanceClass: rds.mysql.s1.small, mysql.n2.medium.2c, mysql.x4.large.2, ...
_CLASS = re.compile(r"^((rds\.)?mysql|pg)\.[a-z0-9]+(\.[a-z0-9]+)+$")
_ACCOUNT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*[A-Za-z0-9]$")
_DB_NAME = re.compile(r"^[a-z][a-z0-9_-]*[a-z0-9]$")
_DESCRIPTION = re.compile(r"^[A-Za-z\u4e00-\u9fff][^\s]?.*$")
_IP_ARRAY_NAME = re.compile(r"^[a-z][a-z0-9_]{1,119}$")

INSTANCE_NOT_FOUND = ApiError(
    400, "InvalidDBInstanceId.NotFound", "The DBInstanceId provided does not exist in records.",
)
INCORRECT_STATE = ApiError(
    403, "IncorrectDBInstanceState", "Current DB instance state does not support this operation.",
)
INCORRECT_ENGINE_VERSION = ApiError(
    403, "IncorrectEngineVersion", "The engine version does not support the operation.",
)
ACCOUNT_DUPLICATE = ApiError(
    400, "InvalidAccountName.Duplicate", "Specified account name already exists in this instance.",
)
ACCOUNT_NAME_FORMAT = ApiError(
    400, "InvalidAccountName.Format", "Specified account name is not valid.",
)
ACCOUNT_NAME_FORBID = ApiError(
    400, "InvalidAccountName.Forbid", "Specified account name is a keyword in RDS.",
)
ACCOUNT_PASSWORD_FORMAT = ApiError(
    400, "InvalidAccountPassword.Format", "Specified account password is not valid.",
)
ACCOUNT_DESCRIPTION_FORMAT = ApiError(
    400, "InvalidAccountDescription.Format", "Specified account description is not valid.",
)
ACCOUNT_NOT_FOUND = ApiError(
    404, "InvalidAccountName.NotFound", "Specified account name does not exist.",
)
ACCOUNT_LIMIT = ApiError(
    403, "AccountLimitExceeded", "AccountQuotaExceeded: Exceeding the allowed amount of account",
)
DB_DUPLICATE = ApiError(
    400, "InvalidDBName.Duplicate", "Specified DB name already exists in the This instance.",
)
DB_NAME_FORMAT = ApiError(400, "InvalidDBName.Format", "Specified DB name is not valid.")
DB_NAME_FORBID = ApiError(400, "InvalidDBName.Forbid", "Specified DB name is a keyword in RDS.")
DB_NOT_FOUND = ApiError(400, "InvalidDBName.NotFound", "Specified DB name does not exist.")
DB_LIMIT = ApiError(403, "DBLimitExceeded", "DBQuotaExceeded: Exceeding the allowed amount of DB.")
DB_DESCRIPTION_FORMAT = ApiError(
    400, "InvalidDBDescription.Format", "Specified DB description is not valid.",
)
CHARSET_FORMAT = ApiError(
    400, "InvalidCharacterSetName.Format", "Specified character set name is not valid.",
)
PRIVILEGE_MALFORMED = ApiError(
    400, "InvalidAccountPrivilege.Malformed", "Specified account privilege is not valid.",
)
PRIVILEGE_MISMATCH = ApiError(
    400, "InvalidDBNameOrAccountPrivilege",
    "Account permissions and database names must correspond.",
)
SECURITY_IPS_DUPLICATE = ApiError(
    400, "InvalidSecurityIPList.Duplicate",
    "Specified security IP list is not valid: Duplicate IP address in the list.",
)
SECURITY_IPS_FORMAT = ApiError(
    400, "InvalidSecurityIPList.Format", "The specified parameter securityIPList is not valid.",
)
SECURITY_IPS_MODIFY_FORMAT = ApiError(
    400, "SecurityIPList.Format", "Specified SecurityIPList is not valid.",
)
SECURITY_GROUPS_QUOTA = ApiError(
    400, "InvalidSecurityIPListGroup.QuotaExceeded",
    "Specified security IP list group is not valid: Exceeding the allowed amount of group.",
)
IP_ARRAY_NAME_FORMAT = ApiError(
    400, "InvalidDBInstanceIPArrayName.Format", "Specified DBInstanceIPArrayName is not valid.",
)
ENGINE_VERSION_MALFORMED = ApiError(
    400, "InvalidEngineVersion.Malformed", "The specified parameter EngineVersion is not valid.",
)
CLASS_MALFORMED = ApiError(
    400, "InvalidDBInstanceClass.Malformed",
    "The specified parameter DBInstanceClass is not valid.",
)
ZONE_NOT_SUPPORTED = ApiError(
    400, "InvalidZoneId.NotSupported", "The Specified vpc Zone not supported.",
)
VSWITCH_NOT_FOUND = ApiError(
    400, "InvalidVSwitchId.NotFound", "Specified virtual switch is not found in specified VPC.",
)
VSWITCH_EXHAUSTED = ApiError(400, "VswitchIpExhausted", "Vswitch IP exhausted.")
TOKEN_REUSED = ApiError(400, "InvalidRequestId", "The request is copy, check your token.")
INVALID_PARAMETER = ApiError(
    400, "InvalidParameter",
    "Some Reuquest Parameters Is Invalid. Check or Try It Again Later.",
)
INSTANCE_DESCRIPTION_FORMAT = ApiError(
    400, "InvalidDBInstanceDescription.Format", "Specified DB instance description is not valid.",
)
STORAGE_FORMAT = ApiError(
    400, "InvalidDBInstanceStorage.Format", "Specified DB instance storage is not valid.",
)


def parameter_format(pairs: dict[str, str]) -> ApiError:
    listed = ",".join(f"{name}:{value}" for name, value in pairs.items())
    return ApiError(400, "InvalidParameter.Format", f"Specified parameter is not valid.[{listed}]")


def check_instance_class(value: str) -> None:
    if not _CLASS.match(value):
        raise CLASS_MALFORMED


def check_account_name(name: str, engine_version: str) -> None:
    longest = 16 if engine_version == "5.6" else 32
    if name.lower() in RESERVED_ACCOUNT_NAMES:
        raise ACCOUNT_NAME_FORBID
    if not 2 <= len(name) <= longest or not _ACCOUNT_NAME.match(name):
        raise ACCOUNT_NAME_FORMAT


def check_password(password: str) -> None:
    """8-32 characters from at least three classes; only the documented specials."""
    if not 8 <= len(password) <= 32:
        raise ACCOUNT_PASSWORD_FORMAT
    classes = [
        any(c.isupper() and c.isascii() for c in password),
        any(c.islower() and c.isascii() for c in password),
        any(c.isdigit() and c.isascii() for c in password),
        any(c in PASSWORD_SPECIALS for c in password),
    ]
    allowed = all((c.isascii() and c.isalnum()) or c in PASSWORD_SPECIALS for c in password)
    if not allowed or sum(classes) < 3:
        raise ACCOUNT_PASSWORD_FORMAT


def check_description(text: str, error: ApiError) -> None:
    """2-256 characters starting with a letter (and not with http:// or https://)."""
    if not text:
        return
    if not 2 <= len(text) <= 256 or not _DESCRIPTION.match(text) or text.startswith(
        ("http://", "https://"),
    ):
        raise error


def check_db_name(name: str) -> None:
    if name in RESERVED_DB_NAMES:
        raise DB_NAME_FORBID
    check_db_name_format(name)


def check_db_name_format(name: str) -> None:
    """CreateDatabaseRequest.dbname, the same for every engine: "2 to 64 characters", "start
    with a letter and end with a letter or digit", "lowercase letters, digits, underscores (_),
    and hyphens (-)"."""
    if not 2 <= len(name) <= 64 or not _DB_NAME.match(name):
        raise DB_NAME_FORMAT


def check_ip_array_name(name: str) -> None:
    if not _IP_ARRAY_NAME.match(name):
        raise IP_ARRAY_NAME_FORMAT


def parse_security_ips(text: str, format_error: ApiError = SECURITY_IPS_FORMAT) -> list[str]:
    """A comma list of IPv4 addresses / CIDR blocks, unique, at most 1000 (kept as written)."""
    entries = text.split(",") if text else []
    if not entries or len(entries) > MAX_WHITELIST_ENTRIES:
        raise format_error
    seen: list[str] = []
    for entry in entries:
        try:
            if "/" in entry:
                ipaddress.IPv4Network(entry, strict=False)
            else:
                ipaddress.IPv4Address(entry)
        except ValueError:
            raise format_error from None
        if entry in seen:
            raise SECURITY_IPS_DUPLICATE
        seen.append(entry)
    return seen


def privilege_statements(privilege: str) -> str:
    """The MySQL privileges behind an RDS privilege name (as RDS documents them)."""
    return {
        "ReadWrite": "SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, REFERENCES, INDEX, ALTER, "
                     "CREATE TEMPORARY TABLES, LOCK TABLES, EXECUTE, CREATE VIEW, SHOW VIEW, "
                     "CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER",
        "ReadOnly": "SELECT, LOCK TABLES, SHOW VIEW, EXECUTE",
        "DDLOnly": "CREATE, DROP, INDEX, ALTER, CREATE TEMPORARY TABLES, LOCK TABLES, "
                   "CREATE VIEW, SHOW VIEW, CREATE ROUTINE, ALTER ROUTINE, EVENT, TRIGGER",
        "DMLOnly": "SELECT, INSERT, UPDATE, DELETE, CREATE TEMPORARY TABLES, LOCK TABLES, "
                   "EXECUTE, SHOW VIEW, EVENT, TRIGGER",
    }[privilege]


def privilege_detail(privilege: str) -> str:
    """`AccountPrivilegeDetail` as DescribeAccounts prints it (comma list, no spaces).
    PostgreSQL's DBOwner is ownership, not a privilege list (CHOSEN: the detail says so)."""
    if privilege == "DBOwner":
        return "DBOwner"
    return privilege_statements(privilege).replace(", ", ",")
