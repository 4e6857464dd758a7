"""`journalctl` for lab hosts: reads the journal that the unit supervisors write.

Supports what people and the panel type: -u (repeatable, globs), -n/--lines, -f/--follow,
-o/--output (short, short-iso, short-precise, cat, json), --no-pager, -e, -x, -b, -q,
--since/--until, -g/--grep, -r/--reverse, --utc.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time

from sandbox.lab.hostctl import journal


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"journalctl: {message}", file=sys.stderr)
        raise SystemExit(1)


def parse_time(value: str) -> float:
    now = time.time()
    if value == "now":
        return now
    if value in ("today", "yesterday"):
        midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
        return midnight - (86400 if value == "yesterday" else 0)
    relative = re.fullmatch(r"-\s*(\d+)\s*(s|sec|m|min|h|hour|d|day)s?", value.strip())
    if relative:
        factor = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400,
                  "day": 86400}[relative.group(2)]
        return now - int(relative.group(1)) * factor
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        with contextlib.suppress(ValueError):
            return time.mktime(time.strptime(value, fmt))
    print(f"Failed to parse timestamp: {value}", file=sys.stderr)
    raise SystemExit(1)


def build_parser() -> Parser:
    parser = Parser(prog="journalctl", add_help=True)
    parser.add_argument("-u", "--unit", action="append", default=[])
    parser.add_argument("-n", "--lines", default=None)
    parser.add_argument("-f", "--follow", action="store_true")
    parser.add_argument("-o", "--output", default="short",
                        choices=["short", "short-iso", "short-precise", "cat", "json"])
    parser.add_argument("-e", "--pager-end", action="store_true")
    parser.add_argument("-r", "--reverse", action="store_true")
    parser.add_argument("-g", "--grep", default=None)
    parser.add_argument("-S", "--since", default=None)
    parser.add_argument("-U", "--until", default=None)
    parser.add_argument("-b", "--boot", nargs="?", const="0", default=None)
    for flag in ("--no-pager", "--utc", "-x", "--catalog", "-q", "--quiet", "-l", "--full",
                 "-a", "--all", "--no-hostname"):
        parser.add_argument(flag, action="store_true")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    units = journal.matching_units(args.unit)
    entries = journal.read_all(units)
    if args.since:
        since = parse_time(args.since)
        entries = [e for e in entries if e.time >= since]
    if args.until:
        until = parse_time(args.until)
        entries = [e for e in entries if e.time <= until]
    pattern = re.compile(args.grep) if args.grep else None
    if pattern:
        entries = [e for e in entries if pattern.search(e.message)]
    lines = args.lines
    if lines is None:
        lines = "10" if args.follow else ("1000" if args.pager_end else "all")
    if lines != "all":
        count = int(lines.lstrip("+"))
        entries = entries[:count] if lines.startswith("+") else (
            entries[-count:] if count else [])
    if args.reverse:
        entries.reverse()
    if not entries and not args.follow and not args.quiet and args.output != "cat":
        print("-- No entries --")
    try:
        for entry in entries:
            print(journal.format_entry(entry, args.output, args.utc))
        sys.stdout.flush()
        if args.follow:
            for entry in journal.follow(units):
                if pattern is None or pattern.search(entry.message):
                    print(journal.format_entry(entry, args.output, args.utc), flush=True)
    except (BrokenPipeError, KeyboardInterrupt):
        with contextlib.suppress(OSError):
            sys.stdout.close()
    return 0
