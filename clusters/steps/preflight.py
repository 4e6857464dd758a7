"""Preflight, before money is spent: the cloud side (`preflight.cloud`) and the hosts over SSH
(`preflight.hosts`).

The cloud side: credentials, region, zone, VPC, vSwitch and the hosts' ECS
(after pinning the K3s release, clusters.adapters.k3s_release).

Each check that passes is remembered in the step's memo, so a throttled API resumes the
preflight where it stopped instead of starting over (and exhausting the retry budget).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from clusters.adapters import cloud, k3s_release, nodes
from clusters.adapters.aliyun import AliyunCloud
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.instance_order import listed_node_ids
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Outcome
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import DatastoreKind, Node, NodeRole, RunKind


def hosts_to_check(ctx: StepContext) -> list[Node]:
    """Every member, or only the new hosts when a run adds nodes (args node_ids, or the
    slots of the instances it bought)."""
    members = list(ctx.cluster.nodes.present())
    new = listed_node_ids(ctx.cluster, ctx.args)
    if new:
        members = [node for node in members if node.pk in new]
    return members


def _credentials_and_region(ctx: StepContext, api: AliyunCloud) -> None:
    cluster = ctx.cluster
    regions = {region.region_id for region in api.describe_regions()}
    # A denied call fails here with the RAM action it needed (errors.py), its code and
    # RequestId; the credentials line says which identity was refused.
    ctx.say(f"{api.client.credentials.description} works ({len(regions)} regions)")
    if cluster.region not in regions:
        raise PermanentError(f"Region {cluster.region} is not available to this account.")


def _zone(ctx: StepContext, api: AliyunCloud) -> None:
    if ctx.cluster.zone not in {zone.zone_id for zone in api.describe_zones()}:
        raise PermanentError(f"Zone {ctx.cluster.zone} is not in region {ctx.cluster.region}.")


def _vpc(ctx: StepContext, api: AliyunCloud) -> None:
    cluster = ctx.cluster
    vpcs = {vpc.vpc_id: vpc for vpc in api.describe_vpcs()}
    if cluster.vpc_id not in vpcs:
        raise PermanentError(f"VPC {cluster.vpc_id} does not exist in {cluster.region}.")
    ctx.say(f"VPC {cluster.vpc_id} ({vpcs[cluster.vpc_id].cidr})")


def _vswitch(ctx: StepContext, api: AliyunCloud) -> None:
    cluster = ctx.cluster
    vswitch = {vsw.vswitch_id: vsw for vsw in api.describe_vswitches(cluster.vpc_id)}.get(
        cluster.vswitch_id)
    if vswitch is None:
        raise PermanentError(f"vSwitch {cluster.vswitch_id} is not in VPC {cluster.vpc_id}.")
    if vswitch.zone_id != cluster.zone:
        raise PermanentError(f"vSwitch {cluster.vswitch_id} is in zone {vswitch.zone_id}, "
                             f"not {cluster.zone}.")
    ctx.say(f"vSwitch {cluster.vswitch_id} ({vswitch.cidr}) in {cluster.zone}")


def _instances(ctx: StepContext, api: AliyunCloud) -> None:
    """Every host must be an ECS instance of the cluster's VPC (the SLB needs its id)."""
    cluster = ctx.cluster
    members = hosts_to_check(ctx)
    by_ip = {ip: instance
             for instance in api.describe_instances_by_private_ips([n.private_ip for n in members])
             for ip in instance.private_ips}
    problems = []
    for node in members:
        instance = by_ip.get(node.private_ip)
        if instance is None:
            problems.append(f"{node.private_ip} is not the private IP of any ECS instance in "
                            f"{cluster.region}")
        elif instance.vpc_id != cluster.vpc_id:
            problems.append(f"{node.private_ip} ({instance.instance_id}) is in VPC "
                            f"{instance.vpc_id}, not {cluster.vpc_id}; the SLB cannot reach it")
        else:
            Node.objects.filter(pk=node.pk).update(ecs_instance_id=instance.instance_id)
            ctx.say(f"{node.private_ip} is ECS instance {instance.instance_id} "
                    f"({instance.status})")
    if problems:
        raise PermanentError("; ".join(problems) + ".")
    ctx.memo["instances"] = {ip: inst.instance_id for ip, inst in by_ip.items()}


def _k3s_release(ctx: StepContext, api: AliyunCloud) -> None:
    """Pin the K3s release first: a channel that cannot be resolved fails before anything is
    checked or bought, and every later step installs exactly the pinned release."""
    k3s_release.pin_release(ctx.cluster, ctx.say)


def _rds_class(ctx: StepContext, api: AliyunCloud) -> None:
    """The RDS class is still sold in the zone, with this storage (DescribeAvailableClasses).

    The wizard offered what the zone sold then; a class can stop selling before Create is
    pressed (or before a retry). Checked only while nothing has been bought yet.
    """
    cluster = ctx.cluster
    if cluster.datastore_kind != DatastoreKind.RDS or ctx.run.kind != RunKind.CREATE:
        return
    if cluster.resources.filter(kind="rds_instance").exclude(provider_id="").exists():
        return
    engine = engine_for(cluster).label
    offers = api.describe_rds_classes(cluster.zone, cluster.rds_engine_version, engine=engine)
    offer = next((o for o in offers if o.instance_class == cluster.rds_instance_class), None)
    if offer is None:
        sold = ", ".join(o.instance_class for o in offers) or "none"
        raise PermanentError(
            f"RDS does not sell {cluster.rds_instance_class} for {engine} "
            f"{cluster.rds_engine_version} in zone {cluster.zone} (High-availability, ESSD); "
            f"it sells: {sold}. Create the cluster again with one of those.")
    if offer.storage_problem(cluster.rds_storage_gb):
        raise PermanentError(
            f"RDS {offer.instance_class} takes {offer.storage_min} to {offer.storage_max} GB "
            f"in steps of {offer.storage_step} GB; {cluster.rds_storage_gb} GB cannot be bought.")
    ctx.say(f"RDS sells {offer.instance_class} ({engine} {cluster.rds_engine_version}, "
            f"{cluster.rds_storage_gb} GB) in {cluster.zone}")


CHECKS: list[tuple[str, Callable[[StepContext, AliyunCloud], None]]] = [
    ("k3s_release", _k3s_release),
    ("credentials", _credentials_and_region),
    ("zone", _zone),
    ("vpc", _vpc),
    ("vswitch", _vswitch),
    ("instances", _instances),
    ("rds_class", _rds_class),
]


@step_handler("preflight.cloud")
def check_cloud(ctx: StepContext) -> Outcome:
    """Cheap Describe calls only: nothing is bought, every mismatch is named."""
    api = cloud.cloud_for(ctx.cluster)
    passed = ctx.memo.setdefault("passed", [])
    for name, check in CHECKS:
        if name not in passed:
            check(ctx, api)
            passed.append(name)
    return Done({"instances": ctx.memo.get("instances", {})})


# --- the hosts: everything that can be checked over SSH before money is spent -------------

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
echo "ports_etcd=$( (ss -Hltn \
    '( sport = :2379 or sport = :2380 or sport = :2381 or sport = :2382 )' \
    2>/dev/null || true) | wc -l)"
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
    # Embedded etcd listens on 2379 (clients), 2380 (peers, between servers: docs.k3s.io
    # installation/requirements, inbound rules), 127.0.0.1:2381 (metrics) and
    # 127.0.0.1:2382 (its HTTP/JSON client listener: pkg/etcd ListenClientHTTPURLs).
    if host.node.role == NodeRole.SERVER and host.node.cluster.datastore_kind == \
            DatastoreKind.ETCD and facts.get("ports_etcd", "0").strip() not in ("", "0"):
        found.append(f"{ip}: a port embedded etcd needs (2379-2382) is already in "
                     "use (is etcd or another K3s already running there?)")
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
    members = list(ctx.cluster.nodes.present().order_by("pk"))
    names: dict[str, str] = {}
    new = listed_node_ids(ctx.cluster, ctx.args)
    if new:  # adding nodes: probe the new hosts, keep names unique
        names = {node.name: node.private_ip for node in members
                 if node.pk not in new and node.name}
        members = [node for node in members if node.pk in new]
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
