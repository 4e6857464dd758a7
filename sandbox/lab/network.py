"""The lab's wiring in the root namespace: one bridge, one veth per namespace, nothing else.

Why these limits: the machine is shared, so we only ever add routes implicitly (the bridge's
own connected /24), never a default route, never forwarding or NAT; and we only delete links
and namespaces whose names match this lab's prefix exactly.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from sandbox.lab import names

SUBNET_LOCK = Path("/run/lock/sandbox-lab-subnet.lock")
CANDIDATE_BASE = ipaddress.IPv4Network("10.213.0.0/16")


class LabNetworkError(RuntimeError):
    pass


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise LabNetworkError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    """Serialise 'pick a free subnet, then claim it' across concurrent labs."""
    SUBNET_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(SUBNET_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the root namespace routes or has an address in."""
    used: list[ipaddress.IPv4Network] = []
    routes = json.loads(ip("-4", "-j", "route", "show", "table", "all").stdout or "[]")
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("type") in ("local", "broadcast"):
            continue
        with contextlib.suppress(ValueError):
            used.append(ipaddress.IPv4Network(dst, strict=False))
    for link in json.loads(ip("-4", "-j", "addr", "show").stdout or "[]"):
        for addr in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    return used


def pick_free_subnet() -> ipaddress.IPv4Network:
    used = [n for n in networks_in_use() if not n.is_loopback]
    for candidate in CANDIDATE_BASE.subnets(new_prefix=24):
        if not any(candidate.overlaps(n) for n in used):
            return candidate
    raise LabNetworkError(f"no free /24 left in {CANDIDATE_BASE}")


def check_subnet_free(subnet: ipaddress.IPv4Network) -> None:
    clash = [str(n) for n in networks_in_use() if subnet.overlaps(n) and not n.is_loopback]
    if clash:
        raise LabNetworkError(f"subnet {subnet} overlaps networks already in use: {clash}")


def create_bridge(name: str, gateway_cidr: str) -> None:
    ip("link", "add", name, "type", "bridge")
    ip("addr", "add", gateway_cidr, "dev", name)
    ip("link", "set", name, "up")


def attach_namespace(
    netns: str, bridge: str, root_side: str, inner_dev: str, address_cidr: str
) -> None:
    """Create `netns` and plug it into `bridge` with one address; no default route on purpose."""
    ip("netns", "add", netns)
    ip("link", "add", root_side, "type", "veth", "peer", "name", inner_dev, "netns", netns)
    ip("link", "set", root_side, "master", bridge, "up")
    ip("-n", netns, "addr", "add", address_cidr, "dev", inner_dev)
    ip("-n", netns, "link", "set", inner_dev, "up")
    ip("-n", netns, "link", "set", "lo", "up")


def existing_netns(prefix: str) -> list[str]:
    matcher = names.netns_matcher(prefix)
    found = []
    for line in ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        if matcher.fullmatch(name):
            found.append(name)
    return found


def existing_links(prefix: str) -> list[str]:
    matcher = names.link_matcher(prefix)
    links = json.loads(ip("-j", "link", "show").stdout or "[]")
    return [link["ifname"] for link in links if matcher.fullmatch(link["ifname"])]


def netns_pids(netns: str) -> list[int]:
    proc = ip("netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def delete_links(prefix: str) -> None:
    """Veths first (deleting the root end removes the peer wherever it lives), bridge last."""
    for link in sorted(existing_links(prefix), key=lambda n: n.endswith("-br")):
        ip("link", "del", link, check=False)


def delete_netns(prefix: str) -> None:
    for netns in existing_netns(prefix):
        ip("netns", "del", netns, check=False)
        # `ip netns del` leaves the file behind if the bind mount was already gone.
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, OSError):
            os.unlink(os.path.join("/run/netns", netns))
