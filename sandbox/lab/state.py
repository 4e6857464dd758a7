"""What a running lab looks like, persisted as JSON so another process can `down` it.

Why: the CLI's `up` exits while the hosts keep running; `status` and `down` (possibly after a
crash of the process that ran `up`) read everything they need from this file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_STATE_ROOT = Path("/var/tmp/sandbox-lab")  # noqa: S108 - root-only, 0700 per lab
STATE_FILE = "lab.json"


@dataclass
class Host:
    """One lab host: what a panel user would type into the wizard, plus lab internals."""

    name: str  # "node1": the lab-local short name
    hostname: str  # "<prefix>-node1": UTS hostname, also the network namespace name
    ip: str
    netns: str
    ssh_port: int
    root_password: str
    user: str  # sudo without a password (like Ubuntu cloud images)
    user_password: str
    sudo_password_user: str  # sudo asks for this user's password
    sudo_password_user_password: str
    private_key_path: str
    public_key: str
    init_pid: int = 0  # PID 1 of the host's PID namespace, as seen from the root namespace


@dataclass
class LabState:
    prefix: str
    subnet: str
    gateway_ip: str
    bridge: str
    cloud_netns: str
    cloud_dev: str
    cloud_ip: str
    state_dir: str
    hosts: list[Host] = field(default_factory=list)

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(dataclasses.asdict(self), out, indent=2)
        os.replace(tmp, path)

    @classmethod
    def load(cls, state_dir: str | Path) -> LabState | None:
        path = Path(state_dir) / STATE_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        hosts = [Host(**h) for h in raw.pop("hosts")]
        return cls(hosts=hosts, **raw)


def default_state_dir(prefix: str) -> Path:
    return DEFAULT_STATE_ROOT / prefix
