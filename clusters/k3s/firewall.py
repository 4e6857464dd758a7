"""The inbound rules of the security group the panel makes for a cluster's nodes: what K3s
needs, and nothing more. A pure function of the cluster's answers (`node_rules`).

Source: K3s "Requirements", section Networking, "Inbound Rules for K3s Nodes"
(https://docs.k3s.io/installation/requirements#networking; k3s-io/docs
docs/installation/requirements.md):

| TCP 2379-2380 | Servers   → Servers   | only for HA with embedded etcd
| TCP 6443      | Agents    → Servers   | K3s supervisor and Kubernetes API Server
| UDP 8472      | All nodes → All nodes | only for Flannel VXLAN (the default backend)
| TCP 10250     | All nodes → All nodes | kubelet metrics

and: "The VXLAN port on nodes should not be exposed to the world [...] Run your nodes behind
a firewall/security group that disables access to port 8472." So the node-to-node ports
admit the group itself only (a rule with SourceGroupId = the group: its members, by their
private addresses), never a CIDR.

What else reaches a node, and from where:
- SSH (22) from the panel only: it installs and operates K3s over SSH.
- 6443 from the VPC's CIDR: the agents, an NLB (it does not preserve client addresses here,
  so its traffic comes from its own addresses in the vSwitches), an intranet CLB's clients
  (a layer-4 CLB keeps the client's address), kubectl from inside the VPC. CLB health checks
  come from 100.64.0.0/10, which "does not need an allow rule in your ECS security group"
  (Alibaba Cloud, CLB health checks, help.aliyun.com/en/slb/classic-load-balancer/user-guide/
  health-check-overview), so no rule is written for them.
- A CLB keeps the client's address (Internet-facing or intranet): the allow-list's CIDRs
  that lie outside the VPC's block (an Internet client; an intranet source in a peered VPC,
  over a VPN or Express Connect) then also reach 6443, and only 6443 (the only port ever
  open beyond the VPC, and 0.0.0.0/0 only if an Internet-facing API's allow-list itself says
  so; for an intranet API only private blocks, RFC 1918 and the like: a public block would
  reach a node that has a public address directly from the Internet). Without them an
  intranet CLB forwards such a client to a node whose group drops it: the list the owner
  gave would admit nobody outside the VPC. A CIDR inside the VPC's block is already
  admitted by the VPC's rule and gets none of its own. An NLB's allow-list is its own
  security group (steps/nlb.py), and its traffic reaches the nodes from its own addresses in
  the VPC (client IP preservation is off): nothing more is opened for it.
- The datastore's port is outbound (servers → RDS or the user's database): a basic security
  group "allow[s] all outbound traffic by default" (Alibaba Cloud, Security group rules,
  help.aliyun.com/en/ecs/user-guide/security-group-rules), and the database's own whitelist
  (RDS: the servers' addresses) is the narrow side, so no rule is needed here.

A workload's own ports (Traefik's 80/443, NodePorts) are the user's to open: K3s does not
need them and the panel does not guess them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

REQUIREMENTS_URL = "https://docs.k3s.io/installation/requirements#networking"

SSH_PORT = 22
API_PORT = 6443
FLANNEL_VXLAN_PORT = 8472
KUBELET_PORT = 10250
ETCD_PORTS = (2379, 2380)
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class FirewallSpec:
    """What the rules depend on: the cluster's network and how its API is reached."""

    vpc_cidr: str
    panel_cidrs: tuple[str, ...]       # where the panel's SSH comes from (as the hosts see it)
    internet_api: bool = False         # an Internet-facing API load balancer
    api_allowed_cidrs: tuple[str, ...] = ()  # the API's allow-list (a CLB's reach 6443)
    clb: bool = True                   # CLB (keeps client addresses) or NLB
    embedded_etcd: bool = False        # HA with embedded etcd (the panel uses an external
    #                                    datastore today, so always False for its clusters)
    flannel_backend: str = "vxlan"     # K3s's default; other backends need other ports
    ssh_port: int = SSH_PORT


@dataclass(frozen=True)
class NodeRule:
    """One inbound Accept rule: from a CIDR, or from the group itself (`from_group`)."""

    protocol: str          # "TCP" / "UDP"
    ports: tuple[int, int]  # a range, both ends included
    source_cidr: str = ""
    from_group: bool = False
    why: str = ""           # the rule's description in the console (≤ 512 characters)

    @property
    def port_range(self) -> str:
        """Alibaba's PortRange form: "6443/6443", "2379/2380"."""
        return f"{self.ports[0]}/{self.ports[1]}"


class FirewallError(ValueError):
    """The answers cannot make a narrow group (a bad CIDR, no panel address)."""


def _network(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Network(text.strip(), strict=False))
    except ValueError:
        raise FirewallError(f"{what} {text!r} is not an IPv4 CIDR block") from None


def node_rules(spec: FirewallSpec) -> tuple[NodeRule, ...]:
    """The group's inbound rules, in a stable order (so a re-run compares equal)."""
    vpc = _network(spec.vpc_cidr, "The VPC's range")
    if vpc == ANYWHERE:
        raise FirewallError("The VPC's range cannot be 0.0.0.0/0")
    if not spec.panel_cidrs:
        raise FirewallError("The panel's own address is unknown: SSH would have no source")
    if spec.flannel_backend not in ("vxlan", ""):
        raise FirewallError(f"Flannel backend {spec.flannel_backend!r}: only VXLAN's port is "
                            f"known to the panel ({REQUIREMENTS_URL})")
    rules: list[NodeRule] = []
    for cidr in dict.fromkeys(_network(c, "The panel's address") for c in spec.panel_cidrs):
        if cidr == ANYWHERE:
            raise FirewallError("SSH from 0.0.0.0/0 is never opened: name the panel's address")
        rules.append(NodeRule("TCP", (spec.ssh_port, spec.ssh_port), cidr,
                              why="SSH from the k3s panel"))
    rules.append(NodeRule("TCP", (API_PORT, API_PORT), vpc,
                          why="k3s API and supervisor from the VPC (agents, load balancer)"))
    rules += allowlist_rules(spec)
    rules.append(NodeRule("UDP", (FLANNEL_VXLAN_PORT, FLANNEL_VXLAN_PORT), from_group=True,
                          why="flannel VXLAN between the cluster's nodes"))
    rules.append(NodeRule("TCP", (KUBELET_PORT, KUBELET_PORT), from_group=True,
                          why="kubelet between the cluster's nodes"))
    if spec.embedded_etcd:
        rules.append(NodeRule("TCP", ETCD_PORTS, from_group=True,
                              why="embedded etcd between the cluster's servers"))
    return tuple(rules)


ALLOWLIST_WHY = "k3s API from the allow-list (outside the VPC, through the CLB)"
# The description the panel gave these rules before ALLOWLIST_WHY (an Internet CLB's only):
# how steps/ecs.py recognises them in a group made then.
OLD_ALLOWLIST_WHY = "k3s API from the allow-list (Internet CLB)"


# RFC 1918's blocks: an address there never arrives through an Internet-facing CLB (its
# clients come from the Internet, with public addresses).
RFC1918 = tuple(ipaddress.IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12",
                                                   "192.168.0.0/16"))
# Why an allow-list source gets no 6443 rule (allowlist_skipped), beyond being in the VPC.
PUBLIC_ON_INTRANET = "public"    # an intranet API: a public block would reach a node past the CLB
PRIVATE_ON_INTERNET = "private"  # an Internet API: a private block never comes through its CLB


def _allowlist_split(spec: FirewallSpec) -> tuple[list[NodeRule], list[tuple[str, str]]]:
    """(the 6443 rules of the allow-list, the (source, why) given none)."""
    if not spec.clb:
        return [], []
    vpc = ipaddress.IPv4Network(_network(spec.vpc_cidr, "The VPC's range"))
    found, skipped = [], []
    for cidr in dict.fromkeys(_network(c, "An allowed source") for c in spec.api_allowed_cidrs):
        block = ipaddress.IPv4Network(cidr)
        if block.subnet_of(vpc):
            continue  # the VPC's own rule admits it
        if not spec.internet_api and not block.is_private:
            # An intranet API's clients come over private networks; a public block (or
            # 0.0.0.0/0) here would reach a node with a public address straight from the
            # Internet, past the CLB.
            skipped.append((cidr, PUBLIC_ON_INTRANET))
            continue
        if spec.internet_api and any(block.subnet_of(r) for r in RFC1918):
            # An Internet CLB's clients have public addresses: a private block never matches
            # there, and opening 6443 to it would only admit that range from a peered VPC
            # or a VPN, past the CLB.
            skipped.append((cidr, PRIVATE_ON_INTERNET))
            continue
        found.append(NodeRule("TCP", (API_PORT, API_PORT), cidr, why=ALLOWLIST_WHY))
    return found, skipped


def allowlist_rules(spec: FirewallSpec) -> tuple[NodeRule, ...]:
    """The 6443 rules for the allow-list's sources outside the VPC's block (a CLB only; see
    the module docstring): what an allow-list change adds or revokes, and nothing else."""
    return tuple(_allowlist_split(spec)[0])


def allowlist_skipped(spec: FirewallSpec) -> tuple[tuple[str, str], ...]:
    """The allow-list sources outside the VPC that get no 6443 rule, each with why
    (PUBLIC_ON_INTRANET, PRIVATE_ON_INTERNET): said by the step and warned of by the wizard,
    never silently dropped."""
    return tuple(_allowlist_split(spec)[1])


def panel_inside_vpc(panel_cidrs: tuple[str, ...], vpc_cidr: str) -> bool:
    """Whether every source the group admits the panel's SSH from lies in the VPC's block:
    a panel in the VPC. It must then SSH to a node's private address: its connection to the
    node's public address would leave through the Internet and arrive from the panel's own
    public address, which the group does not admit (only `panel_cidrs` reach port 22)."""
    vpc = ipaddress.IPv4Network(_network(vpc_cidr, "The VPC's range"))
    return bool(panel_cidrs) and all(
        ipaddress.IPv4Network(_network(c, "The panel's address")).subnet_of(vpc)
        for c in panel_cidrs)
