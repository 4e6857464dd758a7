"""Remote commands that outlive their time, on real sshd hosts in lab namespaces.

A timed-out command is stopped *on the host* (closing the SSH channel alone leaves it running:
sshd sends no signal without a terminal); and an install left running by a worker that gave
up on it (its connection gone) holds the host lock, so a second attempt is refused instead of
running beside it. Checked through each host's own PID namespace (lab.run), not the panel's.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from clusters.adapters.ssh import CommandTimeout, HostBusy, SSHSession, SSHTarget, connect
from sandbox.lab.lab import Lab
from sandbox.lab.state import Host

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def _sudoer_with_password(host: Host) -> SSHSession:
    return connect(SSHTarget(host.ip, host.sudo_password_user, host.ssh_port,
                             password=host.sudo_password_user_password))


def _root(host: Host) -> SSHSession:
    with open(host.private_key_path) as key:
        return connect(SSHTarget(host.ip, "root", host.ssh_port, private_key=key.read()))


def _running(lab: Lab, host: Host, pidfile: str) -> bool:
    return lab.run(host, f"kill -0 \"$(cat {pidfile})\" 2>/dev/null").returncode == 0


def test_a_timed_out_command_is_stopped_on_the_host(lab: Lab) -> None:
    host = lab.hosts[0]
    pidfile = "/root/bounds-child.pid"
    with _sudoer_with_password(host) as session:
        started = time.monotonic()
        with pytest.raises(CommandTimeout, match="it was stopped there"):
            session.run(f"sleep 300 & echo $! > {pidfile}; wait", sudo=True, timeout=2)
        assert time.monotonic() - started < 6
    assert lab.run(host, f"test -s {pidfile}").returncode == 0, "the command never started"
    deadline = time.monotonic() + 5
    while _running(lab, host, pidfile) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(lab, host, pidfile), "the timed-out command still runs on the host"
    assert lab.run(host, "ls -a /tmp | grep -c k3s-panel- || true").stdout.strip() == "0"


def test_an_orphaned_install_holds_the_host_lock_so_a_second_one_is_refused(lab: Lab) -> None:
    host = lab.hosts[1]
    marker = "/root/bounds-second-ran"
    lab.run(host, f"rm -f {marker}")
    first = _root(host)
    done = threading.Event()

    def install() -> None:
        with contextlib.suppress(Exception):  # its connection is cut on purpose
            first.run("sleep 6", lock="k3s-install", timeout=60)
        done.set()

    threading.Thread(target=install, daemon=True).start()
    deadline = time.monotonic() + 10
    while lab.run(host, "pgrep -x sleep").returncode != 0:
        assert time.monotonic() < deadline, "the first install never started"
        time.sleep(0.1)
    first.close()  # its worker is gone (killed, or it gave up without reaching the host)
    assert done.wait(5)

    with _sudoer_with_password(host) as second:
        began = time.monotonic()
        with pytest.raises(HostBusy, match="k3s-install"):
            second.run(["touch", marker], sudo=True, lock="k3s-install", timeout=30)
        assert time.monotonic() - began < 5
        assert lab.run(host, f"test -e {marker}").returncode == 1, "the second one ran"
        deadline = time.monotonic() + 15
        while lab.run(host, "pgrep -x sleep").returncode == 0:  # the orphan ends by itself
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second.run(["touch", marker], sudo=True, lock="k3s-install", timeout=30)
    assert lab.run(host, f"test -e {marker}").returncode == 0
