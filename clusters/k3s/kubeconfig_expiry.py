"""When the stored kubeconfig's client certificate needs attention.

Why one place: the cluster page warns, and the renewal run decides whether to restart K3s,
by the same 30-day rule (K3s renews certificates within 90 days of expiry when it starts, so a
restart 30 days ahead always leaves time to act).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

WARN_WITHIN = timedelta(days=30)


@dataclass(frozen=True)
class ExpiryNotice:
    expires_at: datetime
    expired: bool
    days_left: int


def expires_soon(expires_at: datetime | None, now: datetime | None = None) -> bool:
    return expires_at is not None and expires_at - (now or timezone.now()) <= WARN_WITHIN


def notice(expires_at: datetime | None, now: datetime | None = None) -> ExpiryNotice | None:
    """A notice when the certificate expires within 30 days (or has expired), else None."""
    now = now or timezone.now()
    if not expires_soon(expires_at, now):
        return None
    assert expires_at is not None
    left = expires_at - now
    return ExpiryNotice(expires_at=expires_at, expired=left <= timedelta(0),
                        days_left=max(0, left.days))
