"""A per-user limit on actions that make the panel open connections (SSH tests, key scans).

Why: each press of Test connection makes the panel dial an address a person chose; unlimited,
it is a scanner (of the VPC, of whatever PANEL_FORBIDDEN_NETWORKS forgot). The times of the
last minute's tests are kept in Django's cache (read, then written: two requests at the same
instant may both pass, which is fine for a limit on pace). Several web processes share it only
when the cache is shared (PANEL_CACHE_URL).
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache

WINDOW_SECONDS = 60


def allow(user: Any, action: str, limit: int | None = None) -> bool:
    """Count one `action` of `user`; False (and not counted) when `limit` of them happened in
    the last minute already."""
    limit = limit or settings.PANEL_HOST_TEST_RATE_LIMIT
    key = f"panel-rate:{action}:{user.pk}:{user.get_username()}"
    now = time.time()
    recent = [stamp for stamp in cache.get(key, []) if stamp > now - WINDOW_SECONDS]
    if len(recent) >= limit:
        return False
    cache.set(key, [*recent, now], timeout=WINDOW_SECONDS)
    return True
