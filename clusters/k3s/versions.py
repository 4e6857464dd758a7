"""K3s version strings: parse, compare, check an upgrade path, and say which kine DDL runs.

Why: servers must run the same version, upgrades may not skip a minor (Kubernetes skew
policy), and whether a MySQL database hits "Error 1071: key too long" depends on the kine
release the K3s version ships (its `name` column became `CHARACTER SET ascii` in kine v0.9.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusters.core.errors import PermanentError

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[+-]k3s(\d+))?$")
_CHANNEL = re.compile(r"^(stable|latest|testing|v\d+\.\d+)$")


@dataclass(frozen=True, order=True)
class K3sVersion:
    major: int
    minor: int
    patch: int
    k3s: int = 1

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}+k3s{self.k3s}"

    @property
    def minor_line(self) -> str:
        """The channel name of this minor, e.g. `v1.30`."""
        return f"v{self.major}.{self.minor}"


def parse_version(text: str) -> K3sVersion:
    """`v1.28.5+k3s1` (also `1.28.5`, the mirror's `v1.28.5-k3s1`) → K3sVersion."""
    match = _VERSION.match(text.strip())
    if not match:
        raise PermanentError(
            f"{text!r} is not a K3s version; expected something like v1.30.8+k3s1")
    major, minor, patch, rev = match.groups()
    return K3sVersion(int(major), int(minor), int(patch), int(rev or 1))


def is_channel(text: str) -> bool:
    """True for the channel names the install script understands (stable, latest, v1.30 …)."""
    return bool(_CHANNEL.match(text.strip()))


def release_from_channel_answer(status: int, location: str, body: str) -> str | None:
    """The exact release a channel server's answer names, or None when it names none.

    update.k3s.io answers GET /v1-release/channels/<name> with a redirect to the release's
    tag page (…/releases/tag/v1.36.4+k3s1); the install script follows it and keeps the last
    path segment (`curl -w '%{url_effective}' … | sed -e 's|.*/||'`, k3s-io/k3s install.sh
    get_release_version). The China mirror answers /k3s/channels/<name> with the version as
    the body (its k3s-install.sh reads it with `curl -sfL`).
    """
    if status in (301, 302, 303, 307, 308):
        candidate = location.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        candidate = candidate.replace("%2B", "+").replace("%2b", "+")
    elif 200 <= status < 300:
        candidate = body.strip()
    else:
        return None
    try:
        return str(parse_version(candidate))
    except PermanentError:
        return None


def upgrade_problem(current: str, target: str) -> str | None:
    """Why going from `current` to `target` is not a safe K3s upgrade, or None."""
    old, new = parse_version(current), parse_version(target)
    if new == old:
        return f"the cluster already runs {old}"
    if new < old:
        return (f"{new} is older than the running {old}; K3s cannot be downgraded in place "
                "(restore the datastore backup taken before the upgrade instead)")
    if new.major != old.major:
        return f"a major-version change ({old} to {new}) is not supported"
    if new.minor > old.minor + 1:
        steps = ", ".join(f"v{old.major}.{m}" for m in range(old.minor + 1, new.minor))
        return (f"upgrading {old} to {new} skips minor versions; upgrade through {steps} "
                "first (Kubernetes does not support skipping minors)")
    return None


@dataclass(frozen=True)
class KineSchema:
    """The parts of kine's MySQL schema that differ between releases."""

    ascii_name: bool    # kine >= v0.9.4: name VARCHAR(630) CHARACTER SET ascii
    bigint_ids: bool    # kine >= v0.11.5: BIGINT UNSIGNED ids for new tables
    five_indexes: bool  # kine >= v0.5.0: + kine_id_deleted_index, kine_prev_revision_index


def kine_schema(version: str) -> KineSchema:
    """Which kine schema a K3s version creates (k3s-ha.md §3.2; unsure cases err strict).

    ascii: k3s v1.25.4+ ships kine v0.9.6 (v1.25.3 still v0.9.3); older minors' late patches
    may have it too, but that is unverified, so they are treated as utf8 (the strict case).
    bigint: v1.28.9+ (kine v0.11.7), and every minor after 1.28 from its spring-2024 patches.
    """
    v = parse_version(version)
    key = (v.major, v.minor, v.patch)
    ascii_name = key >= (1, 25, 4)
    bigint = key >= (1, 30, 0) or (1, 28, 9) <= key < (1, 29, 0) or key >= (1, 29, 4)
    five = key >= (1, 19, 4)  # kine v0.5.0 (Oct 2020); exact first 1.19 patch unverified
    return KineSchema(ascii_name=ascii_name, bigint_ids=bigint, five_indexes=five)


def kine_ddl(version: str, table: str = "kine") -> list[str]:
    """The statements kine runs on first start, with the table renamed (for a scratch check).

    Index names are kept: MySQL scopes them to their table, so a scratch table cannot clash.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", table):
        raise ValueError(f"unsafe table name {table!r}")
    schema = kine_schema(version)
    ident = "BIGINT UNSIGNED" if schema.bigint_ids else "INTEGER"
    name = "VARCHAR(630) CHARACTER SET ascii" if schema.ascii_name else "VARCHAR(630)"
    statements = [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        f" id {ident} AUTO_INCREMENT, name {name}, created INTEGER, deleted INTEGER,"
        f" create_revision {ident}, prev_revision {ident}, lease INTEGER,"
        " value MEDIUMBLOB, old_value MEDIUMBLOB, PRIMARY KEY (id))",
        f"CREATE INDEX kine_name_index ON {table} (name)",
        f"CREATE INDEX kine_name_id_index ON {table} (name,id)",
    ]
    if schema.five_indexes:
        statements += [
            f"CREATE INDEX kine_id_deleted_index ON {table} (id,deleted)",
            f"CREATE INDEX kine_prev_revision_index ON {table} (prev_revision)",
        ]
    statements.append(
        f"CREATE UNIQUE INDEX kine_name_prev_revision_uindex ON {table} (name, prev_revision)")
    return statements


# The first K3s patch of each minor line that ships kine v0.16 (default max idle connections
# 2 → 20 per server, k3s-io/kine e3f930e, tag v0.16.0 2026-05-27). From the release notes'
# "Embedded Component Versions": v1.34.9+k3s1, v1.35.6+k3s1, v1.36.2+k3s1 (June 2026) ship
# kine v0.16.1; v1.35.5+k3s1 and v1.36.1+k3s1 (May 2026) still v0.15.0; every v1.37 has v0.16.
_FIRST_KINE_V016 = {(1, 34): (1, 34, 9), (1, 35): (1, 35, 6), (1, 36): (1, 36, 2)}


def kine_max_idle_connections(version: str) -> int:
    """Idle MySQL connections one K3s server's kine keeps open by default: 20 since kine
    v0.16 (first in v1.34.9, v1.35.6, v1.36.2 and all of v1.37+), 2 before (database/sql).

    Why: each server holds its pool, so `max_connections` must fit (servers times this) plus
    bursts. v1.33 and older lines are counted at 2: every release of them we could check
    ships kine < v0.16 (a last June-2026 v1.33 patch, if any, is unverified).
    """
    v = parse_version(version)
    key = (v.major, v.minor, v.patch)
    if (v.major, v.minor) > (1, 36):
        return 20
    first = _FIRST_KINE_V016.get((v.major, v.minor))
    return 20 if first is not None and key >= first else 2
