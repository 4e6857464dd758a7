"""The forms a person fills in: one per wizard step, the cloud account, the dashboard filter.

Every rule that can be checked before money is spent is checked here, with the message next
to the field: addresses, ports, keys, RDS's password rules, the DSN grammar K3s reads, the
K3s version at the chosen install source. Live checks go through clusters.adapters.wizard_checks.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, ngettext

from clusters.adapters import credentials, wizard_checks
from clusters.adapters.aliyun import Region
from clusters.adapters.ssh import load_private_key
from clusters.core.errors import PermanentError
from clusters.k3s.dsn import parse_endpoint
from clusters.k3s.versions import is_channel, parse_version
from clusters.models import (
    CloudAccount,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    Health,
    InstallSource,
    NodeRole,
    SlbAddressType,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)

CLUSTER_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
SSH_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
COMMON_REGIONS = (
    "cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "cn-zhangjiakou",
    "cn-huhehaote", "cn-wulanchabu", "cn-chengdu", "cn-qingdao", "cn-guangzhou", "cn-hongkong",
    "ap-southeast-1", "ap-southeast-5", "ap-northeast-1", "eu-central-1", "us-west-1",
)
# MySQL versions RDS sells today (Alibaba help "Major version lifecycle", 2026-03-28): 8.0 is
# the default, 8.4 the newest, 5.7 runs on RDS extended support until about 2028-10. 5.6 is
# being retired and is offered only as a bring-your-own database. Which of them a zone sells,
# and which classes, is asked live (clusters.adapters.wizard_checks.rds_choices).
RDS_DEFAULT_VERSION = "8.0"
RDS_VERSIONS = (
    ("8.0", _("MySQL 8.0 (recommended)")),
    ("8.4", _("MySQL 8.4")),
    ("5.7", _("MySQL 5.7 (legacy: RDS extended support until 2028)")),
)
# Django's forms translate their label suffix; Chinese uses the full-width colon.
gettext_noop(":")


class WizardForm(forms.Form):
    """A wizard step's form; `warnings` are shown but do not stop the user."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []


# --- the dashboard -----------------------------------------------------------------------------


class ClusterFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"placeholder": _("name or SLB address"),
                                                      "type": "search"}))
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status")), *ClusterStatus.choices])
    health = forms.ChoiceField(label=_("Health"), required=False,
                               choices=[("", _("Any health")), *Health.choices])


# --- cloud accounts ----------------------------------------------------------------------------


def check_region_available(regions: list[Region], region: str) -> str | None:
    ids = sorted(r.region_id for r in regions)
    if region not in ids:
        return str(_("This AccessKey cannot use region %(region)s. Available: %(ids)s.") % {
            "region": region, "ids": ", ".join(ids) or "-"})
    return None


class CloudAccountForm(forms.ModelForm):
    """A new AccessKey pair, accepted only after DescribeRegions worked with it."""

    access_key_secret = forms.CharField(
        label=_("AccessKey secret"), strip=True, max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted; it is never shown again."))

    class Meta:
        model = CloudAccount
        fields = ("name", "access_key_id", "access_key_secret", "default_region")
        widgets = {"default_region": forms.TextInput(attrs={"list": "aliyun-regions"})}

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.regions: list[Region] = []
        self.fields["access_key_id"].widget.attrs["autocomplete"] = "off"

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if CloudAccount.objects.filter(owner=self.owner, name=name).exists():
            raise ValidationError(_("You already have a cloud account with this name."))
        return name

    def clean_access_key_id(self) -> str:
        value = self.cleaned_data["access_key_id"].strip()
        if not re.fullmatch(r"[A-Za-z0-9]{12,64}", value):
            raise ValidationError(_("An AccessKey ID is 12 to 64 letters and digits, "
                                    "for example LTAI5t…"))
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        key_id, secret = data.get("access_key_id"), data.get("access_key_secret")
        region = data.get("default_region") or "cn-hangzhou"
        if key_id and secret and not self.errors:
            try:
                self.regions = wizard_checks.list_regions(key_id, secret, region)
            except wizard_checks.CheckFailed as exc:
                self.add_error("access_key_secret", str(exc))
                return data
            problem = check_region_available(self.regions, region)
            if problem:
                self.add_error("default_region", problem)
        return data

    def save(self, commit: bool = True) -> CloudAccount:
        account = super().save(commit=False)
        account.owner = self.owner
        if commit:
            account.save()
        return account


# --- wizard step 1: name, account, region ------------------------------------------------------


class AccountStepForm(WizardForm):
    name = forms.CharField(
        label=_("Cluster name"), max_length=63,
        help_text=_("Lower-case letters, digits and '-', starting with a letter; it names the "
                    "kubeconfig context and the cloud resources."))
    cloud_account = forms.ModelChoiceField(
        label=_("Existing account"), queryset=CloudAccount.objects.none(), required=False,
        empty_label=_("— add a new AccessKey below —"))
    new_account_name = forms.CharField(label=_("New account name"), required=False,
                                       max_length=100)
    access_key_id = forms.CharField(label=_("AccessKey ID"), required=False, max_length=64,
                                    widget=forms.TextInput(attrs={"autocomplete": "off"}))
    access_key_secret = forms.CharField(
        label=_("AccessKey secret"), required=False, max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Checked with Alibaba Cloud before it is saved, then stored encrypted and "
                    "never shown again."))
    region = forms.CharField(label=_("Region"), max_length=64, initial="cn-hangzhou",
                             widget=forms.TextInput(attrs={"list": "aliyun-regions"}))

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        accounts = cast(forms.ModelChoiceField, self.fields["cloud_account"])
        accounts.queryset = CloudAccount.objects.filter(owner=owner)
        self.new_account: CloudAccount | None = None

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not CLUSTER_NAME.match(name):
            raise ValidationError(_("Use lower-case letters, digits and '-', start with a "
                                    "letter and end with a letter or digit."))
        if Cluster.objects.filter(owner=self.owner, name=name).exists():
            raise ValidationError(_("You already have a cluster called %(name)s.") %
                                  {"name": name})
        return name

    def clean_region(self) -> str:
        region = self.cleaned_data["region"].strip()
        if not re.fullmatch(r"[a-z]{2}(-[a-z0-9]+)+", region):
            raise ValidationError(_("A region ID looks like cn-hangzhou."))
        return region

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        account = data.get("cloud_account")
        typed_new = any(data.get(k) for k in ("new_account_name", "access_key_id",
                                              "access_key_secret"))
        if account is None and not typed_new:
            self.add_error("cloud_account", _("Pick a cloud account or add a new AccessKey."))
        elif account is not None and typed_new:
            self.add_error("cloud_account", _("Pick an existing account or add a new one, "
                                              "not both."))
        elif data.get("region") and not self.errors:
            if account is None:
                self._check_new_account(data)
            else:
                self._check_account(account, data["region"])
        return data

    def _check_new_account(self, data: dict[str, Any]) -> None:
        """Validate (live) the AccessKey typed here; the wizard saves it when all is well."""
        form = CloudAccountForm(
            {"name": data.get("new_account_name") or "", "default_region": data["region"],
             "access_key_id": data.get("access_key_id") or "",
             "access_key_secret": data.get("access_key_secret") or ""},
            owner=self.owner)
        if form.is_valid():
            self.new_account_form = form
            return
        mapping = {"name": "new_account_name", "default_region": "region"}
        for field_name, errors in form.errors.items():
            for error in errors:
                self.add_error(mapping.get(field_name, field_name), error)

    def _check_account(self, account: CloudAccount, region: str) -> None:
        try:
            regions = wizard_checks.list_regions(account.access_key_id,
                                                 account.access_key_secret, region)
        except wizard_checks.CheckFailed as exc:
            self.add_error("cloud_account", str(exc))
            return
        problem = check_region_available(regions, region)
        if problem:
            self.add_error("region", problem)


# --- wizard step 2: network --------------------------------------------------------------------


class NetworkStepForm(WizardForm):
    zone = forms.ChoiceField(label=_("Zone"))
    vpc = forms.ChoiceField(label=_("VPC"))
    vswitch = forms.ChoiceField(
        label=_("vSwitch"),
        help_text=_("The RDS instance and the SLB are created in this vSwitch."))
    slb_address_type = forms.ChoiceField(
        label=_("SLB address"), choices=SlbAddressType.choices, initial=SlbAddressType.INTRANET,
        widget=forms.RadioSelect,
        help_text=_("Internet makes the Kubernetes API reachable from outside the VPC."))

    def __init__(self, *args: Any, network: wizard_checks.NetworkChoices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network = network
        cast(forms.ChoiceField, self.fields["zone"]).choices = [(z, z) for z in network.zones]
        cast(forms.ChoiceField, self.fields["vpc"]).choices = [
            (v.vpc_id, f"{v.vpc_id} · {v.cidr}" + (f" · {v.name}" if v.name else ""))
            for v in network.vpcs]
        cast(forms.ChoiceField, self.fields["vswitch"]).choices = [
            (s.vswitch_id, f"{s.vswitch_id} · {s.zone_id} · {s.cidr}"
             + (f" · {s.name}" if s.name else ""))
            for s in network.vswitches]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        chosen = next((s for s in self.network.vswitches
                       if s.vswitch_id == data.get("vswitch")), None)
        if chosen is None:
            return data
        if data.get("vpc") and chosen.vpc_id != data["vpc"]:
            self.add_error("vswitch", _("This vSwitch belongs to %(vpc)s, not to the chosen "
                                        "VPC.") % {"vpc": chosen.vpc_id})
        if data.get("zone") and chosen.zone_id != data["zone"]:
            self.add_error("vswitch", _("This vSwitch is in zone %(zone)s, not in the chosen "
                                        "zone.") % {"zone": chosen.zone_id})
        vpc = next((v for v in self.network.vpcs if v.vpc_id == data.get("vpc")), None)
        data["vpc_cidr"] = vpc.cidr if vpc else ""
        data["vswitch_cidr"] = chosen.cidr
        return data


# --- wizard step 3: datastore ------------------------------------------------------------------


class DatastoreStepForm(WizardForm):
    """The datastore: an RDS instance of a class the zone sells today, or your own MySQL.

    `rds` is what RDS said it sells in the cluster's zone for the chosen version (None with
    `rds_error` when it could not be asked); the class list and the storage range come
    from it, not from a list in the panel.
    """

    kind = forms.ChoiceField(label=_("Datastore"), choices=DatastoreKind.choices,
                             initial=DatastoreKind.RDS, widget=forms.RadioSelect)
    rds_engine_version = forms.ChoiceField(
        label=_("MySQL version"), choices=RDS_VERSIONS, initial=RDS_DEFAULT_VERSION,
        required=False, widget=forms.Select(attrs={"data-refresh": "refresh"}))
    rds_instance_class = forms.ChoiceField(
        label=_("Instance class"), required=False,
        help_text=_("The classes RDS sells in this zone for this version (High-availability "
                    "edition, ESSD), with their storage range."),
        error_messages={"invalid_choice": _(
            "RDS does not sell %(value)s in this zone for this MySQL version; pick one "
            "from the list.")})
    rds_storage_gb = forms.IntegerField(label=_("Storage (GB)"), initial=20, required=False,
                                        min_value=1)
    rds_password = forms.CharField(
        label=_("Database account password"), required=False, max_length=64, strip=False,
        widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"}),
        help_text=_("Leave empty to have a strong one generated. RDS requires 8 to 32 "
                    "characters and three of: upper case, lower case, digits, !@#$%^&*()_+-="))
    external_dsn = forms.CharField(
        label=_("MySQL DSN"), required=False, max_length=1000, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "placeholder": "mysql://k3s:PASSWORD@tcp(host:3306)/k3s"}),
        help_text=_("As K3s reads it: mysql://user:password@tcp(host:port)/database"))

    def __init__(self, *args: Any, rds: wizard_checks.RdsChoices | None = None,
                 rds_error: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rds, self.rds_error = rds, rds_error
        offered = rds.classes if rds is not None else []
        cast(forms.ChoiceField, self.fields["rds_instance_class"]).choices = [
            (c.instance_class, str(_("%(class)s · %(min)d to %(max)d GB") % {
                "class": c.instance_class, "min": c.storage_min, "max": c.storage_max}))
            for c in offered]
        if offered and not self.is_bound and not self.initial.get("rds_instance_class"):
            self.initial["rds_instance_class"] = offered[0].instance_class

    def clean_rds_password(self) -> str:
        password = self.cleaned_data.get("rds_password") or ""
        if password and self.data.get(self.add_prefix("kind")) == DatastoreKind.RDS:
            problem = credentials.rds_password_problem(password)
            if problem:
                raise ValidationError(_("RDS would reject this password: it %(problem)s.")
                                      % {"problem": problem})
        return password

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("kind") == DatastoreKind.RDS:
            if self.rds is None:
                self.add_error("rds_instance_class", _(
                    "The panel could not ask RDS which classes this zone sells: %(error)s")
                    % {"error": self.rds_error})
                return data
            for name in ("rds_engine_version", "rds_instance_class", "rds_storage_gb"):
                if data.get(name) in (None, "") and name not in self.errors:
                    self.add_error(name, _("This field is required."))
            self._clean_rds(data)
        elif data.get("kind") == DatastoreKind.EXTERNAL:
            self._clean_external(data)
        return data

    def _clean_rds(self, data: dict[str, Any]) -> None:
        """The version, class and storage must be what RDS sells in the zone right now."""
        rds = self.rds
        assert rds is not None  # checked by clean()
        version = data.get("rds_engine_version")
        if version and version not in rds.versions and "rds_engine_version" not in self.errors:
            self.add_error("rds_engine_version", _(
                "RDS sells no MySQL %(version)s (High-availability, ESSD) in zone %(zone)s. "
                "It sells: %(versions)s.") % {"version": version, "zone": rds.zone,
                                               "versions": ", ".join(rds.versions) or "-"})
            return
        offer = rds.find(data.get("rds_instance_class") or "")
        storage = data.get("rds_storage_gb")
        if offer is None or storage is None or "rds_storage_gb" in self.errors:
            return
        problem = offer.storage_problem(storage)
        if problem == "range":
            self.add_error("rds_storage_gb", _(
                "%(class)s takes %(min)d to %(max)d GB of storage.") % {
                "class": offer.instance_class, "min": offer.storage_min,
                "max": offer.storage_max})
        elif problem == "step":
            self.add_error("rds_storage_gb", _(
                "Storage for %(class)s goes in steps of %(step)d GB from %(min)d GB.") % {
                "class": offer.instance_class, "step": offer.storage_step,
                "min": offer.storage_min})

    def _clean_external(self, data: dict[str, Any]) -> None:
        dsn = data.get("external_dsn") or ""
        if not dsn:
            self.add_error("external_dsn", _("Enter the DSN of your MySQL database."))
            return
        try:
            endpoint = parse_endpoint(dsn)
        except PermanentError as exc:
            self.add_error("external_dsn", exc.message)
            return
        try:
            version = wizard_checks.check_mysql(endpoint)
        except wizard_checks.CheckFailed as exc:
            self.add_error("external_dsn", str(exc))
            return
        if version is None:
            self.warnings.append(str(_(
                "The panel could not reach %(address)s; the servers will check it again during "
                "preflight.") % {"address": endpoint.address}))
        else:
            self.warnings.append(str(_("Connected to MySQL %(version)s.") %
                                     {"version": version}))


# --- wizard step 4: hosts ----------------------------------------------------------------------


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
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off",
                                     "placeholder": "-----BEGIN OPENSSH PRIVATE KEY-----"}))
    key_file = forms.FileField(label=_("or upload the key file"), required=False)
    passphrase = forms.CharField(
        label=_("Key passphrase"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"}))
    password = forms.CharField(
        label=_("Password"), required=False, strip=False,
        widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"}))

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
            data["private_key"] = raw.decode("utf-8", "replace")
            # Show the uploaded key in the text box, so a re-rendered form keeps it.
            shown = cast(QueryDict, self.data).copy()
            shown[self.add_prefix("private_key")] = data["private_key"]
            self.data = shown
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
    """Hosts together: unique addresses, at least one server."""

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
        if servers == 1:
            self.warnings.append(str(_(
                "One server is not highly available: if it fails, the API is down until it is "
                "back. Add a second server for HA.")))


# The stubs type formset_factory's result as a plain BaseFormSet; it is ours (with warnings).
HostFormSet = cast(type[BaseHostFormSet], forms.formset_factory(
    HostForm, formset=BaseHostFormSet, extra=0, min_num=1, validate_min=True, max_num=50,
    validate_max=True))


def hosts_outside(cidr: str, addresses: list[str]) -> list[str]:
    if not cidr:
        return []
    network = ipaddress.ip_network(cidr, strict=False)
    return [a for a in addresses if ipaddress.ip_address(a) not in network]


# --- wizard step 5: K3s ------------------------------------------------------------------------


class K3sStepForm(WizardForm):
    version = forms.CharField(
        label=_("Version or channel"), initial="stable", max_length=64,
        help_text=_("A channel (stable, latest, v1.36) is resolved to its current release "
                    "when the create starts, and every node, also one added later, installs "
                    "that release; a version (v1.36.4+k3s1) is used as given."))
    install_source = forms.ChoiceField(label=_("Install from"), choices=InstallSource.choices,
                                       initial=InstallSource.OFFICIAL, widget=forms.RadioSelect)
    install_base_url = forms.URLField(
        label=_("Custom base URL"), required=False, assume_scheme="https",
        help_text=_("Serves the official layout: the install script at /, "
                    "/k3s-io/k3s/releases/download/… and /v1-release/channels."))
    extra_tls_sans = forms.CharField(
        label=_("Extra TLS SANs"), required=False,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=_("One DNS name or IP per line. The SLB address is added for you."))
    disable_traefik = forms.BooleanField(label=_("Disable Traefik"), required=False)
    taint_servers = forms.BooleanField(
        label=_("Taint servers (run workloads on agents only)"), required=False)

    def clean_install_base_url(self) -> str:
        url = self.cleaned_data.get("install_base_url") or ""
        if url and not url.startswith(("http://", "https://")):
            raise ValidationError(_("Use an http:// or https:// URL."))
        return url

    def clean_extra_tls_sans(self) -> list[str]:
        sans: list[str] = []
        bad: list[str] = []
        for line in (self.cleaned_data.get("extra_tls_sans") or "").replace(",", "\n")\
                .splitlines():
            value = line.strip()
            if not value:
                continue
            try:
                sans.append(str(ipaddress.ip_address(value)))
                continue
            except ValueError:
                pass
            if DNS_NAME.match(value):
                sans.append(value.lower())
            else:
                bad.append(value)
        if bad:
            raise ValidationError(ngettext(
                "%(values)s is neither an IP address nor a DNS name.",
                "%(values)s are neither IP addresses nor DNS names.", len(bad))
                % {"values": ", ".join(bad)})
        return list(dict.fromkeys(sans))

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        source: str = data.get("install_source") or ""
        base_url = data.get("install_base_url") or ""
        if source == InstallSource.CUSTOM and not base_url and "install_base_url" not in \
                self.errors:
            self.add_error("install_base_url", _("Enter the base URL of your K3s mirror."))
            return data
        text = (data.get("version") or "").strip()
        if not text or self.errors:
            return data
        channel, version = "", ""
        if is_channel(text):
            channel = text
        else:
            try:
                version = str(parse_version(text))
            except PermanentError:
                self.add_error("version", _("%(value)s is neither a K3s version (like "
                                            "v1.32.5+k3s1) nor a channel (stable, latest, "
                                            "v1.32).") % {"value": text})
                return data
        exists = wizard_checks.k3s_release_exists(source or "", base_url, version=version,
                                                  channel=channel)
        where = base_url if source == InstallSource.CUSTOM else InstallSource(source).label
        if exists is False:
            self.add_error("version", _("K3s %(value)s does not exist at %(source)s.")
                           % {"value": version or channel, "source": where})
        elif exists is None and channel:
            # The create resolves the channel from the panel (clusters.adapters.k3s_release).
            self.warnings.append(str(_(
                "The panel could not reach %(source)s to look up channel %(value)s; the create "
                "resolves it there when it starts and stops if it still cannot. Give an exact "
                "version to avoid that.") % {"source": where, "value": channel}))
        elif exists is None:
            self.warnings.append(str(_(
                "The panel could not reach %(source)s to check that K3s %(value)s exists; the "
                "hosts will download it during the install.") % {"source": where,
                                                                 "value": version or channel}))
        data["k3s_version"], data["k3s_channel"] = version, channel
        return data


class ReviewStepForm(WizardForm):
    billing_ack = forms.BooleanField(
        label=_("I understand that the resources above are billed to this Alibaba Cloud "
                "account until the cluster is destroyed."))
