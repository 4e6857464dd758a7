"""Keep the local panel's processes (broker, web, workers, beat) running until told to stop.

Why: `make run` and `make sandbox` start five processes under one `runpanel`. A worker killed
by the OOM killer (or by a tester's `kill -9`) used to make runpanel stop all the others, so
one dead process took the whole panel down and the run in flight never finished. Here a
child that exits is started again after a back-off (1 s, doubling to 30 s while it keeps
dying young; reset once it stayed up a minute), and the supervisor says so on stderr. Only
Ctrl-C or SIGTERM (KeyboardInterrupt in `run`) stops everything.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Starter = Callable[[], subprocess.Popen[bytes]]

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
# A child that ran this long before it died is treated as healthy: its next restart is quick.
STABLE_AFTER_SECONDS = 60.0
POLL_SECONDS = 0.5


@dataclass
class Child:
    """One supervised process: how to start it and what happened to it so far."""

    name: str
    start: Starter
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    due_at: float | None = None  # when a dead child is started again
    history: list[str] = field(default_factory=list)


def describe_exit(returncode: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL' (Popen gives -N for signal N)."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with code {returncode}"


class Supervisor:
    """Starts children, restarts the ones that die, stops all of them in reverse order."""

    def __init__(self, say: Callable[[str], None], *,
                 backoff_first: float = BACKOFF_FIRST_SECONDS,
                 backoff_max: float = BACKOFF_MAX_SECONDS,
                 stable_after: float = STABLE_AFTER_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._say = say
        self._backoff_first = backoff_first
        self._backoff_max = backoff_max
        self._stable_after = stable_after
        self._clock = clock
        self.children: list[Child] = []

    def add(self, name: str, start: Starter) -> Child:
        """Start a child now; a failure to start it the first time is the caller's error."""
        child = Child(name, start)
        child.process = start()
        child.started_at = self._clock()
        self.children.append(child)
        return child

    def check(self) -> None:
        """Notice children that died and start the ones whose back-off is over."""
        now = self._clock()
        for child in self.children:
            if child.process is not None and child.process.poll() is not None:
                self._schedule_restart(child, now)
            if child.process is None and child.due_at is not None and now >= child.due_at:
                self._restart(child)

    def run(self) -> None:
        """Watch until KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one by the caller)."""
        while True:
            self.check()
            time.sleep(POLL_SECONDS)

    def stop_all(self, timeout: float = 15) -> None:
        """Terminate in reverse start order (beat and worker before the broker), then kill."""
        running = [c.process for c in reversed(self.children) if c.process is not None]
        for process in running:
            if process.poll() is None:
                process.terminate()
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _schedule_restart(self, child: Child, now: float) -> None:
        assert child.process is not None
        pid, returncode = child.process.pid, child.process.returncode
        lived = now - child.started_at
        child.failures_in_a_row = 1 if lived >= self._stable_after else child.failures_in_a_row + 1
        delay = min(self._backoff_max,
                    self._backoff_first * 2 ** (child.failures_in_a_row - 1))
        child.process, child.due_at = None, now + delay
        self._say(f"The {child.name} (pid {pid}) {describe_exit(returncode)} after "
                  f"{lived:.0f} s; starting it again in {delay:g} s.")

    def _restart(self, child: Child) -> None:
        child.due_at = None
        try:
            child.process = child.start()
        except Exception as exc:  # a failed start is retried like a death
            self._say(f"The {child.name} could not be started again: {exc}")
            child.failures_in_a_row += 1
            child.due_at = self._clock() + min(
                self._backoff_max, self._backoff_first * 2 ** (child.failures_in_a_row - 1))
            return
        child.started_at = self._clock()
        child.restarts += 1
        self._say(f"The {child.name} is running again (pid {child.process.pid}; "
                  f"restart {child.restarts}).")
