"""The cloud-accounts page: credentials of one of four kinds, checked live, secrets never shown
again.

Why four kinds: a careful user lends the panel no long-lived key it does not need. A RAM
role can be assumed with a RAM user's AccessKey that may do nothing but sts:AssumeRole, or,
when the panel runs on ECS, with the instance's own RAM role (nothing secret is stored then).
A pasted STS token works until it expires. Which fields a kind uses is said once here
(`KIND_FIELDS`); the others are emptied before saving, so no stray secret is kept.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.adapters import wizard_checks
from clusters.adapters.aliyun import Region
from clusters.adapters.aliyun.auth import (
    external_id_problem,
    role_arn_problem,
    session_policy_problem,
)
from clusters.adapters.cloud import ecs_role_offered
from clusters.interface.forms.common import check_region_available
from clusters.models import CloudAccount, CredentialKind

# The fields each kind needs (required) and may have (optional).
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    CredentialKind.ACCESS_KEY: (("access_key_id", "access_key_secret"), ()),
    CredentialKind.RAM_ROLE: (("access_key_id", "access_key_secret", "role_arn"),
                              ("external_id", "session_policy")),
    CredentialKind.ECS_ROLE: (("ecs_role_name",), ()),
    CredentialKind.STS_TOKEN: (("access_key_id", "access_key_secret", "security_token"),
                               ("token_expires_at",)),
}
CREDENTIAL_FIELDS = ("access_key_id", "access_key_secret", "role_arn", "external_id",
                     "session_policy", "ecs_role_name", "security_token", "token_expires_at")
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{12,64}")
_STS_KEY_ID = re.compile(r"STS\.[A-Za-z0-9]{8,128}")


class CloudAccountForm(forms.ModelForm):
    """New credentials, accepted only after DescribeRegions worked with them."""

    credential_kind = forms.ChoiceField(
        label=_("Credential kind"), choices=CredentialKind.choices,
        initial=CredentialKind.ACCESS_KEY, widget=forms.RadioSelect,
        help_text=_("Prefer a RAM role: the panel then signs with temporary STS keys it renews "
                    "itself. With “RAM role, assumed with a RAM user's AccessKey”, give that "
                    "user no permission but sts:AssumeRole on the role."))
    access_key_secret = forms.CharField(
        label=_("AccessKey secret"), strip=True, max_length=128, required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted; it is never shown again."))
    role_arn = forms.CharField(
        label=_("RAM role ARN"), required=False, max_length=200,
        help_text=_("acs:ram::<account id>:role/<role name>, from the role's page in the RAM "
                    "console."))
    external_id = forms.CharField(
        label=_("ExternalId"), required=False, max_length=1224,
        help_text=_("If the role's trust policy has an sts:ExternalId condition, the same "
                    "value."))
    session_policy = forms.CharField(
        label=_("Session policy (optional)"), required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=_("A RAM policy (JSON, at most 2048 characters) that narrows what the "
                    "temporary keys may do; they get what both it and the role allow."))
    ecs_role_name = forms.CharField(
        label=_("ECS instance RAM role"), required=False, max_length=64,
        help_text=_("The RAM role attached to the ECS instance the panel runs on; its keys are "
                    "read from the instance metadata service. Nothing secret is stored."))
    security_token = forms.CharField(
        label=_("STS SecurityToken"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("With the STS AccessKeyId (STS.…) and AccessKeySecret of the same "
                    "AssumeRole answer. It stops working when it expires; it is never renewed."))
    token_expires_at = forms.DateTimeField(
        label=_("STS token expiry (UTC, optional)"), required=False,
        help_text=_("The Expiration of the AssumeRole answer, e.g. 2026-01-31T08:00:00Z."),
        input_formats=["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"])

    class Meta:
        model = CloudAccount
        fields = ("name", "credential_kind", "access_key_id", "access_key_secret", "role_arn",
                  "external_id", "session_policy", "ecs_role_name", "security_token",
                  "token_expires_at", "default_region")
        widgets = {"default_region": forms.TextInput(attrs={"list": "aliyun-regions"})}

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner
        self.regions: list[Region] = []
        self.fields["access_key_id"].widget.attrs["autocomplete"] = "off"
        self.fields["access_key_id"].help_text = _(
            "A RAM user's AccessKey ID (LTAI…), or for an STS token its STS.… ID.")

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if CloudAccount.objects.filter(owner=self.owner, name=name).exists():
            raise ValidationError(_("You already have a cloud account with this name."))
        return name

    def clean_access_key_id(self) -> str:
        value = self.cleaned_data["access_key_id"].strip()
        if not value:
            return value
        if self.data.get(self.add_prefix("credential_kind")) == CredentialKind.STS_TOKEN:
            if not _STS_KEY_ID.fullmatch(value):
                raise ValidationError(_("An STS AccessKeyId starts with STS. (from the "
                                        "AssumeRole answer)."))
        elif not _ACCESS_KEY_ID.fullmatch(value):
            raise ValidationError(_("An AccessKey ID is 12 to 64 letters and digits, "
                                    "for example LTAI5t…"))
        return value

    def clean_role_arn(self) -> str:
        value = self.cleaned_data["role_arn"].strip()
        if value and role_arn_problem(value):
            raise ValidationError(_("A RAM role ARN looks like acs:ram::<account id>:role/"
                                    "<role name>."))
        return value

    def clean_external_id(self) -> str:
        value = self.cleaned_data["external_id"].strip()
        if external_id_problem(value):
            raise ValidationError(_("An ExternalId is 2 to 1224 letters, digits or = , . @ : "
                                    "/ - _."))
        return value

    def clean_session_policy(self) -> str:
        value = self.cleaned_data["session_policy"].strip()
        if session_policy_problem(value):
            raise ValidationError(_('A session policy is a RAM policy document of at most '
                                    '2048 characters: {"Version": "1", "Statement": [...]}.'))
        return value

    def clean_ecs_role_name(self) -> str:
        value = self.cleaned_data["ecs_role_name"].strip()
        if value and not re.fullmatch(r"[A-Za-z0-9.\-]{1,64}", value):
            raise ValidationError(_("A RAM role name is 1 to 64 letters, digits, '.' or '-'."))
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind = data.get("credential_kind") or CredentialKind.ACCESS_KEY
        required, optional = KIND_FIELDS[kind]
        for name in required:
            if not data.get(name) and name not in self.errors:
                self.add_error(name, _("Required for this kind of credential."))
        role = data.get("ecs_role_name")
        if kind == CredentialKind.ECS_ROLE and role and not ecs_role_offered(role):
            self.add_error("ecs_role_name", _(
                "This panel does not offer the role %(role)s of its own ECS instance: that role "
                "is its operator's identity. Ask the operator to list it in PANEL_ECS_ROLES, or "
                "use a RAM role or an AccessKey.") % {"role": role})
        for name in CREDENTIAL_FIELDS:  # what this kind does not use is not kept
            if name not in required and name not in optional:
                data[name] = None if name == "token_expires_at" else ""
        expires = data.get("token_expires_at")
        if expires is not None and expires.replace(tzinfo=expires.tzinfo or UTC) <= datetime.now(
                UTC):
            self.add_error("token_expires_at", _("This STS token has already expired."))
        if not self.errors:
            self._check_live(data)
        return data

    def _check_live(self, data: dict[str, Any]) -> None:
        """DescribeRegions with the credentials (for a role: after assuming it)."""
        region = data.get("default_region") or "cn-hangzhou"
        candidate = CloudAccount(owner=self.owner, **{
            name: data.get(name) for name in ("credential_kind", *CREDENTIAL_FIELDS)})
        kind = data.get("credential_kind")
        where: dict[str, str] = {CredentialKind.ECS_ROLE: "ecs_role_name",
                 CredentialKind.STS_TOKEN: "security_token",
                                 CredentialKind.RAM_ROLE: "role_arn"}
        field = where.get(str(kind or ""), "access_key_secret")
        try:
            self.regions = wizard_checks.list_regions(candidate, region)
        except wizard_checks.CheckFailed as exc:
            self.add_error(field, str(exc))
            return
        problem = check_region_available(self.regions, region)
        if problem:
            self.add_error("default_region", problem)

    def save(self, commit: bool = True) -> CloudAccount:
        account = super().save(commit=False)
        account.owner = self.owner
        if commit:
            account.save()
        return account
