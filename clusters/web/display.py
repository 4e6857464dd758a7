"""How things look to a person: console links, billing, durations, health reasons.

Why a module: the same helpers serve the templates and the JSON the timeline script reads.
(Step titles are translated by the step itself: Step.display_title, clusters.core.titles.)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from clusters.adapters import etcd_members, health
from clusters.adapters.datastore_health import MESSAGES, METRIC_NAMES
from clusters.models import Cluster, ClusterStatus, Health

# A code no cluster has, to split the cluster page's reversed URL around the code's place.
_CODE_SLOT = UUID("00000000-0000-4000-8000-000000000000")


def dashboard_rows(clusters: list[Cluster]) -> list[Cluster]:
    """Give each dashboard row what its cells show, worked out once per page instead of once
    per row in the template (at 50 rows they were half of the template's render time):

    - `status_label`, `health_label`: what get_status_display/get_health_display return,
      each choice translated once (those calls hash every lazy label of the field's choices);
    - `url`: the cluster page, reversed once (the code is its only argument);
    - `created_iso`: what the `date:'c'` filter prints, the local time in ISO 8601.
    """
    statuses = {value: str(label) for value, label in ClusterStatus.choices}
    healths = {value: str(label) for value, label in Health.choices}
    prefix, suffix = reverse("clusters:cluster", args=[_CODE_SLOT]).split(str(_CODE_SLOT))
    for cluster in clusters:
        # A value the choices do not know is shown as stored, as get_FOO_display does.
        cluster.status_label = statuses.get(cluster.status, cluster.status)  # type: ignore[attr-defined]
        cluster.health_label = healths.get(cluster.health, cluster.health)  # type: ignore[attr-defined]
        cluster.url = f"{prefix}{cluster.code}{suffix}"  # type: ignore[attr-defined]
        cluster.created_iso = timezone.localtime(cluster.created_at).isoformat()  # type: ignore[attr-defined]
    return clusters


def console_url(kind: str, provider_id: str, region: str) -> str | None:
    """The Alibaba Cloud console page of a ledger row, when the console has one."""
    if not provider_id:
        return None
    kind = kind.lower()
    if kind.startswith("rds") and provider_id.startswith("rm-"):
        instance = provider_id.split(":", 1)[0]
        return (f"https://rdsnext.console.aliyun.com/detail/{quote(instance)}/basicInfo"
                f"?region={quote(region)}")
    if kind.startswith("slb") and provider_id.startswith("lb-"):
        balancer = provider_id.split(":", 1)[0]
        return f"https://slb.console.aliyun.com/slb/{quote(region)}/slbs/{quote(balancer)}"
    return None


def resource_billing(kind: str, attributes: dict | None) -> str:
    """How a ledger row is billed, for the cluster page: a CLB is pay-by-LCU, or (bought before
    2025-06-01) pay-by-specification with its spec; other rows say nothing."""
    attributes = attributes or {}
    charge = attributes.get("instance_charge_type")
    if not kind.lower().startswith("slb") or not charge:
        return ""
    if charge == "PayBySpec":
        return gettext("Pay-by-specification (%(spec)s, no longer sold)") % {
            "spec": attributes.get("spec") or "?"}
    if charge == "PayByCLCU":
        return gettext("Pay-as-you-go, pay-by-LCU")
    return str(charge)


def elapsed(started: datetime | None, finished: datetime | None,
            now: datetime | None = None) -> timedelta | None:
    if started is None:
        return None
    return (finished or now or timezone.now()) - started


def format_duration(delta: timedelta | None) -> str:
    """`42s`, `3m 05s`, `2h 07m`: short, fixed-width-ish, language-neutral."""
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _coded_reason(check: str, code: Any, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The message catalogue entry and the params to fill it for a coded reason, or ("", {})
    when `check` keeps no catalogue: datastore findings (datastore_health.MESSAGES, with
    the metric's name translated), etcd members (etcd_members.MESSAGES, with a member's own
    problem translated) and batched cloud reads (health.CLOUD_MESSAGES)."""
    if check == "datastore" and code in MESSAGES:
        if code == "unknown":
            metric = params.get("metric", "")
            params = {**params, "metric": gettext(METRIC_NAMES[metric])
                      if metric in METRIC_NAMES else metric}
        return MESSAGES[code], params
    if check == etcd_members.CHECK and code in etcd_members.MESSAGES:
        if params.get("detail_code"):
            params = {**params, "detail": etcd_members.member_error({
                "code": params["detail_code"], "params": params.get("detail_params"),
                "error": params.get("detail", "")})}
        return etcd_members.MESSAGES[code], params
    if check == health.CLOUD_CHECK and code in health.CLOUD_MESSAGES:
        return health.CLOUD_MESSAGES[code], params
    return "", {}


def health_reason(reason: Any) -> str:
    """A stored health reason in the active language: coded reasons (a code and params, see
    _coded_reason) are rendered here, so a reason stored in one language reads in the
    viewer's; other reasons are English strings or {check, message} dicts, shown as stored."""
    if not isinstance(reason, dict):
        return str(reason)
    params = reason.get("params")
    if isinstance(params, dict):
        template, shown = _coded_reason(str(reason.get("check") or ""), reason.get("code"),
                                        params)
        if template:
            try:
                return gettext(template) % shown
            except (KeyError, TypeError, ValueError):
                return str(reason.get("message", ""))
    message = reason.get("message") or reason.get("reason") or ""
    check = reason.get("check") or reason.get("name") or ""
    return f"{check}: {message}" if check and message else str(message or check or reason)
