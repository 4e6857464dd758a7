"""A user's kubectl, asking the API through the load balancer all the time (e2e tests)."""

from __future__ import annotations

import threading
import time

from clusters.adapters.kubeapi import KubeClient

POLL_INTERVAL = 0.2


class ReadyzPoller:
    """GET /readyz through the SLB every 0.2 s in a thread; counts every answer that is not ok."""

    def __init__(self, kubeconfig: str) -> None:
        self.client = KubeClient(kubeconfig, timeout=5)
        self.successes = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="readyz-poller")

    def __enter__(self) -> ReadyzPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                answer = self.client.readyz()
            except Exception as exc:  # any failure is what we count
                answer = f"{type(exc).__name__}: {exc}"
            if answer == "ok":
                self.successes += 1
            else:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {answer}")
            self._stop.wait(max(0.0, POLL_INTERVAL - (time.monotonic() - started)))
