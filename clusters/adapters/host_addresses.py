"""Which addresses the panel may SSH to: the one rule for the wizard's Test connection, the
hosts forms (wizard and add node) and every step that reaches a host.

Why: the panel logs in wherever a signed-in person points it, from inside its own network.
Without this rule the Test button is a port scanner of the panel's own host and service
network (loopback Redis and PostgreSQL, the cloud metadata service on 169.254.169.254, the
panel's VPC neighbours), and a cluster's steps could be aimed there too. Refused: loopback,
link-local, multicast and unspecified addresses, every address of the panel host's own
interfaces, and the networks listed in the setting PANEL_FORBIDDEN_NETWORKS (the panel's
service network, e.g. the subnet its database and Redis live in). Hosts in other private
networks (the cluster's VPC) stay allowed: that is where clusters are built.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import psutil
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from clusters.k3s.firewall import FirewallError, panel_inside_vpc

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def panel_addresses() -> set[Address]:
    """The addresses of the panel host's own interfaces (read each time: they change)."""
    found: set[Address] = set()
    for snics in psutil.net_if_addrs().values():
        for snic in snics:
            if snic.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    found.add(ipaddress.ip_address(snic.address.split("%", 1)[0]))
                except ValueError:
                    continue
    return found


def forbidden_networks() -> list[Network]:
    """PANEL_FORBIDDEN_NETWORKS as networks (validated when the settings load)."""
    return [ipaddress.ip_network(text, strict=False)
            for text in getattr(settings, "PANEL_FORBIDDEN_NETWORKS", [])]


def _special(address: Address) -> StrOrPromise | None:
    """Addresses that are never one host of a cluster, wherever the panel runs."""
    values = {"value": str(address)}
    if address.is_loopback:
        # Only the test suite sets this (panel/settings_test.py: the emulator's VPC is on
        # 127.X); panel/settings.py fixes it to False, no environment variable turns it on.
        if getattr(settings, "PANEL_ALLOW_LOOPBACK_HOSTS", False):
            return None
        return _("%(value)s is a loopback address: the panel would connect to itself.") % values
    if address.is_link_local:
        return _("%(value)s is a link-local address (such as the cloud metadata service), not "
                 "a host of a cluster.") % values
    if address.is_multicast or address.is_unspecified:
        return _("%(value)s is not the address of one host.") % values
    return None


def address_refusal(text: str) -> StrOrPromise | None:
    """Why the panel must not connect to `text`, or None when it may. The reason is a
    sentence for the person who typed the address (translated where one is active)."""
    try:
        address: Address = ipaddress.ip_address(str(text).strip())
    except ValueError:
        return _("%(value)s is not an IP address.") % {"value": text}
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    special = _special(address)
    if special:
        return special
    if not address.is_loopback and address in panel_addresses():
        return _("%(value)s is an address of the panel's own server.") % {"value": str(address)}
    for network in forbidden_networks():
        if address.version == network.version and address in network:
            return _("%(value)s is in %(network)s, one of the panel's own networks "
                     "(PANEL_FORBIDDEN_NETWORKS).") % {"value": str(address),
                                                       "network": str(network)}
    return None


def panel_ssh_sources(vpc_cidr: str) -> tuple[str, ...]:
    """Where the hosts see the panel's SSH come from: PANEL_SSH_SOURCE_CIDRS, or else the
    panel's own IPv4 addresses inside the VPC (a panel running in it), each a /32."""
    configured = tuple(getattr(settings, "PANEL_SSH_SOURCE_CIDRS", []) or ())
    if configured:
        return configured
    network = ipaddress.IPv4Network(vpc_cidr, strict=False)
    return tuple(sorted(f"{a}/32" for a in panel_addresses()
                        if isinstance(a, ipaddress.IPv4Address) and a in network))


def no_route_without_public_address(vpc_cidr: str) -> StrOrPromise:
    """Why instances bought without a public address (no bandwidth) could not be reached
    over SSH from this panel, or "" when they can: a panel outside the VPC can reach a node
    only at its public address (its private one is not routed to the panel), and without
    bandwidth RunInstances assigns none (V2 RunInstancesRequest.InternetMaxBandwidthOut:
    0 means no public IP). A panel inside the VPC (every source of its SSH in the VPC's
    block: k3s/firewall.panel_inside_vpc) reaches the private address."""
    try:
        sources = panel_ssh_sources(vpc_cidr)
        # No known source: the security group step refuses that with its own reason.
        if not sources or panel_inside_vpc(sources, vpc_cidr):
            return ""
    except (FirewallError, ValueError):
        return ""  # a malformed block: refused where it is checked (firewall, network form)
    return _("The panel is outside this VPC (PANEL_SSH_SOURCE_CIDRS is not in %(vpc)s), so "
             "it can reach new instances over SSH only at a public address, and without "
             "public bandwidth they get none. Order public bandwidth (at least 1 Mbit/s), or "
             "run the panel inside the VPC.") % {"vpc": vpc_cidr}
