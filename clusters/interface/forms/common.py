"""What every form of the panel shares: name and address patterns, the regions offered, the
MySQL versions RDS sells, and the wizard's base form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop

from clusters.adapters.aliyun import Region

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
# RDS PostgreSQL: 14-17 are what kine's CI tests, 18 what K3s QA validated (today-2026.md).
RDS_PG_DEFAULT_VERSION = "17.0"
RDS_PG_VERSIONS = (
    ("17.0", _("PostgreSQL 17 (recommended)")),
    ("18.0", _("PostgreSQL 18")),
    ("16.0", _("PostgreSQL 16")),
    ("15.0", _("PostgreSQL 15")),
    ("14.0", _("PostgreSQL 14")),
)
# Django's forms translate their label suffix; Chinese uses the full-width colon.
gettext_noop(":")


class SecretTextInput(forms.TextInput):
    """A text box that never writes its value into the page (a DSN holds a password)."""

    def format_value(self, value: Any) -> str | None:
        return None


class SecretTextarea(forms.Textarea):
    """A text area that never writes its value into the page (a private key)."""

    def format_value(self, value: Any) -> str | None:
        return None


def secret_widget(**attrs: str) -> forms.PasswordInput:
    """A password box that is always empty when the page is shown again."""
    return forms.PasswordInput(render_value=False, attrs=attrs)


SAVED_HELP = _("Saved. Leave blank to keep it, or type a new one.")


def keep_saved_secrets(form: forms.Form, names: tuple[str, ...], saved: Mapping[str, str],
                       shown: Mapping[str, str] | None = None) -> None:
    """Secrets are never written back into a page; what was typed before is kept server-side
    (encrypted in the wizard's state) and `saved` hands it in. A secret box left blank means
    "keep it": the saved value goes into the bound data before validation, so every rule
    still checks it. The box says it is saved (`shown`: a redacted form to name, e.g. the DSN
    with *** for its password)."""
    if form.is_bound:
        data = cast(Any, form.data).copy()
        for name in names:
            key = form.add_prefix(name)
            if not data.get(key) and saved.get(name):
                data[key] = saved[name]
        form.data = data
    for name in names:
        if not saved.get(name):
            continue
        field = form.fields[name]
        text: Any = SAVED_HELP
        if shown and shown.get(name):
            text = _("Saved: %(value)s. Leave blank to keep it, or type a new one.") % {
                "value": shown[name]}
        field.help_text = text
        field.widget.attrs["placeholder"] = str(_("saved, leave blank to keep"))
        field.widget.attrs["data-saved"] = "1"


def failed_secrets(form: forms.Form, names: tuple[str, ...]) -> list[str]:
    """The secrets among `names` that failed their checks, their boxes no longer "saved".

    Why: keeping a password RDS would refuse, or a key that does not parse, only makes the
    next blank box fail again; the person types a new one (or none, for a generated one).
    Call after validation.
    """
    failed = [name for name in names if name in form.errors]
    for name in failed:
        field, base = form.fields[name], form.base_fields[name]
        field.help_text = base.help_text
        field.widget.attrs = dict(base.widget.attrs)
    return failed


class WizardForm(forms.Form):
    """A wizard step's form; `warnings` are shown but do not stop the user."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warnings: list[str] = []


def check_region_available(regions: list[Region], region: str) -> str | None:
    ids = sorted(r.region_id for r in regions)
    if region not in ids:
        return str(_("This AccessKey cannot use region %(region)s. Available: %(ids)s.") % {
            "region": region, "ids": ", ".join(ids) or "-"})
    return None


def with_initials(form_class: type[forms.BaseForm], given: Mapping[str, Any],
                  names: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The bound data a page would post for `form_class`: each field as `given`, else its
    initial value (what the page starts with). Why: a script that leaves a field out (the
    REST API) gets the default a person who left it alone gets, not "required"."""
    blank = form_class(**kwargs)
    data: dict[str, Any] = {}
    for name in names or list(blank.fields):
        if name in given and given[name] is not None:
            data[name] = given[name]
        else:
            initial = blank.initial.get(name, blank.fields[name].initial)
            if initial is not None:
                data[name] = initial
    return data
