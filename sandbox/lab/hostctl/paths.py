"""Where units, runtime state and journals live inside a lab host (all host-private)."""

from __future__ import annotations

from pathlib import Path

UNIT_DIRS = (Path("/etc/systemd/system"), Path("/run/systemd/system"))
# The service manager's own configuration (systemd-system.conf(5)): [Manager] settings such as
# DefaultEnvironment=, in the file and then its drop-ins.
MANAGER_CONFIG = Path("/etc/systemd/system.conf")
RUNTIME_DIR = Path("/run/systemd/lab")
JOURNAL_DIR = Path("/var/log/journal/lab")
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RUNNER_COMM = "lab-systemd"


def unit_runtime_dir(unit: str) -> Path:
    path = RUNTIME_DIR / unit
    path.mkdir(parents=True, exist_ok=True)
    return path
