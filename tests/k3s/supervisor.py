"""A tiny test-only `systemctl` for scratch hosts (the lab ships the real-unit-honouring one).

Why: the install script calls systemctl enable/daemon-reload/restart/stop/disable; before the
lab exists our tests still need those calls to start the unit's ExecStart with its
EnvironmentFile, so a scratch host can run what the script installed. State lives in /run.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys

UNIT_DIR = "/etc/systemd/system"
STATE_DIR = "/run/test-supervisor"


def _unit_path(name: str) -> str:
    name = os.path.basename(name)
    return os.path.join(UNIT_DIR, name if name.endswith(".service") else f"{name}.service")


def _parse(path: str) -> tuple[list[str], dict[str, str]]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read().replace("\\\n", " ")
    env: dict[str, str] = {}
    argv: list[str] = []
    unit = os.path.basename(path)[: -len(".service")]
    for line in text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "EnvironmentFile":
            optional = value.startswith("-")
            env_path = value.lstrip("-").replace("%N", unit)
            if not os.path.exists(env_path):
                if optional:
                    continue
                raise SystemExit(f"missing EnvironmentFile {env_path}")
            with open(env_path, encoding="utf-8") as env_file:
                for env_line in env_file:
                    name, sep, raw = env_line.strip().partition("=")
                    if sep:
                        env[name] = " ".join(shlex.split(raw)) if raw else ""
        elif key == "ExecStart":
            argv = shlex.split(value)
    return argv, env


def _pid_file(name: str) -> str:
    return os.path.join(STATE_DIR, os.path.basename(_unit_path(name)) + ".pid")


def _running(name: str) -> int | None:
    try:
        with open(_pid_file(name), encoding="utf-8") as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _stop(name: str) -> None:
    pid = _running(name)
    if pid:
        os.kill(pid, signal.SIGTERM)


def _start(name: str) -> None:
    _stop(name)
    argv, env = _parse(_unit_path(name))
    os.makedirs(STATE_DIR, exist_ok=True)
    log = open(os.path.join(STATE_DIR, os.path.basename(_unit_path(name)) + ".log"), "ab")  # noqa: SIM115
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with open(_pid_file(name), "w", encoding="utf-8") as handle:
        handle.write(str(proc.pid))


def main(args: list[str]) -> int:
    if not args:
        return 1
    verb, names = args[0], [a for a in args[1:] if not a.startswith("-")]
    if verb in ("daemon-reload", "reset-failed", "enable", "disable"):
        return 0
    if verb in ("start", "restart"):
        for name in names:
            _start(name)
        return 0
    if verb == "stop":
        for name in names:
            _stop(name)
        return 0
    if verb == "is-active":
        active = all(_running(n) for n in names)
        print("active" if active else "inactive")
        return 0 if active else 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
