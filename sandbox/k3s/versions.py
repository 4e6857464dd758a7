"""The K3s releases the offline world knows, and what differs between them.

Why: the panel pins a version or follows a channel, and the datastore behaviour that matters
(kine's DDL, the MySQL driver's error format) changed across releases. Every entry below names a
real release; the kine version it ships was checked against k3s go.mod / release notes
(see the team's shared/reference/k3s-ha.md §3.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Release:
    """One real K3s release and the kine/driver traits the stand-in reproduces."""

    version: str          # e.g. "v1.33.1+k3s1"
    kine: str             # kine version shipped in that release
    ascii_name: bool      # kine >= v0.9.4: name VARCHAR(630) CHARACTER SET ascii
    bigint_ids: bool      # kine >= v0.11.5: BIGINT UNSIGNED id/revisions for new tables
    checks_schema: bool   # kine >= v0.11.3: look in information_schema before CREATE
    quoted_db_name: bool  # kine >= v0.13.0: CREATE DATABASE `name`
    sqlstate_errors: bool  # go-sql-driver >= v1.7: "Error 1071 (42000): ..."
    # Leaf certificates this close to expiry are renewed at start: 90 days, 120 since the
    # May-2025 releases (v1.33.1, v1.32.5, v1.31.9, v1.30.13; k3s-ha.md §4).
    cert_renew_days: int = 90

    @property
    def kine_minor(self) -> tuple[int, int]:
        """(major, minor) of the kine shipped, e.g. (0, 16) for "v0.16.1" or "v0.16.x"."""
        major, minor = self.kine.lstrip("v").split(".")[:2]
        return int(major), int(minor)

    @property
    def kine_pool_v016(self) -> bool:
        """kine >= v0.16.0 (2026-05-27): default max idle 20, and the new pool log line.

        Source: k3s-io/kine e3f930e "Increase default max-idle-connections to 20" (first tag
        v0.16.0), pkg/drivers/generic/generic.go `defaultMaxIdleConns`.
        """
        return self.kine_minor >= (0, 16)

    @property
    def max_idle(self) -> int:
        """Idle MySQL connections kine keeps per server when K3s sets no pool option: the
        `defaultMaxIdleConns` of kine's generic driver (2 = database/sql's, 20 since v0.16)."""
        return 20 if self.kine_pool_v016 else 2

    @property
    def git_commit(self) -> str:
        """Short commit shown by `k3s --version`; derived, NOT the real release commit."""
        return hashlib.sha1(self.version.encode()).hexdigest()[:8]  # noqa: S324

    @property
    def kubernetes(self) -> str:
        """Kubernetes version, e.g. v1.33.1 (what `kubectl version` shows as the server)."""
        return self.version.split("+", 1)[0]

    @property
    def minor_channel(self) -> str:
        major, minor = self.kubernetes.lstrip("v").split(".")[:2]
        return f"v{major}.{minor}"

    @property
    def mirror_name(self) -> str:
        """The China mirror spells `+` as `-` in its paths."""
        return self.version.replace("+", "-")


RELEASES: dict[str, Release] = {
    r.version: r
    for r in (
        # go.mod of v1.23.8+k3s1: k3s-io/kine v0.9.3, go-sql-driver/mysql v1.6.0.
        Release("v1.23.8+k3s1", "v0.9.3", False, False, False, False, False),
        # v1.28.8: kine v0.11.4 (ascii, INTEGER ids, schema check).
        Release("v1.28.8+k3s1", "v0.11.4", True, False, True, False, True),
        # v1.30.8 / v1.31.4 (Dec 2024): kine v0.13.x (inferred from the Sep-2024 v0.13.0
        # bump in k3s#10932); all traits below were introduced before v0.13.0.
        Release("v1.30.8+k3s1", "v0.13.x", True, True, True, True, True),
        Release("v1.31.4+k3s1", "v0.13.x", True, True, True, True, True),
        # v1.33.1/2 ship kine v0.13.15 (release notes); v1.32.5 is its May-2025 sibling.
        Release("v1.32.5+k3s1", "v0.13.15", True, True, True, True, True, 120),
        Release("v1.33.1+k3s1", "v0.13.15", True, True, True, True, True, 120),
        # The lines supported today (late 2026). Kine per release from the release notes'
        # "Embedded Component Versions" (github.com/k3s-io/k3s/releases/tag/<v>,
        # docs.k3s.io/release-notes/v1.3x.X): the May-2026 patches ship kine v0.15.0 (old
        # pool), the June-2026 patches kine v0.16.1 (new pool).
        Release("v1.34.9+k3s1", "v0.16.1", True, True, True, True, True, 120),
        Release("v1.35.5+k3s1", "v0.15.0", True, True, True, True, True, 120),
        Release("v1.35.6+k3s1", "v0.16.1", True, True, True, True, True, 120),
        Release("v1.36.1+k3s1", "v0.15.0", True, True, True, True, True, 120),
        Release("v1.36.2+k3s1", "v0.16.1", True, True, True, True, True, 120),
        # v1.36.4 (2026-08-27, stable) and v1.37.0 (2026-09-14): release names from
        # the team's shared/reference/today-2026.md and public install logs; their notes were not
        # found. K3s main pinned kine v0.16.3 at Kubernetes v1.36.3 and moved to v0.16.4 after
        # (k3s go.mod), so both ship a v0.16 patch: "v0.16.x" (inferred, minor certain).
        Release("v1.36.4+k3s1", "v0.16.x", True, True, True, True, True, 120),
        Release("v1.37.0+k3s1", "v0.16.x", True, True, True, True, True, 120),
    )
}

def release_order(version: str) -> tuple[int, ...]:
    """v1.36.4+k3s1 → (1, 36, 4, 1): release order, not string order."""
    core, _, rev = version.lstrip("v").partition("+k3s")
    return (*map(int, core.split(".")), int(rev or 1))


def newest(versions: list[str] | tuple[str, ...]) -> str:
    return max(versions, key=release_order)


def _minor_channels() -> dict[str, str]:
    """One channel per minor line (v1.36 …), at the newest patch this catalogue holds: the
    update server's `latestRegexp: v1\\.36\\..*` channels (k3s-io/k3s channel.yaml)."""
    lines: dict[str, list[str]] = {}
    for item in RELEASES.values():
        lines.setdefault(item.minor_channel, []).append(item.version)
    return {name: newest(found) for name, found in sorted(lines.items(), key=lambda kv:
                                                              release_order(kv[0] + ".0"))}


# Where each channel points today (update.k3s.io/v1-release/channels): stable = the newest
# v1.36 patch (v1.36.4+k3s1, 2026-08-27), latest = the v1.37 line. The artifact server copies
# this map and can move a channel later (ArtifactServer.move_channel), as a release day does.
CHANNELS: dict[str, str] = {
    "stable": "v1.36.4+k3s1",
    "latest": "v1.37.0+k3s1",
    "testing": "v1.37.0+k3s1",
    **_minor_channels(),
}

ARCHES = ("amd64", "arm64")


def release(version: str) -> Release:
    """The release for `version`; KeyError for a version that never existed."""
    return RELEASES[version]


def by_mirror_name(name: str) -> Release | None:
    for item in RELEASES.values():
        if item.mirror_name == name:
            return item
    return None
