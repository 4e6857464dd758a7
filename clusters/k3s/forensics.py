"""What an engineer looks at on a host where K3s failed: the commands, and their report.

Why one module: the automatic collection after a failed install step and the "Collect
diagnostics" action of a failed run must read the same things and print them the same way
(autok3s#580: "the install failed, and nothing was left to debug"). The commands are the ones
a person would type on a Debian host, and every one of them only reads: nothing here stops,
starts, restarts or removes anything, so a collection never changes the host it looks at.

Each section is bounded (lines and characters), so a journal full of stack traces cannot
flood the step log; the config file is shown by its keys only (its values hold the cluster
token and the datastore password). The SSH side lives in clusters.adapters.forensics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import yaml

from clusters.k3s.config import CONFIG_PATH
from clusters.k3s.diagnosis import explain

JOURNAL_LINES = 50
MAX_LINE_CHARS = 400
MAX_SECTION_CHARS = 12_000
INSTALL_OUTPUT_LINES = 40
REDACTED = "***"
HEADER = "==== Diagnostics of {host} ({why}) ===="
FOOTER = "==== End of the diagnostics of {host} ===="


@dataclass(frozen=True)
class Probe:
    """One read-only command: its section title, argv, timeout and how many lines it keeps.

    `keep` says which end of a long output matters: the last lines of a journal, the first
    of a status (the state is on top).
    """

    key: str
    title: str
    argv: tuple[str, ...]
    timeout: float
    max_lines: int
    keep: str = "head"  # head | tail

    @property
    def command(self) -> str:
        return " ".join(self.argv)


def probes(unit: str) -> tuple[Probe, ...]:
    """What to read on a host whose K3s unit (`k3s` or `k3s-agent`) failed, in report order."""
    return (
        Probe("unit", "Unit status", ("systemctl", "status", unit, "--no-pager"), 20, 40),
        Probe("journal", f"Last {JOURNAL_LINES} journal lines",
              ("journalctl", "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager"), 20,
              JOURNAL_LINES + 5, keep="tail"),
        # Read with cat (root: the file is 0600) and reduced to its keys here, in the panel:
        # the values never reach the log, whatever the file holds.
        Probe("config", "K3s config, keys only (values redacted)", ("cat", CONFIG_PATH), 10,
              200),
        Probe("disk", "Free disk", ("df", "-h"), 15, 30),
        Probe("memory", "Free memory (MiB)", ("free", "-m"), 10, 10),
    )


@dataclass(frozen=True)
class ProbeResult:
    """What one probe gave: its output and exit status, or why it could not run (`error`)."""

    probe: Probe
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str = ""


# --- the config file, keys only -----------------------------------------------------------------

_TOP_LEVEL_KEY = re.compile(r"^([A-Za-z0-9_.-]+)\s*:")


def _shape(value: object) -> str:
    """A value replaced by what kind of thing it was (never the thing itself)."""
    if isinstance(value, list):
        return f"{REDACTED} ({len(value)} item{'s' if len(value) != 1 else ''})"
    if isinstance(value, dict):
        return f"{REDACTED} ({len(value)} key{'s' if len(value) != 1 else ''})"
    if value is None or value == "":
        return "(empty)"
    return REDACTED


def config_keys(text: str) -> list[str]:
    """config.yaml as `key: ***` lines, in file order. A file that is not a YAML mapping is
    reduced to the names at the start of its lines; no value is ever printed."""
    if not text.strip():
        return ["(the file is empty)"]
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        names = [m.group(1) for m in map(_TOP_LEVEL_KEY.match, text.splitlines()) if m]
        return [f"(not valid YAML{where}; K3s refuses to start with it)",
                *(f"{name}: {REDACTED}" for name in names)]
    if not isinstance(data, dict):
        return [f"(not a YAML mapping but a {type(data).__name__}; K3s expects key: value)"]
    return [f"{key}: {_shape(value)}" for key, value in data.items()]


# --- bounding and formatting --------------------------------------------------------------------


def bounded(lines: Sequence[str], max_lines: int, keep: str = "head",
            max_chars: int = MAX_SECTION_CHARS) -> list[str]:
    """At most `max_lines` lines of at most MAX_LINE_CHARS, `max_chars` in all, saying how
    many were left out (from the end for `head`, from the start for `tail`)."""
    lines = [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]"
             for line in lines]
    chosen = list(lines[-max_lines:] if keep == "tail" else lines[:max_lines])
    total = 0
    kept: list[str] = []
    for line in (reversed(chosen) if keep == "tail" else chosen):
        total += len(line) + 1
        if total > max_chars:
            break
        kept.append(line)
    if keep == "tail":
        kept.reverse()
    left_out = len(lines) - len(kept)
    if not left_out:
        return kept
    note = f"({left_out} {'earlier' if keep == 'tail' else 'more'} line" \
           f"{'s' if left_out != 1 else ''} left out)"
    return [note, *kept] if keep == "tail" else [*kept, note]


def _section_body(result: ProbeResult) -> list[str]:
    probe = result.probe
    if result.error:
        return [f"(could not run: {result.error})"]
    if probe.key == "config":
        if result.exit_status != 0:
            reason = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
            return [f"(not readable, exit {result.exit_status}: {reason[0]})"]
        return bounded(config_keys(result.stdout), probe.max_lines)
    text = result.stdout.rstrip("\n")
    if result.stderr.strip():
        text = f"{text}\n{result.stderr.rstrip()}" if text else result.stderr.rstrip()
    body = bounded(text.splitlines() or ["(no output)"], probe.max_lines, probe.keep)
    if probe.key == "journal":
        known = explain(result.stdout.splitlines())
        if known:
            body.append(f"Known problem: {known}")
    return body


def _section_title(result: ProbeResult) -> str:
    status = "" if result.error or result.exit_status in (None, 0) \
        else f", exit {result.exit_status}"
    return f"--- {result.probe.title} ({result.probe.command}{status}) ---"


def report(host: str, why: str, results: Iterable[ProbeResult], redact: Callable[[str], str],
           *, install_output: str = "", unreachable: str = "") -> list[str]:
    """The lines of one host's diagnostics, every one passed through `redact`.

    `install_output` is the tail of a failed install script's output (it is in the log above
    too, but a long download log pushes it far up); `unreachable` replaces every section when
    the panel could not log in at all.
    """
    lines = [HEADER.format(host=host, why=why)]
    if unreachable:
        lines.append(f"(could not log in to {host}: {unreachable}; nothing was collected)")
    else:
        if install_output.strip():
            lines.append(f"--- Install script output (last {INSTALL_OUTPUT_LINES} lines) ---")
            lines += bounded(install_output.splitlines(), INSTALL_OUTPUT_LINES, "tail")
        for result in results:
            lines.append(_section_title(result))
            lines += _section_body(result)
    lines.append(FOOTER.format(host=host))
    return [redact(line) for line in lines]
