"""How things look to a person: translated step titles, console links, durations.

Why a module: the step engine stores titles in English (they are data, written once per
run); the pages translate the known ones here so a Chinese reader sees Chinese, and the same
helpers serve the templates and the JSON the timeline script reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from clusters.adapters.datastore_health import MESSAGES, METRIC_NAMES

# The fixed titles of the step graphs in clusters/operations/ (and of older runs); marked so
# makemessages finds them. tests/ui/test_i18n.py fails when create.py gains a title missing here.
KNOWN_STEP_TITLES = (
    gettext_noop("Check credentials, region, zone, VPC and vSwitch"),
    gettext_noop("Check every host over SSH"),
    gettext_noop("Create the RDS MySQL instance"),
    gettext_noop("Whitelist servers, create account and database, fix parameters"),
    gettext_noop("Prove the datastore accepts K3s's schema"),
    gettext_noop("Create the SLB (its address goes into the certificate)"),
    gettext_noop("Add servers to the SLB and start TCP 6443"),
    gettext_noop("Verify the API through the SLB"),
    gettext_noop("Fetch and rewrite the kubeconfig"),
    gettext_noop("First health check"),
    gettext_noop("Fetch the kubeconfig and point it at the SLB"),
    gettext_noop("Verify the API through the SLB as kubectl will"),
    # clusters/operations/upgrade.py, kubeconfig.py
    gettext_noop("Back up the RDS datastore (CreateBackup) and wait until it has finished"),
    gettext_noop("Warn that your own MySQL is not backed up automatically"),
    gettext_noop("Fetch the kubeconfig from a server"),
    gettext_noop("Restart K3s on that server if the certificate expires within 30 days"),
    gettext_noop("Fetch the renewed kubeconfig"),
    # clusters/operations/destroy.py, nodes.py
    gettext_noop("Remove K3s from every host"),
    gettext_noop("Delete the SLB"),
    gettext_noop("Delete the RDS instance and wait until it is gone"),
    gettext_noop("Close the ledger and mark the cluster destroyed"),
    gettext_noop("Check the new hosts over SSH"),
    gettext_noop("Add the new servers to the RDS whitelist"),
    gettext_noop("Check the cluster's health"),
    gettext_noop("Cordon and drain the node"),
    gettext_noop("Take the server out of the SLB"),
    gettext_noop("Uninstall K3s on the host"),
    gettext_noop("Delete the node from the cluster's API"),
    gettext_noop("Shrink the RDS whitelist to the remaining servers"),
)

_PATTERNED_TITLES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^Install K3s server (?P<n>\d+) \((?P<ip>[^)]*)\)$"),
     lambda m: gettext("Install K3s server %(n)s (%(ip)s)") % m.groupdict()),
    (re.compile(r"^Install K3s agent \((?P<ip>[^)]*)\)$"),
     lambda m: gettext("Install K3s agent (%(ip)s)") % m.groupdict()),
    (re.compile(r"^Upgrade K3s server (?P<n>\d+) \((?P<ip>[^)]*)\) to (?P<version>\S+)$"),
     lambda m: gettext("Upgrade K3s server %(n)s (%(ip)s) to %(version)s") % m.groupdict()),
    (re.compile(r"^Upgrade K3s agent \((?P<ip>[^)]*)\) to (?P<version>\S+)$"),
     lambda m: gettext("Upgrade K3s agent (%(ip)s) to %(version)s") % m.groupdict()),
)


def step_title(title: str) -> str:
    """The title in the active language when it is one the panel knows, else as stored."""
    for pattern, render in _PATTERNED_TITLES:
        match = pattern.match(title)
        if match:
            return render(match)
    return gettext(title) if title in KNOWN_STEP_TITLES else title


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


def health_reason(reason: Any) -> str:
    """A stored health reason in the active language: datastore findings are kept as a code
    and params (clusters.adapters.datastore_health.MESSAGES) and rendered here; other reasons are
    English strings or {check, message} dicts, shown as stored."""
    if isinstance(reason, dict):
        code, params = reason.get("code"), reason.get("params")
        if reason.get("check") == "datastore" and code in MESSAGES and isinstance(params, dict):
            shown = dict(params)
            if code == "unknown":
                metric = shown.get("metric", "")
                shown["metric"] = gettext(METRIC_NAMES[metric]) if metric in METRIC_NAMES \
                    else metric
            try:
                return gettext(MESSAGES[code]) % shown
            except (KeyError, TypeError, ValueError):
                return str(reason.get("message", ""))
        message = reason.get("message") or reason.get("reason") or ""
        check = reason.get("check") or reason.get("name") or ""
        return f"{check}: {message}" if check and message else str(message or check or reason)
    return str(reason)
