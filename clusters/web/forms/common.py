"""What every form of the panel shares: name and address patterns, the regions offered, the
MySQL versions RDS sells, and the wizard's base form."""

from __future__ import annotations

import re
from typing import Any

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
# Django's forms translate their label suffix; Chinese uses the full-width colon.
gettext_noop(":")


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
