"""Reading systemd unit files the way systemd does (the parts K3s and the panel use).

Why strict: a unit that real systemd would reject or read differently (a missing
EnvironmentFile without '-', two ExecStart= lines for a simple service, an unknown Type=)
must fail here too, or the panel would pass against the lab and break on a real host.
"""

from __future__ import annotations

import re
import shlex
import socket
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.lab.hostctl.paths import MANAGER_CONFIG, UNIT_DIRS

UNIT_SUFFIXES = (".service", ".socket", ".target", ".timer", ".mount", ".path", ".slice")
SUPPORTED_TYPES = ("simple", "exec", "notify", "oneshot")
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600,
              "hr": 3600, "d": 86400}


class UnitError(Exception):
    pass


def normalize(name: str) -> str:
    return name if name.endswith(UNIT_SUFFIXES) else f"{name}.service"


@dataclass
class Unit:
    name: str
    path: str
    text: str  # file plus drop-ins, as loaded: compared on disk to detect daemon-reload needs
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return [expand_specifiers(v, self.name)
                for v in self.sections.get(section, {}).get(key, [])]

    def get(self, section: str, key: str, default: str = "") -> str:
        values = self.values(section, key)
        return values[-1] if values else default

    @property
    def description(self) -> str:
        return self.get("Unit", "Description") or self.name

    @property
    def type(self) -> str:
        return self.get("Service", "Type", "simple")

    def check(self) -> None:
        """Refuse what systemd refuses at load time."""
        if self.type not in SUPPORTED_TYPES:
            raise UnitError(f"{self.name}: Type={self.type} is not supported by the lab")
        starts = self.values("Service", "ExecStart")
        if not starts:
            raise UnitError(f"{self.name}: Service has no ExecStart= setting. Refusing.")
        if len(starts) > 1 and self.type != "oneshot":
            raise UnitError(
                f"{self.name}: Service has more than one ExecStart= setting, which is only "
                "allowed for Type=oneshot services. Refusing."
            )


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    pending = ""
    for raw_line in text.splitlines():
        line = pending + raw_line.strip() if pending else raw_line.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        if "=" not in line or current is None:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value == "":
            current[key] = []  # an empty assignment resets the list, as in systemd
        else:
            current.setdefault(key, []).append(value)
    return sections


def find(name: str) -> Path | None:
    for directory in UNIT_DIRS:
        path = directory / name
        if path.is_file():
            return path
    return None


def read_text(name: str) -> tuple[Path, str] | None:
    path = find(name)
    if path is None:
        return None
    parts = [path.read_text()]
    for directory in UNIT_DIRS:
        for dropin in sorted((directory / f"{name}.d").glob("*.conf")):
            parts.append(f"\n# drop-in {dropin}\n" + dropin.read_text())
    return path, "".join(parts)


def from_text(name: str, path: str, text: str) -> Unit:
    return Unit(name=name, path=path, text=text, sections=parse(text))


def expand_specifiers(value: str, unit_name: str) -> str:
    prefix = unit_name.rsplit(".", 1)[0]
    table = {
        "n": unit_name, "N": prefix, "p": prefix.split("@")[0],
        "i": prefix.split("@", 1)[1] if "@" in prefix else "", "H": socket.gethostname(),
        "t": "/run", "h": "/root", "%": "%",
    }
    return re.sub(r"%(.)", lambda m: table.get(m.group(1), m.group(0)), value)


def parse_seconds(value: str, default: float | None) -> float | None:
    """'5s', '100ms', '1min 30s', '90' -> seconds; '0' and 'infinity' -> None (no limit)."""
    value = value.strip()
    if not value:
        return default
    if value in ("infinity", "0"):
        return None
    total = 0.0
    for number, unit in re.findall(r"([\d.]+)\s*([a-z]*)", value):
        total += float(number) * TIME_UNITS.get(unit or "s", 1)
    return total


def split_command(line: str) -> tuple[str, list[str]]:
    """'-/sbin/modprobe x' -> ('-', ['/sbin/modprobe', 'x']): systemd's prefixes, then words."""
    flags = ""
    while line and line[0] in "-@:+!":
        flags += line[0]
        line = line[1:]
    return flags, shlex.split(line)


def expand_variables(argv: list[str], env: dict[str, str]) -> list[str]:
    """$VAR alone splits into words; ${VAR} stays one word (systemd.service(5))."""
    expanded: list[str] = []
    for word in argv:
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            expanded.extend(env.get(whole.group(1), "").split())
            continue
        expanded.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                               lambda m: env.get(m.group(1), ""), word))
    return expanded


def parse_assignments(value: str) -> dict[str, str]:
    result = {}
    for word in shlex.split(value):
        if "=" in word:
            key, val = word.split("=", 1)
            result[key] = val
    return result


def read_environment_file(path: Path) -> dict[str, str]:
    result: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = shlex.split(value)[0] if value[0] == "'" or "\\" in value else value[1:-1]
        result[key.strip()] = value
    return result


def default_environment() -> dict[str, str]:
    """[Manager] DefaultEnvironment= of /etc/systemd/system.conf, then of its drop-ins
    (system.conf.d/*.conf, in name order; a later assignment wins, an empty one resets), as
    systemd-system.conf(5) says: every unit's processes start with it. Read at each start, not
    only when the manager starts (the lab's service manager has no daemon-reexec)."""
    env: dict[str, str] = {}
    drop_ins = sorted(MANAGER_CONFIG.with_name(f"{MANAGER_CONFIG.name}.d").glob("*.conf"))
    for path in (MANAGER_CONFIG, *drop_ins):
        try:
            sections = parse(path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            continue
        values = sections.get("Manager", {})
        if "DefaultEnvironment" not in values:
            continue
        if not values["DefaultEnvironment"]:
            env = {}
        for value in values["DefaultEnvironment"]:
            env.update(parse_assignments(value))
    return env


def environment(unit: Unit) -> dict[str, str]:
    """Environment= then EnvironmentFile= (files win), read at start time like systemd."""
    env: dict[str, str] = {}
    for value in unit.values("Service", "Environment"):
        env.update(parse_assignments(value))
    for value in unit.values("Service", "EnvironmentFile"):
        optional = value.startswith("-")
        path = Path(value.lstrip("-"))
        try:
            env.update(read_environment_file(path))
        except FileNotFoundError:
            if not optional:
                raise UnitError(f"Failed to load environment files: {path}") from None
    return env
