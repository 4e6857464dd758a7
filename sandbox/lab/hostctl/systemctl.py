"""`systemctl` for lab hosts: the subset the K3s installer, its killall/uninstall scripts and
the panel use, with systemd's messages and exit codes.

Exit codes follow systemctl(1): is-active 0/3, status 0/3/4, start of a missing unit 5.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.lab.hostctl import journal, unitfile, unitstate
from sandbox.lab.hostctl.paths import REPO_ROOT, UNIT_DIRS
from sandbox.lab.hostctl.runner import unit_processes

BOOLEAN_FLAGS = {
    "--no-block": "no_block", "-q": "quiet", "--quiet": "quiet", "--now": "now",
    "--no-pager": None, "--system": None, "-l": None, "--full": None, "--no-legend": "no_legend",
    "--plain": None, "-a": "all", "--all": "all", "--value": "value", "--no-ask-password": None,
    "-f": "force", "--force": "force",
}
VALUE_FLAGS = {"-p": "property", "--property": "property", "-s": "signal", "--signal": "signal",
               "--kill-whom": "kill_whom", "--kill-who": "kill_whom", "-n": "lines",
               "--lines": "lines", "-t": "type", "--type": "type", "--state": "state"}


class Usage(Exception):
    pass


@dataclass
class Options:
    command: str = ""
    units: list[str] = field(default_factory=list)
    no_block: bool = False
    quiet: bool = False
    now: bool = False
    all: bool = False
    value: bool = False
    force: bool = False
    no_legend: bool = False
    property: list[str] = field(default_factory=list)
    signal: str = "SIGTERM"
    kill_whom: str = "all"
    lines: int = 10
    type: str = ""
    state: str = ""


def parse_args(argv: list[str]) -> Options:
    options, positional = Options(), []
    args = iter(argv)
    for arg in args:
        name, has_value, inline = arg.partition("=")
        if arg in BOOLEAN_FLAGS:
            attribute = BOOLEAN_FLAGS[arg]
            if attribute:
                setattr(options, attribute, True)
        elif name in VALUE_FLAGS:
            value = inline if has_value else next(args, None)
            if value is None:
                raise Usage(f"option '{name}' requires an argument")
            attr = VALUE_FLAGS[name]
            if attr == "property":
                options.property.extend(v for v in value.split(",") if v)
            elif attr == "lines":
                options.lines = int(value)
            else:
                setattr(options, attr, value)
        elif arg.startswith("-") and arg not in ("-", "--version"):
            raise Usage(f"unrecognized option '{arg}'")
        else:
            positional.append(arg)
    if not positional:
        positional = ["list-units"]
    options.command, options.units = positional[0], positional[1:]
    return options


def python_command(module: str) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); "
            f"from sandbox.lab.hostctl.{module} import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-I", "-c", code]


def err(message: str) -> None:
    print(message, file=sys.stderr)


def warn_if_changed(unit: str) -> None:
    if unitstate.changed_on_disk(unit):
        err(f"Warning: The unit file, source configuration file or drop-ins of {unit} changed "
            "on disk. Run 'systemctl daemon-reload' to reload units.")


# -- start / stop ---------------------------------------------------------------------------
def job_failed(unit: str) -> int:
    err(f"Job for {unit} failed because the control process exited with error code.\n"
        f'See "systemctl status {unit}" and "journalctl -xeu {unit}" for details.')
    return 1


def wait_for_outcome(unit: str, runner_pid: int, cycle: int) -> int:
    """Block like `systemctl start` does until the start job of `cycle` has a result."""
    while True:
        state = unitstate.read(unit)
        mine = state["runner_pid"] == runner_pid
        outcome = state["outcomes"].get(str(cycle)) if mine else None
        if outcome == "started":
            return 0
        if outcome == "failed" or (mine and state["cycle"] > cycle):
            return job_failed(unit)
        if not unitstate.runner_alive(unit, runner_pid) and (
                mine or _runner_replaced(unit, runner_pid)):
            return job_failed(unit)
        time.sleep(0.05)


def _runner_replaced(unit: str, runner_pid: int) -> bool:
    """Whether another runner owns the unit now (read after a moment: it may be starting)."""
    time.sleep(0.2)
    return bool(unitstate.read(unit)["runner_pid"] != runner_pid)


def start(unit: str, options: Options) -> int:
    with unitstate.locked(unit):
        definition = unitstate.loaded(unit)
        if definition is None:
            err(f"Failed to start {unit}: Unit {unit} not found.")
            return 5
        warn_if_changed(unit)
        try:
            definition.check()
        except unitfile.UnitError as error:
            err(f"Failed to start {unit}: {error}")
            return 1
        state = unitstate.effective(unit)
        runner = state["runner_pid"]
        if unitstate.runner_alive(unit, runner):
            if state["active_state"] == "active":
                return 0
            cycle = state["cycle"] + (1 if state["sub_state"] == "auto-restart" else 0)
            if state["sub_state"] == "auto-restart":
                os.kill(runner, signal.SIGUSR1)
        else:
            process = subprocess.Popen(
                python_command("runner"), env={"LAB_UNIT": unit, "PATH": os.environ.get(
                    "PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, close_fds=True, cwd="/",
            )
            runner, cycle = process.pid, 1
            while unitstate.read(unit)["runner_pid"] != runner:
                if process.poll() is not None:
                    return job_failed(unit)
                time.sleep(0.02)
    if options.no_block:
        return 0
    return wait_for_outcome(unit, runner, cycle)


def stop(unit: str, options: Options) -> int:
    with unitstate.locked(unit):
        state = unitstate.effective(unit)
        runner = state["runner_pid"]
        if not unitstate.runner_alive(unit, runner):
            if unitfile.find(unit) is None and state["active_state"] == "inactive":
                err(f"Failed to stop {unit}: Unit {unit} not loaded.")
                return 5
            return 0
        os.kill(runner, signal.SIGTERM)
        if options.no_block:
            return 0
        while unitstate.runner_alive(unit, runner):
            time.sleep(0.05)
    return 0


def restart(unit: str, options: Options) -> int:
    if unitfile.find(unit) is None and unitstate.loaded(unit) is None:
        err(f"Failed to restart {unit}: Unit {unit} not found.")
        return 5
    stop(unit, Options(quiet=True))
    return start(unit, options)


def try_restart(unit: str, options: Options) -> int:
    if unitstate.effective(unit)["active_state"] in ("active", "activating"):
        return restart(unit, options)
    return 0


def kill(unit: str, options: Options) -> int:
    state = unitstate.effective(unit)
    if state["active_state"] not in ("active", "activating", "deactivating"):
        err(f"Failed to kill unit {unit}: No main process to kill")
        return 1
    name = options.signal.upper()
    try:
        signum = int(name) if name.isdigit() else signal.Signals[
            name if name.startswith("SIG") else f"SIG{name}"]
    except KeyError:
        err(f"Failed to parse signal string {options.signal}.")
        return 1

    targets = [state["main_pid"]] if options.kill_whom == "main" else unit_processes(
        state["invocation_id"], state["main_pid"])
    for pid in targets:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)
    return 0


# -- enable / disable -----------------------------------------------------------------------
def install_links(definition: unitfile.Unit) -> list[Path]:
    links = []
    for key, kind in (("WantedBy", "wants"), ("RequiredBy", "requires")):
        for value in definition.values("Install", key):
            for target in value.split():
                links.append(UNIT_DIRS[0] / f"{target}.{kind}" / definition.name)
    for value in definition.values("Install", "Alias"):
        links.extend(UNIT_DIRS[0] / alias for alias in value.split())
    return links


def enable(unit: str, options: Options) -> int:
    found = unitfile.read_text(unit)
    if found is None:
        err(f"Failed to enable unit: Unit file {unit} does not exist.")
        return 1
    definition = unitfile.from_text(unit, str(found[0]), found[1])
    links = install_links(definition)
    if not links:
        err("The unit files have no installation config (WantedBy=, RequiredBy=, Also=,\n"
            "Alias= settings in the [Install] section, and DefaultInstance= for template\n"
            "units). This means they are not meant to be enabled using systemctl.")
    for link in links:
        if link.is_symlink() or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(found[0])
        if not options.quiet:
            err(f"Created symlink {link} \u2192 {found[0]}.")
    return start(unit, options) if options.now else 0


def disable(unit: str, options: Options) -> int:
    removed = []
    for directory in UNIT_DIRS:
        for link in list(directory.glob(f"*.wants/{unit}")) + list(
                directory.glob(f"*.requires/{unit}")):
            link.unlink()
            removed.append(link)
    for link in removed:
        if not options.quiet:
            err(f'Removed "{link}".')
    if unitfile.find(unit) is None and not removed:
        err(f"Failed to disable unit: Unit file {unit} does not exist.")
        return 1
    return stop(unit, options) if options.now else 0


def enablement(unit: str) -> str | None:
    found = unitfile.read_text(unit)
    if found is None:
        return None
    definition = unitfile.from_text(unit, str(found[0]), found[1])
    if any(link.is_symlink() or link.exists() for link in install_links(definition)):
        return "enabled"
    return "disabled" if definition.sections.get("Install") else "static"


def is_enabled(unit: str, options: Options) -> int:
    state = enablement(unit)
    if state is None:
        err(f"Failed to get unit file state for {unit}: No such file or directory")
        return 1
    if not options.quiet:
        print(state)
    return 0 if state in ("enabled", "static") else 1


# -- queries --------------------------------------------------------------------------------
def is_active(unit: str, options: Options) -> int:
    state = unitstate.effective(unit)["active_state"]
    if not options.quiet:
        print(state)
    return 0 if state == "active" else 3


def is_failed(unit: str, options: Options) -> int:
    state = unitstate.effective(unit)["active_state"]
    if not options.quiet:
        print(state)
    return 0 if state == "failed" else 1


def reset_failed(unit: str, options: Options) -> int:
    del options
    with unitstate.locked(unit):
        state = unitstate.effective(unit)
        if state["active_state"] == "failed":
            state.update(active_state="inactive", sub_state="dead", result="success",
                          n_restarts=0)
            unitstate.write(unit, state)
    return 0


def describe_since(since: float) -> str:
    if not since:
        return ""
    ago = max(0, int(time.time() - since))
    text = f"{ago // 60}min {ago % 60}s ago" if ago >= 60 else f"{ago}s ago"
    return f" since {time.strftime('%a %Y-%m-%d %H:%M:%S %Z', time.localtime(since))}; {text}"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def status(unit: str, options: Options) -> int:
    definition = unitstate.loaded(unit)
    state = unitstate.effective(unit)
    if definition is None and state["active_state"] == "inactive":
        err(f"Unit {unit} could not be found.")
        return 4
    warn_if_changed(unit)
    active, sub = state["active_state"], state["sub_state"]
    bullet = {"active": "\u25cf", "failed": "\u00d7", "activating": "\u25cf"}.get(active, "\u25cb")
    description = definition.description if definition else unit
    path = definition.path if definition else ""
    result = f" (Result: {state['result']})" if state["result"] != "success" else ""
    lines = [
        f"{bullet} {unit} - {description}",
        f"     Loaded: loaded ({path}; {enablement(unit) or 'bad'}; preset: enabled)",
        f"     Active: {active} ({sub}){result}{describe_since(state['since'])}",
    ]
    if state["status_text"]:
        lines.append(f"     Status: \"{state['status_text']}\"")
    main_pid = state["main_pid"]
    if main_pid and unitstate.process_alive(main_pid):
        comm = Path(f"/proc/{main_pid}/comm").read_text().strip()
        lines.append(f"   Main PID: {main_pid} ({comm})")
        lines.append(f"     CGroup: /system.slice/{unit}")
        lines.append(f"             \u2514\u2500{main_pid} {cmdline(main_pid)}")
    elif state["exec_main_code"]:
        lines.append(f"   Main PID: ({'code=' + state['exec_main_code']}, "
                     f"status={state['exec_main_status']})")
    print("\n".join(lines))
    entries = journal.read_all([unit])[-options.lines:] if options.lines > 0 else []
    if entries:
        print()
        print("\n".join(journal.format_entry(e) for e in entries))
    return 0 if active == "active" else 3


SHOW_PROPERTIES: dict[str, Callable[[str, dict], str]] = {
    "Id": lambda u, s: u,
    "Names": lambda u, s: u,
    "LoadState": lambda u, s: "loaded" if unitfile.find(u) else "not-found",
    "ActiveState": lambda u, s: s["active_state"],
    "SubState": lambda u, s: s["sub_state"],
    "Result": lambda u, s: s["result"],
    "MainPID": lambda u, s: str(s["main_pid"]),
    "ExecMainPID": lambda u, s: str(s["main_pid"]),
    "ExecMainStatus": lambda u, s: str(s["exec_main_status"]),
    "NRestarts": lambda u, s: str(s["n_restarts"]),
    "InvocationID": lambda u, s: s["invocation_id"],
    "UnitFileState": lambda u, s: enablement(u) or "",
    "FragmentPath": lambda u, s: str(unitfile.find(u) or ""),
    "StatusText": lambda u, s: s["status_text"],
    "NeedDaemonReload": lambda u, s: "yes" if unitstate.changed_on_disk(u) else "no",
}


def show(unit: str, options: Options) -> int:
    state = unitstate.effective(unit)
    definition = unitstate.loaded(unit)
    wanted = options.property or list(SHOW_PROPERTIES)
    for name in wanted:
        if name in SHOW_PROPERTIES:
            value = SHOW_PROPERTIES[name](unit, state)
        elif name == "Description":
            value = definition.description if definition else ""
        else:
            value = definition.get("Service", name) if definition else ""
        print(value if options.value else f"{name}={value}")
    return 0


def cat(unit: str, options: Options) -> int:
    del options
    found = unitfile.read_text(unit)
    if found is None:
        err(f"No files found for {unit}.")
        return 1
    print(f"# {found[0]}\n{found[1]}", end="" if found[1].endswith("\n") else "\n")
    return 0


def list_units(patterns: list[str], options: Options) -> int:
    rows = []
    for unit in unitstate.known_units():
        if patterns and not any(fnmatch.fnmatch(unit, p) for p in patterns):
            continue
        state = unitstate.effective(unit)
        if not options.all and state["active_state"] == "inactive" and not patterns:
            continue
        definition = unitstate.loaded(unit)
        load = "loaded" if definition else "not-found"
        rows.append(f"  {unit:<24} {load:<9} {state['active_state']:<10} "
                    f"{state['sub_state']:<12} {definition.description if definition else ''}")
    if not options.no_legend:
        print(f"  {'UNIT':<24} {'LOAD':<9} {'ACTIVE':<10} {'SUB':<12} DESCRIPTION")
    print("\n".join(rows)) if rows else None
    if not options.no_legend:
        print(f"\n{len(rows)} loaded units listed.")
    return 0


def list_unit_files(patterns: list[str], options: Options) -> int:
    rows = [f"{u:<24} {enablement(u) or 'bad':<9} enabled" for u in unitstate.known_units()
            if unitfile.find(u) and (not patterns or any(fnmatch.fnmatch(u, p) for p in patterns))]
    if not options.no_legend:
        print(f"{'UNIT FILE':<24} {'STATE':<9} PRESET")
    print("\n".join(rows)) if rows else None
    if not options.no_legend:
        print(f"\n{len(rows)} unit files listed.")
    return 0


PER_UNIT: dict[str, Callable[[str, Options], int]] = {
    "start": start, "stop": stop, "restart": restart, "try-restart": try_restart,
    "reload-or-restart": restart, "kill": kill, "enable": enable, "disable": disable,
    "is-enabled": is_enabled, "is-active": is_active, "is-failed": is_failed,
    "reset-failed": reset_failed, "status": status, "show": show, "cat": cat,
}
def daemon_reload(units: list[str], options: Options) -> int:
    del units, options
    unitstate.daemon_reload()
    return 0


def version(units: list[str], options: Options) -> int:
    del units, options
    print("systemd 252 (252-lab)")
    return 0


WITHOUT_UNIT: dict[str, Callable[[list[str], Options], int]] = {
    "daemon-reload": daemon_reload, "--version": version, "list-units": list_units,
    "list-unit-files": list_unit_files,
}
COMBINE_WORST = {"is-active", "is-failed", "is-enabled"}


def unit_argument(argument: str, command: str) -> str:
    """A unit given by its file's path is the file's name, as systemctl takes it: the K3s
    installer runs `systemctl enable /etc/systemd/system/k3s.service`. For `enable`, a file
    outside the unit search path is first linked into it ("Created symlink ..."), as
    systemctl(1) says of `enable PATH`."""
    if "/" not in argument:
        return unitfile.normalize(argument)
    path = Path(argument)
    name = unitfile.normalize(path.name)
    linked = UNIT_DIRS[0] / name
    if command == "enable" and path.is_file() and path.parent not in UNIT_DIRS \
            and not linked.exists():
        linked.parent.mkdir(parents=True, exist_ok=True)
        linked.symlink_to(path)
        err(f"Created symlink {linked} \u2192 {path}.")
    return name


def main(argv: list[str]) -> int:
    try:
        options = parse_args(argv)
    except Usage as error:
        err(f"systemctl: {error}")
        return 1
    command = options.command
    if command in WITHOUT_UNIT:
        return WITHOUT_UNIT[command](options.units, options)
    if command not in PER_UNIT:
        err(f"Unknown command verb {command}.")
        return 1
    if not options.units:
        err("Too few arguments.")
        return 1
    codes = [PER_UNIT[command](unit_argument(unit, command), options) for unit in options.units]
    if command in COMBINE_WORST:
        return 0 if any(code == 0 for code in codes) else max(codes)
    return max(codes)
