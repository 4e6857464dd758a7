"""Template filters for the panel's pages (see clusters.web.display for the why)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import template

from clusters.web import display, step_log

register = template.Library()


@register.simple_tag
def console_url(resource: Any) -> str | None:
    return display.console_url(resource.kind, resource.provider_id, resource.region)


@register.filter
def billing(resource: Any) -> str:
    return display.resource_billing(resource.kind, resource.attributes)


@register.simple_tag
def duration(started: datetime | None, finished: datetime | None = None) -> str:
    return display.format_duration(display.elapsed(started, finished))


@register.filter
def reason_text(reason: Any) -> str:
    """A health reason is a string or a dict, depending on who wrote it (display.health_reason)."""
    return display.health_reason(reason)


@register.filter
def thousands(number: Any) -> str:
    """1234567 as 1,234,567: the log's counts are exact, and long numbers must stay readable."""
    return step_log.thousands(int(number or 0))
