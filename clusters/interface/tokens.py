"""API tokens: issued on the user's token page, shown once, kept as a digest, revocable.

Why here (not in clusters.api): the page that issues and revokes them is the web layer's, the
check on every request is the API's; both need the same rules (format, digest, expiry).

What the audit trail records about token use, and why not every request: a CLI following a
run asks for it every second, and one audit row per GET would bury the rows that matter. So:
- every write (create, retry, cancel, destroy, add/remove node, upgrade, renew, kubeconfig
  download) is audited as it is from the browser, and its row names the token;
- the first use of each token on each day (UTC) writes one "API token used" row (with the
  address and the method and path of that request), so "was this token used, from where,
  on which days" is answerable from the trail alone;
- `last_used_at` and `last_used_ip` on the token itself are refreshed at most once a minute
  and shown on the token page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from clusters.interface import audit
from clusters.models import ApiToken, AuditAction, TokenScope

TOKEN_PREFIX = "pnl_"  # noqa: S105 - not a secret: says "a panel token" to secret scanners
LAST_USED_EVERY = timedelta(seconds=60)
MAX_LIFETIME_DAYS = 366


def digest(plaintext: str) -> str:
    """SHA-256 of the token (see clusters.models.ApiToken for why not a slow hash)."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class Issued:
    token: ApiToken
    plaintext: str  # shown once to its user, never stored


def issue(user: Any, name: str, scope: str, expires_at: datetime) -> Issued:
    """A new token for `user`: 256 random bits, only its digest is saved."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, scope=TokenScope(scope), expires_at=expires_at,
        prefix=plaintext[: len(TOKEN_PREFIX) + 6], digest=digest(plaintext))
    return Issued(token, plaintext)


def revoke(token: ApiToken) -> bool:
    """Revoke now; False when it already was (a second click changes nothing)."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now())
    token.refresh_from_db()
    return bool(changed)


def find(plaintext: str) -> ApiToken | None:
    """The usable token with this value (not revoked, not expired), or None."""
    if not plaintext.startswith(TOKEN_PREFIX):
        return None
    return (ApiToken.objects.usable().select_related("user")
            .filter(digest=digest(plaintext), user__is_active=True).first())


def record_use(request: HttpRequest, token: ApiToken) -> None:
    """Refresh last use (at most once a minute) and audit the first use of the day.

    Most requests write nothing: `token` was just read, so its last use and audited day are
    known; each conditional UPDATE then decides under concurrency (two requests at once
    audit the day once)."""
    now = timezone.now()
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY:
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
        ApiToken.objects.filter(stale, pk=token.pk).update(
            last_used_at=now, last_used_ip=audit.client_address(request))
    today = now.date()
    if token.audited_on == today:
        return
    with transaction.atomic():
        first_today = ApiToken.objects.filter(pk=token.pk).exclude(audited_on=today).update(
            audited_on=today)
        if first_today:
            audit.record(request, AuditAction.API_TOKEN_USE, None, actor=token.user,
                         method=request.method, path=request.path[:200])
