"""Wizard page 4 (and the add-node form): the hosts, their SSH access and roles."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.adapters.host_addresses import address_refusal
from clusters.adapters.ssh import load_private_key
from clusters.core.errors import PermanentError
from clusters.interface.forms.common import (
    SSH_USER,
    SecretTextarea,
    keep_saved_secrets,
    secret_widget,
)
from clusters.k3s import etcd
from clusters.models import DatastoreKind, NodeRole

SECRET_FIELDS = ("private_key", "passphrase", "password")

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)


class HostForm(forms.Form):
    AUTH_CHOICES: tuple[tuple[str, StrOrPromise], ...] = (
        ("key", _("Private key")), ("generated", _("Generated key pair")),
        ("password", _("Password")))

    role = forms.ChoiceField(label=_("Role"), choices=NodeRole.choices)
    private_ip = forms.CharField(label=_("Private IP"), max_length=45)
    public_ip = forms.CharField(label=_("Public IP"), max_length=45, required=False)
    ssh_port = forms.IntegerField(label=_("SSH port"), initial=22)
    ssh_user = forms.CharField(label=_("SSH user"), initial="root", max_length=32)
    auth = forms.ChoiceField(label=_("Log in with"), choices=AUTH_CHOICES, initial="key")
    private_key = forms.CharField(
        label=_("Private key"), required=False, strip=False,
        widget=SecretTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off",
                                     "placeholder": "-----BEGIN OPENSSH PRIVATE KEY-----"}))
    key_file = forms.FileField(label=_("or upload the key file"), required=False)
    passphrase = forms.CharField(label=_("Key passphrase"), required=False, strip=False,
                                 widget=secret_widget(autocomplete="off"))
    password = forms.CharField(label=_("Password"), required=False, strip=False,
                               widget=secret_widget(autocomplete="off"))
    # Names this row's secrets kept server-side (clusters.interface.wizard): the page never holds
    # them, so a row re-shown after "Add a server" or an error still has them. Not a secret.
    secret_ref = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def __init__(self, *args: Any, saved: Mapping[str, Mapping[str, str]] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            ref = str(self.data.get(self.add_prefix("secret_ref")) or "")
        else:
            ref = str(self.initial.get("secret_ref") or "")
        keep_saved_secrets(self, SECRET_FIELDS, (saved or {}).get(ref, {}) if ref else {})

    def clean_private_ip(self) -> str:
        text = self.cleaned_data["private_ip"].strip()
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise ValidationError(_("%(value)s is not an IPv4 address.") % {"value": text}) \
                from None
        if not address.is_private or address.is_unspecified or address.is_multicast:
            raise ValidationError(_("%(value)s is a public address; enter the host's private "
                                    "(VPC) address here, the public one below.") %
                                  {"value": text})
        refusal = address_refusal(str(address))
        if refusal:
            raise ValidationError(refusal)
        return str(address)

    def clean_public_ip(self) -> str:
        text = self.cleaned_data.get("public_ip", "").strip()
        if not text:
            return ""
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            raise ValidationError(_("%(value)s is not an IPv4 address.") % {"value": text}) \
                from None
        if not address.is_global:
            raise ValidationError(_("%(value)s is not a public address.") % {"value": text})
        refusal = address_refusal(str(address))
        if refusal:
            raise ValidationError(refusal)
        return str(address)

    def clean_ssh_port(self) -> int:
        port = self.cleaned_data["ssh_port"]
        if not 1 <= port <= 65535:
            raise ValidationError(_("A port is a number from 1 to 65535."))
        return port

    def clean_ssh_user(self) -> str:
        user = self.cleaned_data["ssh_user"].strip()
        if not SSH_USER.match(user):
            raise ValidationError(_("%(value)s is not a valid Linux user name.") %
                                  {"value": user})
        return user

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        upload = data.get("key_file")
        if upload:
            raw = upload.read(64 * 1024 + 1)
            if len(raw) > 64 * 1024:
                self.add_error("key_file", _("This file is larger than 64 KB: a private key "
                                             "file must be smaller."))
                return data
            # Kept server-side by the view (like a pasted key), never shown in the page.
            data["private_key"] = raw.decode("utf-8", "replace")
        auth = data.get("auth")
        if auth == "key":
            key = (data.get("private_key") or "").strip()
            if not key:
                self.add_error("private_key", _("Paste or upload the private key."))
            else:
                try:
                    load_private_key(key + "\n", data.get("passphrase") or None)
                except PermanentError as exc:
                    self.add_error("private_key", exc.message)
                data["private_key"] = key + "\n"
        elif auth == "password" and not data.get("password"):
            self.add_error("password", _("Enter the SSH password."))
        return data


class BaseHostFormSet(forms.BaseFormSet):
    """Hosts together: unique addresses, at least one server; with embedded etcd an odd
    number of servers, 3 or 5 (1 only when the datastore page acknowledged it is not HA).

    Why odd (docs.k3s.io/datastore/ha-embedded): etcd needs a majority of its members; 4
    servers survive one failure, as 3 do, and 2 survive none, as 1 does.
    """

    def __init__(self, *args: Any, datastore: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datastore = dict(datastore or {})

    def clean(self) -> None:
        if any(self.errors):
            return
        self.warnings: list[str] = []
        seen: dict[str, int] = {}
        servers = 0
        for index, form in enumerate(self.forms):
            data = form.cleaned_data
            if not data:
                continue
            servers += data["role"] == NodeRole.SERVER
            for field in ("private_ip", "public_ip"):
                value = data.get(field)
                if not value:
                    continue
                if value in seen:
                    form.add_error(field, _("%(value)s is already used by host %(n)d.") %
                                   {"value": value, "n": seen[value] + 1})
                else:
                    seen[value] = index
        if servers == 0:
            raise ValidationError(_("Add at least one server."))
        if self.datastore.get("kind") == DatastoreKind.ETCD:
            self._check_etcd(servers)
        elif servers == 1:
            self.warnings.append(str(_(
                "One server is not highly available: if it fails, the API is down until it is "
                "back. Add a second server for HA.")))


    def _check_etcd(self, servers: int) -> None:
        problem = etcd_servers_problem(self.datastore, servers)
        if problem:
            raise ValidationError(problem)
        if servers == 1:
            self.warnings.append(str(_(
                "One embedded-etcd server, as you acknowledged: not highly available.")))


def etcd_servers_problem(datastore: Mapping[str, Any], servers: int) -> str:
    """Why `servers` servers cannot run this datastore's embedded etcd ('' when they can, and
    for any other datastore). The review page asks again: the datastore may have changed
    after the hosts were given."""
    if datastore.get("kind") != DatastoreKind.ETCD:
        return ""
    if servers not in etcd.ALLOWED_SERVER_COUNTS:
        return str(_(
            "Embedded etcd needs an odd number of servers: 3 or 5 (you have %(n)d). etcd "
            "keeps working while a majority of its servers is up, so an even number adds "
            "a server without surviving one more failure.") % {"n": servers})
    if servers == 1 and not datastore.get("etcd_single_server"):
        return str(_(
            "One embedded-etcd server is not highly available: if it fails, the cluster is "
            "down. Add servers to make 3 or 5, or tick \"I understand that one etcd server "
            "is not highly available\" on the datastore page."))
    return ""


# The stubs type formset_factory's result as a plain BaseFormSet; it is ours (with warnings).
HostFormSet = cast(type[BaseHostFormSet], forms.formset_factory(
    HostForm, formset=BaseHostFormSet, extra=0, min_num=1, validate_min=True, max_num=50,
    validate_max=True))


def hosts_outside(cidr: str, addresses: list[str]) -> list[str]:
    if not cidr:
        return []
    network = ipaddress.ip_network(cidr, strict=False)
    return [a for a in addresses if ipaddress.ip_address(a) not in network]


def hosts_fit(formset: BaseHostFormSet, vpc_cidr: str, *, has_keypair: bool) -> bool:
    """Checks that need the other steps' answers, on a valid formset: each private address
    in the VPC's range, and a generated key pair for hosts that log in with it. Errors go to
    the host's field (the wizard's page and the API show the same message)."""
    fits = True
    for form in formset.forms:
        data = form.cleaned_data
        if not data:
            continue
        if hosts_outside(vpc_cidr, [data["private_ip"]]):
            form.add_error("private_ip", _("%(ip)s is outside the VPC's range %(cidr)s.")
                           % {"ip": data["private_ip"], "cidr": vpc_cidr})
            fits = False
        if data.get("auth") == "generated" and not has_keypair:
            form.add_error("auth", _("Generate the key pair first (the button above)."))
            fits = False
    return fits
