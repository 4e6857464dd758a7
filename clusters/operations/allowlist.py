"""Change the API's allow-list on a running cluster: the rules to start it, and its one step.

Why a run and not a direct call: the change goes to Alibaba Cloud (AddAccessControlListEntry
and RemoveAccessControlListEntry on the cluster's ACL), which may throttle or fail; a run is
retried, logged and audited like every other change. The step (slb.acl) adds the new entries
before it removes the old ones, so the whitelist never passes through empty (a CLB whitelist
with no entries forwards everyone). The proxy applies the new list to the next connection.

An NLB's list is a security group joined to it (nlb.allowlist): new Accept rules are added
before old ones are revoked, under a Drop rule for every other source that stays.

Only a cluster created with an allow-list has an ACL on its listener (or a security group
on its NLB); adding one to a cluster made without a list is not offered yet.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.adapters.api_balancer import NLB_SECURITY_GROUP_KIND
from clusters.adapters.instance_order import ECS_SECURITY_GROUP_KIND
from clusters.core import allowlist
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import (
    Cluster,
    LoadBalancerKind,
    ResourceState,
    Run,
    RunKind,
    SlbAddressType,
)
from clusters.operations.runs import OperationRefused, lock_ready, ready_problem

ALLOWLIST_TITLE = gettext_noop("Update the API's allow-list (SLB access control)")
NLB_ALLOWLIST_TITLE = gettext_noop("Update the API's allow-list (the NLB's security group)")
NODES_GROUP_TITLE = gettext_noop("Admit the allow-list's sources outside the VPC on TCP 6443 "
                                 "(the nodes' security group)")
# Where a cluster's allow-list lives: a CLB's ACL, or the security group joined to its NLB.
ALLOWLIST_KINDS = (allowlist.LEDGER_KIND, NLB_SECURITY_GROUP_KIND)


def allowlist_plan(cluster: Cluster) -> list[StepSpec]:
    """The list's own step; for a CLB in front of a nodes' security group the panel made,
    that group's 6443 rules too: a CLB keeps the client's address, so a source outside the
    VPC passes the listener's ACL only to be dropped by the nodes' group unless the group
    admits it (clusters/k3s/firewall.py). The group step runs first: it adds the new
    sources before the ACL lets them through, and revokes the sources no longer listed."""
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return [StepSpec("acl", NLB_ALLOWLIST_TITLE, "nlb.allowlist")]
    if not cluster.resources.filter(kind=ECS_SECURITY_GROUP_KIND,
                                    state=ResourceState.PRESENT).exclude(provider_id="").exists():
        return [StepSpec("acl", ALLOWLIST_TITLE, "slb.acl")]
    return [StepSpec("ecs_group", NODES_GROUP_TITLE, "ecs.security_group"),
            StepSpec("acl", ALLOWLIST_TITLE, "slb.acl", ["ecs_group"])]


def _ready_refusal() -> str:
    return _("Only a ready cluster's allow-list can be changed; this one is %(status)s.")


def retry_problem(cluster: Cluster, run: Run) -> str:
    """As for a new change: the cluster must be ready and idle."""
    return ready_problem(cluster, _ready_refusal())


def has_allowlist(cluster: Cluster) -> bool:
    """Whether the cluster's API sits behind an allow-list the panel bought (one to edit):
    a CLB listener's ACL, or an NLB's security group."""
    return cluster.resources.filter(kind__in=ALLOWLIST_KINDS, state=ResourceState.PRESENT) \
        .exclude(provider_id="").exists()


def parse_change(cluster: Cluster, text: str) -> list[str]:
    """The new list as CIDR blocks, or OperationRefused saying why it cannot be used."""
    try:
        cidrs = allowlist.parse(text, limit=allowlist.max_entries(cluster.load_balancer_kind))
    except allowlist.AllowListError as exc:
        raise OperationRefused(exc.explain()) from None
    if not cidrs:
        raise OperationRefused(
            _("An Internet-facing API needs at least one allowed source: until you list who "
              "may connect, nobody can reach it.")
            if cluster.slb_address_type == SlbAddressType.INTERNET else
            _("The allow-list cannot be emptied: a listener's access control list without "
              "entries would let everyone in."))
    return cidrs


def start_allowlist_change(cluster: Cluster, text: str, user: Any = None) -> Run:
    """Record the new list on the cluster and start the run that applies it to the ACL."""
    with transaction.atomic():
        locked = lock_ready(cluster, _ready_refusal())
        if not has_allowlist(locked):
            raise OperationRefused(_("This cluster's API listener was created without an "
                                     "allow-list, so there is none to change."))
        cidrs = parse_change(locked, text)
        before = list(locked.api_allowed_cidrs or [])
        if cidrs == before:
            raise OperationRefused(_("The allow-list is already exactly this."))
        Cluster.objects.filter(pk=locked.pk).update(api_allowed_cidrs=cidrs)
        locked.api_allowed_cidrs = cidrs
        return pipeline.create_run(locked, RunKind.API_ALLOWLIST, allowlist_plan(locked),
                                   params={"from": before, "to": cidrs}, created_by=user)
