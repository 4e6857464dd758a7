"""The cluster's security group admits what K3s needs and nothing more
(docs.k3s.io/installation/requirements#networking, "Inbound Rules for K3s Nodes")."""

from __future__ import annotations

import pytest

from clusters.k3s.firewall import FirewallError, FirewallSpec, NodeRule, node_rules

VPC = "172.16.0.0/12"
PANEL = ("172.16.9.5/32",)


def table(rules: tuple[NodeRule, ...]) -> list[tuple[str, str, str]]:
    return [(r.protocol, r.port_range, "group" if r.from_group else r.source_cidr)
            for r in rules]


def test_an_intranet_cluster_opens_ssh_to_the_panel_the_api_to_the_vpc_and_node_ports_to_the_group(
        ) -> None:
    assert table(node_rules(FirewallSpec(VPC, PANEL))) == [
        ("TCP", "22/22", "172.16.9.5/32"),
        ("TCP", "6443/6443", "172.16.0.0/12"),
        ("UDP", "8472/8472", "group"),
        ("TCP", "10250/10250", "group"),
    ]


def test_flannel_and_kubelet_are_never_open_to_a_cidr() -> None:
    """The K3s docs: the VXLAN port "should not be exposed to the world"."""
    spec = FirewallSpec(VPC, PANEL, internet_api=True, api_allowed_cidrs=("0.0.0.0/0",))
    for rule in node_rules(spec):
        if rule.ports[0] in (8472, 10250, 2379):
            assert rule.from_group and not rule.source_cidr


def test_an_internet_clb_adds_6443_from_its_allow_list_and_nothing_else() -> None:
    rules = node_rules(FirewallSpec(VPC, PANEL, internet_api=True,
                                    api_allowed_cidrs=("203.0.113.0/24", "198.51.100.7")))
    beyond_vpc = [r for r in rules if r.source_cidr not in ("", VPC, *PANEL)]
    assert table(tuple(beyond_vpc)) == [("TCP", "6443/6443", "203.0.113.0/24"),
                                        ("TCP", "6443/6443", "198.51.100.7/32")]


def test_0_0_0_0_appears_only_on_6443_and_only_when_the_api_is_internet_facing() -> None:
    open_list = ("0.0.0.0/0",)
    internet = node_rules(FirewallSpec(VPC, PANEL, internet_api=True,
                                       api_allowed_cidrs=open_list))
    assert [r.port_range for r in internet if r.source_cidr == "0.0.0.0/0"] == ["6443/6443"]
    intranet = node_rules(FirewallSpec(VPC, PANEL, internet_api=False,
                                       api_allowed_cidrs=open_list))
    assert all(r.source_cidr != "0.0.0.0/0" for r in intranet)


def test_an_intranet_clb_admits_its_private_sources_outside_the_vpc_on_6443_only() -> None:
    """A layer-4 CLB keeps the client's address: a source in a peered VPC or behind a VPN
    reaches the node as itself. Inside the VPC's block the VPC's rule covers it; a public
    block in an intranet list is left out (it would reach a node's public address)."""
    rules = node_rules(FirewallSpec(VPC, PANEL, api_allowed_cidrs=(
        "10.8.0.0/16", "172.16.4.0/24", "47.96.0.0/16", "192.168.1.9")))
    beyond_vpc = [r for r in rules if r.source_cidr not in ("", VPC, *PANEL)]
    assert table(tuple(beyond_vpc)) == [("TCP", "6443/6443", "10.8.0.0/16"),
                                        ("TCP", "6443/6443", "192.168.1.9/32")]


def test_an_nlb_is_reached_from_the_vpc_so_its_allow_list_opens_nothing_on_the_nodes() -> None:
    """An NLB's allow-list is its own security group; it reaches the nodes from the VPC."""
    nlb = node_rules(FirewallSpec(VPC, PANEL, internet_api=True, clb=False,
                                  api_allowed_cidrs=("203.0.113.0/24",)))
    assert node_rules(FirewallSpec(VPC, PANEL)) == nlb


def test_embedded_etcd_adds_2379_2380_inside_the_group() -> None:
    rules = node_rules(FirewallSpec(VPC, PANEL, embedded_etcd=True))
    assert ("TCP", "2379/2380", "group") in table(rules)
    assert ("TCP", "2379/2380", "group") not in table(node_rules(FirewallSpec(VPC, PANEL)))


def test_ssh_follows_the_hosts_port_and_every_panel_address() -> None:
    rules = node_rules(FirewallSpec(VPC, ("10.0.0.5", "10.0.0.6/32", "10.0.0.5/32"),
                                    ssh_port=2222))
    assert [(r.port_range, r.source_cidr) for r in rules if r.why.startswith("SSH")] == [
        ("2222/2222", "10.0.0.5/32"), ("2222/2222", "10.0.0.6/32")]


@pytest.mark.parametrize(("spec", "says"), [
    (FirewallSpec(VPC, ()), "panel's own address is unknown"),
    (FirewallSpec(VPC, ("0.0.0.0/0",)), "SSH from 0.0.0.0/0 is never opened"),
    (FirewallSpec("0.0.0.0/0", PANEL), "cannot be 0.0.0.0/0"),
    (FirewallSpec("10.0.0.300/8", PANEL), "not an IPv4 CIDR block"),
    (FirewallSpec(VPC, PANEL, internet_api=True, api_allowed_cidrs=("nope",)),
     "An allowed source 'nope'"),
    (FirewallSpec(VPC, PANEL, flannel_backend="wireguard-native"), "only VXLAN"),
])
def test_answers_that_cannot_make_a_narrow_group_are_refused(spec: FirewallSpec,
                                                             says: str) -> None:
    with pytest.raises(FirewallError, match=says):
        node_rules(spec)
