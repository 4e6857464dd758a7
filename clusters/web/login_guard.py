"""Sign-in protection: django-axes locks a username from one address after repeated failures;
this module says so on a page and writes each failure to the audit trail.

Why per username AND address (settings.AXES_LOCKOUT_PARAMETERS): locking a username alone
would let anyone lock any user out from everywhere by typing wrong passwords for it; locking
an address alone would lock out everyone behind one NAT or office proxy because of one
person. Per pair, an attacker locks only themselves; guessing many usernames from one
address is slowed by the reverse proxy's per-address rate limit on the login paths
(docs/production.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from clusters.interface import audit

LOCKED_OUT_STATUS = 429


def retry_after(request: HttpRequest) -> datetime:
    """When this username may sign in again from this address.

    Each failed attempt during a lockout starts the cool-off again
    (AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so it counts from this attempt.
    """
    attempt = getattr(request, "axes_attempt_time", None) or timezone.now()
    return attempt + (get_cool_off(request) or timedelta(0))


def locked_out(request: HttpRequest, original_response: HttpResponse | None = None,
               credentials: dict[str, Any] | None = None) -> HttpResponse:
    """The page axes shows instead of the login form (settings.AXES_LOCKOUT_CALLABLE)."""
    until = retry_after(request)
    minutes = max(1, int((until - timezone.now()).total_seconds() + 59) // 60)
    response = render(request, "registration/locked_out.html", {
        "username": (credentials or {}).get("username", ""),
        "until": until, "minutes": minutes,
    }, status=LOCKED_OUT_STATUS)
    response["Retry-After"] = str(minutes * 60)
    return response


def on_login_failed(sender: object, credentials: dict[str, Any],
                    request: HttpRequest | None = None, **_: object) -> None:
    """Django's user_login_failed: one audit event with the name tried and the address.

    `credentials` is Django's cleansed copy (the password already replaced); only the
    username is read from it, and the password never reaches the trail.
    """
    if request is None:
        return
    audit.record_login_failure(
        request, str(credentials.get("username") or ""),
        locked_out=bool(getattr(request, "axes_locked_out", False)))
