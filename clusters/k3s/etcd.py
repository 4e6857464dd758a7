"""K3s's embedded etcd: the rules and the texts the panel reads, with no I/O.

Sources (checked against the K3s source, github.com/k3s-io/k3s, and docs.k3s.io):

- docs.k3s.io/datastore/ha-embedded: an odd number of servers; the first starts with
  `cluster-init`, the others join with `server: https://<fixed registration address>:6443`
  and the same token. etcd needs a majority (n // 2 + 1) of its members to accept writes.
- docs.k3s.io/cli/etcd-snapshot: scheduled snapshots `etcd-snapshot-schedule-cron`
  (default `0 */12 * * *`) and `etcd-snapshot-retention` (default 5), stored in
  `${data-dir}/server/db/snapshots`; `k3s etcd-snapshot save --name`, `k3s etcd-snapshot ls`;
  restore with `--cluster-reset --cluster-reset-restore-path`.
- pkg/etcd/etcd.go: etcd's data in `server/db/etcd`; its metrics listener
  `http://127.0.0.1:2381` (metricsURL), which serves etcd's own `/health` and `/metrics`
  (go.etcd.io/etcd server/embed serveMetrics: etcdhttp.HandleHealth, HandleMetrics).
- pkg/etcd/member_controller.go: deleting a Node labelled `node-role.kubernetes.io/etcd`
  removes its etcd member (onRemove → RemovePeer).
- pkg/cli/etcdsnapshot: `ls` prints a table "Name Location Size Created" (RFC 3339).
- K3s schedules with robfig/cron v3 `cron.New()` (the standard 5-field parser) and ignores
  AddFunc's error: a bad expression silently means no scheduled snapshot at all, so the panel
  refuses one before it reaches config.yaml.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

DATA_DIR = "/var/lib/rancher/k3s"
ETCD_DB_DIR = f"{DATA_DIR}/server/db/etcd"
SNAPSHOT_DIR = f"{DATA_DIR}/server/db/snapshots"
METRICS_URL = "http://127.0.0.1:2381"
DEFAULT_SNAPSHOT_CRON = "0 */12 * * *"
DEFAULT_SNAPSHOT_RETENTION = 5
ETCD_ROLE_LABEL = "node-role.kubernetes.io/etcd"
ALLOWED_SERVER_COUNTS = (1, 3, 5)  # 1 only acknowledged: it is not HA

# --- quorum ---------------------------------------------------------------------------------


def majority(members: int) -> int:
    """Members etcd needs healthy to accept writes (raft quorum): n // 2 + 1."""
    return members // 2 + 1


@dataclass(frozen=True)
class Quorum:
    """What a count of healthy members means for a cluster of `members`."""

    members: int
    healthy: int

    @property
    def needed(self) -> int:
        return majority(self.members)

    @property
    def lost(self) -> bool:
        """Fewer than a majority healthy: etcd accepts no writes, the API is down."""
        return self.members > 0 and self.healthy < self.needed

    @property
    def at_risk(self) -> bool:
        """Exactly a majority healthy (with more than one member): one more failure and the
        quorum is lost."""
        return self.members > 1 and self.healthy == self.needed


def removal_keeps_quorum(members: int, healthy: int, leaving_is_healthy: bool) -> bool:
    """Whether removing one member leaves a majority of the smaller cluster healthy.

    With 3 members, one already down: removing a healthy one leaves 2 members, 1 healthy,
    below the majority of 2: refused. Removing the down one leaves 2 of 2 healthy: allowed.
    """
    left_members = members - 1
    left_healthy = healthy - (1 if leaving_is_healthy else 0)
    return left_members > 0 and left_healthy >= majority(left_members)


# --- what a server says ---------------------------------------------------------------------


def parse_health(text: str) -> tuple[bool, str]:
    """etcd's `/health` answer ({"health":"true","reason":""}) → (healthy, reason)."""
    try:
        answer = json.loads(text)
    except ValueError:
        return False, "no answer from etcd's /health"
    if not isinstance(answer, dict):
        return False, "an unexpected /health answer"
    healthy = str(answer.get("health", "")).lower() == "true"
    return healthy, str(answer.get("reason", "") or "")


_METRIC = re.compile(r"^(etcd_server_is_leader|etcd_server_has_leader)\s+([0-9.eE+-]+)\s*$")


def parse_leader_metrics(text: str) -> tuple[bool, bool]:
    """(is_leader, has_leader) from etcd's Prometheus `/metrics` text."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        found = _METRIC.match(line.strip())
        if found:
            values[found.group(1)] = float(found.group(2))
    return values.get("etcd_server_is_leader", 0.0) == 1.0, \
        values.get("etcd_server_has_leader", 0.0) == 1.0


@dataclass(frozen=True)
class SnapshotFile:
    name: str
    location: str
    size: int
    created: datetime | None


def parse_snapshot_list(text: str) -> list[SnapshotFile]:
    """`k3s etcd-snapshot ls` (tabwriter: Name, Location, Size, Created in RFC 3339)."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4 or parts[0] == "Name" or not parts[2].isdigit():
            continue
        try:
            created: datetime | None = datetime.fromisoformat(parts[3].replace("Z", "+00:00"))
        except ValueError:
            created = None
        found.append(SnapshotFile(parts[0], parts[1], int(parts[2]), created))
    return found


# --- the snapshot schedule -----------------------------------------------------------------

_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 6))
_NAMES = {
    3: {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                        "sep", "oct", "nov", "dec"))},
    4: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}


@dataclass(frozen=True)
class CronProblem:
    """What is wrong with a schedule: `field` is the index of the bad field (0 minute … 4
    day of week) and `part` the bad text, or field None when there are not 5 fields."""

    field: int | None
    part: str
    low: int = 0
    high: int = 0


def cron_problem(expression: str) -> CronProblem | None:
    """Why a 5-field cron expression would not schedule (None when it is fine).

    The rules of robfig/cron v3's standard parser: each field `*`, `?` (days only), a
    number or a name (months, weekdays), `a-b`, a `/step` after `*` or a range or a number,
    and comma lists of those; day of week 7 is Sunday too.
    """
    fields = expression.split()
    if len(fields) != 5:
        return CronProblem(None, str(len(fields)))
    for index, (text, (_what, low, high)) in enumerate(zip(fields, _RANGES, strict=True)):
        top = 7 if index == 4 else high
        for part in text.split(","):
            if not _part_ok(part, index, low, top):
                return CronProblem(index, part, low, top)
    return None


def _value(text: str, index: int) -> int | None:
    if text.isdigit():
        return int(text)
    return _NAMES.get(index, {}).get(text.lower())


def _part_ok(part: str, index: int, low: int, high: int) -> bool:
    base, _, step = part.partition("/")
    if step and (not step.isdigit() or int(step) == 0):
        return False
    if base == "*":
        return True
    if base == "?":
        return index in (2, 4) and not step
    start_text, dash, end_text = base.partition("-")
    start = _value(start_text, index)
    end = _value(end_text, index) if dash else start
    if start is None or end is None:
        return False
    return low <= start <= end <= high


# --- commands run on a server over SSH (argument lists; the SSH adapter quotes them) --------


def snapshot_save_command(name: str) -> list[str]:
    return ["k3s", "etcd-snapshot", "save", "--name", name]


def snapshot_list_command() -> list[str]:
    return ["k3s", "etcd-snapshot", "ls"]


def health_command() -> list[str]:
    """No -f: etcd answers 503 with {"health":"false",...} when unhealthy, and that body is
    what tells "unhealthy" from "not answering" (curl exits 7, prints nothing)."""
    return ["curl", "-sS", "--max-time", "5", f"{METRICS_URL}/health"]


def metrics_command() -> list[str]:
    return ["curl", "-fsS", "--max-time", "5", f"{METRICS_URL}/metrics"]


_SNAPSHOT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def snapshot_name(prefix: str, version: str) -> str:
    """A snapshot name K3s accepts (it becomes part of an object name: lower case, digits,
    `-` and `.`), e.g. pre-upgrade-v1.36.4-k3s1."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", f"{prefix}-{version}".lower()).strip("-.")
    if not _SNAPSHOT_NAME.match(cleaned):
        raise ValueError(f"cannot make a snapshot name of {prefix!r} and {version!r}")
    return cleaned[:100]


# --- the member list (K3s's /db/info) ------------------------------------------------------

SERVER_CA = f"{DATA_DIR}/server/tls/server-ca.crt"


def peer_url(address: str) -> str:
    """The peer URL K3s gives a server's member (pkg/etcd/etcd.go peerURL)."""
    return f"https://{address}:2380"


def db_info_command() -> list[str]:
    """K3s's member list from the local supervisor (`/db/info` on 6443, for the `server`
    user: pkg/server/router.go serverAuthed). The credentials come on stdin (`-K -`), never
    on the command line."""
    return ["curl", "-sS", "--max-time", "10", "--cacert", SERVER_CA, "-K", "-",
            "https://127.0.0.1:6443/db/info"]


def db_info_credentials(password: str) -> str:
    """curl's config text for db_info_command (quoted as curl's config format wants)."""
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return f'user = "server:{escaped}"\n'


@dataclass(frozen=True)
class Member:
    name: str
    peer_urls: tuple[str, ...]
    learner: bool


def parse_db_info(text: str) -> list[Member]:
    """/db/info's {"members": [etcdserverpb.Member...]} (JSON names ID, name, peerURLs,
    isLearner). Raises ValueError on anything else."""
    answer = json.loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("members"), list):
        raise ValueError("not a member list")
    return [Member(str(m.get("name", "")), tuple(m.get("peerURLs") or ()),
                   bool(m.get("isLearner")))
            for m in answer["members"] if isinstance(m, dict)]
