"""What differs between RDS MySQL and RDS PostgreSQL in the API's own rules.

Why one table: CreateDBInstance, CreateAccount, CreateDatabase and GrantAccountPrivilege take
the same parameters for both engines but accept different values (V2 models of
alibabacloud_rds20140815, 2026):

- EngineVersion: MySQL `5.7`/`8.0`/`8.4`; PostgreSQL `10.0` … `18.0` (CreateDBInstanceRequest).
- Port: MySQL 1000-65534; "PostgreSQL, SQL Server, and MariaDB: 1000 to 5999".
- CharacterSetName: MySQL `utf8`/`gbk`/`latin1`/`utf8mb4`; PostgreSQL "the character set,
  Collate, and Ctype in the format of `Character set,<Collate>,<Ctype>`. Example:
  `UTF8,C,en_US.utf8`" (CreateDatabaseRequest), where Collate and Ctype may be left out:
  "If this parameter is not specified, the default value **C**" (Collate) / "**en_US.utf8**"
  (Ctype) "is used". The emulator stores the full triple.
- DBName: one rule for every engine, "2 to 64 characters", lowercase letters, digits, `_`
  and `-`, a letter first, a letter or digit last (CreateDatabaseRequest.dbname; the
  CreateDatabase API reference gives no PostgreSQL exception). PostgreSQL itself keeps 63
  bytes of an identifier (NAMEDATALEN - 1) and truncates a longer one with a NOTICE, on
  CREATE DATABASE and on connect alike.
- AccountPrivilege: MySQL ReadWrite/ReadOnly/DDLOnly/DMLOnly; PostgreSQL "**DBOwner**:
  database owner" only (GrantAccountPrivilegeRequest).
- Account names: "uppercase letters (supported only by MySQL)" (CreateAccountRequest);
  PostgreSQL names may not start with `pg` (reserved by PostgreSQL for its roles), 2-63
  characters (NAMEDATALEN - 1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandbox.aliyun.gateway.errors import ApiError
from sandbox.aliyun.rds import rules

ENGINE_MALFORMED = ApiError(400, "InvalidEngine.Malformed",
                            "The specified parameter Engine is not valid.")
PORT_MALFORMED = ApiError(400, "InvalidPort.Malformed", "Specified port is not valid.")

PG_CHARACTER_SETS = (
    "KOI8U", "UTF8", "WIN866", "WIN874", "WIN1250", "WIN1251", "WIN1252", "WIN1253", "WIN1254",
    "WIN1255", "WIN1256", "WIN1257", "WIN1258", "EUC_CN", "EUC_KR", "EUC_TW", "EUC_JP",
    "EUC_JIS_2004", "KOI8R", "MULE_INTERNAL", "LATIN1", "LATIN2", "LATIN3", "LATIN4", "LATIN5",
    "LATIN6", "LATIN7", "LATIN8", "LATIN9", "LATIN10", "ISO_8859_5", "ISO_8859_6",
    "ISO_8859_7", "ISO_8859_8", "SQL_ASCII",
)
# The locales the emulator's servers can build a database with (what `SELECT DISTINCT
# collname FROM pg_collation` lists on an RDS instance includes these).
# "If this parameter is not specified, the default value **C** / **en_US.utf8** is used"
# (CreateDatabaseRequest.character_set_name, for Collate and Ctype).
PG_DEFAULT_COLLATE = "C"
PG_DEFAULT_CTYPE = "en_US.utf8"
PG_LOCALES = ("C", "POSIX", "C.UTF-8", "C.utf8", "en_US.utf8", "en_US.UTF-8")
PG_RESERVED_ACCOUNTS = frozenset({"postgres", "root", "admin", "administrator", "aliyun_root",
                                  "replicator", "public", "none", "current_user",
                                  "session_user", "user", "system"})
PG_RESERVED_DBS = frozenset({"postgres", "template0", "template1", "root", "admin", "rds",
                             "aliyun"})
_PG_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")


@dataclass(frozen=True)
class DatabaseCharset:
    """What CreateDatabase's CharacterSetName asked for."""

    charset: str
    collate: str = ""
    ctype: str = ""


@dataclass(frozen=True)
class EngineRules:
    """One engine's accepted values (see the module docstring for the sources)."""

    name: str
    versions: tuple[str, ...]
    privileges: tuple[str, ...]
    max_port: int

    def check_version(self, version: str) -> None:
        if version not in self.versions:
            raise rules.ENGINE_VERSION_MALFORMED

    def check_port(self, port: int | None) -> None:
        """Within the engine's range (the parameter's own bounds, 1000-65534, came first)."""
        if port is not None and port > self.max_port:
            raise PORT_MALFORMED

    def check_account_name(self, name: str, version: str) -> None:
        if self.name == "MySQL":
            rules.check_account_name(name, version)
            return
        if name.lower() in PG_RESERVED_ACCOUNTS:
            raise rules.ACCOUNT_NAME_FORBID
        if (not 2 <= len(name) <= 63 or not _PG_ACCOUNT_NAME.match(name)
                or name.startswith("pg")):
            raise rules.ACCOUNT_NAME_FORMAT

    def check_db_name(self, name: str) -> None:
        if self.name == "MySQL":
            rules.check_db_name(name)
            return
        if name in PG_RESERVED_DBS:
            raise rules.DB_NAME_FORBID
        rules.check_db_name_format(name)

    def parse_charset(self, value: str) -> DatabaseCharset:
        if self.name == "MySQL":
            if value not in rules.CHARACTER_SETS:
                raise rules.CHARSET_FORMAT
            return DatabaseCharset(value)
        parts = value.split(",")
        if len(parts) > 3 or parts[0] not in PG_CHARACTER_SETS:
            raise rules.CHARSET_FORMAT
        charset, collate, ctype = (parts + [PG_DEFAULT_COLLATE, PG_DEFAULT_CTYPE][len(parts) - 1:])
        if collate not in PG_LOCALES or ctype not in PG_LOCALES:
            raise rules.CHARSET_FORMAT
        return DatabaseCharset(charset, collate, ctype)

    def format_charset(self, charset: DatabaseCharset) -> str:
        if self.name == "MySQL":
            return charset.charset
        return ",".join((charset.charset, charset.collate, charset.ctype))


MYSQL = EngineRules("MySQL", rules.ENGINE_VERSIONS, rules.PRIVILEGES, 65534)
POSTGRESQL = EngineRules("PostgreSQL", ("10.0", "11.0", "12.0", "13.0", "14.0", "15.0", "16.0",
                                        "17.0", "18.0"), ("DBOwner",), 5999)
ENGINES = {"mysql": MYSQL, "postgresql": POSTGRESQL}


def engine_named(name: str) -> EngineRules:
    """The engine a request names (RDS compares Engine without regard to case)."""
    found = ENGINES.get(name.lower())
    if found is None:
        raise ENGINE_MALFORMED
    return found


def engine_of(record: dict[str, str]) -> EngineRules:
    return ENGINES[record.get("engine", "MySQL").lower()]


def engine_of_version(version: str) -> EngineRules:
    """The engine whose versions include `version` (MySQL's and PostgreSQL's never overlap)."""
    return POSTGRESQL if version in POSTGRESQL.versions else MYSQL
