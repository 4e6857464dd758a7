"""A request budget per token (per user on a session, per address when anonymous).

Why per token and not per user: one runaway script must not lock its owner's other scripts
and browser out. The rate is read at each request (PANEL_API_REQUESTS_PER_MINUTE), so a
test or an operator can change it without a restart of the class."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from clusters.models import ApiToken


class PerTokenThrottle(SimpleRateThrottle):
    scope = "api"

    def get_rate(self) -> str:
        return f"{settings.PANEL_API_REQUESTS_PER_MINUTE}/min"

    def get_cache_key(self, request: Request, view: Any) -> str:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.digest[:32]}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = f"ip-{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
