"""Clusters saved as the wizard would, pointing at an offline world (imported by e2e tests)."""

from __future__ import annotations

from pathlib import Path

from clusters.models import CloudAccount, Cluster, DatastoreKind, InstallSource, Node, NodeRole
from sandbox.world import World
from tests.support.factories import make_user

K3S_VERSION = "v1.32.5+k3s1"
FAST_ENGINE = {
    "PANEL_RETRY_BASE_SECONDS": "0.3",
    "PANEL_RETRY_MAX_SECONDS": "2",
    "PANEL_SWEEP_INTERVAL_SECONDS": "2",
    "PANEL_STEP_LEASE_SECONDS": "20",
    "PANEL_CLOUD_POLL_SECONDS": "0.5",
    "PANEL_HOST_POLL_SECONDS": "0.5",
    # A server out of the SLB gets 0.5 s for its open connections (3 s by default, for a real
    # SLB's nodes to learn of the change; the emulator's proxy applies it to the next
    # connection at once), and the tests' clients hold none longer than a request.
    "PANEL_SLB_DRAIN_SECONDS": "0.5",
}


# A K3s config drop-in (K3s merges /etc/rancher/k3s/config.yaml.d/*.yaml after config.yaml):
# nodes report every second and a node is NotReady 5 s after its last report, not 40 s.
QUICK_NODE_MONITOR = (
    "kubelet-arg+:\n  - node-status-update-frequency=1s\n"
    "kube-controller-manager-arg+:\n  - node-monitor-grace-period=5s\n"
)


def quick_node_monitor(world: World, ips: list[str]) -> None:
    """Before create: K3s on these hosts notices a stopped node in seconds. For a test that
    waits for NotReady; preflight looks at port 6443, not at /etc/rancher, so it is allowed."""
    for ip in ips:
        world.lab.run(world.lab.host(ip),
                      "mkdir -p /etc/rancher/k3s/config.yaml.d && cat > "
                      "/etc/rancher/k3s/config.yaml.d/90-quick-node-monitor.yaml",
                      input=QUICK_NODE_MONITOR, check=True)


# The e2e worlds' cloud runs this much faster than Alibaba's: an RDS instance is created in
# 0.9 s instead of 300 s (about as long as its MariaDB takes to start), a parameter applied in
# 0.2 s instead of 60 s. Every step still sees the cloud answer "not yet" and waits for it.
WORLD_TIME_SCALE = 0.003
# How long the K3s stand-in's /readyz fails after :6443 listens (its default is 2 s, like
# kube-apiserver's post-start hooks) on the e2e worlds' hosts: long enough that the panel's
# first look (every PANEL_HOST_POLL_SECONDS) still finds it not ready, short enough not to cost
# each server start 2 s. A test about that window asks for the real one (world_k3s_warmup).
TEST_K3S_WARMUP_SECONDS = 0.5


def k3s_warmup(world: World, seconds: float) -> None:
    """Every unit on the world's hosts starts with K3S_STANDIN_WARMUP_SECONDS=seconds: the
    service manager's DefaultEnvironment= (systemd-system.conf(5)), which no file of the
    panel's or of K3s's install touches."""
    text = f"[Manager]\nDefaultEnvironment=K3S_STANDIN_WARMUP_SECONDS={seconds}\n"
    for host in world.lab.hosts:
        world.lab.run(host, "mkdir -p /etc/systemd/system.conf.d && cat > "
                      "/etc/systemd/system.conf.d/90-tests-k3s-warmup.conf", input=text,
                      check=True)


def world_env(world: World) -> dict[str, str]:
    """Environment a worker needs to provision against the world."""
    return {"ALIYUN_ENDPOINT_OVERRIDE": world.endpoint, **FAST_ENGINE}


def make_world_cluster(world: World, *, servers: int = 2, agents: int = 1, owner=None,
                       login: str = "key", first_host: int = 0, **fields) -> Cluster:
    """A cluster as the wizard would save it, pointing at the world's hosts and cloud."""
    owner = owner or make_user()
    account = CloudAccount.objects.create(
        owner=owner, name=f"sandbox-{owner.pk}-{Cluster.objects.count()}",
        access_key_id=world.access_key_id, access_key_secret=world.access_key_secret,
        default_region=world.region,
    )
    values = {
        "name": f"e2e-{Cluster.objects.count() + 1}", "region": world.region, "zone": world.zone,
        "vpc_id": world.vpc_id, "vswitch_id": world.vswitch_id, "k3s_version": K3S_VERSION,
        "install_source": InstallSource.CUSTOM, "install_base_url": world.install_base_url,
        "datastore_kind": DatastoreKind.RDS, "rds_engine_version": "5.7",
        **fields,
    }
    cluster = Cluster.objects.create(owner=owner, cloud_account=account, **values)
    hosts = world.lab.hosts
    for index, host in enumerate(hosts[first_host: first_host + servers + agents]):
        credentials = (
            {"ssh_user": "root", "ssh_private_key": Path(host.private_key_path).read_text()}
            if login == "key" else {"ssh_user": "root", "ssh_password": host.root_password}
        )
        Node.objects.create(
            cluster=cluster, role=NodeRole.SERVER if index < servers else NodeRole.AGENT,
            private_ip=host.ip, ssh_port=host.ssh_port, **credentials,
        )
    return cluster
