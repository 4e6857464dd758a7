"""Signature v1.0 (HMAC-SHA1) of the RPC style, computed exactly as the gateway does.

Why: the SDK compares the text after the colon of a SignatureDoesNotMatch message with its
own string-to-sign to tell a wrong secret from other mismatches, so the string we build must
be byte-identical to the SDK's for a correct request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import quote


def percent_encode(text: str) -> str:
    """RFC 3986 encoding used by Aliyun: only A-Z a-z 0-9 - _ . ~ stay as they are."""
    return quote(text, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Sorted name=value pairs, each side percent-encoded; blank values are kept."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(text: str, secret: str) -> str:
    digest = hmac.new(f"{secret}&".encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
