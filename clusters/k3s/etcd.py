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
- K3s schedules with robfig/cron v3 `cron.New()` (the standard parser: 5 fields or a
  descriptor; see cron_problem) and ignores AddFunc's error: a bad expression silently
  means no scheduled snapshot at all, so the panel refuses one before it reaches
  config.yaml.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

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


@dataclass(frozen=True)
class RemovalCheck:
    """Whether one member may leave, judged at every point of the removal (see removal_check).

    `stage` "stopped": stopping K3s on the leaving server breaks quorum (its member still
    counts, down); "removed": the smaller cluster has no healthy majority; "" when it may.
    `healthy`/`members`/`needed` are the figures of the failing stage."""

    stage: str
    healthy: int
    members: int
    needed: int

    @property
    def ok(self) -> bool:
        return not self.stage


def removal_check(voters: int, healthy_voters: int, *, leaving_is_voter: bool,
                  leaving_is_healthy: bool) -> RemovalCheck:
    """Whether a member may leave with etcd keeping a majority throughout.

    `voters`: etcd's voting members now (its own member list; learners do not vote, raft
    quorum is over voters: go.etcd.io/raft). The panel removes a server by stopping its K3s
    first and only then deleting its Node (K3s removes the member: pkg/etcd/member_controller.go),
    so there are two moments to pass:
    1. K3s stopped, member still listed: healthy_voters - (leaving healthy) >= majority(voters);
    2. member removed: the same healthy count >= majority(voters - 1).
    2 healthy of 2: after the stop 1 of 2, below 2: refused (a 2-member etcd tolerates no
    failure, and the removal itself needs a quorum). 4 with one down, a healthy one leaving:
    2 of 4, below 3: refused. 3 healthy: 2 of 3: allowed. 5 with one down: 3 of 5: allowed. A
    dead member of 3 (2 healthy): 2 of 3, then 2 of 2: allowed."""
    left_healthy = healthy_voters - (1 if leaving_is_voter and leaving_is_healthy else 0)
    if left_healthy < majority(voters):
        return RemovalCheck("stopped", left_healthy, voters, majority(voters))
    left = voters - (1 if leaving_is_voter else 0)
    if left < 1 or left_healthy < majority(left):
        return RemovalCheck("removed", left_healthy, left, majority(left))
    return RemovalCheck("", left_healthy, left, majority(left))


def adds_to_even(servers_after: int) -> bool:
    """An etcd of 2 or 4 voters tolerates no more failures than one of 1 or 3 (a majority of
    2 is 2, of 4 is 3), so an addition that makes the count even buys no tolerance."""
    return servers_after > 1 and servers_after % 2 == 0


def failures_tolerated(voters: int) -> int:
    return max(voters - majority(voters), 0)


def restart_keeps_quorum(voters: int, healthy_voters: int, restarting_is_healthy: bool) -> bool:
    """Whether restarting one member (an upgrade) leaves a healthy majority meanwhile."""
    return healthy_voters - (1 if restarting_is_healthy else 0) >= majority(voters)


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
# K3s builds its scheduler with robfig/cron v3 `cron.New()` (k3s-io/k3s pkg/etcd/etcd.go
# NewETCD), whose parser is `standardParser` = NewParser(Minute | Hour | Dom | Month | Dow |
# Descriptor) (robfig/cron parser.go, cron.go New). The rules below are parser.go's Parse,
# getField, getRange, parseIntOrName, mustParseInt and parseDescriptor, with the bounds of
# spec.go (minutes 0-59, hours 0-23, dom 1-31, months 1-12 or JAN-DEC, dow 0-6 or SUN-SAT:
# 7 is above dow's maximum and refused).

_RANGES = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
           ("day of week", 0, 6))
_NAMES = {
    3: {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug",
                                        "sep", "oct", "nov", "dec"))},
    4: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
# parser.go parseDescriptor: the named schedules, and "@every <Go duration>".
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# Go's time.ParseDuration: an optional sign, then one or more <number><unit>, or "0".
_GO_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
_ATOI = re.compile(r"^[-+]?\d+$")  # strconv.Atoi: an optional sign and decimal digits


@dataclass(frozen=True)
class CronProblem:
    """What is wrong with a schedule. `kind` "fields": not 5 fields (`part` is how many);
    "value": `field` (0 minute … 4 day of week) has the bad `part`, whose range is low-high;
    "descriptor": an @-schedule robfig/cron does not know (`part`); "timezone": a TZ= or
    CRON_TZ= prefix whose zone is unknown or that has no schedule after it (`part`)."""

    field: int | None
    part: str
    low: int = 0
    high: int = 0
    kind: str = "value"


def cron_problem(expression: str) -> CronProblem | None:  # noqa: PLR0911 - one per rule
    """Why robfig/cron v3's standard parser (what K3s schedules snapshots with) would refuse
    `expression` (None when it takes it): 5 fields (`*` or `?` in any field, a number or a
    name, `a-b`, a `/step` after `*`, a number (meaning number-max) or a range, comma
    lists); or a descriptor (@daily, @every 1h30m, ...); optionally after TZ=<zone>."""
    spec = expression.strip()
    if spec.startswith(("TZ=", "CRON_TZ=")):
        zone, space, rest = spec.partition(" ")
        name = zone.partition("=")[2]
        if not space or not rest.strip() or not _zone_exists(name):
            return CronProblem(None, name, kind="timezone")
        spec = rest.strip()
    if spec.startswith("@"):
        if spec in DESCRIPTORS:
            return None
        if spec.startswith("@every ") and _GO_DURATION.match(spec[len("@every "):]):
            return None
        return CronProblem(None, spec, kind="descriptor")
    fields = spec.split()
    if len(fields) != 5:
        return CronProblem(None, str(len(fields)), kind="fields")
    for index, (text, (_what, low, high)) in enumerate(zip(fields, _RANGES, strict=True)):
        for part in (p for p in text.split(",") if p):
            if not _part_ok(part, index, low, high):
                return CronProblem(index, part, low, high)
    return None


def _zone_exists(name: str) -> bool:
    """time.LoadLocation's answer, as far as this machine's zone database can tell."""
    if not name or name.startswith("/") or ".." in name:
        return False
    if name in ("UTC", "Local"):
        return True
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):
        return False
    return True


def _number(text: str, index: int) -> int | None:
    """parseIntOrName: a name of the field (any case), else strconv.Atoi, not negative."""
    named = _NAMES.get(index, {}).get(text.lower())
    if named is not None:
        return named
    if not _ATOI.match(text):
        return None
    value = int(text)
    return value if value >= 0 else None


def _part_ok(part: str, index: int, low: int, high: int) -> bool:
    """getRange: `*`/`?` or number[-number], then an optional /step."""
    range_and_step = part.split("/")
    if len(range_and_step) > 2:
        return False
    low_and_high = range_and_step[0].split("-")
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:
        if len(low_and_high) > 2:
            return False
        first = _number(low_and_high[0], index)
        last = first if len(low_and_high) == 1 else _number(low_and_high[1], index)
        if first is None or last is None:
            return False
        start, end = first, last
    if len(range_and_step) == 2:
        step = _number(range_and_step[1], -1)
        if step is None or step == 0:
            return False
        if len(low_and_high) == 1:  # "N/step" means N-max/step
            end = high
    return low <= start <= end <= high


_DESCRIBED = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
              "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
              "@hourly": "0 * * * *"}
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
             "h": 3600.0}
# Beyond this span every schedule has fired (the rarest, @yearly, aside: it is treated so).
_SCAN_MINUTES = 2 * 24 * 60


def _expand(text: str, index: int) -> tuple[set[int], bool]:
    """getField's bits as a set, and whether the field is a star (`*`, `?`, `*/1`)."""
    _what, low, high = _RANGES[index]
    values: set[int] = set()
    star = False
    for part in (p for p in text.split(",") if p):
        range_and_step = part.split("/")
        low_and_high = range_and_step[0].split("-")
        step = 1
        if low_and_high[0] in ("*", "?"):
            start, end, star_part = low, high, True
        else:
            start = _number(low_and_high[0], index) or 0
            end = start if len(low_and_high) == 1 else (_number(low_and_high[1], index) or 0)
            star_part = False
        if len(range_and_step) == 2:
            step = _number(range_and_step[1], -1) or 1
            if len(low_and_high) == 1:
                end = high
            if step > 1:
                star_part = False
        values.update(range(start, end + 1, step))
        star = star or star_part
    return values, star


def _go_seconds(text: str) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", text):
        total += float(number) * _GO_UNITS[unit]
    return max(total, 1.0)  # robfig Every: under a second runs every second


def schedule_fired(expression: str, after: datetime, until: datetime) -> bool:
    """Whether a valid schedule (cron_problem None) had a run time in (after, until].

    Times are read in the TZ= zone when the schedule names one, else in UTC: K3s runs the
    schedule in the server's local time (robfig `time.Local`), which the panel does not
    know; the health check's maximum age covers a server on another zone."""
    spec = expression.strip()
    zone_name = ""
    if spec.startswith(("TZ=", "CRON_TZ=")):
        prefix, _space, spec = spec.partition(" ")
        zone_name, spec = prefix.partition("=")[2], spec.strip()
    if spec.startswith("@every "):
        return (until - after).total_seconds() >= _go_seconds(spec[len("@every "):])
    spec = _DESCRIBED.get(spec, spec)
    fields = spec.split()
    if len(fields) != 5 or until <= after:
        return False
    if (until - after).total_seconds() > _SCAN_MINUTES * 60:
        return True
    zone = ZoneInfo(zone_name) if zone_name and zone_name != "Local" else ZoneInfo("UTC")
    minute, hour, dom, month, dow = (_expand(text, i) for i, text in enumerate(fields))
    moment = after.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = until.astimezone(zone)
    while moment <= end:
        day_ok = (moment.day in dom[0]) and (moment.isoweekday() % 7 in dow[0]) \
            if dom[1] or dow[1] else \
            (moment.day in dom[0]) or (moment.isoweekday() % 7 in dow[0])
        if moment.minute in minute[0] and moment.hour in hour[0] \
                and moment.month in month[0] and day_ok:
            return True
        moment += timedelta(minutes=1)
    return False


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
    member_id: str = ""
    client_urls: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """The host of its first peer URL: the server's node IP (K3s peerURL)."""
        for url in self.peer_urls:
            host = urlsplit(url).hostname
            if host:
                return host
        return ""


def parse_db_info(text: str) -> list[Member]:
    """A member list: K3s's /db/info ({"members": [etcdserverpb.Member...]}, encoding/json:
    ID a number) or etcd's v3 JSON gateway /v3/cluster/member/list (the same names, ID a
    string). A member added as a learner that has not started has no name and no client
    URL. Raises ValueError on anything else."""
    answer = json.loads(text)
    if not isinstance(answer, dict) or not isinstance(answer.get("members"), list):
        raise ValueError("not a member list")
    return [Member(str(m.get("name", "")), tuple(m.get("peerURLs") or ()),
                   bool(m.get("isLearner")), str(m.get("ID", "") or ""),
                   tuple(m.get("clientURLs") or ()))
            for m in answer["members"] if isinstance(m, dict)]


def is_fallback_list(members: list[Member]) -> bool:
    """/db/info's answer when etcd's MemberList failed within 2 s: only the asked server
    itself, with no member ID (pkg/etcd/etcd.go infoHandler). It says nothing about the
    other members, so it must not be read as "the leaving member is gone"."""
    return len(members) == 1 and not members[0].member_id


# --- every member's health from one server --------------------------------------------------
# What a real K3s server offers (k3s-io/k3s pkg/etcd/etcd.go): etcd's client listener
# https://<node-ip>:2379 and https://127.0.0.1:2379 serves gRPC only, because K3s sets
# ListenClientHTTPURLs to https://127.0.0.1:2382 (listenClientHTTPURLs, "to free the listen
# URLs for dedicated use by GRPC", etcd-io/etcd#15402): etcd's v3 JSON gateway (and its
# /health) is on 127.0.0.1:2382, reachable only on the server itself. The metrics listener
# http://127.0.0.1:2381 serves /health too. So the member list and the leader come from the
# server SSHed to (2382, K3s's etcd client certificate server/tls/etcd/client.crt, CA
# server/tls/etcd/server-ca.crt: pkg/daemons/control/deps/deps.go), and every member's health
# from that member's kube-apiserver: https://<node-ip>:6443/readyz?verbose, whose `etcd`
# check reads through the member's own etcd (K3s's apiserver uses --etcd-servers
# https://127.0.0.1:2379), asked with K3s's admin client certificate
# (server/tls/client-admin.crt/.key, CA server/tls/server-ca.crt: deps.go).

ETCD_TLS_DIR = f"{DATA_DIR}/server/tls/etcd"
TLS_DIR = f"{DATA_DIR}/server/tls"
LOCAL_HTTP_CLIENT_URL = "https://127.0.0.1:2382"
APISERVER_PORT = 6443
MEMBER_CURL_SECONDS = 3


def _etcd_curl(url: str, *extra: str) -> list[str]:
    return ["curl", "-sS", "--max-time", str(MEMBER_CURL_SECONDS),
            "--cacert", f"{ETCD_TLS_DIR}/server-ca.crt", "--cert", f"{ETCD_TLS_DIR}/client.crt",
            "--key", f"{ETCD_TLS_DIR}/client.key", *extra, url]


def _apiserver_curl(url: str) -> list[str]:
    """curl as K3s's admin (system:admin, system:masters) to one server's kube-apiserver;
    `-w` appends the HTTP status on a line of its own."""
    return ["curl", "-sS", "--max-time", str(MEMBER_CURL_SECONDS),
            "--cacert", f"{TLS_DIR}/server-ca.crt", "--cert", f"{TLS_DIR}/client-admin.crt",
            "--key", f"{TLS_DIR}/client-admin.key", "-w", "\\n%{http_code}", url]


def member_list_command() -> list[str]:
    """The local member's view of the member list through etcd's JSON gateway on
    127.0.0.1:2382 (served from its own state: it answers without a quorum too)."""
    return _etcd_curl(f"{LOCAL_HTTP_CLIENT_URL}/v3/cluster/member/list",
                      "-X", "POST", "-d", "{}")


def status_command() -> list[str]:
    """The local member's /v3/maintenance/status: its `leader` is the leader's member ID."""
    return _etcd_curl(f"{LOCAL_HTTP_CLIENT_URL}/v3/maintenance/status",
                      "-X", "POST", "-d", "{}")


def readyz_url(address: str) -> str:
    """A member's kube-apiserver health with every check listed (`[+]etcd ok`)."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{APISERVER_PORT}/readyz?verbose"


def member_health_script(addresses: list[str]) -> str:
    """A shell script asking every member's kube-apiserver (in parallel, each curl bounded)
    for /readyz?verbose, and the local member for /v3/maintenance/status; one line per member
    `<index>|<base64 answer>` and one `status|<base64 answer>`. Every address is quoted (they
    come from etcd's answer)."""
    status = " ".join(shlex.quote(a) for a in status_command())
    lines = [f'( s=$({status} 2>&1); printf "status|%s\\n" "$(printf %s "$s" | base64 -w0)" ) &']
    for index, address in enumerate(addresses):
        if not address:
            continue
        ready = " ".join(shlex.quote(a) for a in _apiserver_curl(readyz_url(address)))
        lines.append(f'( r=$({ready} 2>&1); '
                     f'printf "%s|%s\\n" {index} "$(printf %s "$r" | base64 -w0)" ) &')
    lines.append("wait")
    return "\n".join(lines)


@dataclass(frozen=True)
class MemberAnswer:
    """What one member's kube-apiserver said of etcd: (healthy, why not, answered at all)."""

    healthy: bool
    detail: str
    answered: bool


_ETCD_CHECK = re.compile(r"^\[([+-])\]etcd (ok|failed.*)$")


def parse_readyz(text: str) -> tuple[bool | None, str]:
    """kube-apiserver's /readyz?verbose (curl's `-w` HTTP status last) → (etcd healthy, why
    not); None when no apiserver answered with an etcd check (curl's error is the why). A
    readyz still failing on post-start hooks says `[+]etcd ok`: etcd is fine then."""
    lines = text.strip().splitlines()
    for line in lines:
        found = _ETCD_CHECK.match(line.strip())
        if found:
            return found.group(1) == "+", "" if found.group(1) == "+" else found.group(2)
    said = [line for line in lines if line.strip() and not line.strip().isdigit()]
    if lines and lines[-1].strip() not in ("", "000"):
        return None, f"HTTP {lines[-1].strip()} without an etcd check: " \
                     f"{(said or ['-'])[-1][:200]}"
    return None, (said or ["no answer"])[-1][:200]


def leader_id(status_text: str) -> str:
    """/v3/maintenance/status → the leader's member ID ("" when there is none)."""
    try:
        status = json.loads(status_text)
    except ValueError:
        return ""
    leader = str(status.get("leader", "") or "") if isinstance(status, dict) else ""
    return "" if leader == "0" else leader


def parse_member_health(text: str) -> tuple[dict[int, MemberAnswer], str]:
    """member_health_script's output → (index → answer, the leader's member ID)."""
    answers: dict[int, tuple[bool | None, str]] = {}
    leader = ""
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 2 or not (parts[0].isdigit() or parts[0] == "status"):
            continue
        try:
            said = base64.b64decode(parts[1]).decode("utf-8", "replace")
        except ValueError:
            continue
        if parts[0] == "status":
            leader = leader_id(said)
        else:
            answers[int(parts[0])] = parse_readyz(said)
    return {index: MemberAnswer(bool(healthy), detail, healthy is not None)
            for index, (healthy, detail) in answers.items()}, leader
