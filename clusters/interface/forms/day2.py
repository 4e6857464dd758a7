"""The cluster page's day-2 forms, shared by the page and the REST API: add a node (checked
as the wizard checks hosts), the target of an upgrade (valid only when
clusters.operations.upgrade accepts it), a personal kubeconfig's lifetime. One set of rules
for both."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clusters.interface.forms.wizard_hosts import HostForm
from clusters.models import Cluster
from clusters.operations import kube_credentials, upgrade


class AddNodeForm(HostForm):
    """One host, checked as the wizard checks hosts (address, port, user, key or password)."""

    AUTH_CHOICES = (("key", HostForm.AUTH_CHOICES[0][1]), ("password", HostForm.AUTH_CHOICES[2][1]))

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        kwargs["prefix"] = "node"
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        del self.fields["key_file"]
        cast(forms.ChoiceField, self.fields["auth"]).choices = self.AUTH_CHOICES

    def clean_private_ip(self) -> str:
        address = super().clean_private_ip()
        if self.cluster.nodes.present().filter(private_ip=address).exists():
            raise ValidationError(_("%(value)s is already a node of this cluster.") %
                                  {"value": address})
        return address

    def host(self) -> dict[str, Any]:
        """What operations.start_add_nodes takes."""
        data = self.cleaned_data
        by_key = data["auth"] == "key"
        return {
            "role": data["role"], "private_ip": data["private_ip"],
            "public_ip": data.get("public_ip") or None, "ssh_port": data["ssh_port"],
            "ssh_user": data["ssh_user"],
            "ssh_private_key": data.get("private_key", "") if by_key else "",
            "ssh_key_passphrase": data.get("passphrase", "") if by_key else "",
            "ssh_password": "" if by_key else data.get("password", ""),
        }


class AddInstancesForm(forms.Form):
    """How many new instances "Add instances" buys; each like the cluster's first ones (its
    order, security group and key pair: operations.start_add_instances). The owner confirms
    the billing (operations.billed_summary) before anything is bought."""

    servers = forms.IntegerField(label=gettext_lazy("New servers"), initial=0, min_value=0,
                                 max_value=9)
    agents = forms.IntegerField(label=gettext_lazy("New agents"), initial=1, min_value=0,
                                max_value=50)
    confirm_billing = forms.BooleanField(
        label=gettext_lazy("I understand the new instances are billed from their creation"),
        required=True)

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        kwargs["prefix"] = "instances"
        super().__init__(*args, **kwargs)
        self.cluster = cluster

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if ("servers" in data and "agents" in data
                and int(data["servers"]) + int(data["agents"]) < 1):
            raise ValidationError(_("Add at least one server or agent."))
        return data


class UpgradeForm(forms.Form):
    """The target of an upgrade; valid only when clusters.operations.upgrade accepts it."""

    version = forms.CharField(
        label=gettext_lazy("Target version or channel"), max_length=64,
        help_text=gettext_lazy("A release such as v1.32.5+k3s1, or a channel (stable, v1.32) "
                               "which is pinned to its current release."))

    def __init__(self, *args: Any, cluster: Cluster, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster = cluster
        self.target: upgrade.UpgradeTarget | None = None

    def clean_version(self) -> str:
        text = self.cleaned_data["version"].strip()
        try:
            self.target = upgrade.check_target(self.cluster, text)
        except upgrade.UpgradeRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


class KubeconfigForm(forms.Form):
    """How long a personal kubeconfig stays valid (clusters/operations/kube_credentials)."""

    lifetime = forms.ChoiceField(
        label=gettext_lazy("Valid for"), initial=kube_credentials.DEFAULT_LIFETIME,
        choices=[(key, label) for key, (_seconds, label) in kube_credentials.LIFETIMES.items()])
