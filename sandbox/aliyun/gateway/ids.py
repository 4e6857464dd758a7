"""Identifiers shaped like the real ones (`lb-` + 22 lowercase alnum, upper-case UUID RequestId)."""

from __future__ import annotations

import secrets
import string
import uuid

_ALPHABET = string.ascii_lowercase + string.digits


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def resource_id(prefix: str, length: int = 20) -> str:
    """e.g. resource_id("lb-", 22) -> "lb-bp1k3x..."; the first letters mimic a region code."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))
