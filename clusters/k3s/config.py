"""`/etc/rancher/k3s/config.yaml` for a server of an HA cluster (external datastore or
K3s's embedded etcd).

Why: with an external datastore K3s does NOT reject servers whose critical flags differ
(`--disable=servicelb`, CIDRs, `--secrets-encryption`…): the cluster just misbehaves. So every
server's file is rendered from one `ClusterSettings` and only node identity varies per node.
Secrets (tokens, DSN password) live in this 0600 file, never on a command line or in the unit.

`secrets-encryption: true` and `datastore-cafile` are such critical values: a server without
the first cannot read Secrets the others wrote, and one without the second talks to the
datastore in clear text. Both are fixed when a cluster is created and never changed by a
config rewrite (turning encryption on later is `k3s secrets-encrypt`, on every server).

Embedded etcd (docs.k3s.io/datastore/ha-embedded) has no `datastore-endpoint`: the founding
server starts with `cluster-init: true`, every other one with `server:` (the API load
balancer) and the token; the snapshot schedule (`etcd-snapshot-schedule-cron`,
`etcd-snapshot-retention`) is the same on every server. K3s refuses a joining etcd server
whose critical flags differ from the cluster's, so those still come from one ClusterSettings.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import yaml

from clusters.core.errors import PermanentError

CONFIG_PATH = "/etc/rancher/k3s/config.yaml"
# The datastore's CA (the ApsaraDB CA chain for RDS), uploaded 0600 before K3s is installed
# and named by `datastore-cafile`. With it kine dials MySQL over TLS and verifies the server
# certificate and its name against the DSN host (kine pkg/drivers/mysql prepareConfig).
DATASTORE_CA_PATH = "/etc/rancher/k3s/datastore-ca.pem"
KNOWN_COMPONENTS = frozenset({
    "traefik", "servicelb", "coredns", "local-storage", "metrics-server", "runtimes",
})


@dataclass(frozen=True)
class ClusterSettings:
    """What every server of one cluster shares (identical files = identical critical flags)."""

    token: str = field(repr=False)
    datastore_endpoint: str = field(repr=False)
    tls_sans: tuple[str, ...]
    # The agents' own join token (user `node`), on every server; "" for a cluster created
    # before agents had one (clusters.k3s.tokens). Never added to a running cluster later.
    agent_token: str = field(default="", repr=False)
    disable: tuple[str, ...] = ()
    node_taints: tuple[str, ...] = ()
    write_kubeconfig_mode: str = "0600"
    cluster_cidr: str | None = None
    service_cidr: str | None = None
    cluster_dns: str | None = None
    cluster_domain: str | None = None
    flannel_backend: str | None = None
    secrets_encryption: bool = False
    datastore_cafile: str | None = None
    system_default_registry: str | None = None
    # Embedded etcd only: the founding server's `cluster-init`, or the URL the others join.
    cluster_init: bool = False
    server_url: str | None = None
    etcd_snapshot_cron: str | None = None
    etcd_snapshot_retention: int | None = None

    @property
    def embedded_etcd(self) -> bool:
        return self.cluster_init or bool(self.server_url)

    def __post_init__(self) -> None:
        if not self.token:
            raise PermanentError("A K3s token is required: every server must share one.")
        if self.cluster_init and self.server_url:
            raise PermanentError("A server either founds the etcd cluster (cluster-init) or "
                                 "joins one (server), not both.")
        if self.embedded_etcd == bool(self.datastore_endpoint):
            raise PermanentError("A server needs exactly one datastore: a datastore-endpoint, "
                                 "or embedded etcd (cluster-init or server).")
        if not self.tls_sans:
            raise PermanentError("The load balancer address must be in tls-san before install.")
        unknown = sorted(set(self.disable) - KNOWN_COMPONENTS)
        if unknown:
            raise PermanentError(
                f"K3s cannot disable {', '.join(unknown)}; "
                f"known components: {', '.join(sorted(KNOWN_COMPONENTS))}.")
        for taint in self.node_taints:
            if "=" not in taint and ":" not in taint:
                raise PermanentError(f"{taint!r} is not a taint (key=value:Effect).")
        if self.write_kubeconfig_mode not in ("0600", "0640", "0644", "600", "640", "644"):
            raise PermanentError(f"Unsupported kubeconfig mode {self.write_kubeconfig_mode!r}.")


@dataclass(frozen=True)
class NodeIdentity:
    """What differs per server."""

    node_ip: str | None = None
    node_name: str | None = None


def _ordered_unique(values: tuple[str, ...]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v.strip()))


def server_config(cluster: ClusterSettings, node: NodeIdentity | None = None) -> dict[str, Any]:
    """The config as a mapping (keys are K3s flag names without `--`)."""
    node = node or NodeIdentity()
    config: dict[str, Any] = {
        "token": cluster.token,
        **({"agent-token": cluster.agent_token} if cluster.agent_token else {}),
        **({"datastore-endpoint": cluster.datastore_endpoint}
           if cluster.datastore_endpoint else {}),
        **({"cluster-init": True} if cluster.cluster_init else {}),
        **({"server": cluster.server_url} if cluster.server_url else {}),
        "tls-san": _ordered_unique(cluster.tls_sans),
        "write-kubeconfig-mode": cluster.write_kubeconfig_mode,
    }
    optional = {
        "datastore-cafile": cluster.datastore_cafile,
        "cluster-cidr": cluster.cluster_cidr,
        "service-cidr": cluster.service_cidr,
        "cluster-dns": cluster.cluster_dns,
        "cluster-domain": cluster.cluster_domain,
        "flannel-backend": cluster.flannel_backend,
        "system-default-registry": cluster.system_default_registry,
        "node-ip": node.node_ip,
        "node-name": node.node_name,
    }
    config.update({key: value for key, value in optional.items() if value})
    if cluster.disable:
        config["disable"] = _ordered_unique(cluster.disable)
    if cluster.node_taints:
        config["node-taint"] = _ordered_unique(cluster.node_taints)
    if cluster.secrets_encryption:
        config["secrets-encryption"] = True
    if cluster.embedded_etcd and cluster.etcd_snapshot_cron:
        config["etcd-snapshot-schedule-cron"] = cluster.etcd_snapshot_cron
    if cluster.embedded_etcd and cluster.etcd_snapshot_retention is not None:
        config["etcd-snapshot-retention"] = cluster.etcd_snapshot_retention
    if node.node_ip:
        ipaddress.ip_address(node.node_ip)  # a typo here silently breaks flannel
    return config


def render_server_config(cluster: ClusterSettings, node: NodeIdentity | None = None) -> str:
    """The YAML text to upload (0600) to CONFIG_PATH; safe_dump quotes every odd character."""
    header = "# Written by the K3s HA panel. Identical on every server except node-*.\n"
    body = yaml.safe_dump(server_config(cluster, node), sort_keys=False,
                          default_flow_style=False, allow_unicode=False, width=4096)
    return header + body


def critical_values(config_text: str) -> dict[str, Any]:
    """The values of a rendered config that must match across servers (everything but node-*
    and how an etcd server finds its cluster: `cluster-init` on the founder, `server` on the
    others)."""
    loaded = yaml.safe_load(config_text) or {}
    return {key: value for key, value in loaded.items()
            if (not key.startswith("node-") or key == "node-taint")
            and key not in ("cluster-init", "server")}
