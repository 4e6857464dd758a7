"""One error shape for every endpoint:

    {"detail": "what went wrong", "code": "invalid", "fields": {"network.zone": ["..."]}}

`fields` only for a request that broke field rules, keyed by the field's path in the
request (the wizard's messages, clusters.interface.cluster_spec); `code` is DRF's
(not_authenticated, authentication_failed, permission_denied, not_found, throttled,
invalid, refused for an operation the cluster's state refuses)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_handler


class FieldErrors(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid"

    def __init__(self, fields: dict[str, list[str]], warnings: list[str] | None = None) -> None:
        super().__init__(_("Some fields are not valid: see fields."))
        self.fields = fields
        self.warnings = warnings or []


class Refused(exceptions.APIException):
    """An operation the cluster's state does not allow now (OperationRefused's message)."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "refused"


def _flatten(value: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(value, dict):
        found: dict[str, list[str]] = {}
        for key, inner in value.items():
            found.update(_flatten(inner, f"{prefix}{key}."))
        return found
    if isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        found = {}
        for index, inner in enumerate(value):
            found.update(_flatten(inner, f"{prefix}{index}."))
        return found
    items = value if isinstance(value, list) else [value]
    return {prefix.rstrip(".") or "non_field_errors": [str(v) for v in items]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, Http404):  # another user's object too: the same plain "Not found."
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_handler(exc, context)
    if response is None:
        return None
    body: dict[str, Any]
    if isinstance(exc, FieldErrors):
        body = {"detail": str(exc.detail), "code": "invalid", "fields": exc.fields}
        if exc.warnings:
            body["warnings"] = exc.warnings
    elif isinstance(exc, exceptions.ValidationError):
        body = {"detail": _("Some fields are not valid: see fields."), "code": "invalid",
                "fields": _flatten(exc.detail)}
    elif isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = getattr(detail, "code", None) or exc.default_code
        body = {"detail": str(detail), "code": str(code)}
    else:
        body = {"detail": str(response.data), "code": "error"}
    response.data = body
    return response
