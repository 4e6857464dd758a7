"""The K3s install command line: where the script comes from and the INSTALL_K3S_* it gets.

Why: the command line is visible in `ps` and shell history, so it carries no secret (token
and DSN are in config.yaml). The script is downloaded to a file first: with `curl | sh` a
failed download feeds `sh` an empty script, which "succeeds" (dash has no pipefail).
`INSTALL_K3S_SKIP_START=true` lets the panel start K3s itself and poll with its own timeout
(the script otherwise blocks on `systemctl restart`, forever when the datastore hangs).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from clusters.core.errors import PermanentError
from clusters.k3s.versions import is_channel, parse_version

OFFICIAL_SCRIPT_URL = "https://get.k3s.io"
CHINA_SCRIPT_URL = "https://rancher-mirror.rancher.cn/k3s/k3s-install.sh"
UNINSTALL_SCRIPT = "/usr/local/bin/k3s-uninstall.sh"
_SECRET_ENV = re.compile(r"TOKEN|DATASTORE|PASSWORD|SECRET|KEY", re.IGNORECASE)

SourceKind = Literal["official", "china", "custom", "custom-mirror"]
Role = Literal["server", "agent"]


@dataclass(frozen=True)
class InstallSource:
    """Where the script and binaries come from.

    official: get.k3s.io + GitHub releases; china: rancher-mirror.rancher.cn with
    INSTALL_K3S_MIRROR=cn; custom: a base URL serving the official layout (install script at
    `/`, `/k3s-io/k3s/releases/download/...`, `/v1-release/channels`); custom-mirror: a base
    URL with the China mirror's layout (`/k3s/k3s-install.sh`, `/k3s/<v1.30.8-k3s1>/k3s`).
    """

    kind: SourceKind = "official"
    base_url: str | None = None

    def __post_init__(self) -> None:
        if self.kind in ("custom", "custom-mirror"):
            parts = urlsplit(self.base_url or "")
            if parts.scheme not in ("http", "https") or not parts.netloc or any(
                    c.isspace() for c in self.base_url or ""):
                raise PermanentError(
                    f"The K3s download base URL {self.base_url!r} must look like "
                    "https://host[:port][/path].")
        elif self.base_url:
            raise PermanentError(f"A base URL only applies to a custom source, not {self.kind}.")

    @property
    def base(self) -> str:
        return (self.base_url or "").rstrip("/")

    @property
    def script_url(self) -> str:
        if self.kind == "official":
            return OFFICIAL_SCRIPT_URL
        if self.kind == "china":
            return CHINA_SCRIPT_URL
        if self.kind == "custom":
            return self.base + "/"
        return self.base + "/k3s/k3s-install.sh"

    def env(self) -> dict[str, str]:
        if self.kind == "china":
            return {"INSTALL_K3S_MIRROR": "cn"}
        if self.kind == "custom":
            return {"GITHUB_URL": f"{self.base}/k3s-io/k3s/releases",
                    "INSTALL_K3S_CHANNEL_URL": f"{self.base}/v1-release/channels"}
        if self.kind == "custom-mirror":
            return {"INSTALL_K3S_MIRROR": "cn", "INSTALL_K3S_MIRROR_URL": self.base}
        return {}


def install_env(source: InstallSource, *, version: str | None = None,
                channel: str | None = None, skip_start: bool = True,
                extra: dict[str, str] | None = None) -> dict[str, str]:
    """INSTALL_K3S_* for one run. A pinned version wins; otherwise the channel is followed."""
    env = source.env()
    if version:
        env["INSTALL_K3S_VERSION"] = str(parse_version(version))
    elif channel:
        if not is_channel(channel):
            raise PermanentError(f"{channel!r} is not a K3s channel (stable, latest, v1.30 …).")
        env["INSTALL_K3S_CHANNEL"] = channel
    if skip_start:
        env["INSTALL_K3S_SKIP_START"] = "true"
    for key, value in (extra or {}).items():
        if _SECRET_ENV.search(key):
            raise PermanentError(
                f"{key} looks secret; put it in config.yaml, not on a command line.")
        env[key] = value
    return env


def install_command(source: InstallSource, *, version: str | None = None,
                    channel: str | None = None, skip_start: bool = True,
                    extra_env: dict[str, str] | None = None, role: Role = "server") -> str:
    """A shell command (every value quoted) that downloads the script, then installs K3s.

    Run it as root (the step passes sudo=True). The script goes to a fresh `mktemp -d`
    directory (0700): a fixed path in /tmp could be pre-planted by another local user and
    then run as root. No `K3S_URL`, for either role: servers on an external datastore must
    not get one, and agents read `server:`/`token:` from config.yaml (the explicit `agent`
    command makes the script install the k3s-agent unit without K3S_URL/K3S_TOKEN).
    """
    if role not in ("server", "agent"):
        raise PermanentError(f"Unknown K3s role {role!r}.")
    env = install_env(source, version=version, channel=channel, skip_start=skip_start,
                      extra=extra_env)
    download = ["curl", "-fsSL", "--retry", "3", "--connect-timeout", "20",
                "-o", '"$d/install.sh"', source.script_url]
    run = ["env", *(f"{k}={v}" for k, v in env.items()), "sh", '"$d/install.sh"', role]
    quote = shlex.quote
    download_text = " ".join(a if a.startswith('"$d') else quote(a) for a in download)
    run_text = " ".join(a if a.startswith('"$d') else quote(a) for a in run)
    return (f'd=$(mktemp -d) && {{ {download_text} && {run_text}; }}; '
            'rc=$?; rm -rf "$d"; exit $rc')


def start_command() -> str:
    """Start without waiting for READY=1 (Type=notify, TimeoutStartSec=0); the step polls."""
    return "systemctl start --no-block k3s"
