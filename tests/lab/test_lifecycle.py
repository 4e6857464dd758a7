"""`up`/`down` from the CLI, reuse, and cleanup after a crash leave nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.lab import network, processes
from sandbox.lab.lab import Lab, LabError
from sandbox.lab.state import STATE_FILE
from sandbox.lab.testing import unique_prefix

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox.lab", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def assert_nothing_left(prefix: str, state_dir: Path) -> None:
    assert network.existing_netns(prefix) == []
    assert network.existing_links(prefix) == []
    assert [p for p in processes.all_pids() if processes.is_host_process(p, prefix)
            and processes.is_alive(p)] == []
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(state_dir) not in mounts and f"/run/netns/{prefix}-" not in mounts
    assert not state_dir.exists()


def test_cli_up_status_reuse_and_down(capsys: pytest.CaptureFixture[str]) -> None:
    prefix = unique_prefix()
    lab = Lab(prefix=prefix)
    try:
        started = time.monotonic()
        up = cli("up", "2", "--prefix", prefix)
        up_seconds = time.monotonic() - started
        assert up.returncode == 0, up.stderr
        lab = Lab(prefix=prefix)
        for host in lab.hosts:
            assert host.ip in up.stdout and host.hostname in up.stdout
            assert host.root_password in up.stdout and host.private_key_path in up.stdout
        status = cli("status", "--prefix", prefix)
        assert f"lab {prefix}: up" in status.stdout
        assert "reused" in cli("up", "2", "--prefix", prefix).stdout
        refused = cli("up", "3", "--prefix", prefix)
        assert refused.returncode == 1 and "already exists" in refused.stderr
        # a running unit and a stray background process must not survive `down`
        host = lab.hosts[0]
        lab.run(host, "cat > /etc/systemd/system/sleeper.service",
                input="[Service]\nExecStart=/bin/sleep 999\n")
        assert lab.run(host, "systemctl start sleeper && (setsid sleep 998 "
                       ">/dev/null 2>&1 &)").returncode == 0
        init_pids = [h.init_pid for h in lab.hosts]
        started = time.monotonic()
        down = cli("down", "--prefix", prefix)
        down_seconds = time.monotonic() - started
        assert down.returncode == 0, down.stderr
        assert not any(processes.is_alive(pid) for pid in init_pids)
        assert_nothing_left(prefix, lab.state_dir)
        with capsys.disabled():
            print(f"\nCLI: up 2 {up_seconds:.2f}s, down {down_seconds:.2f}s")
    finally:
        Lab(prefix=prefix).down()


def test_down_after_a_crash_finds_leftovers_by_name() -> None:
    prefix = unique_prefix()
    lab = Lab(prefix=prefix)
    try:
        lab.up(1)
        clashing = Lab(prefix=unique_prefix(), subnet=lab.subnet)
        with pytest.raises(network.LabNetworkError, match="overlaps"):
            clashing.up(1)
        assert_nothing_left(clashing.prefix, clashing.state_dir)
        os.unlink(lab.state_dir / STATE_FILE)  # as if the process that ran `up` died early
        fresh = Lab(prefix=prefix)
        assert fresh.state is None
        with pytest.raises(LabError, match="leftovers"):
            fresh.up(1)
        fresh.down()
        assert_nothing_left(prefix, lab.state_dir)
    finally:
        Lab(prefix=prefix).down()


def test_prefix_must_make_valid_names() -> None:
    for bad in ("Lab", "lab_1", "a-very-long-prefix", "-lab", "lab-"):
        with pytest.raises(ValueError, match="prefix"):
            Lab(prefix=bad)
