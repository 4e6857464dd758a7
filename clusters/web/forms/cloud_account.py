"""The cloud-accounts page: an AccessKey, checked live, its secret never shown again."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.adapters import wizard_checks
from clusters.adapters.aliyun import Region
from clusters.models import CloudAccount
from clusters.web.forms.common import check_region_available


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
