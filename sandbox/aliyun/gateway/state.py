"""The emulator's persistent state: one JSON document in the state directory.

Why: a restarted emulator must still know every RDS instance, SLB and listener it created
(the panel's ledger refers to them by id), so state lives in a file that is replaced
atomically (write to a temporary file, fsync, rename) and never left half-written.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
# Buckets kept by a plain reset: who may call, and the seeded world.
SEED_BUCKETS = ("accounts", "regions", "vpcs", "vswitches", "config")


class State:
    """A dict of buckets (`state.bucket("slb")`) persisted as JSON; callers hold the Cloud lock."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / STATE_FILE
        self.data: dict[str, Any] = {}
        self._saved = ""
        if self.path.exists():
            self._saved = self.path.read_text()
            self.data = json.loads(self._saved) if self._saved.strip() else {}
        # The saved document parsed again: `save` compares the live data with it first (a
        # dict comparison in C), so a call that changed nothing (every Describe*) does not
        # serialise the whole state twice. With hundreds of resources the old way cost
        # ~0.1-0.3 s a call (benchmarks/health_scale.py's 500 clusters).
        # None until a first save: an empty state is still written once, as before.
        self._snapshot: dict[str, Any] | None = (json.loads(self._saved) if self._saved.strip()
                                                 else None)

    def bucket(self, name: str) -> dict[str, Any]:
        """A top-level dict owned by one concern (a product, the seed, the address book)."""
        return self.data.setdefault(name, {})

    def table(self, bucket: str, name: str) -> dict[str, Any]:
        """A dict inside a bucket, e.g. `state.table("slb", "load_balancers")`."""
        return self.bucket(bucket).setdefault(name, {})

    def save(self) -> bool:
        """Write the file if anything changed; returns whether it wrote."""
        if _same(self.data, self._snapshot):
            return False
        text = json.dumps(self.data, sort_keys=True, indent=1)
        if text == self._saved:
            return False
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._saved = text
        self._snapshot = json.loads(text)
        return True

    def wipe(self, keep: tuple[str, ...] = SEED_BUCKETS) -> None:
        self.data = {k: v for k, v in self.data.items() if k in keep}

    def rollback(self) -> None:
        """Forget changes since the last save (a handler failed half-way)."""
        self.data = json.loads(self._saved) if self._saved.strip() else {}



def _same(live: Any, saved: Any) -> bool:
    """`live` equals the saved document (a dict comparison in C: ~1 ms for a 1 MB state,
    where serialising it takes ~150 ms).

    The one thing it cannot see: a value changed only in its JSON type between numbers and
    booleans (Python's True == 1 == 1.0). No handler does that, and it would cost nothing but
    the file lagging until the next real change (a rollback restores an equal value)."""
    return bool(live == saved)
