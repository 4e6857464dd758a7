"""The step engine driven in this process, one message at a time, for the spec tier.

Why: the engine's rules (advance, claim, outcomes, backoff, retry, cancel, sweep, reclaim) are
a state machine over rows and messages. Checking them through real worker processes costs
seconds per rule and makes timing part of every assertion; here the same code runs for real,
and only the two boundaries it talks through are held still:

* the transaction boundary: `transaction.on_commit` callbacks are captured and run when the
  action "commits" (Django's captureOnCommitCallbacks), so what a real commit would send is sent;
* the broker boundary: Celery really publishes, to kombu's in-memory transport instead of
  Redis (`task_always_eager` stays False, so nothing runs inline), and every published message
  is recorded from Celery's `after_task_publish` signal. A test delivers a message by calling
  the task it names in this process, as a worker would.

Time is moved by shifting the engine's timestamps (not_before, lease_until, updated_at) into
the past, so a countdown or a lease "expires" without sleeping. A process whose own clock is
wrong (`process_clock_off_by`) is this process with Django's `timezone.now` moved: the
database's clock, which the engine trusts, is left alone.

The real-worker tests (tests/engine/test_engine_worker.py) stay: they check what only processes
can show (concurrency, a killed worker, heartbeats).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from unittest import mock

from celery import Celery
from celery.signals import after_task_publish
from django.db.models import F
from django.test import TestCase
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Run, RunKind, Step
from panel.celery import app as panel_app
from tests.support.factories import make_cluster

T = TypeVar("T")

ADVANCE = "clusters.advance_run"
EXECUTE = "clusters.execute_step"


@dataclass(frozen=True)
class Sent:
    """One message the engine published: the task it names, its arguments, when it is due."""

    task: str
    args: tuple[Any, ...]
    eta: datetime | None
    # Where it went and when it stops being worth running (left out of ==, so a test that
    # only cares about the task and its arguments need not name them).
    queue: str = field(default="", compare=False)
    expires: datetime | None = field(default=None, compare=False)

    @property
    def countdown(self) -> float:
        """Seconds from now until the message is due (0 for "at once")."""
        if self.eta is None:
            return 0.0
        # Celery stamped the eta from the true clock (not Django's, which a test may skew).
        return (self.eta - datetime.now(UTC)).total_seconds()


class InProcessEngine:
    """What the engine sent, and a hand that delivers it."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.queue: list[Sent] = []

    # --- the boundaries -----------------------------------------------------------------

    def _published(self, sender: str | None = None, body: Any = None,
                   headers: dict[str, Any] | None = None, routing_key: str = "",
                   **_: Any) -> None:
        args = tuple(body[0]) if isinstance(body, list | tuple) and body else ()
        eta, expires = (headers or {}).get("eta"), (headers or {}).get("expires")
        self.queue.append(Sent(str(sender), args, parse_datetime(eta) if eta else None,
                               queue=routing_key,
                               expires=parse_datetime(expires) if expires else None))

    def act(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call `action` as a view or a task would, then commit: on-commit sends happen."""
        with TestCase.captureOnCommitCallbacks(execute=True):
            return action(*args, **kwargs)

    # --- the queue ----------------------------------------------------------------------

    def take(self) -> list[Sent]:
        """Everything sent since the last take, in order (the queue is emptied)."""
        sent, self.queue = self.queue, []
        return sent

    def deliver(self, message: Sent) -> None:
        """Run the task a message names in this process, as a worker would on receiving it."""
        self.act(self.app.tasks[message.task], *message.args)

    def deliver_all(self, limit: int = 100) -> int:
        """Deliver messages until none is left, each when due (time is moved on to it);
        returns how many were delivered."""
        delivered = 0
        while self.queue:
            message = self.queue.pop(0)
            if message.countdown > 0:
                time_passes(message.countdown)
            self.deliver(message)
            delivered += 1
            if delivered > limit:
                raise AssertionError(f"the engine is still sending after {limit} messages")
        return delivered

    def settle(self, seconds: float, pause: float) -> None:
        """Deliver until nothing is left, as `deliver_all`, for runs that wait on a world with
        a clock of its own (the emulator boots instances in real, scaled time): before a
        delayed message, `pause` real seconds pass as well as the test clock's countdown;
        fails when the run has not settled within `seconds` of wall time."""
        deadline = time.monotonic() + seconds
        while self.queue:
            assert time.monotonic() < deadline, "the run did not settle"
            message = self.queue.pop(0)
            if message.countdown > 0:
                time.sleep(pause)
                time_passes(message.countdown)
            self.deliver(message)


def time_passes(seconds: float) -> None:
    """Move the engine's clock on: every due time, lease and change time is `seconds` older."""
    shift = timedelta(seconds=seconds)
    Step.objects.filter(not_before__isnull=False).update(not_before=F("not_before") - shift)
    Step.objects.filter(lease_until__isnull=False).update(lease_until=F("lease_until") - shift)
    Step.objects.update(updated_at=F("updated_at") - shift)


@contextmanager
def process_clock_off_by(seconds: float) -> Iterator[None]:
    """This process's clock runs `seconds` ahead (negative: behind) of the database's, as on
    a host whose NTP is broken; Django's `timezone.now` is what the panel's code reads."""
    honest = timezone.now
    with mock.patch("django.utils.timezone.now", lambda: honest() + timedelta(seconds=seconds)):
        yield


@contextmanager
def in_process_engine(app: Celery = panel_app) -> Iterator[InProcessEngine]:
    """Point the Celery app at the in-memory broker and record what is published."""
    if app.conf.task_always_eager:
        raise AssertionError("the spec tier needs task_always_eager=False (nothing runs inline)")
    engine = InProcessEngine(app)
    # What publishing connects to; unset (None) it falls back to broker_url, which the session
    # may point elsewhere later (tests/support/services.py), so the raw value is restored.
    saved_url = app.conf.get("broker_write_url")
    app.conf.broker_write_url = "memory://localhost/"
    app._pool = None  # the connection pools are made lazily from broker_url
    app.amqp._producer_pool = None
    after_task_publish.connect(engine._published, weak=False)
    try:
        yield engine
    finally:
        after_task_publish.disconnect(engine._published)
        app.conf.broker_write_url = saved_url
        app._pool = None
        app.amqp._producer_pool = None


def start_run(engine: InProcessEngine, *specs: StepSpec) -> Run:
    """A test run of `specs` on a fresh cluster, created and committed as an operation would."""
    return engine.act(create_run, make_cluster(), RunKind.TEST, list(specs))


def executes(sent: list[Sent]) -> list[int]:
    """The step ids of the execute messages among `sent`, in order."""
    return [message.args[0] for message in sent if message.task == EXECUTE]
