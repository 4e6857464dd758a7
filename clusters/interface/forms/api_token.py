"""The token page's form: a name, a scope and a lifetime (clusters.interface.tokens issues)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clusters.models import ApiToken, TokenScope

LIFETIMES = (("7", _("7 days")), ("30", _("30 days")), ("90", _("90 days")),
             ("365", _("1 year")))


class ApiTokenForm(forms.Form):
    name = forms.CharField(label=_("Token name"), max_length=100,
                           help_text=_("Says where it is used, e.g. “ci-deploy”; the audit "
                                       "trail names it."))
    scope = forms.ChoiceField(label=_("Scope"), choices=TokenScope.choices,
                              initial=TokenScope.READ, widget=forms.RadioSelect,
                              help_text=_("A read-only token can start no operation."))
    lifetime = forms.ChoiceField(label=_("Expires after"), choices=LIFETIMES, initial="30")

    def __init__(self, *args: Any, owner: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if ApiToken.objects.filter(user=self.owner, name=name).exists():
            raise ValidationError(_("You already have a token with this name."))
        return name

    def expires_at(self) -> datetime:
        return timezone.now() + timedelta(days=int(self.cleaned_data["lifetime"]))
