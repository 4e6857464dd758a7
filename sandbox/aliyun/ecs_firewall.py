"""Security groups enforced on bought lab hosts: nftables inside each host's namespace.

Why: a missing rule must break the cluster the way it would on Alibaba Cloud. Each bought
instance (ecs_instances.py) gets one nftables table, rebuilt from its groups' ingress rules
whenever they change (Authorize/RevokeSecurityGroup, ModifySecurityGroupPolicy,
Join/LeaveSecurityGroup, an instance bought or released: group membership is part of the
rules).

Semantics (Alibaba "Security group rules" / "Overview of security groups" docs, and the V2
models): a new group made through the API has no rules; inbound traffic no rule accepts is
dropped, outbound is allowed (egress rules are not emulated), and replies of allowed
traffic pass (stateful: `ct state established,related accept`). Rules of all the instance's
groups are sorted together by Priority (1 = first); at the same priority Drop wins over
Accept. Instances in the same group reach each other when its InnerAccessPolicy is Accept
(the default of a basic, `normal`, group; an `enterprise` group isolates:
DescribeSecurityGroupAttributeResponseBody.InnerAccessPolicy "Accept: service
interconnection, Drop: internal isolation"; help.aliyun.com doc 120621). SourceGroupId
rules admit the private addresses of that group's instances (basic groups only).
TCP/UDP ports (and SourcePortRange), ICMP, GRE, ALL and DestCidrIp are translated; a rule
that cannot be (IPv6, prefix lists, ICMPv6) is left out: it never widens access.
Hosts the lab made itself (registered through the control API) are not filtered.
"""

from __future__ import annotations

import ipaddress
import sys
import traceback
from typing import Any

from sandbox.aliyun.ecs import RULE_WATCHERS, instances, security_groups
from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.gateway.state import State

TABLE = "ecs_security_group"


def inner_policy(group: dict[str, Any]) -> str:
    default = "Drop" if group.get("type") == "enterprise" else "Accept"
    return str(group.get("inner_access_policy") or default)


def _members(state: State, group_id: str, but: str = "") -> list[str]:
    return sorted(i["private_ip"] for i in instances(state).values()
                  if group_id in i["security_group_ids"] and i["instance_id"] != but)


def _source(state: State, group: dict[str, Any], rule: dict[str, Any]) -> str | None:
    """The nft source match ("" = any), or None when it can match nothing. SourceCidrIp
    wins over SourceGroupId when both are set (V2 AuthorizeSecurityGroupRequestPermissions
    .SourceGroupId); a group source is honoured between basic groups only (advanced groups
    can neither use nor be one: help doc "Basic and advanced security groups")."""
    cidr = rule.get("SourceCidrIp") or ""
    if cidr:
        network = ipaddress.ip_network(cidr, strict=False)
        if network.version != 4:
            return None
        return "" if network.prefixlen == 0 else f"ip saddr {network} "
    if rule.get("SourceGroupId"):
        source = security_groups(state).get(rule["SourceGroupId"])
        if source is None or "enterprise" in (source.get("type"), group.get("type")):
            return None
        members = _members(state, rule["SourceGroupId"])
        return f"ip saddr {{ {', '.join(members)} }} " if members else None
    return None  # an IPv6 or prefix-list rule: not translated, so it admits nothing


def _ports(text: str) -> str:
    low, high = (int(p) for p in text.split("/"))
    return str(low) if low == high else f"{low}-{high}"


def _match(rule: dict[str, Any]) -> str | None:
    """The nft protocol/port match ("" = every protocol: ALL only), or None when the rule
    is nothing this table can express: such a rule is left out (fail closed), never
    turned into a wider one."""
    protocol = rule["IpProtocol"].lower()
    dest = rule.get("DestCidrIp") or ""
    prefix = f"ip daddr {ipaddress.ip_network(dest, strict=False)} " if dest else ""
    source_ports = rule.get("SourcePortRange") or ""
    if protocol in ("tcp", "udp"):
        match = f"meta l4proto {protocol} "
        if rule["PortRange"] != "1/65535":
            match = f"{protocol} dport {_ports(rule['PortRange'])} "
        if source_ports and source_ports != "1/65535":
            match += f"{protocol} sport {_ports(source_ports)} "
        return prefix + match
    if source_ports not in ("", "-1/-1"):
        return None
    if protocol in ("icmp", "gre"):
        return f"{prefix}meta l4proto {protocol} "
    if protocol == "all":
        return prefix
    return None  # ICMPv6 (IPv6 only, never on these hosts) or anything new


def ruleset(state: State, instance: dict[str, Any]) -> str:
    """The whole nftables table for one instance (loaded atomically with `nft -f`)."""
    lines = []
    groups = [security_groups(state).get(g) for g in instance["security_group_ids"]]
    for group in groups:
        if group and inner_policy(group) == "Accept":
            peers = _members(state, group["security_group_id"], but=instance["instance_id"])
            if peers:
                lines.append(f"ip saddr {{ {', '.join(peers)} }} accept "
                             f"comment \"inner {group['security_group_id']}\"")
    rules = [(group, rule) for group in groups if group for rule in group["permissions"]
             if rule.get("Direction", "ingress") == "ingress"]
    rules.sort(key=lambda gr: (int(gr[1]["Priority"]),
                               0 if gr[1]["Policy"].lower() == "drop" else 1))
    for group, rule in rules:
        source, match = _source(state, group, rule), _match(rule)
        if source is None or match is None:
            continue
        verdict = "drop" if rule["Policy"].lower() == "drop" else "accept"
        lines.append(f"{source}{match}{verdict}")
    body = "\n".join(f"    {line}" for line in lines)
    return (
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "  chain ingress {\n"
        "    type filter hook input priority filter; policy drop;\n"
        "    ct state established,related accept\n"
        "    ct state invalid drop\n"
        "    iifname \"lo\" accept\n"
        f"{body}\n"
        "  }\n"
        "}\n"
    )


def apply_one(cloud: Cloud, instance: dict[str, Any]) -> None:
    """Load the instance's rules into its host (no-op without one)."""
    machine = instance.get("machine")
    if not cloud.lab_state_dir or not machine or not instance.get("bought"):
        return
    from sandbox.lab import machines  # noqa: PLC0415 - only with a lab

    try:
        machines.nft_apply(machine["netns"], ruleset(cloud.state, instance))
    except machines.MachineError:
        # a host powering off loses its namespace meanwhile; anything else is a bug
        if instance["status"] in ("Running", "Starting", "Pending"):
            traceback.print_exc(file=sys.stderr)


def apply_all(cloud: Cloud) -> None:
    for instance in list(instances(cloud.state).values()):
        apply_one(cloud, instance)


def _on_rules_changed(cloud: Cloud, group_id: str) -> None:
    apply_all(cloud)  # SourceGroupId rules elsewhere may name this group: all hosts


RULE_WATCHERS.append(_on_rules_changed)
