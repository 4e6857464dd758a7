"""Signed in (token or session), and a read-only token may only read.

"Read" means looking at the panel's records, not taking a credential away: a view whose GET
hands out a secret that acts on a cluster (the cluster-admin kubeconfig) says so with
``hands_out_credentials = True`` and needs a read-write token like a write does. A read-only
token is what one gives a dashboard or a CI job that only watches; it must not be a way to
become cluster-admin. tests/ui/test_every_url.py reads the same attribute, so a new
credential download is covered the day it is marked.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions
from rest_framework.request import Request

from clusters.models import ApiToken

#: The view attribute that marks a GET handing out a credential (see the module docstring).
HANDS_OUT_CREDENTIALS = "hands_out_credentials"


def hands_out_credentials(view: Any) -> bool:
    """Whether the view's GET answers with a credential (read-write tokens only)."""
    return bool(getattr(view, HANDS_OUT_CREDENTIALS, False))


class TokenScopePermission(permissions.BasePermission):
    message = _("This token is read-only: create a read-write token to start operations.")
    credential_message = _("This token is read-only: downloading a kubeconfig or another "
                           "credential needs a read-write token.")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = request.auth
        if not isinstance(token, ApiToken) or token.can_write:
            return True
        if request.method not in permissions.SAFE_METHODS:
            return False
        if hands_out_credentials(view):
            self.message = self.credential_message
            return False
        return True
