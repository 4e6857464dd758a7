"""The runtime state of one unit, shared by `systemctl` and the unit's supervisor.

Why files: each `systemctl` call is a short-lived process; the supervisor (one detached
process per running unit) owns the truth and publishes it atomically as JSON under the host's
private /run, which a reboot-less lab never clears except through `down`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sandbox.lab.hostctl import unitfile
from sandbox.lab.hostctl.paths import RUNNER_COMM, RUNTIME_DIR, UNIT_DIRS, unit_runtime_dir

INACTIVE = {"active_state": "inactive", "sub_state": "dead", "main_pid": 0, "runner_pid": 0,
            "result": "success", "exec_main_status": 0, "exec_main_code": "", "n_restarts": 0,
            "since": 0.0, "invocation_id": "", "cycle": 0, "outcomes": {}, "status_text": ""}


def state_path(unit: str) -> Path:
    return RUNTIME_DIR / unit / "state.json"


def read(unit: str) -> dict[str, Any]:
    try:
        return {**INACTIVE, **json.loads(state_path(unit).read_text())}
    except (FileNotFoundError, ValueError):
        return dict(INACTIVE)


def write(unit: str, state: dict[str, Any]) -> None:
    path = state_path(unit)
    unit_runtime_dir(unit)
    tmp = path.with_name(f"state.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runner_alive(unit: str, pid: int) -> bool:
    """The supervisor of `unit`, not some process that reused its PID."""
    if not process_alive(pid):
        return False
    try:
        if Path(f"/proc/{pid}/comm").read_text().strip() != RUNNER_COMM:
            return False
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    except PermissionError:
        return True  # unprivileged callers cannot read root's environ; the name must do
    return f"LAB_UNIT={unit}".encode() in environ


def effective(unit: str) -> dict[str, Any]:
    """The state, corrected for a supervisor that was killed behind our back."""
    state = read(unit)
    if state["active_state"] in ("active", "activating", "deactivating") and not runner_alive(
        unit, state["runner_pid"]
    ):
        stopping = state["active_state"] == "deactivating"
        state.update(active_state="inactive" if stopping else "failed",
                     sub_state="dead" if stopping else "failed",
                     result=state["result"] if stopping else "signal")
    return state


@contextlib.contextmanager
def locked(unit: str) -> Iterator[None]:
    """One start/stop decision at a time per unit."""
    with open(unit_runtime_dir(unit) / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the loaded unit definition (what `daemon-reload` refreshes) -----------------------------
def snapshot_path(unit: str) -> Path:
    return RUNTIME_DIR / unit / "loaded.json"


def loaded(unit: str) -> unitfile.Unit | None:
    """The unit as systemd holds it in memory: loaded on first use, refreshed by daemon-reload."""
    try:
        raw = json.loads(snapshot_path(unit).read_text())
        return unitfile.from_text(unit, raw["path"], raw["text"])
    except (FileNotFoundError, ValueError):
        pass
    found = unitfile.read_text(unit)
    if found is None:
        return None
    path, text = found
    with contextlib.suppress(PermissionError):  # unprivileged users only look
        unit_runtime_dir(unit)
        snapshot_path(unit).write_text(json.dumps({"path": str(path), "text": text,
                                                   "loaded_at": time.time()}))
    return unitfile.from_text(unit, str(path), text)


def changed_on_disk(unit: str) -> bool:
    try:
        raw = json.loads(snapshot_path(unit).read_text())
    except (FileNotFoundError, ValueError):
        return False
    found = unitfile.read_text(unit)
    return found is None or found[1] != raw["text"]


def daemon_reload() -> None:
    if RUNTIME_DIR.is_dir():
        for snapshot in RUNTIME_DIR.glob("*/loaded.json"):
            snapshot.unlink()


def known_units() -> list[str]:
    names: set[str] = set()
    for directory in UNIT_DIRS:
        if directory.is_dir():
            names.update(p.name for p in directory.iterdir()
                         if p.is_file() and p.name.endswith(unitfile.UNIT_SUFFIXES))
    if RUNTIME_DIR.is_dir():
        names.update(p.parent.name for p in RUNTIME_DIR.glob("*/state.json"))
    return sorted(names)
