"""Helpers of the K3s stand-in tests: a k3s process on a scratch host, kubectl, waiting.

They live here, not in tests/k3s/conftest.py, because test modules import them (a conftest
is pytest's to load; importing it by path loads it twice).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.k3s.testing import ScratchHost

KUBECTL = "/usr/bin/kubectl"
SUPERVISOR = Path(__file__).resolve().parents[1] / "k3s" / "supervisor.py"


class Node:
    """A k3s process on a scratch host, with its journal-like log."""

    def __init__(self, host: ScratchHost, log: Path, proc: subprocess.Popen) -> None:
        self.host, self.log, self.proc = host, log, proc

    def journal(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            journal = self.journal()
            if text in journal:
                return journal
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"{text!r} not in journal:\n{self.journal()}")

    def kubeconfig(self) -> str:
        return self.host.path("/etc/rancher/k3s/k3s.yaml")


def install_supervisor(host: ScratchHost) -> None:
    os.makedirs(host.path("/run/testbin"), exist_ok=True)
    target = host.path("/run/testbin/systemctl")
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(f"#!{sys.executable}\n" + SUPERVISOR.read_text())
    os.chmod(target, 0o755)  # noqa: S103 - an executable


def kubectl(kubeconfig: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--request-timeout=10s", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


# kube-apiserver keeps a token that authenticated for 10 s (TokenSuccessCacheTTL), so a
# revoked token is refused within that; 15 s leaves room for a slow machine.
REVOKED_WITHIN = 15.0


def refused_within(run: Callable[[], subprocess.CompletedProcess],
                   timeout: float = REVOKED_WITHIN) -> subprocess.CompletedProcess:
    """Run a kubectl call until it is refused as Unauthorized (a revoked token); the last
    answer, for the caller's asserts (it fails them if it never was refused)."""
    deadline = time.monotonic() + timeout
    while True:
        result = run()
        if (result.returncode != 0 and "Unauthorized" in result.stderr) \
                or time.monotonic() >= deadline:
            return result
        time.sleep(0.5)


def wait_until(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(message)
