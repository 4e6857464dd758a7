"""`Authorization: Bearer <token>`: the token's user, with the token as `request.auth`.

A token that is unknown, revoked or past its expiry is refused with 401 and one sentence
that does not say which of the three it was (a guesser learns nothing)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from clusters.interface import tokens
from clusters.models import ApiToken


class TokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Send the token as: Authorization: "
                                                    "Bearer <token>."))
        token = tokens.find(header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed(_("This API token is not valid: it is "
                                                    "unknown, revoked or expired."))
        request._request.auth = token  # type: ignore[attr-defined]  # the audit names it
        tokens.record_use(request._request, token)
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class TokenScheme(OpenApiAuthenticationExtension):
    """How the schema (and Swagger UI's Authorize button) describes the token."""

    target_class = TokenAuthentication
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "An API token from Account → API tokens."}
