"""Finding and ending the processes of one lab, and only those.

Why: after a crash the only reliable facts are names. Host init processes carry
`--lab-prefix PREFIX` in their argv, and every process still inside one of the lab's network
namespaces belongs to the lab. Nothing is matched by a loose pattern.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from sandbox.lab import network

HOSTINIT_SCRIPT = "sandbox/lab/hostinit.py"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_host_process(pid: int, prefix: str, host: str | None = None) -> bool:
    """True for a lab host's `unshare` launcher or its PID-1 init (both carry the same argv)."""
    argv = cmdline(pid)
    if not any(arg.endswith(HOSTINIT_SCRIPT) for arg in argv):
        return False
    try:
        if argv[argv.index("--lab-prefix") + 1] != prefix:
            return False
        return host is None or argv[argv.index("--host") + 1] == host
    except (ValueError, IndexError):
        return False


def namespace_depth(pid: int) -> int:
    """How many PID namespaces the process is in: 2 for a host's init, 1 for its launcher."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return len(line.split()) - 1
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def all_pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def find_host_init(prefix: str, host: str) -> int | None:
    for pid in all_pids():
        if is_host_process(pid, prefix, host) and namespace_depth(pid) == 2:
            return pid
    return None


def is_alive(pid: int) -> bool:
    """Running (zombies count as gone: they only wait for their parent to reap them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def protected_pids() -> set[int]:
    """This process and its ancestors: never killed, even if one wandered into a lab netns."""
    protected, pid = set(), os.getpid()
    while pid > 1:
        protected.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
    protected.add(1)
    return protected


def lab_pids(prefix: str, netns_names: list[str]) -> set[int]:
    found = {pid for pid in all_pids() if is_host_process(pid, prefix)}
    for netns in netns_names:
        found.update(network.netns_pids(netns))
    return found - protected_pids()


def kill_and_wait(pids: set[int], timeout: float = 10.0) -> set[int]:
    """SIGKILL them (killing a host's init ends its PID namespace); return survivors."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    remaining = {pid for pid in pids if is_alive(pid)}
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = {pid for pid in remaining if is_alive(pid)}
    return remaining
