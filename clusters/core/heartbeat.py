"""When a running step's heartbeat counts as late.

Why a rule of its own: the engine beats (clusters/engine/pipeline.py) and the cluster page
judges the beat (clusters/web); both must agree on the interval. A worker killed by the OOM
killer leaves its step Running until the lease expires (PANEL_STEP_LEASE_SECONDS, 120 s by
default); the page says "no word from its worker" after a few missed beats instead, so a
person sees it within seconds, while the engine still waits for the lease before it runs the
step again (a late beat may only be a busy worker).
"""

from __future__ import annotations

from datetime import datetime, timedelta

#: How often a running step's worker says it is alive (more often when the lease is short).
HEARTBEAT_SECONDS = 5.0
#: Missed beats after which the page calls the heartbeat late.
LATE_AFTER_BEATS = 3


def interval(lease_seconds: float) -> float:
    """Seconds between beats: HEARTBEAT_SECONDS, but at least three beats per lease."""
    return min(HEARTBEAT_SECONDS, lease_seconds / 3)


def late_since(heartbeat_at: datetime | None, now: datetime,
               lease_seconds: float) -> datetime | None:
    """The last beat when it is late (older than LATE_AFTER_BEATS intervals), else None."""
    if heartbeat_at is None:
        return None
    late = now - heartbeat_at > timedelta(seconds=LATE_AFTER_BEATS * interval(lease_seconds))
    return heartbeat_at if late else None
