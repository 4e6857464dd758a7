"""Flags, K3S_* environment and config.yaml (+ drop-ins), merged with K3s's precedence.

Why: the panel writes durable settings to /etc/rancher/k3s/config.yaml and passes secrets via
the unit's env file; what wins when both say something must match K3s:
  command line > config file (later drop-ins override; `key+:` appends) > K3S_* env > default.
A repeated list flag on the command line replaces the file's list. Unknown flags fail like
urfave/cli ("flag provided but not defined").
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import yaml

DEFAULT_CONFIG = "/etc/rancher/k3s/config.yaml"


class UsageError(Exception):
    pass


@dataclass(frozen=True)
class Flag:
    name: str
    kind: str = "str"        # str | list | bool
    env: str | None = None
    default: object = None
    aliases: tuple[str, ...] = ()


COMMON = [
    Flag("config", env="K3S_CONFIG_FILE", default=DEFAULT_CONFIG, aliases=("c",)),
    Flag("debug", "bool", env="K3S_DEBUG", default=False),
    Flag("data-dir", env="K3S_DATA_DIR", default="/var/lib/rancher/k3s", aliases=("d",)),
    Flag("token", env="K3S_TOKEN", aliases=("t",)),
    Flag("token-file", env="K3S_TOKEN_FILE"),
    Flag("node-name", env="K3S_NODE_NAME"),
    Flag("with-node-id", "bool", default=False),
    Flag("node-ip", "list", aliases=("i",)),
    Flag("node-external-ip", "list"),
    Flag("node-label", "list"),
    Flag("node-taint", "list"),
    Flag("kubelet-arg", "list"),
    Flag("kube-proxy-arg", "list"),
    Flag("resolv-conf", env="K3S_RESOLV_CONF"),
    Flag("server", env="K3S_URL", aliases=("s",)),
    Flag("lb-server-port", default="6444"),
    Flag("protect-kernel-defaults", "bool", default=False),
    Flag("selinux", "bool", env="K3S_SELINUX", default=False),
    Flag("prefer-bundled-bin", "bool", default=False),
    Flag("private-registry", default="/etc/rancher/k3s/registries.yaml"),
    Flag("pause-image"),
    Flag("snapshotter"),
    Flag("container-runtime-endpoint"),
    Flag("docker", "bool", default=False),
    Flag("flannel-iface"),
    Flag("flannel-conf"),
    Flag("vpn-auth", env="K3S_VPN_AUTH"),
    Flag("vpn-auth-file", env="K3S_VPN_AUTH_FILE"),
]

SERVER_ONLY = [
    Flag("agent-token", env="K3S_AGENT_TOKEN"),
    Flag("agent-token-file", env="K3S_AGENT_TOKEN_FILE"),
    Flag("datastore-endpoint", env="K3S_DATASTORE_ENDPOINT"),
    Flag("datastore-cafile", env="K3S_DATASTORE_CAFILE"),
    Flag("datastore-certfile", env="K3S_DATASTORE_CERTFILE"),
    Flag("datastore-keyfile", env="K3S_DATASTORE_KEYFILE"),
    Flag("tls-san", "list"),
    Flag("tls-san-security", "bool", default=True),
    Flag("bind-address"),
    Flag("advertise-address"),
    Flag("advertise-port"),
    Flag("https-listen-port", default="6443"),
    Flag("write-kubeconfig", env="K3S_KUBECONFIG_OUTPUT", aliases=("o",)),
    Flag("write-kubeconfig-mode", env="K3S_KUBECONFIG_MODE"),
    Flag("write-kubeconfig-group", env="K3S_KUBECONFIG_GROUP"),
    Flag("kube-apiserver-arg", "list"),
    Flag("kube-controller-manager-arg", "list"),
    Flag("kube-scheduler-arg", "list"),
    Flag("kube-cloud-controller-manager-arg", "list"),
    Flag("etcd-arg", "list"),
    Flag("disable", "list"),
    Flag("no-deploy", "list"),
    Flag("cluster-init", "bool", env="K3S_CLUSTER_INIT", default=False),
    Flag("cluster-reset", "bool", env="K3S_CLUSTER_RESET", default=False),
    Flag("cluster-reset-restore-path"),
    Flag("etcd-expose-metrics", "bool", default=False),
    Flag("etcd-disable-snapshots", "bool", default=False),
    Flag("etcd-snapshot-name", default="etcd-snapshot"),
    Flag("etcd-snapshot-schedule-cron", default="0 */12 * * *"),
    Flag("etcd-snapshot-retention", default="5"),
    Flag("etcd-snapshot-dir"),
    Flag("etcd-snapshot-compress", "bool", default=False),
    Flag("cluster-cidr"),
    Flag("service-cidr"),
    Flag("cluster-dns"),
    Flag("cluster-domain", default="cluster.local"),
    Flag("flannel-backend", default="vxlan"),
    Flag("flannel-ipv6-masq", "bool", default=False),
    Flag("egress-selector-mode"),
    Flag("disable-cloud-controller", "bool", default=False),
    Flag("disable-kube-proxy", "bool", default=False),
    Flag("disable-network-policy", "bool", default=False),
    Flag("disable-helm-controller", "bool", default=False),
    Flag("disable-scheduler", "bool", default=False),
    Flag("disable-apiserver", "bool", default=False),
    Flag("disable-controller-manager", "bool", default=False),
    Flag("disable-etcd", "bool", default=False),
    Flag("embedded-registry", "bool", default=False),
    Flag("secrets-encryption", "bool", default=False),
    Flag("system-default-registry", env="K3S_SYSTEM_DEFAULT_REGISTRY"),
    Flag("default-local-storage-path"),
    Flag("node-name-from-hostname", "bool", default=False),
    Flag("kine-tls", "bool", default=False),
]


# `k3s etcd-snapshot save|ls|delete|prune` (k3s-io/k3s pkg/cli/cmds/etcd_snapshot.go): the
# flags docs.k3s.io/cli/etcd-snapshot lists, with their etcd-* spellings as aliases.
ETCD_SNAPSHOT = [
    Flag("config", env="K3S_CONFIG_FILE", default=DEFAULT_CONFIG, aliases=("c",)),
    Flag("debug", "bool", env="K3S_DEBUG", default=False),
    Flag("data-dir", env="K3S_DATA_DIR", default="/var/lib/rancher/k3s", aliases=("d",)),
    Flag("node-name", env="K3S_NODE_NAME"),
    Flag("server", env="K3S_URL", default="https://127.0.0.1:6443", aliases=("s",)),
    Flag("token", env="K3S_TOKEN", aliases=("t",)),
    Flag("etcd-snapshot-name", default="on-demand", aliases=("name",)),
    Flag("etcd-snapshot-dir", aliases=("dir",)),
    Flag("etcd-snapshot-retention", aliases=("snapshot-retention",)),
    Flag("etcd-snapshot-compress", "bool", default=False, aliases=("snapshot-compress",)),
    Flag("output", default="", aliases=("o",)),
]


def flags_for(command: str) -> dict[str, Flag]:
    table: dict[str, Flag] = {}
    if command == "etcd-snapshot":
        for item in ETCD_SNAPSHOT:
            table[item.name] = item
            for alias in item.aliases:
                table[alias] = item
        return table
    for item in COMMON + (SERVER_ONLY if command == "server" else []):
        table[item.name] = item
        for alias in item.aliases:
            table[alias] = item
    return table


@dataclass
class Settings:
    command: str
    values: dict[str, object] = field(default_factory=dict)

    def get(self, name: str) -> object:
        return self.values.get(name)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    def bool(self, name: str) -> bool:
        """A bool flag's value (False when unset); config.yaml gives true/false already."""
        value = self.values.get(name)
        return _parse_bool(value) if isinstance(value, str) else bool(value)

    def items(self, name: str) -> list[str]:
        """A list flag with comma-separated entries split, as K3s does for --disable etc."""
        value = self.values.get(name) or []
        entries = value if isinstance(value, list) else [value]
        return [str(v) for v in entries]

    def component_arg(self, flag: str, key: str) -> str | None:
        """Value of `key` in a --kube-*-arg / --kubelet-arg list (last one wins)."""
        found = None
        for entry in self.items(flag):
            name, _, value = entry.lstrip("-").partition("=")
            if name == key:
                found = value
        return found


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "t", "true"):
        return True
    if text.lower() in ("0", "f", "false"):
        return False
    raise UsageError(f"invalid boolean value {text!r}")


def parse_cli(command: str, argv: list[str]) -> dict[str, object]:
    table = flags_for(command)
    found: dict[str, object] = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg in ("-", "--"):
            raise UsageError(f"unexpected argument {arg!r}")
        name, eq, inline = arg.lstrip("-").partition("=")
        spec = table.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if spec.kind == "bool":
            found[spec.name] = _parse_bool(inline) if eq else True
            continue
        if eq:
            value = inline
        elif args:
            value = args.pop(0)
        else:
            raise UsageError(f"flag needs an argument: -{name}")
        if spec.kind == "list":
            entries = found.setdefault(spec.name, [])
            assert isinstance(entries, list)  # only list flags are stored under their name here
            entries.append(value)
        else:
            found[spec.name] = value
    return found


def _config_files(path: str) -> list[str]:
    files = [path] if os.path.exists(path) else []
    files += sorted(glob.glob(os.path.join(path + ".d", "*.yaml")))
    return files


def parse_config_files(command: str, path: str, explicit: bool) -> dict[str, object]:
    if explicit and not os.path.exists(path):
        raise UsageError(f"open {path}: no such file or directory")
    table = flags_for(command)
    merged: dict[str, object] = {}
    for file_path in _config_files(path):
        with open(file_path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        if not isinstance(data, dict):
            raise UsageError(f"failed to parse {file_path}: not a map")
        for raw_key, value in data.items():
            append = str(raw_key).endswith("+")
            key = str(raw_key).rstrip("+")
            spec = table.get(key)
            if spec is None:
                continue  # K3s ignores config keys of the other command (agent vs server)
            if spec.kind == "list":
                items = value if isinstance(value, list) else [value]
                items = [str(v) for v in items]
                if append:
                    merged[spec.name] = [*merged.get(spec.name, []), *items]  # type: ignore[misc]
                else:
                    merged[spec.name] = items
            elif spec.kind == "bool":
                merged[spec.name] = value if isinstance(value, bool) else _parse_bool(str(value))
            else:
                merged[spec.name] = str(value)
    return merged


def load(command: str, argv: list[str], environ: dict[str, str] | None = None) -> Settings:
    environ = dict(os.environ if environ is None else environ)
    table = flags_for(command)
    cli = parse_cli(command, argv)
    config_path = str(cli.get("config") or environ.get("K3S_CONFIG_FILE") or DEFAULT_CONFIG)
    explicit = "config" in cli or "K3S_CONFIG_FILE" in environ
    from_file = parse_config_files(command, config_path, explicit)
    values: dict[str, object] = {}
    for spec in {id(s): s for s in table.values()}.values():
        if spec.name in cli:
            values[spec.name] = cli[spec.name]
        elif spec.name in from_file:
            values[spec.name] = from_file[spec.name]
        elif spec.env and spec.env in environ:
            raw = environ[spec.env]
            if spec.kind == "bool":
                values[spec.name] = _parse_bool(raw)
            elif spec.kind == "list":
                values[spec.name] = [raw]
            else:
                values[spec.name] = raw
        else:
            values[spec.name] = spec.default if spec.kind != "list" else []
    for name in ("disable", "tls-san", "node-ip"):
        if name in values:
            given = values[name]
            # A config file may give one string where the CLI repeats the flag.
            entries = given if isinstance(given, list) else [given]
            values[name] = [part for entry in entries for part in str(entry).split(",") if part]
    values["config"] = config_path
    return Settings(command, values)
