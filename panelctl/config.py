"""Where `panelctl login` keeps the panel's URL and the token: one JSON file, mode 0600,
in $PANELCTL_CONFIG or ~/.config/panelctl/config.json. PANELCTL_URL and PANELCTL_TOKEN
override it (for CI, where nothing is written to disk)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


def path() -> Path:
    given = os.environ.get("PANELCTL_CONFIG")
    if given:
        return Path(given).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "panelctl" / "config.json"


@dataclass
class Settings:
    url: str
    token: str


class NotLoggedIn(Exception):
    pass


def save(settings: Settings) -> Path:
    """Write the file 0600 from the start (never readable by others, not even briefly)."""
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(target.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"url": settings.url, "token": settings.token}, handle)
    os.chmod(temporary, 0o600)
    os.replace(temporary, target)
    return target


def load() -> Settings:
    stored: dict[str, str] = {}
    if path().exists():
        stored = json.loads(path().read_text())
    url = os.environ.get("PANELCTL_URL") or stored.get("url")
    token = os.environ.get("PANELCTL_TOKEN") or stored.get("token")
    if not url or not token:
        raise NotLoggedIn("not logged in: run `panelctl login --url URL` (or set "
                          "PANELCTL_URL and PANELCTL_TOKEN)")
    return Settings(url, token)
