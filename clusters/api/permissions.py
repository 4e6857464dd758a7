"""Signed in (token or session), and a read-only token may only read."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import permissions
from rest_framework.request import Request

from clusters.models import ApiToken


class TokenScopePermission(permissions.BasePermission):
    message = _("This token is read-only: create a read-write token to start operations.")

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = request.auth
        if isinstance(token, ApiToken) and request.method not in permissions.SAFE_METHODS:
            return token.can_write
        return True
