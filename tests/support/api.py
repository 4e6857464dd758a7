"""Helpers for the REST API's tests: tokens and clients that send them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from clusters.interface import tokens


def issue(user: Any, name: str = "ci", scope: str = "write", days: int = 30) -> str:
    """A new token's value for `user` (as the token page would issue it)."""
    return tokens.issue(user, name, scope, timezone.now() + timedelta(days=days)).plaintext


def bearer(token: str, **kwargs: Any) -> Client:
    """A client that sends `Authorization: Bearer <token>` and no cookie."""
    return Client(HTTP_AUTHORIZATION=f"Bearer {token}", **kwargs)


def post_json(client: Client, url: str, body: Any = None, **extra: Any) -> Any:
    return client.post(url, body if body is not None else {}, content_type="application/json",
                       **extra)
