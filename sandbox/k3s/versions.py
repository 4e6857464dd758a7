"""The K3s releases the offline world knows, and what differs between them.

Why: the panel pins a version or follows a channel, and the datastore behaviour that matters
(kine's DDL, the MySQL driver's error format) changed across releases. Every entry below names a
real release; the kine version it ships was checked against k3s go.mod / release notes
(see /work/shared/reference/k3s-ha.md §3.2).
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
    )
}

CHANNELS: dict[str, str] = {
    "stable": "v1.32.5+k3s1",
    "latest": "v1.33.1+k3s1",
    "testing": "v1.33.1+k3s1",
    "v1.23": "v1.23.8+k3s1",
    "v1.28": "v1.28.8+k3s1",
    "v1.30": "v1.30.8+k3s1",
    "v1.31": "v1.31.4+k3s1",
    "v1.32": "v1.32.5+k3s1",
    "v1.33": "v1.33.1+k3s1",
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
