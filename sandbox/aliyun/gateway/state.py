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

    def bucket(self, name: str) -> dict[str, Any]:
        """A top-level dict owned by one concern (a product, the seed, the address book)."""
        return self.data.setdefault(name, {})

    def table(self, bucket: str, name: str) -> dict[str, Any]:
        """A dict inside a bucket, e.g. `state.table("slb", "load_balancers")`."""
        return self.bucket(bucket).setdefault(name, {})

    def save(self) -> bool:
        """Write the file if anything changed; returns whether it wrote."""
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
        return True

    def wipe(self, keep: tuple[str, ...] = SEED_BUCKETS) -> None:
        self.data = {k: v for k, v in self.data.items() if k in keep}

    def rollback(self) -> None:
        """Forget changes since the last save (a handler failed half-way)."""
        self.data = json.loads(self._saved) if self._saved.strip() else {}
