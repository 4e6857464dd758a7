"""Wizard page 1: the cluster's name, its cloud account and region."""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.adapters import wizard_checks
from clusters.interface.forms.cloud_account import CloudAccountForm
from clusters.interface.forms.common import CLUSTER_NAME, WizardForm, check_region_available
from clusters.models import (
    CloudAccount,
    Cluster,
    CredentialKind,
)


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
             "credential_kind": CredentialKind.ACCESS_KEY,
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
            regions = wizard_checks.list_regions(account, region)
        except wizard_checks.CheckFailed as exc:
            self.add_error("cloud_account", str(exc))
            return
        problem = check_region_available(regions, region)
        if problem:
            self.add_error("region", problem)
