"""Preflight of the hosts: everything that can be checked over SSH before money is spent."""

from __future__ import annotations

import time
from dataclasses import dataclass

from clusters.adapters import nodes
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Outcome
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Node, NodeRole

SUPPORTED_OS = {"ubuntu", "debian", "centos", "rhel", "rocky", "almalinux", "anolis",
                "alinux", "ol", "fedora", "opensuse-leap", "sles", "kylin", "uos"}
SUPPORTED_ARCH = {"x86_64", "aarch64", "armv7l"}
MIN_MEMORY_MIB = 512
MIN_DISK_MIB = 2048
MAX_CLOCK_SKEW_SECONDS = 30.0

# One round trip gathers every fact; each line is key=value. Runs under sudo, which proves
# sudo works as well.
PROBE = r"""
. /etc/os-release 2>/dev/null; echo "os_id=${ID:-unknown}"; echo "os_name=${PRETTY_NAME:-?}"
echo "arch=$(uname -m)"
echo "hostname=$(hostname)"
echo "mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
mkdir -p /var/lib/rancher
echo "disk_kib=$(df -Pk /var/lib/rancher | awk 'NR==2 {print $4}')"
echo "port_6443=$( (ss -Hltn 'sport = :6443' 2>/dev/null || true) | wc -l)"
echo "curl=$(command -v curl || true)"
echo "systemd=$([ -d /run/systemd/system ] && echo yes || echo no)"
echo "uid=$(id -u)"
echo "epoch=$(date +%s.%N)"
"""


@dataclass(frozen=True)
class HostFacts:
    node: Node
    facts: dict[str, str]
    skew: float


def _probe(ctx: StepContext, node: Node) -> HostFacts:
    with nodes.session(ctx, node) as connection:
        before = time.time()
        result = nodes.run_logged(ctx, connection, PROBE, what="The preflight probe", timeout=60)
        after = time.time()
    facts = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    try:
        skew = float(facts.get("epoch", "0")) - (before + after) / 2
    except ValueError:
        skew = 0.0
    return HostFacts(node, facts, skew)


def problems_of(host: HostFacts) -> list[str]:
    """Everything wrong with one host, each a sentence saying what to do."""
    facts, ip = host.facts, host.node.private_ip
    found = []
    if facts.get("uid") != "0":
        found.append(f"{ip}: commands under sudo do not run as root")
    if facts.get("os_id") not in SUPPORTED_OS:
        found.append(f"{ip}: {facts.get('os_name', 'this OS')} is not an OS K3s supports")
    if facts.get("arch") not in SUPPORTED_ARCH:
        found.append(f"{ip}: CPU architecture {facts.get('arch')} is not supported by K3s")
    memory = int(facts.get("mem_kib") or 0) // 1024
    if memory < MIN_MEMORY_MIB:
        found.append(f"{ip}: only {memory} MiB of memory; K3s needs at least {MIN_MEMORY_MIB}")
    disk = int(facts.get("disk_kib") or 0) // 1024
    if disk < MIN_DISK_MIB:
        found.append(f"{ip}: only {disk} MiB free under /var/lib/rancher; free at least "
                     f"{MIN_DISK_MIB} MiB")
    if host.node.role == NodeRole.SERVER and facts.get("port_6443", "0").strip() not in ("", "0"):
        found.append(f"{ip}: port 6443 is already in use (is K3s or another API server "
                     "already running there?)")
    if not facts.get("curl"):
        found.append(f"{ip}: curl is missing; install it (apt-get/yum install curl)")
    if facts.get("systemd") != "yes":
        found.append(f"{ip}: systemd is not running; the K3s installer needs it")
    if abs(host.skew) > MAX_CLOCK_SKEW_SECONDS:
        found.append(f"{ip}: its clock is {host.skew:+.0f} s off; enable NTP (chrony) first, "
                     "certificates and leases depend on it")
    return found


@step_handler("preflight.hosts")
def check_hosts(ctx: StepContext) -> Outcome:
    """SSH, host key, sudo, OS, architecture, memory, disk, port 6443, curl, clock, names."""
    members = list(ctx.cluster.nodes.exclude(status="removed").order_by("pk"))
    names: dict[str, str] = {}
    if ctx.args.get("node_ids"):  # adding nodes: probe the new hosts, keep names unique
        names = {node.name: node.private_ip for node in members
                 if node.pk not in ctx.args["node_ids"] and node.name}
        members = [node for node in members if node.pk in ctx.args["node_ids"]]
    if not members:
        raise PermanentError("The cluster has no hosts.")
    hosts = nodes.for_each_node(members, lambda node: _probe(ctx, node))
    problems = [problem for host in hosts for problem in problems_of(host)]
    for host in hosts:
        name = host.facts.get("hostname", "")
        if name in names:
            problems.append(f"{host.node.private_ip} and {names[name]} share the host name "
                            f"{name!r}; K3s needs unique node names")
        names[name] = host.node.private_ip
    for host in hosts:
        ctx.say(f"{host.node.private_ip}: {host.facts.get('os_name')} {host.facts.get('arch')}, "
                f"{int(host.facts.get('mem_kib') or 0) // 1024} MiB, host name "
                f"{host.facts.get('hostname')}, clock {host.skew:+.1f} s")
        Node.objects.filter(pk=host.node.pk).update(name=host.facts.get("hostname", ""))
    if problems:
        raise PermanentError("Preflight found problems: " + "; ".join(problems) + ".")
    return Done({"hostnames": names})
