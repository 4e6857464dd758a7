"""`k3s etcd-snapshot` and the scheduled snapshots of an etcd-backed server.

Why: backups are what the panel offers on embedded-etcd clusters; names, directory, listing
and retention must be K3s's so what the panel shows matches a real host. From k3s-io/k3s:
  pkg/etcd/snapshot.go  name `<name>-<node name>-<unix seconds>` (on-demand name "on-demand",
                        scheduled "etcd-snapshot"), directory ${data-dir}/server/db/snapshots,
                        retention: files of one name prefix, newest first, all past N removed
                        ("Removing local snapshot <path>")
  pkg/cli/etcdsnapshot  the CLI posts {operation, name, ...} to the server's /db/snapshot and
                        prints `Snapshot <name> saved.` / `Snapshot <name> deleted.`; `ls`
                        prints a tabwriter table (padding 1) `Name Location Size Created`, sorted
                        by creation time then name, Created as RFC 3339.
  docs.k3s.io/cli/etcd-snapshot and datastore/backup-restore for the flags.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from sandbox.k3s import logs
from sandbox.k3s.etcd import Member
from sandbox.k3s.kine import DatastoreError


@dataclass(frozen=True)
class SnapshotSettings:
    directory: str
    retention: int = 5


def _created(name: str, path: str) -> int:
    """The unix time at the end of the name, else the file's mtime (listLocalSnapshots)."""
    base = name.removesuffix(".zip")
    try:
        return int(base[base.rfind("-") + 1:])
    except ValueError:
        return int(os.path.getmtime(path))


def rfc3339(seconds: int) -> str:
    """metav1.Time in RFC 3339 as Go prints UTC: 2026-12-01T19:00:00Z."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def save(member: Member, settings: SnapshotSettings, node: str, name: str,
         scheduled: bool = False) -> dict[str, list[str]]:
    """ETCD.Snapshot: one real etcd snapshot file, then retention (scheduled runs only; the CLI
    sends retention 0)."""
    status = member.client.status()
    if status.get("isLearner"):
        logs.warn("Unable to take snapshot: not supported for learner")
        return {"created": [], "deleted": []}
    os.makedirs(settings.directory, mode=0o700, exist_ok=True)
    snapshot = f"{name}-{node}-{int(datetime.datetime.now(datetime.UTC).timestamp())}"
    path = os.path.join(settings.directory, snapshot)
    logs.info(f"Saving etcd snapshot to {path}")
    try:
        member.snapshot_save(path)
    except DatastoreError as exc:
        logs.error(f"Failed to take etcd snapshot: {exc}")
        raise
    deleted = retention(settings, name) if scheduled else []
    return {"created": [snapshot], "deleted": deleted}


def retention(settings: SnapshotSettings, prefix: str) -> list[str]:
    """snapshotRetention: keep the newest `retention` files whose name starts with prefix."""
    if settings.retention < 1 or not os.path.isdir(settings.directory):
        return []
    logs.info(f"Applying snapshot retention={settings.retention} to local snapshots with prefix "
              f"{prefix} in {settings.directory}")
    found = []
    for entry in os.listdir(settings.directory):
        path = os.path.join(settings.directory, entry)
        if os.path.isfile(path) and entry.startswith(prefix):
            found.append((_created(entry, path), entry))
    found.sort(reverse=True)
    deleted = []
    for _, entry in found[settings.retention:]:
        path = os.path.join(settings.directory, entry)
        logs.info(f"Removing local snapshot {path}")
        os.remove(path)
        deleted.append(entry)
    return deleted


def listing(settings: SnapshotSettings, node: str) -> dict:
    """ListSnapshots as an ETCDSnapshotFileList (the shape the CLI decodes)."""
    items = []
    if os.path.isdir(settings.directory):
        for entry in sorted(os.listdir(settings.directory)):
            path = os.path.join(settings.directory, entry)
            if not os.path.isfile(path):
                continue
            items.append({
                "apiVersion": "k3s.cattle.io/v1", "kind": "ETCDSnapshotFile",
                "spec": {"snapshotName": entry, "nodeName": node, "location": f"file://{path}"},
                "status": {"size": str(os.path.getsize(path)),
                           "creationTime": rfc3339(_created(entry, path)),
                           "readyToUse": True},
            })
    return {"apiVersion": "v1", "kind": "List", "items": items}


def delete(settings: SnapshotSettings, names: list[str]) -> dict[str, list[str]]:
    deleted = []
    for name in names:
        path = os.path.join(settings.directory, os.path.basename(name))
        if os.path.isfile(path):
            os.remove(path)
            logs.info(f"Snapshot {name} deleted locally")
            deleted.append(name)
        else:
            logs.info(f"Snapshot {name} not found locally")
    return {"created": [], "deleted": deleted}


def table(listed: dict) -> str:
    """The CLI's default output: Go's tabwriter(minwidth 0, tabwidth 0, padding 1, ' ')."""
    items = sorted(listed.get("items", []), key=lambda i: (i["status"]["creationTime"],
                                                          i["spec"]["snapshotName"]))
    rows = [["Name", "Location", "Size", "Created"]]
    rows += [[i["spec"]["snapshotName"], i["spec"]["location"], str(int(i["status"]["size"])),
              i["status"]["creationTime"]] for i in items]
    widths = [max(len(row[col]) for row in rows) + 1 for col in range(3)]
    return "".join("".join(cell.ljust(widths[col]) for col, cell in enumerate(row[:3]))
                   + row[3] + "\n" for row in rows)


class Cron:
    """robfig/cron's standard 5-field spec (minute hour day-of-month month day-of-week)."""

    RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))

    def __init__(self, spec: str) -> None:
        fields = spec.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{spec}]")
        self.sets = [self._field(text, low, high)
                     for text, (low, high) in zip(fields, self.RANGES, strict=True)]

    @staticmethod
    def _field(text: str, low: int, high: int) -> set[int]:
        values: set[int] = set()
        for part in text.split(","):
            base, _, step_text = part.partition("/")
            step = int(step_text) if step_text else 1
            if base in ("*", "?"):
                start, end = low, high
            elif "-" in base:
                start, end = (int(v) for v in base.split("-", 1))
            else:
                start = int(base)
                end = high if step_text else start
            if start < low or end > high or start > end or step < 1:
                raise ValueError(f"end of range ({end}) above maximum ({high}): {part}")
            values.update(range(start, end + 1, step))
        return values

    def matches(self, moment: datetime.datetime) -> bool:
        minute, hour, dom, month, dow = self.sets
        return (moment.minute in minute and moment.hour in hour and moment.day in dom
                and moment.month in month and (moment.isoweekday() % 7) in dow)

    def seconds_until_next(self, now: datetime.datetime | None = None) -> float:
        now = now or datetime.datetime.now().astimezone()
        candidate = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        for _ in range(60 * 24 * 366):
            if self.matches(candidate):
                return max(0.0, (candidate - now).total_seconds())
            candidate += datetime.timedelta(minutes=1)
        raise ValueError("no time matches the schedule")
