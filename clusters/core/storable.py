"""Make text from hosts safe to store in any database the panel supports.

Why: a host's output is bytes nobody on the team controls. PostgreSQL, the production
database, refuses a NUL character in a text column outright ("PostgreSQL text fields cannot
contain NUL (0x00) bytes", raised by psycopg as DataError), which would lose a whole log batch;
other control bytes (ANSI escapes, backspaces, bells) store but garble the log on the page.
SQLite stores all of them, so the default test database never notices.

What: every C0 control character except TAB, and DEL, becomes a visible escape such as
``\\x00`` or ``\\x1b``: ASCII, one form for every byte, and it says exactly which byte the
host printed, which matters when an engineer debugs an install from its log. (Replacing them
with U+FFFD would lose which byte it was.) Line breaks never reach here: callers split lines
first. A lone surrogate (text decoded with ``surrogateescape``) cannot be encoded as UTF-8 at
all, so it becomes U+FFFD, the same thing a ``"replace"`` decode gives.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(text: str) -> str:
    """Return ``text`` with control characters (TAB kept) escaped as ``\\xNN``, surrogates as
    U+FFFD; text without them is returned unchanged."""
    text = _UNSAFE.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
    return _SURROGATE.sub("\ufffd", text)
