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

import contextlib
import datetime
import os
import zipfile
from dataclasses import dataclass

from sandbox.k3s import logs
from sandbox.k3s.etcd import Member
from sandbox.k3s.kine import DatastoreError

COMPRESSED_EXTENSION = ".zip"  # pkg/etcd/snapshot/types.go CompressedExtension


@dataclass(frozen=True)
class SnapshotSettings:
    directory: str
    retention: int = 5
    # ${data-dir}/server/db/snapshots: the only directory K3s creates itself.
    default_directory: str = ""
    compress: bool = False


def snapshot_dir(settings: SnapshotSettings, create: bool = True) -> str:
    """snapshotDir (pkg/etcd/snapshot.go): only the default directory is created; a
    --etcd-snapshot-dir of the user's must exist already. DatastoreError as K3s wraps it."""
    directory = settings.directory
    if directory != (settings.default_directory or directory):
        create = False
    if not os.path.exists(directory):
        if create:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            return directory
        raise DatastoreError(f"failed to get etcd-snapshot-dir: stat {directory}: no such file "
                             "or directory")
    if not os.path.isdir(directory):
        raise DatastoreError(f"failed to get etcd-snapshot-dir: {directory} is not a directory")
    return directory


def compress(directory: str, name: str, moment: datetime.datetime) -> str:
    """compressSnapshot: `<name>.zip` holding one deflated entry named <name>; the plain file
    is removed whatever happens."""
    plain = os.path.join(directory, name)
    zipped = plain + COMPRESSED_EXTENSION
    logs.info(f"Compressing etcd snapshot file: {name}")
    try:
        info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = (os.stat(plain).st_mode & 0xFFFF) << 16
        with zipfile.ZipFile(zipped, "w") as archive, open(plain, "rb") as source, \
                archive.open(info, "w") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.remove(zipped)
        raise DatastoreError(f"failed to compress snapshot: {exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.remove(plain)
    logs.info(f"Compressed snapshot: {zipped}")
    return zipped


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
         scheduled: bool = False) -> dict[str, list[str]] | None:
    """ETCD.Snapshot: one real etcd snapshot file (zipped with compress), then retention.

    None on a learner (K3s returns a nil result: the handler answers 500, the cron only logs);
    DatastoreError for a missing --etcd-snapshot-dir or a failed save."""
    status = member.client.status()
    if status.get("isLearner"):
        logs.warn("Unable to take snapshot: not supported for learner")
        return None
    directory = snapshot_dir(settings, create=True)
    moment = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    snapshot = f"{name}-{node}-{int(moment.timestamp())}"
    path = os.path.join(directory, snapshot)
    logs.info(f"Saving etcd snapshot to {path}")
    try:
        member.snapshot_save(path)
    except DatastoreError as exc:
        logs.error(f"Failed to take etcd snapshot: {exc}")
        raise
    if settings.compress:
        path = compress(directory, snapshot, moment)
    deleted = retention(settings, name) if scheduled else []
    return {"created": [os.path.basename(path)], "deleted": deleted}


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


STAR_BIT = 1 << 63  # robfig/cron v3 spec.go starBit: the field was "*" or "?" (no step > 1)
MONTH_NAMES = {n: i + 1 for i, n in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])}
DOW_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
# robfig/cron v3 parser.go parseDescriptor (what cron.New's standard parser accepts).
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@hourly": "0 * * * *"}


class Cron:
    """robfig/cron v3's standard parser (K3s: cron.New, pkg/etcd/etcd.go NewETCD), for
    --etcd-snapshot-schedule-cron: minute hour day-of-month month day-of-week.

    From robfig/cron v3 parser.go (getRange, parseIntOrName, mustParseInt, normalizeFields)
    and spec.go (bounds, dayMatches): month names jan-dec and weekday names sun-sat
    (case-insensitive, also in ranges); weekday 0-6 only (7 fails "end of range (7) above
    maximum (6)"); "N/step" means N-max/step; when both day-of-month and day-of-week are
    restricted (neither "*" nor "?"), a day matching EITHER one runs (crontab(5)); "*/n" with
    n > 1 counts as restricted."""

    BOUNDS = ((0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTH_NAMES),
              (0, 6, DOW_NAMES))

    def __init__(self, spec: str) -> None:
        text = spec.strip()
        if text.startswith("@"):
            if text not in DESCRIPTORS:
                raise ValueError(f"unrecognized descriptor: {text}")
            text = DESCRIPTORS[text]
        fields = text.split()
        if len(fields) != 5:
            raise ValueError(f"expected exactly 5 fields, found {len(fields)}: "
                             f"[{' '.join(fields)}]")
        self.bits = [self._field(field, low, high, names)
                     for field, (low, high, names) in zip(fields, self.BOUNDS, strict=True)]

    @staticmethod
    def _int(expr: str, names: dict[str, int] | None = None) -> int:
        if names and expr.lower() in names:
            return names[expr.lower()]
        try:
            num = int(expr, 10)
        except ValueError:
            raise ValueError(f'failed to parse int from {expr}: strconv.Atoi: parsing '
                             f'"{expr}": invalid syntax') from None
        if num < 0:
            raise ValueError(f"negative number ({num}) not allowed: {expr}")
        return num

    @classmethod
    def _field(cls, field: str, low: int, high: int, names: dict[str, int] | None) -> int:
        """getField: the union of the comma-separated ranges."""
        bits = 0
        for expr in (part for part in field.split(",") if part):
            bits |= cls._range(expr, low, high, names)
        return bits

    @classmethod
    def _range(cls, expr: str, low: int, high: int, names: dict[str, int] | None) -> int:
        """getRange: number | number "-" number [ "/" number ], names allowed."""
        range_and_step = expr.split("/")
        low_and_high = range_and_step[0].split("-")
        extra = 0
        if low_and_high[0] in ("*", "?"):
            start, end, extra = low, high, STAR_BIT
        else:
            start = cls._int(low_and_high[0], names)
            if len(low_and_high) == 1:
                end = start
            elif len(low_and_high) == 2:
                end = cls._int(low_and_high[1], names)
            else:
                raise ValueError(f"too many hyphens: {expr}")
        if len(range_and_step) == 1:
            step = 1
        elif len(range_and_step) == 2:
            step = cls._int(range_and_step[1])
            if len(low_and_high) == 1:
                end = high
            if step > 1:
                extra = 0
        else:
            raise ValueError(f"too many slashes: {expr}")
        cls._check(expr, start, end, step, low=low, high=high)
        bits = extra
        for value in range(start, end + 1, step):
            bits |= 1 << value
        return bits

    @staticmethod
    def _check(expr: str, start: int, end: int, step: int, *, low: int, high: int) -> None:
        if start < low:
            raise ValueError(f"beginning of range ({start}) below minimum ({low}): {expr}")
        if end > high:
            raise ValueError(f"end of range ({end}) above maximum ({high}): {expr}")
        if start > end:
            raise ValueError(f"beginning of range ({start}) beyond end of range ({end}): "
                             f"{expr}")
        if step == 0:
            raise ValueError(f"step of range should be a positive number: {expr}")

    def matches(self, moment: datetime.datetime) -> bool:
        minute, hour, dom, month, dow = self.bits
        dom_match = bool(dom & (1 << moment.day))
        dow_match = bool(dow & (1 << (moment.isoweekday() % 7)))
        if dom & STAR_BIT or dow & STAR_BIT:
            day = dom_match and dow_match
        else:
            day = dom_match or dow_match
        return bool(minute & (1 << moment.minute) and hour & (1 << moment.hour)
                    and month & (1 << moment.month) and day)

    def seconds_until_next(self, now: datetime.datetime | None = None) -> float:
        now = now or datetime.datetime.now().astimezone()
        candidate = now.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
        for _ in range(60 * 24 * 366 * 5):
            if self.matches(candidate):
                return max(0.0, (candidate - now).total_seconds())
            candidate += datetime.timedelta(minutes=1)
        raise ValueError("no time matches the schedule")
