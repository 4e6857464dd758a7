"""CPU seconds per group of processes, exact, through cgroup cpuacct (benchmarks, root only).

Why cgroups and not sampling /proc: a group's `cpuacct.usage` counts every process that ever
ran in it, including the thousands of short commands an install script runs and that exit
between two samples; children inherit their parent's group, so a worker's prefork children
and a lab host's sshd sessions are counted without anyone naming them.

Each group is a directory of our own under the cpuacct hierarchy (`<base>-<pid>-<name>`);
nothing else on the machine is moved or read beyond its pid's entry in /proc. A benchmark
that needs a finer split of one group (MariaDB apart from sshd apart from the K3s stand-ins)
uses `Classifier`, which moves each process it recognises by its command line into a
sub-group of its own: from then on that process and its children count there.

Linux documents the interface: https://docs.kernel.org/admin-guide/cgroup-v1/cpuacct.html
(cpuacct.usage: "CPU time (in nanoseconds) obtained by this group"), and v1's cgroup.procs:
https://docs.kernel.org/admin-guide/cgroup-v1/cgroups.html ("writing a thread group id into
this file moves all threads in that group").
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path

CPUACCT_ROOT = Path("/sys/fs/cgroup/cpuacct")


class CpuGroupsUnavailable(RuntimeError):
    """No writable cpuacct hierarchy (not root, or no cgroup v1 cpuacct mounted)."""


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat's first
    line: user nice system idle iowait irq softirq steal (guest is inside user)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in fields[:8]]
    busy = sum(values) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


class CpuGroup:
    """One cgroup of ours; `seconds()` is the CPU time of everything that ran in it."""

    def __init__(self, base: str, name: str) -> None:
        if not (CPUACCT_ROOT / "cpuacct.usage").exists():
            raise CpuGroupsUnavailable(
                f"{CPUACCT_ROOT} is not a cgroup v1 cpuacct hierarchy: the benchmark needs it "
                "(run as root on a machine that mounts it)")
        self.name = name
        self.path = CPUACCT_ROOT / f"{base}-{os.getpid()}-{name}"
        try:
            self.path.mkdir()
        except PermissionError as exc:
            raise CpuGroupsUnavailable(f"cannot create {self.path}: run as root") from exc

    def add(self, pid: int) -> bool:
        """Move process `pid` (all its threads) here; False if it has exited meanwhile."""
        try:
            (self.path / "cgroup.procs").write_text(f"{pid}\n")
        except ProcessLookupError:
            return False
        return True

    @property
    def procs(self) -> Path:
        """The group's cgroup.procs: a process that writes "0" there joins the group."""
        return self.path / "cgroup.procs"

    def pids(self) -> list[int]:
        return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]

    def seconds(self) -> float:
        return int((self.path / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        """Give what is left back to the root group, then remove ours."""
        with contextlib.suppress(FileNotFoundError):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError, OSError):
                    (CPUACCT_ROOT / "cgroup.procs").write_text(f"{pid}\n")
            self.path.rmdir()


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


class Classifier:
    """Moves the processes of `source` whose command line matches a pattern into that
    pattern's group, every `interval` seconds (a process's CPU before it is seen stays in
    `source`: at most one interval of it). Patterns are tried in order."""

    def __init__(self, source: CpuGroup, groups: Iterable[tuple[re.Pattern[str], CpuGroup]],
                 *, interval: float = 0.5, keep: Iterable[int] = ()) -> None:
        self.source = source
        self.groups = list(groups)
        self.interval = interval
        self.keep = set(keep)
        self.cpu_seconds = 0.0  # this thread's own cost (it runs in the source's process)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="cpu-classifier")

    def __enter__(self) -> Classifier:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def sweep(self) -> None:
        """Every process of the source and of the groups: one that matches a pattern goes to
        its group (a K3s stand-in started by an sshd session leaves the sshd group); one that
        matches none stays where its parent put it (an install script's commands)."""
        for current in [self.source, *(group for _, group in self.groups)]:
            for pid in current.pids():
                if pid in self.keep:
                    continue
                line = command_line(pid)
                for pattern, group in self.groups:
                    if pattern.search(line):
                        if group is not current:
                            group.add(pid)
                        break

    def _loop(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval):
            with contextlib.suppress(OSError):
                self.sweep()
            self.cpu_seconds = time.thread_time() - started
