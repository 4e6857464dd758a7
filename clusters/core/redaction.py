"""Replace registered secrets with *** before text is stored or shown.

Why: step output comes from hosts and SDKs we do not control; a DB password echoed by a
failing command must still never reach a LogLine, an error text or a page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
MIN_SECRET_LENGTH = 4


class Redactor:
    """Masks every occurrence of the given secrets (and their URL-quoted forms)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret or len(secret) < MIN_SECRET_LENGTH:
                continue
            variants.add(secret)
            variants.add(quote(secret, safe=""))
            variants.update(line for line in secret.splitlines() if len(line) >= 16)
        # Longest first so a secret that contains another is masked whole.
        ordered = sorted(variants, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)
