"""The whole offline world in one place: lab hosts, the Aliyun emulator, the K3s artifacts.

Why: the panel's end-to-end tests, its benchmarks and `make sandbox` all need the same
wiring: the emulator serving RDS and SLB addresses inside the lab's cloud namespace, a VPC
and vSwitch that match the lab's subnet, every lab host registered as an ECS instance, the
lab's state directory handed to the emulator (`--lab-state-dir`) so that RunInstances
starts real lab hosts (sandbox/lab/machines.py), and the artifact server where hosts can
download K3s. Nothing here reaches beyond loopback and
the namespaces the lab created.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.aliyun.nlb import resolve
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from sandbox.lab.lab import Lab
from sandbox.lab.testing import running_lab

REGION = "cn-hangzhou"
ZONES = ("cn-hangzhou-h", "cn-hangzhou-i")
OTHER_VPC_CIDR = "172.31.0.0/16"
DNS_PORT = 53


def _seed_for(lab: Lab) -> dict[str, Any]:
    """A VPC around the lab's /24 with two vSwitches, a second empty VPC, and a public pool.

    The /24 is the only range lab hosts reach (on-link, no routes), and an NLB needs a
    vSwitch in each of the region's two zones, so the /24 is split: the lower /25 (zone h,
    where the hosts are numbered from the bottom) and the upper /25 (zone i, which holds the
    public pool .160/27 too; allocation keeps addresses apart).
    """
    subnet = ipaddress.ip_network(lab.subnet)
    vpc_cidr = ipaddress.ip_network(f"{subnet.network_address}/16", strict=False)
    lower, upper = subnet.subnets(new_prefix=subnet.prefixlen + 1)
    public = list(subnet.subnets(new_prefix=27))[5]  # .160/27: SLB "internet" addresses
    return {
        "regions": [{"region_id": REGION, "local_name": "China (Hangzhou)",
                     "zones": list(ZONES)}],
        "vpcs": [
            {"vpc_id": "vpc-lab" + secrets.token_hex(7), "region_id": REGION,
             "cidr": str(vpc_cidr), "name": "lab-vpc",
             "vswitches": [{"vswitch_id": "vsw-lab" + secrets.token_hex(7), "zone_id": ZONES[0],
                            "cidr": str(lower), "name": "lab-vsw"},
                           {"vswitch_id": "vsw-labi" + secrets.token_hex(7),
                            "zone_id": ZONES[1], "cidr": str(upper), "name": "lab-vsw-i"}]},
            {"vpc_id": "vpc-other" + secrets.token_hex(5), "region_id": REGION,
             "cidr": OTHER_VPC_CIDR, "name": "other-vpc",
             "vswitches": [{"vswitch_id": "vsw-other" + secrets.token_hex(5),
                            "zone_id": ZONES[1], "cidr": "172.31.1.0/24",
                            "name": "other-vsw"}]},
        ],
        "public_cidr": str(public),
    }


@dataclass
class World:
    """A running offline world and what the panel needs to know about it."""

    lab: Lab
    emulator: Emulator
    artifacts: ArtifactServer
    instance_ids: dict[str, str] = field(default_factory=dict)

    @property
    def region(self) -> str:
        return REGION

    @property
    def zone(self) -> str:
        return self.emulator.vswitch["zone_id"]

    @property
    def vpc_id(self) -> str:
        return self.emulator.vpc["vpc_id"]

    @property
    def vswitch_id(self) -> str:
        return self.emulator.vswitch["vswitch_id"]

    @property
    def other_vpc(self) -> dict[str, Any]:
        return self.emulator.seed_document["vpcs"][1]

    @property
    def vswitches(self) -> list[dict[str, Any]]:
        """The lab VPC's vSwitches, one per zone (what an NLB's ZoneMappings name)."""
        return list(self.emulator.vpc["vswitches"])

    @property
    def reachable_vpc_cidr(self) -> str:
        """A block for a VPC the panel creates (CreateVpc) whose hosts the panel reaches by
        their private addresses: the /16 around the lab's /24 (VPCs of a region may
        overlap). Any other block works too, but then only public IPs are reachable from
        the root namespace, and a private address there must never be dialled from it
        (nothing routes it into the lab: it would leave for the machine's real network)."""
        return str(ipaddress.ip_network(f"{self.lab.subnet.split('/')[0]}/16", strict=False))

    @property
    def reachable_vswitch_cidr(self) -> str:
        """The lab's /24: a vSwitch created in `reachable_vpc_cidr` with it is on the lab
        bridge (on-link for the panel, the hosts and the cloud namespace)."""
        return self.lab.subnet

    @property
    def dns_server(self) -> tuple[str, int]:
        """The cloud's DNS stand-in (NLB names), on the cloud address, port 53: what the lab
        hosts' /etc/resolv.conf names; sandbox.aliyun.nlb.resolve uses it for the rest."""
        return self.lab.cloud_ip, DNS_PORT

    def nlb_names(self) -> list[str]:
        """Every NLB DNS name the stand-in answers now."""
        return sorted(self.emulator.control.nlb_dns()["records"])

    @contextlib.contextmanager
    def resolving(self, argv: list[str]) -> Iterator[list[str]]:
        """`argv` (kubectl, curl...) as a command line that resolves every NLB name of this
        world through its DNS stand-in (sandbox.aliyun.nlb.resolve.resolved_command)."""
        with resolve.resolved_command(argv, self.dns_server, self.nlb_names()) as command:
            yield command

    @property
    def access_key_id(self) -> str:
        return self.emulator.access_key_id

    @property
    def access_key_secret(self) -> str:
        return self.emulator.access_key_secret

    @property
    def endpoint(self) -> str:
        """What ALIYUN_ENDPOINT_OVERRIDE must be for the panel to use this world."""
        return self.emulator.endpoint

    @property
    def install_base_url(self) -> str:
        """The custom install source base URL that serves K3s to the lab hosts."""
        return self.artifacts.base_url

    def restart_cloud(self) -> None:
        """The cloud API goes away and comes back: the emulator restarts on its state dir and
        its port (so the panel's ALIYUN_ENDPOINT_OVERRIDE still holds); RDS and SLB addresses
        stay in the cloud namespace and their servers and proxies come back."""
        self.emulator.restart()


def register_hosts(world: World) -> None:
    for host in world.lab.hosts:
        if host.ip not in world.instance_ids:
            world.instance_ids[host.ip] = world.emulator.register_instance(host.hostname, host.ip)


@contextlib.contextmanager
def running_world(
    hosts: int = 3, *, time_scale: float = 0.02, state_dir: str | Path | None = None,
    register: bool = True,
) -> Iterator[World]:
    """Start lab hosts, then the emulator and artifact server inside the lab's cloud namespace."""
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(running_lab(hosts))
        directory = Path(state_dir or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="world-")))
        emulator = stack.enter_context(Emulator(
            directory / "aliyun", time_scale=time_scale, netns=lab.cloud_netns,
            netns_dev=lab.cloud_dev, seed=_seed_for(lab), region_id=REGION,
            lab_state_dir=lab.state_dir,
        ))
        artifacts = stack.enter_context(ArtifactServer(lab.cloud_ip, 0, netns=lab.cloud_netns))
        emulator.control.request("POST", "nlb/dns", {"address": lab.cloud_ip, "port": DNS_PORT})
        world = World(lab=lab, emulator=emulator, artifacts=artifacts)
        if register:
            register_hosts(world)
        yield world
