"""The audit trail: one AuditEvent per sensitive action (kubeconfig download, create, retry,
cancel, destroy, a new cloud account, a failed sign-in).

Why here and not in views: the views are thin; a management command or the admin that does
the same thing calls `record` too, and the trail stays one table with one shape.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from clusters.models import ApiToken, AuditAction, AuditEvent, Cluster

USER_AGENT_MAX = 300
USERNAME_MAX = 150


def client_address(request: HttpRequest) -> str | None:
    """The address the request came from: the one place that decides it (the audit trail
    and the login lockout, settings.AXES_CLIENT_IP_CALLABLE, both ask here).

    Without trusted proxies (settings.PANEL_TRUSTED_PROXIES = 0) it is REMOTE_ADDR, and
    X-Forwarded-For is ignored: anyone can send it. Behind N trusted proxies, each appends
    the address it saw to X-Forwarded-For, so the client is the N-th entry from the right;
    what the client itself wrote there (left of it) is never believed. A request with fewer
    entries than N did not pass through the proxies: REMOTE_ADDR again.
    """
    address = request.META.get("REMOTE_ADDR", "")
    trusted = settings.PANEL_TRUSTED_PROXIES
    if trusted:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [hop for hop in hops if hop]
        if len(hops) >= trusted:
            address = hops[-trusted]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def record(
    request: HttpRequest,
    action: AuditAction | str,
    cluster: Cluster | None = None,
    *,
    actor: Any = None,
    **details: Any,
) -> AuditEvent:
    """Write who (the request's user), what, when (now), from where (client address).

    A request authenticated by an API token (clusters.api.auth sets `request.auth` to it)
    names the token, so the trail says which script did it. `actor`: the user, when the
    request does not carry it yet (a token being checked).
    """
    user = actor or (request.user if request.user.is_authenticated else None)
    token = getattr(request, "auth", None)
    if isinstance(token, ApiToken):
        details = {"api_token": token.name, **details}
    return AuditEvent.objects.create(
        user=user,
        username=user.get_username() if user else "",
        action=action,
        cluster=cluster,
        cluster_name=cluster.name if cluster else "",
        ip_address=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX],
        details=details,
    )


def record_login_failure(request: HttpRequest, username: str, *, locked_out: bool) -> AuditEvent:
    """A failed sign-in: the user name tried and the client address, never the password."""
    return AuditEvent.objects.create(
        user=None,
        username=username[:USERNAME_MAX],
        action=AuditAction.LOGIN_FAILED,
        ip_address=client_address(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX],
        details={"path": request.path[:200], "locked_out": locked_out},
    )
