"""Every way a secret can be written down, for tests that search output for leaks.

Why separate from clusters.core.redaction: a test must not reuse the code it checks. This
list is written from the encoders themselves (urllib, base64, shlex, json, yaml, repr).
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

import yaml


def _lower_hex(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "%" and i + 2 < len(text):
            out.append(text[i:i + 3].lower())
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def encodings(secret: str, users: Iterable[str] = ()) -> dict[str, str]:
    """Each encoding of `secret` by name (basic auth once per user in `users`)."""
    forms = {
        "raw": secret,
        "quote": quote(secret),
        "quote-safe-none": quote(secret, safe=""),
        "quote_plus": quote_plus(secret),
        "quote-lower-hex": _lower_hex(quote(secret, safe="")),
        "quote_plus-lower-hex": _lower_hex(quote_plus(secret)),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(secret.encode()).decode(),
        "shlex": shlex.quote(secret),
        "json": json.dumps(secret)[1:-1],
        "json-unicode": json.dumps(secret, ensure_ascii=False)[1:-1],
        "repr": repr(secret)[1:-1],
        "yaml-double": yaml.safe_dump(secret, default_style='"', width=10**9).strip()[1:-1],
        "yaml-single": yaml.safe_dump(secret, default_style="'", width=10**9).strip()[1:-1],
    }
    for user in users:
        forms[f"basic-auth:{user}"] = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return forms


def leaks(texts: Iterable[str], secrets: Iterable[str],
          users: Iterable[str] = ()) -> list[tuple[str, str]]:
    """(encoding name, excerpt) for every encoding of every secret found in `texts`."""
    users = list(users)
    found = []
    whole = "\n".join(texts)
    for secret in secrets:
        if not secret:
            continue
        for name, form in encodings(secret, users).items():
            at = whole.find(form)
            if len(form) >= 4 and at >= 0:
                found.append((name, whole[max(0, at - 40):at + len(form) + 40]))
    return found
