"""The wizard's last page, Review and Create: what is checked again, what the page lists, and
the Create itself.

Why here and not in the view: the view only binds the form, flashes what this module says and
redirects. The rules are: answers that no longer fit together (the datastore or the network
changed after the hosts were given) send the person back to the step that must change; a
saved instance order is checked again against the cloud (the zone, VPC and vSwitch it was made
for, and whether the zone still sells its type: DescribeAvailableResource), so a stale order
is fixed on the hosts page now instead of failing in the create run's DryRun or RunInstances
later; every billed item, each ECS instance included, is listed with its price.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError
from django.utils.translation import gettext as _

from clusters import operations
from clusters.adapters import cloud, pricing
from clusters.core.crypto import DecryptionError
from clusters.core.errors import StepError
from clusters.interface import wizard
from clusters.interface.forms.wizard_hosts import etcd_servers_problem
from clusters.models import CloudAccount, Cluster, InstallSource, NodeRole, Run


@dataclass(frozen=True)
class SendBack:
    """The review cannot go on: show `message` on `step`, where the answer is fixed."""

    step: str
    message: str


def answers_problem(state: wizard.WizardState) -> SendBack | None:
    """Answers that no longer fit together (no cloud call): the datastore changed after the
    hosts were given (embedded etcd's odd server count), or the network did (a VPC the
    panel creates holds no host yet)."""
    servers = sum(host.get("role") == NodeRole.SERVER
                  for host in state.get("hosts").get("hosts", []))
    servers += int((state.get("hosts").get("order") or {}).get("servers", 0))
    problem = etcd_servers_problem(state.get("datastore"), servers)
    if problem:
        return SendBack("hosts", str(problem))
    problem = wizard.new_network_problem(state)
    if problem:
        return SendBack("hosts", problem)
    return None


def _where(network: dict[str, str]) -> str:
    vswitch = network.get("vswitch") or _("a vSwitch the panel creates")
    return _("zone %(zone)s, vSwitch %(vswitch)s") % {"zone": network.get("zone") or "?",
                                                     "vswitch": vswitch}


def order_problem(state: wizard.WizardState, account: CloudAccount
                  ) -> tuple[SendBack | None, str]:
    """A saved instance order checked again: (why it must be fixed on the hosts page, or
    None; a warning when the cloud could not be asked, or "").

    The order was made for one zone and vSwitch: the network step may have changed since
    (it keeps the hosts step's answers), and the types a zone sells differ by zone. The
    zone's stock is asked again (DescribeAvailableResource, pay-as-you-go): a type sold out
    or no longer sold (WithoutStock, ClosedWithoutStock) cannot be bought."""
    hosts = state.get("hosts")
    order = hosts.get("order") or {}
    if not order:
        return None, ""
    now = wizard.order_network(state.get("network"))
    saved = hosts.get("order_network") or {}
    if saved and {k: str(saved.get(k) or "") for k in wizard.ORDER_NETWORK_KEYS} != now:
        return SendBack("hosts", _(
            "The instances were ordered for %(then)s, but the network page now says "
            "%(now)s: confirm the instance order again below (what a zone sells differs "
            "by zone).") % {"then": _where(saved), "now": _where(now)}), ""
    instance_type, zone = str(order.get("instance_type", "")), now["zone"]
    try:
        api = cloud.cloud_for_account(account, state.get("account")["region"])
        offers = {o.instance_type: o for o in api.available_instance_types(zone)}
    except (StepError, DecryptionError) as exc:
        return None, _("Whether zone %(zone)s still sells %(type)s could not be checked: "
                       "%(error)s") % {"zone": zone, "type": instance_type, "error": exc}
    offer = offers.get(instance_type)
    if offer is None or not offer.buyable:
        status = offer.status_category if offer is not None else _("not offered")
        return SendBack("hosts", _(
            "Zone %(zone)s no longer sells %(type)s (DescribeAvailableResource: %(status)s): "
            "choose another instance type below.") % {"zone": zone, "type": instance_type,
                                                       "status": status}), ""
    return None, ""


def page_context(state: wizard.WizardState, account: CloudAccount) -> dict[str, Any]:
    """What the review page shows: the answers, the hosts with the keys Create pins, and
    every billed item (each ECS instance of an order on a line of its own) with its price."""
    hosts = state.get("hosts")
    priced_items, quote = wizard.billed_with_prices(state, account)
    return {
        "account": account,
        "answers": state.get("account"),
        "network": state.get("network"),
        "datastore": state.get("datastore"),
        # Each with the key Create pins for it: the one Test connection showed, if tested.
        "hosts": [{**host, "host_key": state.host_key(host.get("public_ip") or host["private_ip"],
                                                      host["ssh_port"])}
                  for host in hosts.get("hosts", [])],
        "host_warnings": hosts.get("warnings", []),
        "k3s": state.get("k3s"),
        "install_source_label": InstallSource(state.get("k3s")["install_source"]).label,
        "priced_items": priced_items,
        "instance_count": len(wizard.billed_instances(state)),
        "quote": quote,
        "hours_per_month": pricing.HOURS_PER_MONTH,
    }


@dataclass(frozen=True)
class Created:
    """What Create made: a new draft `cluster`; or the `existing` one the same answers made
    (a Create posted twice at once); or neither, with why (`name_taken`)."""

    cluster: Cluster | None = None
    existing: Cluster | None = None
    name_taken: str = ""


def create(state: wizard.WizardState, owner: Any) -> Created:
    """Build the draft Cluster from the answers (never a second one for the same answers)."""
    try:
        return Created(cluster=wizard.build_cluster(state, owner))
    except IntegrityError:
        # The same Create posted twice at once: the other request made the cluster.
        existing = wizard.already_created(state, owner)
        if existing is None:
            return Created(name_taken=_("A cluster named %(name)s already exists: choose "
                                        "another name.") % {"name": state.get("account")["name"]})
        state.reset(created=existing)
        return Created(existing=existing)


def start(state: wizard.WizardState, cluster: Cluster, user: Any) -> Run:
    """Start the create run and forget the answers (a repeated Create finds the cluster)."""
    run = operations.start_create(cluster, user)
    state.reset(created=cluster)
    return run
