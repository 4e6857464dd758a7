"""Turning "add these hosts" into Node rows of a live cluster.

Why: the add-node form, the admin and tests hand hosts over as dicts (or as rows already
saved); the same rules must hold for all of them: a valid private address not already in
the cluster, a way to log in, a known role. A host removed earlier is brought back as the
same row (the address is unique per cluster), so its history stays in one place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any, cast

from django.db import models

from clusters.adapters.host_addresses import address_refusal
from clusters.models import Cluster, Node, NodeRole, NodeStatus

CREDENTIAL_FIELDS = ("ssh_private_key", "ssh_key_passphrase", "ssh_password")
HOST_FIELDS = ("role", "private_ip", "public_ip", "ssh_port", "ssh_user", *CREDENTIAL_FIELDS)


class NodeRejected(ValueError):
    """A host cannot be added; the message says why."""


def _check(host: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {key: host.get(key) for key in HOST_FIELDS
                              if host.get(key) not in (None, "")}
    if values.get("role") not in NodeRole.values:
        raise NodeRejected(f"A node's role is server or agent, not {values.get('role')!r}.")
    try:
        address = ipaddress.IPv4Address(str(values.get("private_ip", "")).strip())
    except ValueError:
        raise NodeRejected(f"{values.get('private_ip')!r} is not an IPv4 address.") from None
    values["private_ip"] = str(address)
    for field in ("private_ip", "public_ip"):
        refusal = address_refusal(values[field]) if values.get(field) else None
        if refusal:
            raise NodeRejected(str(refusal))
    if not (values.get("ssh_private_key") or values.get("ssh_password")):
        raise NodeRejected(f"{address}: give a private key or a password to log in with.")
    port = int(values.get("ssh_port", 22))
    if not 1 <= port <= 65535:
        raise NodeRejected(f"{address}: SSH port {port} is not a port.")
    values["ssh_port"] = port
    return values


def save_new_nodes(cluster: Cluster, hosts: Iterable[dict[str, Any] | Node]) -> list[Node]:
    """Store the hosts as pending nodes of `cluster` (call inside the caller's transaction)."""
    saved: list[Node] = []
    seen: set[str] = set()
    for host in hosts:
        if isinstance(host, Node):
            if host.cluster_id != cluster.pk or host.status != NodeStatus.PENDING:
                raise NodeRejected(f"{host.private_ip} is not a pending node of {cluster.name}.")
            node = host
        else:
            node = _store(cluster, _check(host))
        if node.private_ip in seen:
            raise NodeRejected(f"{node.private_ip} is listed twice.")
        seen.add(node.private_ip)
        saved.append(node)
    if not saved:
        raise NodeRejected("Name at least one host to add.")
    return saved


def _store(cluster: Cluster, values: dict[str, Any]) -> Node:
    existing = cluster.nodes.filter(private_ip=values["private_ip"]).first()
    if existing is None:
        return Node.objects.create(cluster=cluster, **values)
    if existing.status != NodeStatus.REMOVED:
        raise NodeRejected(f"{existing.private_ip} is already a node of {cluster.name}.")
    # Back as a new member: a fresh first contact, its identity learned again by preflight.
    for field in HOST_FIELDS:
        model_field = cast("models.Field[Any, Any]", Node._meta.get_field(field))
        setattr(existing, field, values.get(field, model_field.get_default()))
    existing.status, existing.name, existing.host_key = NodeStatus.PENDING, "", ""
    existing.ecs_instance_id, existing.k3s_version = "", ""
    existing.k3s_installed = False
    existing.save()
    return existing
