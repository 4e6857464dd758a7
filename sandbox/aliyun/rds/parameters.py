"""RDS MySQL parameter templates and how each parameter reaches the real server.

Why: K3s breaks on RDS MySQL 5.6/5.7 while `innodb_large_prefix` is OFF (kine's utf8mb4
VARCHAR(630) key exceeds 767 bytes), so the emulator must hold that parameter, refuse it on
8.0/8.4 (removed in MySQL 8.0, WL#7704), and make the MariaDB server enforce the matching key limit.
MariaDB 10.11 has no innodb_large_prefix; the same limit comes from the row format: COMPACT
tables allow 767-byte keys, DYNAMIC ones 3072 bytes (what MySQL 5.7 allows with it ON).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LARGE_PREFIX = "innodb_large_prefix"
# What `SELECT VERSION()` answers on each RDS engine version (MariaDB lets us say it).
SERVER_VERSIONS = {"5.6": "5.6.51-log", "5.7": "5.7.44-log", "8.0": "8.0.36", "8.4": "8.4.5"}


@dataclass(frozen=True)
class Template:
    """One row of DescribeParameterTemplates and where the value goes in MariaDB."""

    name: str
    default: str
    checking_code: str
    force_restart: bool
    description: str
    versions: tuple[str, ...] = ("5.6", "5.7", "8.0", "8.4")
    # The MariaDB variable that carries the value ("" = special handling in the runtime).
    variable: str | None = None
    default_80: str | None = None
    default_57: str | None = None

    def default_for(self, engine_version: str) -> str:
        if engine_version.startswith("8.") and self.default_80 is not None:
            return self.default_80
        if engine_version == "5.7" and self.default_57 is not None:
            return self.default_57
        return self.default

    def accepts(self, value: str) -> bool:
        """Check against CheckingCode: `[ON|OFF]` (exact choices) or `[1-31536000]` (range)."""
        body = self.checking_code.strip("[]")
        if "|" in body or not re.match(r"^-?[\d.]+-[\d.]+$", body):
            return value in body.split("|")
        low, high = (float(part) for part in body.split("-", 1))
        try:
            number = float(value)
        except ValueError:
            return False
        integral = "." not in body
        if integral and not re.match(r"^\d+$", value):
            return False
        return low <= number <= high


TEMPLATES: tuple[Template, ...] = (
    # ON by default on RDS 5.7 (and MySQL 5.7.7+), OFF on 5.6, absent on 8.x. An instance that
    # starts OFF (the K3s recipe's story) comes from a changed default: the control API's
    # `rds/parameter-defaults` stands in for the account's own parameter template.
    Template(LARGE_PREFIX, "OFF", "[ON|OFF]", False,
             "Allows index key prefixes longer than 767 bytes (up to 3072 bytes) for InnoDB "
             "tables that use the DYNAMIC or COMPRESSED row format.",
             versions=("5.6", "5.7"), variable="", default_57="ON"),
    Template("character_set_server", "utf8", "[utf8|latin1|gbk|utf8mb4]", True,
             "The server's default character set.", variable="character_set_server",
             default_80="utf8mb4"),
    Template("wait_timeout", "86400", "[1-31536000]", False,
             "The number of seconds the server waits for activity on a noninteractive "
             "connection before closing it.", variable="wait_timeout"),
    Template("interactive_timeout", "7200", "[10-86400]", False,
             "The number of seconds the server waits for activity on an interactive "
             "connection before closing it.", variable="interactive_timeout"),
    Template("innodb_lock_wait_timeout", "50", "[1-1073741824]", False,
             "The length of time in seconds an InnoDB transaction waits for a row lock.",
             variable="innodb_lock_wait_timeout"),
    Template("max_allowed_packet", "1073741824", "[16384-1073741824]", False,
             "The maximum size of one packet or any generated/intermediate string.",
             variable="max_allowed_packet"),
    Template("long_query_time", "1", "[0.1-3600]", False,
             "Queries slower than this many seconds are logged as slow.",
             variable="long_query_time"),
    Template("auto_increment_increment", "1", "[1-65535]", False,
             "The interval between successive AUTO_INCREMENT values.",
             variable="auto_increment_increment"),
    Template("auto_increment_offset", "1", "[1-65535]", False,
             "The starting point for AUTO_INCREMENT values.", variable="auto_increment_offset"),
    Template("innodb_autoinc_lock_mode", "1", "[0|1|2]", True,
             "The lock mode to use for generating auto-increment values.",
             variable="innodb_autoinc_lock_mode", default_80="2"),
)


def templates_for(engine_version: str) -> list[Template]:
    return [t for t in TEMPLATES if engine_version in t.versions]


def template(engine_version: str, name: str) -> Template | None:
    for candidate in templates_for(engine_version):
        if candidate.name == name:
            return candidate
    return None


def defaults_for(engine_version: str) -> dict[str, str]:
    return {t.name: t.default_for(engine_version) for t in templates_for(engine_version)}


def row_format_for(parameters: dict[str, str], engine_version: str) -> str:
    """The MariaDB default row format that reproduces the engine's index key limit."""
    if engine_version in ("5.6", "5.7") and parameters.get(LARGE_PREFIX, "OFF") != "ON":
        return "compact"
    return "dynamic"


def server_options(parameters: dict[str, str], engine_version: str) -> dict[str, str]:
    """mariadbd options (my.cnf) for the parameter values an instance runs with."""
    options = {"innodb_default_row_format": row_format_for(parameters, engine_version),
               "version": SERVER_VERSIONS[engine_version]}
    for entry in templates_for(engine_version):
        if entry.variable and entry.name in parameters:
            options[entry.variable] = parameters[entry.name]
    if options.get("character_set_server") == "utf8mb4":
        options["collation_server"] = "utf8mb4_general_ci"
    elif options.get("character_set_server") == "gbk":
        options["collation_server"] = "gbk_chinese_ci"
    elif options.get("character_set_server") == "latin1":
        options["collation_server"] = "latin1_swedish_ci"
    else:
        options["collation_server"] = "utf8_general_ci"
    return options
