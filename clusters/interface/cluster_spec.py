"""A whole cluster's answers at once (the REST API's create), checked by the wizard's own
forms, step by step, into the wizard's own state; `wizard.build_cluster` makes the Cluster.

Why through the forms and not a serializer of its own: one set of rules. A name already
taken, a vSwitch of another zone, an RDS class the zone does not sell, a host outside the
VPC, a K3s version the mirror lacks: the API refuses exactly what the wizard refuses, with the
wizard's message, keyed by the same field (``network.vswitch``, ``hosts.1.private_ip``).

The spec's shape is the wizard's steps (see ``clusters.api.serializers.ClusterSpec``):
``name``, ``cloud_account`` (an id), ``region``, then ``network``, ``datastore``, ``hosts``
(a list) or ``instances`` (an order the panel buys, checked by the wizard's "create
instances" form against what the zone sells now), ``k3s`` and ``billing_ack``. A field left
out takes the value the wizard's page
starts with (TLS where the CA is configured, Secrets encryption on, 20 GB). A host logs in
with a private key or a password; a host's ``host_key`` (a SHA256 fingerprint) pins the key
as Test connection would.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db import IntegrityError
from django.utils.translation import gettext as _

from clusters.adapters import wizard_checks
from clusters.interface import wizard
from clusters.interface.forms import (
    AccountStepForm,
    DatastoreStepForm,
    HostFormSet,
    K3sStepForm,
    NetworkStepForm,
    ReviewStepForm,
    hosts_fit,
    with_initials,
)
from clusters.interface.forms.wizard_datastore import (
    ENGINE_LABELS,
    datastore_choice,
    datastore_of,
    is_etcd,
    version_for,
)
from clusters.interface.forms.wizard_instances import InstanceOrderForm
from clusters.models import CloudAccount, Cluster

Errors = dict[str, list[str]]
HOSTS_PREFIX = "hosts"
HOST_FIELDS = ("role", "private_ip", "public_ip", "ssh_port", "ssh_user", "auth",
               "private_key", "passphrase", "password")
API_AUTH = ("key", "password")  # no "generated": the API has no page to show a public key on


class SpecInvalid(Exception):
    """The spec breaks the wizard's rules: `errors` by field path, as the wizard says them."""

    def __init__(self, errors: Errors) -> None:
        super().__init__("invalid cluster spec")
        self.errors = errors


@dataclass
class Checked:
    """A spec that passed every step: the wizard's state, ready for build_cluster."""

    state: wizard.WizardState
    warnings: list[str] = field(default_factory=list)


def _text(value: Any) -> Any:
    """A list (CIDRs, SANs) as the text box the form reads, one per line."""
    return "\n".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value


def _collect(errors: Errors, form: forms.BaseForm, prefix: str = "",
             rename: Mapping[str, str] | None = None) -> None:
    for name, messages in form.errors.items():
        key = (rename or {}).get(name, name)
        path = f"{prefix}{key}" if key != "__all__" else (prefix.rstrip(".") or
                                                           "non_field_errors")
        errors.setdefault(path, []).extend(str(m) for m in messages)


def _section(spec: Mapping[str, Any], name: str, errors: Errors) -> Mapping[str, Any]:
    value = spec.get(name) or {}
    if not isinstance(value, Mapping):
        errors.setdefault(name, []).append(_("Expected an object of fields."))
        return {}
    return value


def check(spec: Mapping[str, Any], owner: Any) -> Checked:
    """Run the spec through the wizard's six steps; SpecInvalid with every problem found.

    A step that others need (the account for the network, the network for the datastore's
    zone and the hosts' VPC range) stops the ones after it, as the wizard's pages would.
    """
    errors: Errors = {}
    warnings: list[str] = []
    state = wizard.WizardState({})
    if not isinstance(spec, Mapping):
        raise SpecInvalid({"non_field_errors": [_("Expected an object of fields.")]})

    account_form = AccountStepForm(
        {"name": spec.get("name") or "", "cloud_account": spec.get("cloud_account") or "",
         "region": spec.get("region") or ""}, owner=owner)
    account: CloudAccount | None = None
    if account_form.is_valid():
        data = account_form.cleaned_data
        account = data["cloud_account"]
        state.put("account", {"name": data["name"], "cloud_account": account.pk,
                              "region": data["region"]})
    else:
        _collect(errors, account_form)

    network = _section(spec, "network", errors)
    datastore = _section(spec, "datastore", errors)
    k3s = _section(spec, "k3s", errors)
    hosts = spec.get("hosts") or []
    if not isinstance(hosts, list):
        errors.setdefault("hosts", []).append(_("Expected a list of hosts."))
        hosts = []

    network_ok = False
    if account is not None:
        network_ok = _check_network(state, account, network, errors, warnings)
    if network_ok and account is not None:
        _check_datastore(state, account, datastore, errors, warnings)
    _hosts_or_instances(state, account if network_ok else None, spec, hosts, errors,
                        warnings=warnings, vpc_checked=network_ok)
    _check_k3s(state, k3s, errors, warnings)
    review = ReviewStepForm({"billing_ack": bool(spec.get("billing_ack"))})
    if not review.is_valid():
        _collect(errors, review)
    if errors:
        raise SpecInvalid(errors)
    for host in hosts:
        if isinstance(host, Mapping) and host.get("host_key"):
            address = host.get("public_ip") or host.get("private_ip")
            state.remember_host_key(str(address), int(host.get("ssh_port") or 22),
                                    str(host["host_key"]))
    return Checked(state, warnings)


def _check_network(state: wizard.WizardState, account: CloudAccount,
                   given: Mapping[str, Any], errors: Errors,
                   warnings: list[str] | None = None) -> bool:
    region = state.get("account")["region"]
    try:
        choices = wizard_checks.network_choices(account, region)
    except wizard_checks.CheckFailed as exc:
        errors.setdefault("network", []).append(str(exc))
        return False
    names = ["zone", "vpc", "vswitch", "load_balancer_kind", "nlb_zone2", "nlb_vswitch2",
             "slb_address_type", "api_allowed_cidrs"]
    data = with_initials(NetworkStepForm, given, names, network=choices)
    data["api_allowed_cidrs"] = _text(data.get("api_allowed_cidrs", ""))
    form = NetworkStepForm(data, network=choices)
    if not form.is_valid():
        _collect(errors, form, "network.")
        return False
    state.put("network", form.cleaned_data)
    if warnings is not None:
        warnings.extend(form.warnings)
    return True


def _check_datastore(state: wizard.WizardState, account: CloudAccount,
                     given: Mapping[str, Any], errors: Errors, warnings: list[str]) -> None:
    names = ["kind", "rds_engine_version", "rds_instance_class", "rds_storage_gb",
             "rds_password", "datastore_tls", "external_dsn", "etcd_snapshot_cron",
             "etcd_snapshot_retention", "etcd_single_server"]
    # The engine the chosen kind runs (RDS MySQL or PostgreSQL): what RDS sells is asked of
    # that engine, as the wizard's page does, so a PostgreSQL spec is not checked as MySQL.
    choice = str(given.get("kind") or "")
    version = version_for(choice, str(given.get("rds_engine_version") or "") or None)
    engine = ENGINE_LABELS[datastore_of(choice)[1]]
    rds, rds_error = None, ""
    try:
        if not is_etcd(choice):  # embedded etcd asks RDS nothing
            rds = wizard_checks.rds_choices(account, state.get("account")["region"],
                                            state.get("network")["zone"], version, engine)
    except wizard_checks.CheckFailed as exc:
        rds_error = str(exc)
    data = with_initials(DatastoreStepForm, given, names, rds=rds, rds_error=rds_error)
    form = DatastoreStepForm(data, rds=rds, rds_error=rds_error)
    if not form.is_valid():
        _collect(errors, form, "datastore.")
        return
    warnings.extend(form.warnings)
    state.put("datastore", form.cleaned_data)


def _check_hosts(state: wizard.WizardState, hosts: list[Any], errors: Errors,
                 warnings: list[str], *, vpc_checked: bool) -> None:
    data: dict[str, Any] = {
        f"{HOSTS_PREFIX}-TOTAL_FORMS": str(len(hosts)),
        f"{HOSTS_PREFIX}-INITIAL_FORMS": "0",
        f"{HOSTS_PREFIX}-MIN_NUM_FORMS": "1",
        f"{HOSTS_PREFIX}-MAX_NUM_FORMS": "50",
    }
    for index, host in enumerate(hosts):
        if not isinstance(host, Mapping):
            errors.setdefault(f"hosts.{index}", []).append(_("Expected an object of fields."))
            continue
        if host.get("auth", "key") not in API_AUTH:
            errors.setdefault(f"hosts.{index}.auth", []).append(
                _("Log in with a private key (auth: key) or a password (auth: password)."))
        for name in HOST_FIELDS:
            value = host.get(name)
            if value is None:
                value = {"ssh_port": 22, "ssh_user": "root", "auth": "key"}.get(name, "")
            data[f"{HOSTS_PREFIX}-{index}-{name}"] = value
    formset = HostFormSet(data, prefix=HOSTS_PREFIX, datastore=state.get("datastore"))
    valid = formset.is_valid()
    if valid and vpc_checked:
        valid = hosts_fit(formset, state.get("network").get("vpc_cidr", ""), has_keypair=False)
    if not valid:
        for index, form in enumerate(formset.forms):
            _collect(errors, form, f"hosts.{index}.")
        for message in formset.non_form_errors():
            errors.setdefault("hosts", []).append(str(message))
        return
    if any(key.startswith("hosts") for key in errors):
        return
    warnings.extend(formset.warnings)
    state.put("hosts", {"hosts": [f.cleaned_data for f in formset.forms if f.cleaned_data],
                        "warnings": formset.warnings})


def _hosts_or_instances(state: wizard.WizardState, account: CloudAccount | None,
                        spec: Mapping[str, Any], hosts: list[Any], errors: Errors, *,
                        warnings: list[str], vpc_checked: bool) -> None:
    """The hosts given, or the instances to buy (`account` None: the network failed, the
    zone's offer cannot be asked)."""
    instances = _section(spec, "instances", errors) if spec.get("instances") else {}
    if instances and hosts:
        errors.setdefault("instances", []).append(
            _("Give either hosts or instances for the panel to buy, not both."))
    elif instances:
        if account is not None:
            _check_instances(state, account, instances, errors)
    else:
        _check_hosts(state, hosts, errors, warnings, vpc_checked=vpc_checked)


ORDER_FIELDS = ("servers", "agents", "instance_type", "image_id", "system_disk_gb",
                "public_bandwidth_mbps", "key_pair", "key_pair_private_key")


def _check_instances(state: wizard.WizardState, account: CloudAccount,
                     given: Mapping[str, Any], errors: Errors) -> None:
    """The order through the wizard's InstanceOrderForm, with what the zone sells now (types,
    images, the region's key pairs): the same refusals, keyed ``instances.<field>``."""
    network = state.get("network")
    try:
        choices = wizard_checks.instance_choices(account, state.get("account")["region"],
                                                 network.get("zone", ""))
    except wizard_checks.CheckFailed as exc:
        errors.setdefault("instances", []).append(str(exc))
        return
    data = with_initials(InstanceOrderForm, given, list(ORDER_FIELDS), prefix=None)
    form = InstanceOrderForm(data, types=choices.types, images=choices.images,
                             key_pairs=choices.key_pairs, datastore=state.get("datastore"),
                             vpc_cidr=str(network.get("vpc_cidr") or ""), prefix=None)
    if not form.is_valid():
        _collect(errors, form, "instances.")
        return
    state.put("hosts", {"hosts": [], "order": form.order(), "warnings": [],
                        "order_key": form.private_key()})


def _check_k3s(state: wizard.WizardState, given: Mapping[str, Any], errors: Errors,
               warnings: list[str]) -> None:
    names = ["version", "install_source", "install_base_url", "extra_tls_sans",
             "disable_traefik", "taint_servers", "secrets_encryption"]
    data = with_initials(K3sStepForm, given, names)
    if "install_source" not in given and state.done("account"):
        data["install_source"] = wizard.default_install_source(state.get("account")["region"])
    data["extra_tls_sans"] = _text(data.get("extra_tls_sans", ""))
    form = K3sStepForm(data)
    if not form.is_valid():
        _collect(errors, form, "k3s.")
        return
    warnings.extend(form.warnings)
    state.put("k3s", dict(form.cleaned_data))


def billed(checked: Checked, owner: Any) -> dict[str, Any]:
    """What create would buy and its monthly pay-as-you-go price, as the review page shows
    it (an unknown price is null with the reason, never a zero; the total is the sum of the
    known prices with `monthly_total_incomplete` true when some are unknown)."""
    account = CloudAccount.objects.get(pk=checked.state.get("account")["cloud_account"],
                                       owner=owner)
    items, quote = wizard.billed_with_prices(checked.state, account)
    # The page's rule (pricing.Quote): the sum of the known prices, flagged incomplete when
    # any line's price is unknown (that line says why), so the two front doors agree.
    return {
        "items": [{"what": str(item.what), "detail": item.detail,
                   "monthly": round(line.monthly, 2) if line.monthly is not None else None,
                   "currency": line.currency, "problem": line.problem,
                   "usage_note": str(line.usage_note or "")} for item, line in items],
        "monthly_total": quote.known_total,
        "monthly_total_incomplete": quote.incomplete,
        "currency": quote.currency,
    }


def build(checked: Checked, owner: Any) -> Cluster:
    """The draft Cluster and its Nodes, as the wizard's Create makes them."""
    try:
        return wizard.build_cluster(checked.state, owner)
    except IntegrityError:
        # The same name created meanwhile (two requests at once): the wizard's message.
        name = checked.state.get("account")["name"]
        raise SpecInvalid({"name": [_("You already have a cluster called %(name)s.")
                                    % {"name": name}]}) from None


def _second_zone(cluster: Cluster) -> dict[str, str]:
    """An NLB's second zone and vSwitch as the network step asks for them (none for a CLB)."""
    zones = list(cluster.nlb_zones or [])
    if len(zones) < 2:
        return {}
    return {"nlb_zone2": str(zones[1].get("zone", "")),
            "nlb_vswitch2": str(zones[1].get("vswitch_id", ""))}


def spec_of(cluster: Cluster) -> dict[str, Any]:
    """The spec a cluster was made from, secrets left out: `panelctl clusters show -o yaml`
    prints it, and it is accepted again by create (with the secrets given from files)."""
    nodes = list(cluster.nodes.present().order_by("pk"))
    return {
        "name": cluster.name,
        "cloud_account": cluster.cloud_account_id,
        "region": cluster.region,
        "network": {
            "zone": cluster.zone, "vpc": cluster.vpc_id, "vswitch": cluster.vswitch_id,
            "load_balancer_kind": cluster.load_balancer_kind,
            **_second_zone(cluster),
            "slb_address_type": cluster.slb_address_type,
            "api_allowed_cidrs": list(cluster.api_allowed_cidrs or []),
        },
        "datastore": {
            "kind": datastore_choice(cluster.datastore_kind, cluster.datastore_engine),
            "rds_engine_version": cluster.rds_engine_version,
            "rds_instance_class": cluster.rds_instance_class,
            "rds_storage_gb": cluster.rds_storage_gb,
            "datastore_tls": cluster.datastore_tls,
        } if cluster.datastore_kind == "rds" else {
            "kind": datastore_choice(cluster.datastore_kind, cluster.datastore_engine),
            "etcd_snapshot_cron": cluster.etcd_snapshot_cron,
            "etcd_snapshot_retention": cluster.etcd_snapshot_retention,
            "etcd_single_server": cluster.nodes.present().servers().count() == 1,
        } if cluster.datastore_kind == "etcd" else {
            "kind": datastore_choice(cluster.datastore_kind, cluster.datastore_engine)},
        # Instances the panel bought are given as the order again, not as hosts.
        "hosts": [] if cluster.instance_order else [{
            "role": node.role, "private_ip": node.private_ip, "public_ip": node.public_ip,
            "ssh_port": node.ssh_port, "ssh_user": node.ssh_user,
            "auth": "password" if node.ssh_password and not node.ssh_private_key else "key",
        } for node in nodes],
        **({"instances": {name: cluster.instance_order.get(name) for name in ORDER_FIELDS
                          if name in cluster.instance_order}} if cluster.instance_order
           else {}),
        "k3s": {
            "version": cluster.k3s_channel or cluster.k3s_version,
            "install_source": cluster.install_source,
            "install_base_url": cluster.install_base_url,
            "extra_tls_sans": list(cluster.extra_tls_sans or []),
            "disable_traefik": cluster.disable_traefik,
            "taint_servers": cluster.taint_servers,
            "secrets_encryption": cluster.secrets_encryption,
        },
        "billing_ack": True,
    }
