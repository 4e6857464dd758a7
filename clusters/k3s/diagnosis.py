"""Translate K3s journal lines into what a person should do (k3s-ha.md §5.1).

Why: a failed start leaves hundreds of log lines; the few that matter have stable texts.
Each rule says whether waiting can help (`transient`): a datastore that is still starting
is worth another poll, a token mismatch never heals by itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Diagnosis:
    key: str
    explanation: str
    transient: bool
    line: str = ""


@dataclass(frozen=True)
class _Rule:
    key: str
    pattern: re.Pattern[str]
    explanation: str
    transient: bool = False


_RULES = (
    _Rule("token-mismatch", re.compile(r"bootstrap data already found and encrypted with "
                                       r"different token"),
          "The datastore already holds a cluster created with a different token. Either this "
          "server got another token than the first one, or the database still contains an old "
          "cluster (drop its `kine` table or use a new database)."),
    _Rule("ca-hash-mismatch", re.compile(r"token CA hash does not match the Cluster CA "
                                         r"certificate hash"),
          "The server this node joined through presented a CA other than the cluster's (its "
          "token pins the CA hash the first server wrote): the address leads to another K3s, "
          "or someone is intercepting the connection. Check the load balancer's backends."),
    _Rule("key-too-long", re.compile(r"Error 1071|Error 1709|Specified key was too long|"
                                     r"[Ii]ndex column size too large"),
          "The database rejects K3s's schema (index key longer than 767 bytes): turn "
          "innodb_large_prefix ON (MySQL 5.6/5.7), or use MySQL 5.7/8.0 with the DYNAMIC row "
          "format and InnoDB."),
    _Rule("access-denied", re.compile(r"Error 1045|Access denied for user"),
          "The database refused the user name or password in the datastore endpoint."),
    _Rule("host-not-allowed", re.compile(r"Error 1130|is not allowed to connect"),
          "The database does not accept connections from this server's address: add it to the "
          "RDS whitelist."),
    _Rule("unknown-database", re.compile(r"Error 1049|Unknown database"),
          "The database named in the datastore endpoint does not exist and the account may not "
          "create it."),
    _Rule("too-many-connections", re.compile(r"Error 1040|Too many connections"),
          "The database has run out of connections; use a larger RDS class or fewer servers.",
          transient=True),
    _Rule("no-tcp", re.compile(r"default addr for network '[^']*' unknown"),
          "The datastore endpoint lacks tcp(...): it must read mysql://user:pass@tcp(host:3306)/db."),
    _Rule("over-quoted", re.compile(r"unknown network tcp\\|storage backend is not defined"),
          "The datastore endpoint reached K3s mangled (quotes or backslashes); it must be "
          "written unquoted in config.yaml."),
    _Rule("datastore-unreachable", re.compile(r"building kine: dial tcp [^ ]+: (connect: "
                                              r"connection refused|i/o timeout|connect: no route)"
                                              r"|dial tcp [^ ]+:3306: (connect: connection "
                                              r"refused|i/o timeout)"),
          "This server cannot reach the database: check the RDS whitelist, the security group "
          "and that the RDS instance is running.", transient=True),
    _Rule("datastore-tls-ip-san", re.compile(r"x509: cannot validate certificate for .* because "
                                             r"it doesn't contain any IP SANs"),
          "The database TLS certificate has no IP address in it: use the RDS host name, not "
          "its IP, in the datastore endpoint."),
    _Rule("datastore-tls-ca", re.compile(r"x509: certificate signed by unknown authority"),
          "The database TLS certificate is signed by a CA this server does not trust: give the "
          "RDS CA bundle as datastore-cafile (the panel copies PANEL_RDS_CA_BUNDLE there)."),
    _Rule("datastore-tls-required", re.compile(r"Error 3159|Connections using insecure "
                                               r"transport are prohibited"),
          "The database accepts only encrypted connections (RDS forced SSL encryption) and "
          "K3s connected without TLS: set datastore-cafile to the RDS CA bundle."),
    _Rule("tls-san-missing", re.compile(r"x509: certificate is valid for .*, not "),
          "The API certificate does not include the address used to reach it: the load "
          "balancer address must be in tls-san before K3s first starts (then rotate the "
          "certificate)."),
    _Rule("key-exists", re.compile(r"preparing server: key exists"),
          "Two servers started for the first time at once (an old K3s race); start one server, "
          "wait until it is ready, then start the others.", transient=True),
    _Rule("id-overflow", re.compile(r"Duplicate entry '2147483647' for key"),
          "The kine table ran out of 32-bit ids: start one server once with "
          "KINE_SCHEMA_MIGRATION=1 after backing up the database."),
    _Rule("duplicate-hostname", re.compile(r"Node password rejected, duplicate hostname"),
          "Another node already uses this host name; give every host a unique host name."),
)


def diagnose(lines: Iterable[str]) -> list[Diagnosis]:
    """Every known failure found in `lines`, once each, in the order first seen."""
    found: dict[str, Diagnosis] = {}
    for line in lines:
        for rule in _RULES:
            if rule.key not in found and rule.pattern.search(line):
                found[rule.key] = Diagnosis(rule.key, rule.explanation, rule.transient,
                                            line.strip())
    return list(found.values())


def explain(lines: Iterable[str]) -> str | None:
    """One paragraph for a person: the first permanent finding wins over transient ones."""
    findings = diagnose(lines)
    if not findings:
        return None
    findings.sort(key=lambda d: d.transient)
    return " ".join(d.explanation for d in findings[:2])


# --- kine's connection pool ---------------------------------------------------------------------


@dataclass(frozen=True)
class KinePool:
    """What kine says about its MySQL connection pool when it starts."""

    max_idle: int
    max_open: int        # 0: no limit
    max_lifetime: str    # Go duration as printed, "0s": no limit
    max_idle_time: str   # "" before kine v0.16 (the setting did not exist)
    line: str = ""

    def describe(self) -> str:
        """One sentence for the run log."""
        limit = f"at most {self.max_open} open" if self.max_open > 0 else "no limit on open ones"
        return (f"kine keeps up to {self.max_idle} idle MySQL connections per server "
                f"({limit})")


# Both forms of kine's start-up line (k3s-io/kine pkg/drivers/generic/generic.go):
#   before v0.16: "Configuring mysql database connection pooling: maxIdleConns=2,
#                  maxOpenConns=0, connMaxLifetime=0s"
#   since v0.16:  "Configuring mysql database connection pooling: maxIdle=20, maxOpen=0,
#                  maxLifetime=0s, maxIdleTime=0s"
# In the journal the line is logrus text inside K3s's unit output (msg="…"), hence `search`.
_POOL = re.compile(
    r"database connection pooling: "
    r"(?:maxIdleConns=(?P<old_idle>-?\d+), maxOpenConns=(?P<old_open>-?\d+), "
    r"connMaxLifetime=(?P<old_life>[0-9a-zµ.]+)"
    r"|maxIdle=(?P<idle>-?\d+), maxOpen=(?P<open>-?\d+), maxLifetime=(?P<life>[0-9a-zµ.]+), "
    r"maxIdleTime=(?P<idle_time>[0-9a-zµ.]+))")


def parse_kine_pool(lines: Iterable[str]) -> KinePool | None:
    """The last pool line in `lines` (a restart prints a new one), in either kine form."""
    found: KinePool | None = None
    for line in lines:
        match = _POOL.search(line)
        if not match:
            continue
        if match["idle"] is not None:
            found = KinePool(int(match["idle"]), int(match["open"]), match["life"],
                             match["idle_time"], line.strip())
        else:
            found = KinePool(int(match["old_idle"]), int(match["old_open"]), match["old_life"],
                             "", line.strip())
    return found
