"""K3s-style log lines (logrus text format) on stdout, which the unit's journal captures.

Why: the panel diagnoses failures by grepping the journal for K3s's own strings, so the
stand-in must print them in the same shape: time="..." level=info msg="...".
"""

from __future__ import annotations

import datetime
import json
import sys
import threading

_lock = threading.Lock()


class Fatal(Exception):
    """A condition K3s reports with level=fatal and exit status 1."""


def _quote(message: str) -> str:
    # logrus quotes msg values with Go's %q; JSON string escaping is the same for our text.
    return json.dumps(message, ensure_ascii=False)


_to_stderr = False


def use_stderr() -> None:
    """Log to stderr, logrus's default: for the CLI tools, whose stdout is their output
    (`k3s etcd-snapshot ls` prints its table there, its log lines go to stderr)."""
    global _to_stderr  # noqa: PLW0603 - one switch for the process
    _to_stderr = True


def _field(value: str) -> str:
    """logrus's TextFormatter needsQuoting: bare if only [A-Za-z0-9-._/@^+], else %q."""
    if value and all(c.isascii() and (c.isalnum() or c in "-._/@^+") for c in value):
        return value
    return _quote(value)


def emit(level: str, message: str, fields: dict[str, str] | None = None) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stream = sys.stderr if _to_stderr else sys.stdout
    extra = "".join(f" {key}={_field(value)}" for key, value in sorted((fields or {}).items()))
    with _lock:
        stream.write(f"time=\"{stamp}\" level={level} msg={_quote(message)}{extra}\n")
        stream.flush()


def info(message: str, fields: dict[str, str] | None = None) -> None:
    emit("info", message, fields)


def warn(message: str) -> None:
    emit("warning", message)


def error(message: str, fields: dict[str, str] | None = None) -> None:
    emit("error", message, fields)


def fatal(message: str) -> None:
    emit("fatal", message)
