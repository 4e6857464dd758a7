"""The registry of step handlers: a name stored on each Step row maps to a function here.

Why: a Step row must name its code in a way that survives restarts and deploys, so the
engine looks handlers up by a stable string rather than pickling callables.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from clusters.engine.outcomes import Outcome
    from clusters.engine.stepcontext import StepContext

Handler = Callable[["StepContext"], "Outcome"]

_HANDLERS: dict[str, Handler] = {}
_TIME_LIMITS: dict[str, float] = {}


def step_handler(name: str, *, time_limit: float | None = None) -> Callable[[Handler], Handler]:
    """Register a function as the handler called `name`.

    `time_limit`: seconds one call may run before the engine ends the step ("ran longer
    than N s"); unset, settings.PANEL_STEP_TIME_LIMIT. Give one only to a handler whose
    bounded work (its own command timeouts added up) can take longer than that default.
    """

    def register(function: Handler) -> Handler:
        existing = _HANDLERS.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"two step handlers are both called {name!r}")
        _HANDLERS[name] = function
        if time_limit is not None:
            _TIME_LIMITS[name] = float(time_limit)
        return function

    return register


def load_handler_modules() -> None:
    for module in settings.PANEL_STEP_MODULES:
        if module != __name__:
            importlib.import_module(module)


def time_limit(name: str) -> float:
    """The wall-clock limit of one call of handler `name` (see step_handler)."""
    if name not in _HANDLERS:
        load_handler_modules()
    return _TIME_LIMITS.get(name, float(settings.PANEL_STEP_TIME_LIMIT))


def get_handler(name: str) -> Handler:
    if name not in _HANDLERS:
        load_handler_modules()
    try:
        return _HANDLERS[name]
    except KeyError:
        raise LookupError(f"no step handler is registered as {name!r}") from None
