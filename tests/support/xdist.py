"""Which of the suite's test processes this is (`make test` runs two, pytest-xdist).

Why: anything a test binds to a fixed address (the K3s tests' session-wide MariaDB and
artifact server) must differ between the processes, or the second one's server fails to
start while the test talks to the first one's.
"""

from __future__ import annotations

import os
import re


def worker_index() -> int:
    """0 for `gw0` (and for a run without xdist), 1 for `gw1`, ..."""
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else 0


def session_address(slot: int) -> str:
    """This process's loopback address for session-wide server number `slot` (1..9):
    127.73.0.<slot> in gw0, 127.73.0.<10 + slot> in gw1, ... (127.73.1+ belong to test files,
    each file running whole in one process)."""
    if not 1 <= slot <= 9:
        raise ValueError(f"slot {slot} is not 1..9")
    index = worker_index()
    if index > 24:
        raise RuntimeError("more than 25 test processes: no 127.73.0.x address left")
    return f"127.73.0.{index * 10 + slot}"
