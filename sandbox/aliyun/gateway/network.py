"""The seeded network world (regions, zones, VPCs, vSwitches) and service address allocation.

Why: RDS and SLB addresses must come from the vSwitch the caller chose, exactly like the real
cloud, and must actually exist where the lab can reach them: inside the cloud network
namespace as /32 secondary addresses (netns mode) or on 127/8 (loopback mode, for the
emulator's own tests). The address book lives in state so a restart brings the same
addresses back.
"""

from __future__ import annotations

import ipaddress
import subprocess
from typing import Any

from sandbox.aliyun.gateway.state import State

# Allocation runs downwards from the top of the vSwitch, clear of the gateway, the cloud
# namespace's base address and lab hosts, which are numbered upwards from the bottom.
_RESERVED_AT_TOP = 3
DEFAULT_PUBLIC_CIDR = "127.31.0.0/24"


class AddressExhausted(Exception):
    """No free address is left in the vSwitch or the public pool."""


class AddressUnavailable(Exception):
    """A requested fixed address is outside the range or already taken."""


def region(state: State, region_id: str) -> dict[str, Any] | None:
    return state.bucket("regions").get(region_id)


def vpc(state: State, vpc_id: str) -> dict[str, Any] | None:
    return state.bucket("vpcs").get(vpc_id)


def vswitch(state: State, vswitch_id: str) -> dict[str, Any] | None:
    return state.bucket("vswitches").get(vswitch_id)


def zone_exists(state: State, region_id: str, zone_id: str) -> bool:
    found = region(state, region_id)
    if not found:
        return False
    return zone_id in found["zones"]


def apply_seed(state: State, seed: dict[str, Any], created_at: float) -> None:
    """Merge regions, VPCs and vSwitches from a control-API seed document."""
    regions = state.bucket("regions")
    for entry in seed.get("regions", []):
        regions[entry["region_id"]] = {
            "region_id": entry["region_id"],
            "local_name": entry.get("local_name", entry["region_id"]),
            "zones": list(entry.get("zones", [])),
            # Where NLB is sold (NLB's DescribeZones): every zone unless the seed says fewer.
            "nlb_zones": list(entry.get("nlb_zones", entry.get("zones", []))),
        }
    vpcs, vswitches = state.bucket("vpcs"), state.bucket("vswitches")
    for entry in seed.get("vpcs", []):
        ipaddress.ip_network(entry["cidr"])  # refuse a malformed seed early
        vpcs[entry["vpc_id"]] = {
            "vpc_id": entry["vpc_id"], "region_id": entry["region_id"], "cidr": entry["cidr"],
            "name": entry.get("name", entry["vpc_id"]), "created_at": created_at,
            "is_default": bool(entry.get("is_default", False)),
        }
        for vsw in entry.get("vswitches", []):
            ipaddress.ip_network(vsw["cidr"])
            vswitches[vsw["vswitch_id"]] = {
                "vswitch_id": vsw["vswitch_id"], "vpc_id": entry["vpc_id"],
                "region_id": entry["region_id"], "zone_id": vsw["zone_id"],
                "cidr": vsw["cidr"], "name": vsw.get("name", vsw["vswitch_id"]),
                "created_at": created_at, "is_default": bool(vsw.get("is_default", False)),
            }
    if "public_cidr" in seed:
        ipaddress.ip_network(seed["public_cidr"])
        state.bucket("config")["public_cidr"] = seed["public_cidr"]


def addresses_in_use(state: State) -> set[str]:
    used = set(state.bucket("addresses"))
    used.update(i["private_ip"] for i in state.table("ecs", "instances").values())
    return used


def _allocate_from(state: State, cidr: str, owner: str, pool: str) -> str:
    network = ipaddress.ip_network(cidr, strict=False)
    hosts = list(network.hosts())
    used = addresses_in_use(state)
    for candidate in reversed(hosts[: len(hosts) - _RESERVED_AT_TOP]):
        text = str(candidate)
        if text not in used:
            state.bucket("addresses")[text] = {"owner": owner, "pool": pool}
            return text
    raise AddressExhausted(cidr)


def allocate_private(state: State, vswitch_id: str, owner: str) -> str:
    """A free address of the vSwitch, recorded as owned by `owner`."""
    found = vswitch(state, vswitch_id)
    if found is None:
        raise KeyError(vswitch_id)
    return _allocate_from(state, found["cidr"], owner, vswitch_id)


def allocate_public(state: State, owner: str) -> str:
    cidr = state.bucket("config").get("public_cidr", DEFAULT_PUBLIC_CIDR)
    return _allocate_from(state, cidr, owner, "public")


def claim_private(state: State, vswitch_id: str, address: str, owner: str) -> str:
    """Reserve a caller-chosen fixed address inside the vSwitch."""
    found = vswitch(state, vswitch_id)
    if found is None:
        raise KeyError(vswitch_id)
    try:
        inside = ipaddress.ip_address(address) in ipaddress.ip_network(found["cidr"])
    except ValueError:
        inside = False
    if not inside or address in addresses_in_use(state):
        raise AddressUnavailable(address)
    state.bucket("addresses")[address] = {"owner": owner, "pool": vswitch_id}
    return address


def release(state: State, address: str) -> None:
    state.bucket("addresses").pop(address, None)


class AddressPlumbing:
    """Makes allocated addresses exist: /32s on a device in the cloud namespace, or nothing
    in loopback mode (Linux answers every 127/8 address on lo)."""

    def __init__(self, netns: str | None, device: str | None) -> None:
        if bool(netns) != bool(device):
            raise ValueError("--netns and --netns-dev go together")
        self.netns = netns
        self.device = device

    def bring_up(self, address: str) -> None:
        if not self.netns:
            return
        # `replace` ("add or change protocol addresses", ip-address(8), iproute2) succeeds
        # whether or not the /32 is already there, so a restart on the same state dir, whose
        # addresses stayed in the namespace, brings them up again. `add` refused it, and the
        # kernel's wording changed ("File exists", now "ipv4: Address already assigned").
        result = subprocess.run(
            ["ip", "-n", self.netns, "addr", "replace", f"{address}/32", "dev",
             str(self.device)],
            capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise OSError(f"cannot add {address} in {self.netns}: {result.stderr.strip()}")

    def take_down(self, address: str) -> None:
        if not self.netns:
            return
        subprocess.run(
            ["ip", "-n", self.netns, "addr", "del", f"{address}/32", "dev", str(self.device)],
            capture_output=True, text=True, check=False,
        )
