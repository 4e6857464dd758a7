"""The dashboard's filter."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.models import (
    ClusterStatus,
    Health,
)


class ClusterFilterForm(forms.Form):
    q = forms.CharField(label=_("Search"), required=False, max_length=100,
                        widget=forms.TextInput(attrs={"placeholder": _("name or SLB address"),
                                                      "type": "search"}))
    status = forms.ChoiceField(label=_("Status"), required=False,
                               choices=[("", _("Any status")), *ClusterStatus.choices])
    health = forms.ChoiceField(label=_("Health"), required=False,
                               choices=[("", _("Any health")), *Health.choices])
