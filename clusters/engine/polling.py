"""How long a waiting step waits before its next look: the interval it asked for, growing
while its answer does not change.

Why: each poll is a whole step execution (the claim, the handler's SDK or SSH call, the
record, the Celery round trip: ~20 ms of a worker's CPU and one call against the account's
API rate limit) that, most of the time, only learns "not yet". Most waits end soon (a
vSwitch is Available within seconds, K3s is Ready about 10 s after it starts); a few take
minutes (an RDS instance is created in 5-10 minutes, a backup or an NLB job can take longer).
Looked at every PANEL_CLOUD_POLL_SECONDS, the long ones made most of a create's executions,
and a longer run (a loaded machine, a slow region) cost the panel more CPU per cluster than
a short one: issue 18.

The rule, in one place for every step (a step only says how often it would like to look):

* A wait is "the same" while the step returns Wait with the same reason as last time.
  Any change of what it says (one of three instances is Running now, the unit went from
  activating to active, another phase of the step) is news: the next look is at the asked
  interval again, since the end is likely near. So is every new try (a pending step's
  first wait, a user's Retry, a step reclaimed from a dead worker, a transient retry).
* The first PANEL_POLL_PUNCTUAL (4) waits keep the asked interval: a wait that normally
  ends within a few looks is seen as punctually as before.
* After those, each wait is PANEL_POLL_GROWTH (1.5) times the one before, up to
  PANEL_POLL_MAX_FACTOR (4) times the asked interval and at most PANEL_POLL_MAX_SECONDS
  (60 s); never less than the asked interval (a step asking for 120 s gets 120 s).

So a wait that ends is noticed at most min(4 x the interval, 60 s) late (8 s for a host
poll of 2 s, 60 s for a cloud poll of 15 s), and, while it grows, never later than about
half of the time it had already waited. An RDS creation of 5 minutes polled every 15 s was
20 looks; now 10 (after 15, 15, 15, 15, 22.5, 33.8, 50.6, 60, 60 and 60 s), the last one
47 s after the instance was Running.

A step may opt out, `Wait(seconds, reason, grow=False)`, where its timing is the point
(a fixed drain period, a user-visible countdown). The engine's own backoff after a
transient error (pipeline._after_transient) is never grown here: it grows by its own rule.
"""

from __future__ import annotations

import math

from django.conf import settings


def repeats(previous_reason: str, reason: str, previous_repeats: int, *,
            new_try: bool) -> int:
    """How many waits in a row, before this one, said `reason` (0: this wait is news).

    `previous_reason` is the reason stored with the step's last wait (the claim leaves it on
    the row; a user's Retry, a reclaim, a failure elsewhere in the run replace or clear it),
    `previous_repeats` what this function said then; `new_try`: this execution was not a
    plain poll (a transient retry). The stored reason is redacted: one that holds a secret
    never equals the new one, so it keeps the asked interval (the punctual side)."""
    if new_try or not reason or previous_reason != reason:
        return 0
    return previous_repeats + 1


def interval(asked: float, repeats_before: int, *, grow: bool = True) -> float:
    """Seconds until the next look for a wait that asked for `asked` seconds and said the
    same thing `repeats_before` times in a row before (see the module's docstring)."""
    asked = max(0.0, float(asked))
    growth = float(settings.PANEL_POLL_GROWTH)
    extra = repeats_before - int(settings.PANEL_POLL_PUNCTUAL) + 1
    if not grow or asked == 0 or growth <= 1.0 or extra <= 0:
        return asked
    cap = max(asked, min(asked * float(settings.PANEL_POLL_MAX_FACTOR),
                         float(settings.PANEL_POLL_MAX_SECONDS)))
    # Compared as logarithms: growth ** extra overflows a float after a long enough wait.
    if extra * math.log(growth) >= math.log(cap / asked):
        return cap
    return asked * growth ** extra
