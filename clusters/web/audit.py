"""The audit trail: one AuditEvent per sensitive action (kubeconfig download, create, retry,
cancel, destroy, a new cloud account).

Why here and not in views: the views are thin; a management command or the admin that does
the same thing calls `record` too, and the trail stays one table with one shape.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.http import HttpRequest

from clusters.models import AuditAction, AuditEvent, Cluster

USER_AGENT_MAX = 300


def client_address(request: HttpRequest) -> str | None:
    """The address the request came from, as the web server saw it.

    X-Forwarded-For is deliberately not read: anyone can send it, and behind a proxy the
    proxy is expected to set REMOTE_ADDR (gunicorn --forwarded-allow-ips, or a WSGI fix-up).
    """
    address = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def record(
    request: HttpRequest,
    action: AuditAction | str,
    cluster: Cluster | None = None,
    **details: Any,
) -> AuditEvent:
    """Write who (the request's user), what, when (now), from where (client address)."""
    user = request.user if request.user.is_authenticated else None
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
