"""An in-memory datastore with the calls the K3s stand-in's ServiceAccount and RBAC code
makes of sandbox.k3s.kine.Kine (which needs MySQL), for fast tests of that code and of the
panel against a real stand-in API server (sandbox.k3s.apiserver) without a database.

kine's semantics where they matter: create of an existing key fails (KeyExists), each write
takes the next revision, list is ordered by key. `after_get` runs once after the next get of
a key (tests use it to act at an exact moment of a request, e.g. a Revoke while a token is
being issued)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sandbox.k3s.kine import KeyExists, Row


class MemoryKine:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.revision = 0
        self._lock = threading.Lock()
        self.after_get: dict[str, Callable[[], None]] = {}

    def get(self, name: str) -> Row | None:
        with self._lock:
            row = self.rows.get(name)
            hook = self.after_get.pop(name, None)
        if hook is not None:
            hook()
        return row

    def list(self, prefix: str) -> list[Row]:
        with self._lock:
            return [row for name, row in sorted(self.rows.items()) if name.startswith(prefix)]

    def create(self, name: str, value: bytes) -> int:
        with self._lock:
            if name in self.rows:
                raise KeyExists()
            self.revision += 1
            self.rows[name] = Row(self.revision, name, 1, 0, self.revision, 0, value)
            return self.revision

    def delete(self, name: str) -> bool:
        with self._lock:
            return self.rows.pop(name, None) is not None

    def update(self, name: str, value: bytes, revision: int) -> int:
        """Compare-and-swap as Kine.update: KeyExists unless `revision` is the latest."""
        with self._lock:
            latest = self.rows.get(name)
            if latest is None or latest.id != revision:
                raise KeyExists()
            self.revision += 1
            self.rows[name] = Row(self.revision, name, 0, 0, latest.create_revision,
                                  latest.id, value)
            return self.revision
