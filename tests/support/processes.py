"""Watching every command line on the machine (lab hosts' processes included).

Why: "no secret on a command line" is only proven by looking at what `ps` would show on the
hosts while the panel works; lab hosts' PID namespaces are nested in ours, so /proc here
sees every one of their processes.
"""

from __future__ import annotations

import os
import threading


class CommandLineWatcher:
    """Collects the distinct command lines of all processes until stopped."""

    def __init__(self, interval: float = 0.05) -> None:
        self.seen: set[str] = set()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        raw = handle.read()
                except OSError:
                    continue
                if raw:
                    self.seen.add(raw.replace(b"\0", b" ").decode(errors="replace").strip())
            self._stop.wait(self._interval)

    def stop(self) -> set[str]:
        self._stop.set()
        self._thread.join()
        return self.seen
