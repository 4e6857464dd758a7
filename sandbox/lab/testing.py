"""Labs for tests: a unique prefix per run, cleanup always, leftovers of dead runs swept.

Why the sweep: a test run killed with SIGKILL cannot clean up; its prefix embeds its PID, so
the next run can recognise labs whose owner is gone and remove them, and never touches a lab
whose owner still runs (another engineer's concurrent test run).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
from collections.abc import Iterator

from sandbox.lab import network
from sandbox.lab.lab import Lab
from sandbox.lab.state import DEFAULT_STATE_ROOT

TEST_PREFIX = re.compile(r"lt(\d+)[a-z]")
_sequence = itertools.count()


def _owner_alive(prefix: str) -> bool:
    match = TEST_PREFIX.fullmatch(prefix)
    return match is None or os.path.exists(f"/proc/{match.group(1)}")


def sweep_abandoned_test_labs() -> list[str]:
    """Tear down test labs whose creating process has died; return their prefixes."""
    prefixes = {p.name for p in DEFAULT_STATE_ROOT.glob("lt*") if p.is_dir()}
    for line in network.ip("netns", "list").stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        prefixes.add(name.rsplit("-", 1)[0])
    swept = []
    for prefix in sorted(prefixes):
        if TEST_PREFIX.fullmatch(prefix) and not _owner_alive(prefix):
            Lab(prefix=prefix).down()
            swept.append(prefix)
    return swept


def unique_prefix() -> str:
    index = next(_sequence)
    return f"lt{os.getpid()}{chr(ord('a') + index % 26)}"


@contextlib.contextmanager
def running_lab(count: int, prefix: str | None = None, subnet: str | None = None) -> Iterator[Lab]:
    """A lab of `count` hosts for the duration of the block; always torn down."""
    sweep_abandoned_test_labs()
    lab = Lab(prefix=prefix or unique_prefix(), subnet=subnet)
    try:
        lab.up(count)
        yield lab
    finally:
        lab.down()
