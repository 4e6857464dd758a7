"""The create-cluster wizard's logic: its steps, what was typed, and the Cluster it becomes.

Why no HTTP here: the views only bind forms and redirect; this module decides which step
comes next, keeps each step's cleaned values in a mapping (the session), and at Create builds
the Cluster and its Nodes in one transaction. Secrets typed into the wizard (SSH keys and
passwords, the DSN, the RDS password, a generated private key) are Fernet-encrypted before
they reach the session, because Django's session table is signed, not encrypted.

Secrets are never written back into a page. What was typed stays here, encrypted: a step's
saved answers, and "drafts" for what was typed on a page that is shown again before it is
saved (another MySQL version picked, a host row added, a form with an error). The page says
"saved, leave blank to keep". A host row's secrets are filed under a random reference that
the row carries in a hidden field, so adding or removing rows never mixes them up.

When the encryption keys change under a wizard in progress (PANEL_ENCRYPTION_KEYS rotated
and the old key dropped), a saved secret no key decrypts is forgotten, its step is marked
to be confirmed again, and the person is told which secret to type again: never a 500.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from clusters.adapters import cloud, credentials, pricing
from clusters.adapters.aliyun import system_disk_level
from clusters.adapters.instance_order import node_slots
from clusters.core import crypto
from clusters.interface.forms.wizard_datastore import ENGINE_LABELS, datastore_of
from clusters.models import (
    CloudAccount,
    Cluster,
    DatastoreKind,
    InstallSource,
    LoadBalancerKind,
    Node,
    NodeRole,
    SlbAddressType,
)

SESSION_KEY = "cluster_wizard"
# The code of the cluster this session's wizard created last: a Create posted again after the
# answers were cleared (a double click, a reload of the POST) is sent to it, not to step 1.
CREATED_KEY = "cluster_wizard_created"


@dataclass(frozen=True)
class WizardStep:
    slug: str
    title: Any


STEPS = (
    WizardStep("account", _("Cloud account")),
    WizardStep("network", _("Network")),
    WizardStep("datastore", _("Datastore")),
    WizardStep("hosts", _("Hosts")),
    WizardStep("k3s", _("K3s")),
    WizardStep("review", _("Review")),
)
SLUGS = tuple(step.slug for step in STEPS)
SECRET_FIELDS = frozenset({"rds_password", "external_dsn", "private_key", "passphrase",
                           "password", "generated_private_key"})
# What the person is asked to type again when a saved one can no longer be decrypted.
SECRET_LABELS = {
    "rds_password": _("the database account password"),
    "external_dsn": _("the MySQL DSN"),
    "private_key": _("an SSH private key"),
    "passphrase": _("an SSH key passphrase"),
    "password": _("an SSH password"),
    "keypair": _("the generated key pair"),
}
DRAFTS = "drafts"
REENTER = "_reenter"  # in a step's saved answers: a secret was lost, confirm the step again


def _seal(values: dict[str, Any]) -> dict[str, Any]:
    return {k: crypto.encrypt(v) if k in SECRET_FIELDS and v else v for k, v in values.items()}


def _open(values: dict[str, Any]) -> dict[str, Any]:
    return {k: crypto.decrypt(v) if k in SECRET_FIELDS and v else v for k, v in values.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "pk"):
        return value.pk
    return str(value)


class WizardState:
    """What the person typed so far, kept in a mapping (the session) between requests."""

    def __init__(self, store: MutableMapping[str, Any]) -> None:
        self.store = store

    @property
    def _data(self) -> dict[str, Any]:
        return self.store.get(SESSION_KEY) or {}

    def _write(self, data: dict[str, Any]) -> None:
        self.store[SESSION_KEY] = data  # reassigned, so the session knows it changed

    def get(self, step: str) -> dict[str, Any]:
        value = self._data.get(step)
        if value is None:
            return {}
        if step == "hosts":
            return {"hosts": [_open(host) for host in value.get("hosts", [])],
                    "warnings": value.get("warnings", []),
                    # Instances the panel buys instead of hosts (no secret in it).
                    "order": value.get("order") or {},
                    # The pasted private key of the order's existing key pair (sealed).
                    "order_key": crypto.decrypt(value["order_key"])
                    if value.get("order_key") else "",
                    # The owner chose to add their instances to the nodes' security group.
                    "join_group": bool(value.get("join_group")),
                    # The zone, VPC and vSwitch the order was made for (review re-checks).
                    "order_network": value.get("order_network") or {}}
        return {k: v for k, v in _open(value).items() if k != REENTER}

    def put(self, step: str, values: dict[str, Any]) -> None:
        data = dict(self._data)
        values = _jsonable({k: v for k, v in values.items() if k != "key_file"})
        if step == "hosts":
            values = {"hosts": [_seal(_jsonable({k: v for k, v in h.items() if k != "key_file"}))
                                for h in values.get("hosts", [])],
                      "warnings": values.get("warnings", []),
                      "order": values.get("order") or {},
                      "order_key": crypto.encrypt(values["order_key"])
                      if values.get("order_key") else "",
                      "join_group": bool(values.get("join_group")),
                      "order_network": values.get("order_network") or {}}
        else:
            values = _seal(values)
        data[step] = values
        # A changed earlier answer may invalidate a later one (another region has other
        # VPCs): drop what depends on it, the person confirms it again.
        for later in _dependents(step):
            data.pop(later, None)
        # What was typed on the way is in the saved answers now.
        drafts = dict(data.get(DRAFTS) or {})
        for key in [k for k in drafts if k == step or k.startswith(f"{step}:")]:
            drafts.pop(key)
        data[DRAFTS] = drafts
        self._write(data)

    def done(self, step: str) -> bool:
        saved = self._data.get(step)
        return saved is not None and not (isinstance(saved, dict) and saved.get(REENTER))

    # --- secrets kept server-side between pages -------------------------------------------

    def keep_draft(self, key: str, values: Mapping[str, Any]) -> None:
        """Keep secrets typed on a page shown again before its step is saved (encrypted)."""
        typed = {k: v for k, v in values.items() if k in SECRET_FIELDS and v}
        if not typed:
            return
        data = dict(self._data)
        drafts = dict(data.get(DRAFTS) or {})
        drafts[key] = {**drafts.get(key, {}), **_seal(typed)}
        data[DRAFTS] = drafts
        self._write(data)

    def drop_draft(self, key: str, names: list[str]) -> None:
        """Forget secrets typed on the way that failed their checks."""
        drafts = dict(self._data.get(DRAFTS) or {})
        if not names or key not in drafts:
            return
        drafts[key] = {k: v for k, v in drafts[key].items() if k not in names}
        self._write({**self._data, DRAFTS: drafts})

    def saved_secrets(self, step: str) -> dict[str, str]:
        """The secrets of a (non-host) step: saved answers, overlaid by what was typed since."""
        stored = {k: v for k, v in self.get(step).items() if k in SECRET_FIELDS and v}
        return {**stored, **_open((self._data.get(DRAFTS) or {}).get(step, {}))}

    def host_secrets(self) -> dict[str, dict[str, str]]:
        """Each host row's secrets by its reference: saved hosts, then drafts typed since."""
        found: dict[str, dict[str, str]] = {}
        for host in self.get("hosts").get("hosts", []):
            if host.get("secret_ref"):
                found[host["secret_ref"]] = {k: v for k, v in host.items()
                                             if k in SECRET_FIELDS and v}
        prefix = "hosts:"
        for key, sealed in (self._data.get(DRAFTS) or {}).items():
            if key.startswith(prefix):
                ref = key[len(prefix):]
                found[ref] = {**found.get(ref, {}), **_open(sealed)}
        return found

    def forget_unreadable(self) -> list[Any]:
        """Drop saved secrets that no configured key decrypts; return what to ask for again.

        Each step that lost one is marked to be confirmed again (`done` is False), so the
        wizard leads the person back to it; its other answers stay.
        """
        data = dict(self._data)
        lost: list[str] = []

        def readable(values: dict[str, Any]) -> dict[str, Any]:
            kept = {}
            for key, value in values.items():
                if key in SECRET_FIELDS and value:
                    try:
                        crypto.decrypt(value)
                    except crypto.DecryptionError:
                        lost.append(key)
                        continue
                kept[key] = value
            return kept

        for step in SLUGS:
            saved = data.get(step)
            if not isinstance(saved, dict):
                continue
            before = len(lost)
            if step == "hosts":
                saved = {**saved, "hosts": [readable(h) for h in saved.get("hosts", [])]}
            else:
                saved = readable(saved)
            if len(lost) > before:
                saved[REENTER] = True
            data[step] = saved
        data[DRAFTS] = {key: readable(values)
                        for key, values in (data.get(DRAFTS) or {}).items()}
        pair = data.get("keypair")
        if pair:
            try:
                crypto.decrypt(pair["private"])
            except crypto.DecryptionError:
                data.pop("keypair")
                lost.append("keypair")
                if isinstance(data.get("hosts"), dict):
                    data["hosts"] = {**data["hosts"], REENTER: True}
        if lost:
            self._write(data)
        return [SECRET_LABELS[name] for name in dict.fromkeys(lost)]

    def first_missing(self) -> str:
        """The first step not yet completed (review when all are)."""
        return next((slug for slug in SLUGS[:-1] if not self.done(slug)), "review")

    def may_open(self, step: str) -> bool:
        index = SLUGS.index(step)
        return all(self.done(slug) for slug in SLUGS[:index])

    def reset(self, created: Cluster | None = None) -> None:
        """Forget the answers; remember ``created`` so a repeated Create finds it."""
        self.store.pop(SESSION_KEY, None)
        if created is not None:
            self.store[CREATED_KEY] = str(created.code)
        else:
            self.store.pop(CREATED_KEY, None)

    def created_code(self) -> str | None:
        """The code of the cluster this session's wizard created last, if any."""
        return self.store.get(CREATED_KEY)

    # --- host keys seen by Test connection ---------------------------------------------------

    def remember_host_key(self, address: str, port: int, fingerprint: str) -> None:
        """Keep the fingerprint Test connection showed for this address and port: Create
        pins it, so a key swapped between the test and the first run is refused."""
        data = dict(self._data)
        data["host_keys"] = {**data.get("host_keys", {}), f"{address}:{port}": fingerprint}
        self._write(data)

    def host_key(self, address: str, port: int) -> str:
        """The fingerprint Test connection showed for this address and port, or ''."""
        return str(self._data.get("host_keys", {}).get(f"{address}:{port}", ""))

    # --- the generated key pair -----------------------------------------------------------

    def keypair(self) -> tuple[str, str] | None:
        pair = self._data.get("keypair")
        if not pair:
            return None
        return crypto.decrypt(pair["private"]), pair["public"]

    def generate_keypair(self, comment: str = "k3s-ha-panel") -> str:
        """Make an Ed25519 key pair for the hosts; returns the public half to show."""
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
        public = f"{public} {comment}"
        data = dict(self._data)
        data["keypair"] = {"private": crypto.encrypt(private), "public": public}
        self._write(data)
        return public


def new_secret_ref() -> str:
    """A reference for one host row's secrets (random: it only has to be unique here)."""
    return secrets.token_urlsafe(12)


def _dependents(step: str) -> tuple[str, ...]:
    return {"account": ("network",), "network": ()}.get(step, ())


def next_step(step: str) -> str:
    return SLUGS[min(SLUGS.index(step) + 1, len(SLUGS) - 1)]


def previous_step(step: str) -> str | None:
    index = SLUGS.index(step)
    return SLUGS[index - 1] if index else None


# --- K3s install source ------------------------------------------------------------------------


def default_install_source(region: str) -> str:
    """The install source the K3s step starts on: the China mirror in a mainland cn-* region.

    Why: hosts in mainland Alibaba Cloud regions often cannot download from GitHub, which is
    why the recipe the panel automates installs with `INSTALL_K3S_MIRROR=cn` from
    rancher-mirror.rancher.cn. cn-hongkong is outside the mainland's network boundary and
    reaches GitHub directly, so it keeps the official source. Only the initial choice: the user
    can pick another source.
    """
    mainland = region.startswith("cn-") and region not in OUTSIDE_MAINLAND_CN_REGIONS
    return InstallSource.CHINA_MIRROR if mainland else InstallSource.OFFICIAL


OUTSIDE_MAINLAND_CN_REGIONS = frozenset({"cn-hongkong"})


# --- what will be created ---------------------------------------------------------------------


@dataclass(frozen=True)
class BilledItem:
    what: Any
    detail: str
    kind: str = ""  # "instance": an ECS instance of the order


def billed_resources(state: WizardState) -> list[BilledItem]:
    """Everything the create run will buy, for the review page."""
    network, datastore = state.get("network"), state.get("datastore")
    items = []
    kind, engine = datastore_of(datastore.get("kind"))
    if kind == DatastoreKind.RDS:
        label = ENGINE_LABELS[engine]
        items.append(BilledItem(
            _("RDS %(engine)s instance (pay-as-you-go)") % {"engine": label},
            f"{label} {datastore.get('rds_engine_version')} · "
            f"{datastore.get('rds_instance_class')}"
            f" · {datastore.get('rds_storage_gb')} GB · {network.get('zone')}"))
    if network.get("load_balancer_kind") == LoadBalancerKind.NLB:
        zones = network.get("nlb_zones") or []
        created = network.get("network_order") or {}
        if created.get("zone2"):  # both vSwitches are created by the run (steps/network.py)
            zones = [{"zone": network.get("zone"), "vswitch_id": created.get("vswitch_cidr")},
                     {"zone": created["zone2"], "vswitch_id": created.get("vswitch2_cidr")}]
        items.append(BilledItem(
            _("NLB instance (pay-as-you-go: instance fee and NLCUs), TCP listener on 6443"),
            f"{SlbAddressType(network['slb_address_type']).label} · "
            + " · ".join(f"{z.get('zone')} {z.get('vswitch_id')}" for z in zones)))
        return items
    items.append(BilledItem(
        _("CLB instance (pay-as-you-go, pay-by-LCU), TCP listener on 6443"),
        f"{SlbAddressType(network['slb_address_type']).label} · {network.get('vswitch')}"))
    return items


# What an instance order depends on in the network step: saved with the order, so the review
# can tell the order was made for another zone or vSwitch (clusters.interface.review).
ORDER_NETWORK_KEYS = ("zone", "vpc", "vswitch")


def order_network(network: Mapping[str, Any]) -> dict[str, str]:
    """The zone, VPC and vSwitch an instance order is made for ("" for one the panel makes)."""
    return {key: str(network.get(key) or "") for key in ORDER_NETWORK_KEYS}


def billed_instances(state: WizardState) -> list[BilledItem]:
    """Every ECS instance the create run will buy, one line each (the review lists them)."""
    order = state.get("hosts").get("order") or {}
    network = state.get("network")
    lines = []
    for slot, role in node_slots(order):
        public = (_("public address, %(mbps)s Mbit/s") % {"mbps": order["public_bandwidth_mbps"]}
                  if order.get("public_bandwidth_mbps") else _("no public address"))
        lines.append(BilledItem(
            _("ECS instance %(slot)s (%(role)s, pay-as-you-go)") % {
                "slot": slot, "role": NodeRole(role).label},
            f"{order.get('instance_type')} · {order.get('image_id')} · "
            f"{order.get('system_disk_gb')} GiB ESSD "
            f"{system_disk_level(str(order.get('system_disk_category') or 'cloud_essd'))} · "
            f"{public} · {network.get('zone')}",
            kind="instance"))
    return lines


def billed_with_prices(state: WizardState, account: CloudAccount,
                       ) -> tuple[list[tuple[BilledItem, pricing.PriceLine]], pricing.Quote]:
    """Each billed item next to its price line (the same order: RDS, then the load balancer,
    then every ECS instance of the order), and the total."""
    quote = price_quote(state, account)
    items = billed_resources(state) + billed_instances(state)
    return list(zip(items, quote.lines, strict=True)), quote


def price_quote(state: WizardState, account: CloudAccount) -> pricing.Quote:
    """The monthly pay-as-you-go price of what `billed_resources` and `billed_instances`
    list, asked of the cloud."""
    network, datastore = state.get("network"), state.get("datastore")
    order = state.get("hosts").get("order") or {}
    rds = None
    kind, engine = datastore_of(datastore.get("kind"))
    if kind == DatastoreKind.RDS:
        rds = {"engine_version": datastore.get("rds_engine_version") or "8.0",
               "instance_class": datastore.get("rds_instance_class") or "mysql.n2.medium.1",
               "storage_gb": datastore.get("rds_storage_gb") or 20,
               "engine": ENGINE_LABELS[engine]}
    api = cloud.cloud_for_account(account, state.get("account")["region"])
    return pricing.quote_new_cluster(
        api, rds=rds, zone_id=network.get("zone", ""),
        internet_slb=network.get("slb_address_type") == SlbAddressType.INTERNET,
        nlb=network.get("load_balancer_kind") == LoadBalancerKind.NLB,
        order=order, instances=[item.what for item in billed_instances(state)])


# --- Create -----------------------------------------------------------------------------------


def new_network_problem(state: WizardState) -> str:
    """Why the answers cannot be built ("" when they can): a VPC the panel creates holds no
    host yet, so the hosts must be instances the panel buys in it."""
    if state.get("network").get("network_order") and not state.get("hosts").get("order"):
        return str(_("The panel creates this cluster's VPC, so it has no hosts yet: create "
                     "the instances with the form above (or go back to the network page and "
                     "choose a VPC you have)."))
    return ""


def already_created(state: WizardState, owner: Any) -> Cluster | None:
    """The owner's cluster that this wizard's answers already created, or None.

    Why: the review page's Create posted twice at once (a double click, two tabs) reaches
    build_cluster twice with the same answers; the second one hits the unique name. It is the
    same cluster when the name, cloud account, region, VPC and host addresses all agree; a
    cluster that merely shares the name (made elsewhere since the account step) is not.
    """
    account_step, network = state.get("account"), state.get("network")
    cluster = Cluster.objects.filter(owner=owner, name=account_step.get("name")).first()
    if cluster is None:
        return None
    addresses = sorted(host["private_ip"] for host in state.get("hosts").get("hosts", []))
    same = (cluster.cloud_account_id == account_step.get("cloud_account")
            and cluster.region == account_step.get("region")
            and cluster.vpc_id == network.get("vpc")
            and sorted(cluster.nodes.values_list("private_ip", flat=True)) == addresses)
    return cluster if same else None


def build_cluster(state: WizardState, owner: Any) -> Cluster:
    """Turn the wizard's answers into a draft Cluster with its Nodes (not started yet)."""
    account_step, network = state.get("account"), state.get("network")
    datastore, hosts, k3s = state.get("datastore"), state.get("hosts"), state.get("k3s")
    account = CloudAccount.objects.get(pk=account_step["cloud_account"], owner=owner)
    pair = state.keypair()
    kind, engine = datastore_of(datastore["kind"])
    is_rds = kind == DatastoreKind.RDS
    with transaction.atomic():
        cluster = Cluster.objects.create(
            owner=owner, cloud_account=account, name=account_step["name"],
            region=account_step["region"], zone=network["zone"], vpc_id=network["vpc"],
            vswitch_id=network["vswitch"], slb_address_type=network["slb_address_type"],
            load_balancer_kind=network.get("load_balancer_kind") or LoadBalancerKind.CLB,
            nlb_zones=list(network.get("nlb_zones") or []),
            api_allowed_cidrs=list(network.get("api_allowed_cidrs") or []),
            k3s_version=k3s.get("k3s_version", ""), k3s_channel=k3s.get("k3s_channel", ""),
            install_source=k3s["install_source"],
            install_base_url=k3s.get("install_base_url", "")
            if k3s["install_source"] == InstallSource.CUSTOM else "",
            extra_tls_sans=k3s.get("extra_tls_sans") or [],
            disable_traefik=bool(k3s.get("disable_traefik")),
            taint_servers=bool(k3s.get("taint_servers")),
            secrets_encryption=bool(k3s.get("secrets_encryption")),
            datastore_kind=kind, datastore_engine=engine,
            datastore_tls=is_rds and bool(datastore.get("datastore_tls")),
            rds_engine_version=datastore.get("rds_engine_version")
            or Cluster._meta.get_field("rds_engine_version").default,
            rds_instance_class=datastore.get("rds_instance_class")
            or Cluster._meta.get_field("rds_instance_class").default,
            rds_storage_gb=datastore.get("rds_storage_gb") or 20,
            external_dsn=datastore.get("external_dsn", "")
            if kind == DatastoreKind.EXTERNAL else "",
            etcd_snapshot_cron=datastore.get("etcd_snapshot_cron")
            or Cluster._meta.get_field("etcd_snapshot_cron").default,
            etcd_snapshot_retention=datastore.get("etcd_snapshot_retention")
            or Cluster._meta.get_field("etcd_snapshot_retention").default,
            datastore_password=(datastore.get("rds_password")
                                or credentials.generate_rds_password()) if is_rds else "",
            k3s_token=credentials.generate_k3s_token(),
            k3s_agent_token=credentials.generate_k3s_token(),
            # Instances the create run buys (steps/ecs.py); their Nodes come with them.
            instance_order=dict(hosts.get("order") or {}),
            # The VPC and vSwitch the create run makes (steps/network.py), when asked.
            network_order=dict(network.get("network_order") or {}),
            # The existing key pair's private key the owner pasted: the bought instances'
            # Nodes log in with it (steps/ecs.py), as with a key the panel generates.
            generated_ssh_key=hosts.get("order_key", "")
            if (hosts.get("order") or {}).get("key_pair") else "",
            join_security_group=bool(hosts.get("join_group")) and not hosts.get("order"),
        )
        counters = {NodeRole.SERVER: 0, NodeRole.AGENT: 0}
        for host in hosts["hosts"]:
            role = host["role"]
            counters[role] += 1
            auth = host.get("auth")
            key = ""
            if auth == "key":
                key = host.get("private_key", "")
            elif auth == "generated" and pair:
                key = pair[0]
            Node.objects.create(
                cluster=cluster, role=role, name=f"{role}-{counters[role]}",
                private_ip=host["private_ip"], public_ip=host.get("public_ip") or None,
                ssh_port=host["ssh_port"], ssh_user=host["ssh_user"],
                ssh_private_key=key,
                ssh_key_passphrase=host.get("passphrase", "") if auth == "key" else "",
                ssh_password=host.get("password", "") if auth == "password" else "",
                # The key the person saw in Test connection (the address the panel dials);
                # untested hosts are pinned at first contact, as before.
                host_key=state.host_key(host.get("public_ip") or host["private_ip"],
                                        host["ssh_port"]),
            )
    return cluster
