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
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.adapters import host_addresses
from clusters.adapters.aliyun.ecs_buy import PublicImage, TypeOffer
from clusters.adapters.aliyun.models import Instance
from clusters.adapters.ssh import load_private_key, md5_fingerprint, same_fingerprint
from clusters.core.errors import PermanentError
from clusters.interface.forms.common import SecretTextarea
from clusters.interface.forms.wizard_hosts import etcd_servers_problem
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


class InstanceOrderForm(forms.Form):
    """"Create instances": how many, what type and image, the disk, a public address.

    The choices are what the zone sells now (clusters.adapters.wizard_checks.instance_choices);
    a choice the cloud no longer offers is refused at its field. The panel generates the key
    pair (ImportKeyPair of its public half) and logs in as root with it, or the instances
    accept an existing key pair of the region (DescribeKeyPairs): then its private key is
    pasted, read, and must match the key pair's fingerprint as ECS computes it (MD5 of the
    public key blob, RFC 4716: clusters.adapters.ssh.md5_fingerprint); it is kept encrypted
    and never shown again."""

    servers = forms.IntegerField(label=_("Servers"), initial=2, min_value=1, max_value=9)
    agents = forms.IntegerField(label=_("Agents"), initial=1, min_value=0, max_value=50)
    instance_type = forms.ChoiceField(label=_("Instance type"))
    image_id = forms.ChoiceField(label=_("Image"))
    # ESSD system disk: 20-2048 GiB for cloud_essd (RunInstancesRequest.SystemDisk.Size, V2
    # model); 40 GiB leaves K3s's images and logs room.
    system_disk_gb = forms.IntegerField(label=_("System disk (GiB, ESSD)"), initial=40,
                                        min_value=40, max_value=2048)
    public_bandwidth_mbps = forms.IntegerField(
        label=_("Public bandwidth (Mbit/s; 0: no public address)"), initial=0, min_value=0,
        max_value=100)

    key_pair = forms.ChoiceField(label=_("SSH key pair"), required=False)
    key_pair_private_key = forms.CharField(
        label=_("Private key of the chosen key pair"), required=False, strip=False,
        widget=SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_("Only for an existing key pair: paste its private key (not protected by a "
                    "passphrase). It is stored encrypted and never shown again."))

    def __init__(self, *args: Any, types: Sequence[TypeOffer] = (),
                 images: Sequence[PublicImage] = (),
                 key_pairs: Sequence[tuple[str, str]] = (),
                 datastore: Mapping[str, Any] | None = None, vpc_cidr: str = "",
                 **kwargs: Any) -> None:
        kwargs.setdefault("prefix", "order")
        super().__init__(*args, **kwargs)
        self.datastore = datastore or {}
        self.vpc_cidr = vpc_cidr  # the cluster's VPC block ("" unknown: not checked here)
        self.fingerprints = dict(key_pairs)
        pair_field = cast(forms.ChoiceField, self.fields["key_pair"])
        pair_field.choices = [("", _("Let the panel make one (recommended)"))] + [
            (name, f"{name} · {fingerprint}") for name, fingerprint in key_pairs]
        type_field = cast(forms.ChoiceField, self.fields["instance_type"])
        type_field.choices = [(o.instance_type, f"{o.instance_type} · {o.cores} vCPU · "
                                                f"{o.memory_gib:g} GiB") for o in types]
        image_field = cast(forms.ChoiceField, self.fields["image_id"])
        image_field.choices = [(i.image_id, i.os_name) for i in images]

    def clean_servers(self) -> int:
        """Embedded etcd's server count (an odd number) holds for bought servers as for
        typed ones: the same rule as the hosts form's (wizard_hosts.etcd_servers_problem)."""
        servers = int(self.cleaned_data["servers"])
        problem = etcd_servers_problem(self.datastore, servers)
        if problem:
            raise forms.ValidationError(problem)
        return servers

    def clean(self) -> dict[str, Any]:
        """An existing key pair needs its private key, and the key must be that pair's; and
        a panel outside the VPC needs the instances to have a public address."""
        data = super().clean() or {}
        if self.vpc_cidr and data.get("public_bandwidth_mbps") == 0:
            unreachable = host_addresses.no_route_without_public_address(self.vpc_cidr)
            if unreachable:
                self.add_error("public_bandwidth_mbps", unreachable)
        name = data.get("key_pair") or ""
        text = str(data.get("key_pair_private_key") or "").strip()
        if not name:
            data["key_pair_private_key"] = ""  # pasted for no pair: never kept
            return data
        if not text:
            self.add_error("key_pair_private_key", _(
                "Paste the private key of key pair %(name)s: the panel logs in to the new "
                "instances with it.") % {"name": name})
            return data
        try:
            pkey = load_private_key(text + "\n")
        except PermanentError:
            self.add_error("key_pair_private_key", _(
                "This is not a private key the panel can read (an RSA, Ed25519 or ECDSA key "
                "in PEM or OpenSSH format, without a passphrase: remove one with "
                "ssh-keygen -p)."))
            return data
        found, wanted = md5_fingerprint(pkey), self.fingerprints.get(name, "")
        if not same_fingerprint(found, wanted):
            self.add_error("key_pair_private_key", _(
                "This private key's fingerprint is %(found)s, but key pair %(name)s has "
                "%(wanted)s (DescribeKeyPairs): paste the private key of that pair.")
                % {"found": found, "name": name, "wanted": wanted})
            return data
        data["key_pair_private_key"] = text + "\n"
        return data

    def private_key(self) -> str:
        """The pasted private key of the chosen key pair ('' when the panel makes one)."""
        return str(self.cleaned_data.get("key_pair_private_key") or "")

    def order(self) -> dict[str, Any]:
        """The cluster's instance_order (steps/ecs.py reads it); no secret in it."""
        data = self.cleaned_data
        return {"servers": data["servers"], "agents": data["agents"],
                "instance_type": data["instance_type"], "image_id": data["image_id"],
                "system_disk_category": "cloud_essd", "system_disk_gb": data["system_disk_gb"],
                "public_bandwidth_mbps": data["public_bandwidth_mbps"],
                "key_pair": data.get("key_pair") or ""}
