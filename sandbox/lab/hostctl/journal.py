"""A per-host journal: one JSON line per message, one file per unit, under /var/log.

Why JSON lines: `journalctl` needs timestamps, the process and the unit for each message and
several output formats; appends of one short line with O_APPEND never interleave.
"""

from __future__ import annotations

import fnmatch
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

from sandbox.lab.hostctl.paths import JOURNAL_DIR


@dataclass
class Entry:
    time: float
    unit: str
    ident: str
    pid: int
    message: str


def journal_path(unit: str) -> str:
    return str(JOURNAL_DIR / f"{unit}.jsonl")


class Writer:
    def __init__(self, unit: str) -> None:
        JOURNAL_DIR.mkdir(parents=True, exist_ok=True)
        self.unit = unit
        self.fd = os.open(journal_path(unit), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)

    def write(self, ident: str, pid: int, message: str) -> None:
        record = {"t": time.time(), "u": self.unit, "i": ident, "p": pid, "m": message}
        os.write(self.fd, (json.dumps(record) + "\n").encode())

    def systemd(self, message: str) -> None:
        """Messages systemd itself logs about a unit (Starting..., Failed with result...)."""
        self.write("systemd", 1, message)


def units_with_journals() -> list[str]:
    if not JOURNAL_DIR.is_dir():
        return []
    return sorted(p.name[: -len(".jsonl")] for p in JOURNAL_DIR.glob("*.jsonl"))


def matching_units(patterns: list[str]) -> list[str]:
    known = units_with_journals()
    if not patterns:
        return known
    chosen: list[str] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            chosen.extend(u for u in known if fnmatch.fnmatch(u, pattern))
        else:
            chosen.append(pattern if "." in pattern else f"{pattern}.service")
    return sorted(set(chosen))


def parse_line(line: str) -> Entry | None:
    try:
        raw = json.loads(line)
        return Entry(raw["t"], raw["u"], raw["i"], raw["p"], raw["m"])
    except (ValueError, KeyError):
        return None  # a partially written last line


def read(unit: str, offset: int = 0) -> tuple[list[Entry], int]:
    """Entries from byte `offset` on, and the offset after the last complete line."""
    try:
        with open(journal_path(unit), "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    entries = [e for e in (parse_line(x) for x in complete.decode(errors="replace").splitlines())
               if e is not None]
    return entries, offset + len(complete)


def read_all(units: list[str]) -> list[Entry]:
    entries: list[Entry] = []
    for unit in units:
        entries.extend(read(unit)[0])
    entries.sort(key=lambda e: e.time)
    return entries


def format_entry(entry: Entry, output: str = "short", utc: bool = False) -> str:
    if output == "cat":
        return entry.message
    if output == "json":
        return json.dumps({"__REALTIME_TIMESTAMP": str(int(entry.time * 1e6)),
                           "_SYSTEMD_UNIT": entry.unit, "SYSLOG_IDENTIFIER": entry.ident,
                           "_PID": str(entry.pid), "MESSAGE": entry.message,
                           "_HOSTNAME": socket.gethostname()})
    moment = time.gmtime(entry.time) if utc else time.localtime(entry.time)
    if output == "short-iso":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", moment)
    elif output == "short-precise":
        stamp = time.strftime("%b %d %H:%M:%S", moment) + f".{int(entry.time % 1 * 1e6):06d}"
    else:
        stamp = time.strftime("%b %d %H:%M:%S", moment)
    return f"{stamp} {socket.gethostname()} {entry.ident}[{entry.pid}]: {entry.message}"


def follow(units: list[str], poll: float = 0.2) -> Iterator[Entry]:
    offsets = {unit: read(unit)[1] for unit in units}
    while True:
        fresh: list[Entry] = []
        for unit in units:
            entries, offsets[unit] = read(unit, offsets[unit])
            fresh.extend(entries)
        yield from sorted(fresh, key=lambda e: e.time)
        time.sleep(poll)
