"""The hosts page's list of the VPC's ECS instances: which may be picked, and picking them.

Why a list: the preflight checks that every typed address is an ECS instance of the chosen
VPC; listing them (DescribeInstances, clusters.adapters.wizard_checks.vpc_instances) makes
that mistake impossible. Only a Running instance can be picked: K3s is installed over SSH
right after Create, and a stopped one would fail the preflight (ECS statuses: Pending,
Starting, Running, Stopping, Stopped; V2 model DescribeInstancesResponseBody ... Status).
Typing an address stays possible: the list is a shortcut, not the only way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from clusters.adapters.aliyun.models import Instance
from clusters.models import NodeRole

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)

PICK_PREFIX = "pick-"  # the POST field of one instance's role: pick-<InstanceId>

_NOT_RUNNING: dict[str, StrOrPromise] = {
    "Pending": _("still being created: pick it once it is Running (reload this page)."),
    "Starting": _("still starting: pick it once it is Running (reload this page)."),
    "Stopping": _("stopping: start it again in the ECS console, then reload this page."),
    "Stopped": _("stopped: start it in the ECS console, then reload this page."),
}


@dataclass(frozen=True)
class InstanceChoice:
    """One listed instance: `host` is the row (1-based) already using its address, 0 none;
    `reason` says why it cannot be picked ("" when it can)."""

    instance: Instance
    host: int = 0
    reason: StrOrPromise = ""

    @property
    def pickable(self) -> bool:
        return not self.reason and not self.host

    @property
    def tags_text(self) -> str:
        return ", ".join(f"{key}={value}" if value else key
                         for key, value in self.instance.tags)


def refusal(instance: Instance) -> StrOrPromise:
    """Why this instance cannot become a host ("" when it can)."""
    if instance.status != "Running":
        return _NOT_RUNNING.get(instance.status, _("its status is %(status)s, not Running.")
                                % {"status": instance.status or "?"})
    if not instance.private_ip:
        return _("it has no private address in the VPC.")
    return ""


def instance_choices(instances: list[Instance],
                     rows: Sequence[Mapping[str, Any]]) -> list[InstanceChoice]:
    """The list as the page shows it: Running ones first, then by name and address."""
    used = {str(row.get("private_ip") or "").strip(): number
            for number, row in enumerate(rows, start=1) if row.get("private_ip")}
    ordered = sorted(instances, key=lambda i: (i.status != "Running", i.name or i.hostname,
                                               i.private_ip, i.instance_id))
    return [InstanceChoice(i, used.get(i.private_ip, 0), refusal(i)) for i in ordered]


def pick_instances(instances: list[Instance], rows: list[dict[str, Any]],
                   picks: Mapping[str, str], blank_row: Callable[[str], dict[str, Any]]
                   ) -> tuple[list[dict[str, Any]], list[str]]:
    """Add the picked instances as host rows (role from the pick); the rows and the refusals.

    The choices are judged again here against the fresh list, never the page's: an instance
    stopped since the page was shown, or a crafted id, is refused by name. Empty rows are
    filled first (they keep their login choice and saved secrets); rows left empty once some
    row has an address are dropped, so picking two servers on a fresh page leaves no blank
    row behind to refuse. Servers come before agents, each in the list's order."""
    by_id = {i.instance_id: i for i in instances}
    problems: list[str] = []
    roles = {NodeRole.SERVER.value, NodeRole.AGENT.value}
    # Servers before agents (the first server starts the cluster), each in the list's order.
    order = {i.instance_id: n for n, i in enumerate(
        c.instance for c in instance_choices(instances, []))}
    chosen = sorted(((instance_id, role) for instance_id, role in picks.items()
                     if role in roles),
                    key=lambda pick: (pick[1] != NodeRole.SERVER, order.get(pick[0], -1)))
    used = {str(row.get("private_ip") or "").strip() for row in rows}
    for instance_id, role in chosen:
        instance = by_id.get(instance_id)
        if instance is None:
            problems.append(str(_("%(id)s is not an ECS instance of this VPC.")
                                % {"id": instance_id}))
            continue
        why = refusal(instance)
        if why:
            problems.append(str(_("%(name)s (%(id)s) cannot be used: %(why)s")
                                % {"name": instance.name or instance.hostname,
                                   "id": instance_id, "why": why}))
            continue
        if instance.private_ip in used:
            continue  # already a host: picking it twice adds nothing
        used.add(instance.private_ip)
        empty = next((row for row in rows if not str(row.get("private_ip") or "").strip()),
                     None)
        row = empty if empty is not None else blank_row(role)
        row.update({"role": role, "private_ip": instance.private_ip})
        if empty is None:
            rows.append(row)
    if any(str(row.get("private_ip") or "").strip() for row in rows):
        rows = [row for row in rows if str(row.get("private_ip") or "").strip()]
    return rows, problems
