"""Node objects and kubelet leases in the shared datastore, and how kubectl shows them.

Why: `kubectl get nodes` through any server (or the SLB) must list every node of the
datastore, Ready only while its kubelet keeps renewing its lease within the controller
manager's node-monitor-grace-period, exactly the signal the panel's health view relies on.
"""

from __future__ import annotations

import datetime
import json
import platform
import uuid

from sandbox.k3s.kine import Kine

NODE_PREFIX = "/registry/minions/"
LEASE_PREFIX = "/registry/leases/kube-node-lease/"
NODE_PASSWORD_PREFIX = "/registry/secrets/kube-system/"  # noqa: S105 - a key prefix
CONTAINER_RUNTIME = "containerd://1.7.27-k3s1"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime.datetime:
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def _os_image() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def new_node(  # noqa: PLR0917 - mirrors the kubelet registration inputs
        name: str, internal_ip: str, version: str, server: bool,
             external_ip: str = "", labels: list[str] | None = None,
             taints: list[str] | None = None) -> dict:
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    node_labels = {
        "beta.kubernetes.io/arch": arch, "beta.kubernetes.io/instance-type": "k3s",
        "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
    }
    if server:
        node_labels["node-role.kubernetes.io/control-plane"] = "true"
        node_labels["node-role.kubernetes.io/master"] = "true"
    for entry in labels or []:
        key, _, value = entry.partition("=")
        node_labels[key] = value
    addresses = [{"type": "InternalIP", "address": internal_ip}]
    if external_ip:
        addresses.append({"type": "ExternalIP", "address": external_ip})
    addresses.append({"type": "Hostname", "address": name})
    spec: dict = {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"],
                  "providerID": f"k3s://{name}"}
    if taints:
        spec["taints"] = [_taint(t) for t in taints]
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {
            "name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
            "labels": node_labels,
            "annotations": {"k3s.io/internal-ip": internal_ip, "k3s.io/hostname": name,
                            "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": spec,
        "status": {
            "addresses": addresses,
            "nodeInfo": {
                "architecture": arch, "bootID": str(uuid.uuid4()),
                "containerRuntimeVersion": CONTAINER_RUNTIME,
                "kernelVersion": platform.release(), "kubeProxyVersion": version,
                "kubeletVersion": version, "machineID": uuid.uuid4().hex,
                "operatingSystem": "linux", "osImage": _os_image(),
                "systemUUID": str(uuid.uuid4()),
            },
        },
    }


def _taint(text: str) -> dict:
    key_value, _, effect = text.partition(":")
    key, _, value = key_value.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


def new_lease(name: str) -> dict:
    return {
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": name, "namespace": "kube-node-lease",
                     "creationTimestamp": now_rfc3339()},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": datetime.datetime.now(datetime.UTC).strftime(
                     "%Y-%m-%dT%H:%M:%S.%fZ")},
    }


def register(kine: Kine, node: dict) -> None:
    """Create the Node if absent, else refresh its status/addresses (a kubelet restart)."""
    name = node["metadata"]["name"]
    current = kine.get(NODE_PREFIX + name)
    if current is not None:
        existing = json.loads(current.value)
        existing["status"] = node["status"]
        existing["metadata"]["labels"].update(node["metadata"]["labels"])
        existing["metadata"].setdefault("annotations", {}).update(
            node["metadata"].get("annotations", {}))
        node = existing
    kine.put(NODE_PREFIX + name, json.dumps(node).encode())
    heartbeat(kine, name)


def heartbeat(kine: Kine, name: str) -> None:
    kine.put(LEASE_PREFIX + name, json.dumps(new_lease(name)).encode())


def _renew_time(lease: dict) -> datetime.datetime:
    text = lease["spec"]["renewTime"]
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.UTC)


def with_status(node: dict, lease: dict | None, grace_seconds: float, revision: int) -> dict:
    """The Node as the API shows it: Ready condition judged from the lease age."""
    node = json.loads(json.dumps(node))
    node["metadata"]["resourceVersion"] = str(revision)
    now = datetime.datetime.now(datetime.UTC)
    renewed = _renew_time(lease) if lease else None
    fresh = renewed is not None and (now - renewed).total_seconds() <= grace_seconds
    stamp = (renewed or now).strftime("%Y-%m-%dT%H:%M:%SZ")
    if fresh:
        ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                 "message": "kubelet is posting ready status"}
    else:
        ready = {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                 "message": "Kubelet stopped posting node status."}
    ready.update({"lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    node["status"]["conditions"] = [ready]
    return node


def load_nodes(kine: Kine, grace_seconds: float) -> list[dict]:
    leases = {row.name[len(LEASE_PREFIX):]: json.loads(row.value)
              for row in kine.list(LEASE_PREFIX)}
    return [with_status(json.loads(row.value), leases.get(row.name[len(NODE_PREFIX):]),
                        grace_seconds, row.id)
            for row in kine.list(NODE_PREFIX)]


def load_node(kine: Kine, name: str, grace_seconds: float) -> dict | None:
    row = kine.get(NODE_PREFIX + name)
    if row is None:
        return None
    lease_row = kine.get(LEASE_PREFIX + name)
    lease = json.loads(lease_row.value) if lease_row else None
    return with_status(json.loads(row.value), lease, grace_seconds, row.id)


# -- server-side printing (what `kubectl get nodes [-o wide]` shows) ----------------------------

def human_duration(seconds: float) -> str:  # noqa: PLR0911 - transliterated from Go
    """k8s.io/apimachinery duration.HumanDuration."""
    sec = int(seconds)
    if sec < -1:
        return "<invalid>"
    if sec < 0:
        return "0s"
    if sec < 120:
        return f"{sec}s"
    minutes = sec // 60
    if minutes < 10:
        rest = sec % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = sec // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


NODE_COLUMNS = [
    ("Name", "string", "name", 0, "Name must be unique within a namespace."),
    ("Status", "string", "", 0, "The status of the node"),
    ("Roles", "string", "", 0, "The roles of the node"),
    ("Age", "string", "", 0, "CreationTimestamp is a timestamp representing the server time "
                             "when this object was created."),
    ("Version", "string", "", 0, "Kubelet Version reported by the node."),
    ("Internal-IP", "string", "", 1, "List of internal IPs."),
    ("External-IP", "string", "", 1, "List of external IPs."),
    ("OS-Image", "string", "", 1, "OS image reported by the node."),
    ("Kernel-Version", "string", "", 1, "Kernel version reported by the node."),
    ("Container-Runtime", "string", "", 1, "Container runtime reported by the node."),
]


def _cells(node: dict) -> list[str]:
    meta, status, spec = node["metadata"], node["status"], node["spec"]
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
    state = "Ready" if ready and ready["status"] == "True" else "NotReady"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(key.split("/", 1)[1] for key in meta.get("labels", {})
                   if key.startswith("node-role.kubernetes.io/"))
    created = parse_time(meta["creationTimestamp"])
    age = human_duration((datetime.datetime.now(datetime.UTC) - created).total_seconds())

    def addresses(kind: str) -> str:
        found = [a["address"] for a in status.get("addresses", []) if a["type"] == kind]
        return ",".join(found) or "<none>"

    info = status.get("nodeInfo", {})
    return [meta["name"], state, ",".join(roles) or "<none>", age, info.get("kubeletVersion", ""),
            addresses("InternalIP"), addresses("ExternalIP"), info.get("osImage", "<unknown>"),
            info.get("kernelVersion", "<unknown>"), info.get("containerRuntimeVersion", "")]


def table(nodes: list[dict], resource_version: str) -> dict:
    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": fmt, "description": desc, "priority": prio}
            for name, kind, fmt, prio, desc in NODE_COLUMNS
        ],
        "rows": [
            {"cells": _cells(node), "object": {
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": node["metadata"]}}
            for node in nodes
        ],
    }
