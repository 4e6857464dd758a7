"""Taking K3s off a host: whose K3s it is, and the script that removes every trace of it.

Why: destroy and node removal must also clean a host whose install stopped half-way (a
cancelled or crashed create): the config may be written but no uninstall script created, or
the binary downloaded but no unit. And the panel must never uninstall a K3s it did not put
there (a mistyped address could name another cluster's server), so the config's token is the
proof of ownership.
"""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from clusters.k3s.config import CONFIG_PATH
from clusters.k3s.tokens import same_password

UNINSTALL_SCRIPTS = ("/usr/local/bin/k3s-uninstall.sh", "/usr/local/bin/k3s-agent-uninstall.sh")

# Sent on stdin (`sh -s`), never as a command line: the loop that kills leftover K3s
# processes matches argv, and must not find this script's own text there.
CLEANUP_SCRIPT = r"""
for script in /usr/local/bin/k3s-uninstall.sh /usr/local/bin/k3s-agent-uninstall.sh; do
    if [ -x "$script" ]; then
        echo "running $script"
        "$script" >/dev/null 2>&1 || echo "$script exited with status $?"
    fi
done
# An install that stopped half-way leaves what the scripts above would not remove.
for unit in k3s k3s-agent; do
    if [ -e "/etc/systemd/system/$unit.service" ]; then
        systemctl stop "$unit" >/dev/null 2>&1
        systemctl disable "$unit" >/dev/null 2>&1
        rm -f "/etc/systemd/system/$unit.service" "/etc/systemd/system/$unit.service.env"
        echo "removed unit $unit"
    fi
done
systemctl daemon-reload >/dev/null 2>&1
for pid in $(ps -e -o pid=); do
    [ "$pid" = "$$" ] && continue
    if tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | head -n 2 \
            | grep -qx '/usr/local/bin/k3s'; then
        kill -9 "$pid" 2>/dev/null && echo "stopped leftover K3s process $pid"
    fi
done
for path in /usr/local/bin/kubectl /usr/local/bin/crictl /usr/local/bin/ctr; do
    [ -L "$path" ] && [ "$(readlink "$path")" = k3s ] && rm -f "$path"
done
rm -rf /etc/rancher/k3s /var/lib/rancher/k3s /run/k3s /run/flannel /var/lib/kubelet
rm -f /usr/local/bin/k3s /usr/local/bin/k3s-killall.sh /usr/local/bin/k3s-uninstall.sh \
      /usr/local/bin/k3s-agent-uninstall.sh
echo "K3s removed"
"""

# Prints the config (or nothing) and, on a line of its own, whether any trace is left.
LOOK_SCRIPT = rf"""
if [ -f {CONFIG_PATH} ]; then cat {CONFIG_PATH}; fi
echo
traces=no
for path in {CONFIG_PATH} /usr/local/bin/k3s /var/lib/rancher/k3s \
        /etc/systemd/system/k3s.service /etc/systemd/system/k3s-agent.service \
        {' '.join(UNINSTALL_SCRIPTS)}; do
    [ -e "$path" ] && traces=yes
done
echo "panel-k3s-traces=$traces"
"""


def config_token(config_text: str) -> str | None:
    """The token in a K3s config.yaml, or None when there is none (or it is not YAML)."""
    try:
        loaded = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return None
    token = loaded.get("token") if isinstance(loaded, dict) else None
    return str(token) if token else None


def belongs_to(config_text: str, cluster_tokens: Iterable[str]) -> bool:
    """Whether the config on a host was written for the cluster with these tokens (its server
    and agent tokens; the config may hold either, in the short or the secure form)."""
    token = config_token(config_text)
    if not token:
        return False
    return any(same_password(token, mine) for mine in cluster_tokens if mine)
