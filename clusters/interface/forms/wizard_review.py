"""Wizard page 6: what will be billed, acknowledged before Create."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.interface.forms.common import WizardForm


class ReviewStepForm(WizardForm):
    billing_ack = forms.BooleanField(
        label=_("I understand that the resources above are billed to this Alibaba Cloud "
                "account until the cluster is destroyed."))
