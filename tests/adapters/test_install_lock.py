"""The K3s install step against a real sshd while an earlier attempt's install still runs
there (its worker gave up on it): the step waits for the host lock instead of installing a
second time beside it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from clusters.adapters.ssh import LOCK_DIR, SSHSession, SSHTarget, connect
from clusters.engine.pipeline import StepSpec
from clusters.models import LogLine, Node, NodeRole, Step, StepStatus
from clusters.steps.k3s import BUSY_POLL_SECONDS, INSTALL_LOCK
from tests.adapters.sshd_server import SshServer
from tests.support.engine_specs import in_process_engine, start_run


def _session(sshd: SshServer) -> SSHSession:
    return connect(SSHTarget(sshd.host, "root", sshd.port,
                             private_key=sshd.keys["ed25519"].private))


@pytest.fixture
def earlier_install(sshd: SshServer) -> Iterator[SSHSession]:
    """An install script still running on the host, holding the install lock.

    Ended at teardown by killing its process group from a second session: closing the
    transport does not stop a remote command (sshd leaves `sleep 20` running, and its
    wrapper holding the lock), and the sshd is the whole session's."""
    session = _session(sshd)
    group: list[str] = []
    started = threading.Event()

    def line(_stream: str, text: str) -> None:
        group.append(text.rsplit(maxsplit=1)[-1])
        started.set()

    # Field 5 of /proc/$$/stat: the command's process group (the wrapper's `timeout` leads it).
    worker = threading.Thread(target=lambda: session.run(
        "echo started $(cut -d' ' -f5 /proc/$$/stat); sleep 20", lock=INSTALL_LOCK,
        timeout=30, on_line=line), daemon=True)
    worker.start()
    assert started.wait(10)
    assert group[0].isdigit(), group
    # It holds the lock far longer than the step under test may take, even on a busy machine
    # (4 s was not always: the step then found the lock free and really installed).
    yield session
    killer = _session(sshd)
    try:
        killed = killer.run(["kill", "-s", "KILL", "--", f"-{group[0]}"], timeout=10)
        assert killed.exit_status == 0, killed.stderr
        worker.join(10)
        assert not worker.is_alive(), "the earlier install did not end"
        lockfile = f"{LOCK_DIR}/{INSTALL_LOCK}.lock"
        free = killer.run(["flock", "-n", lockfile, "true"], timeout=10)
        assert free.exit_status == 0, f"the install lock is still held: {free.stderr}"
    finally:
        killer.close()
        session.close()


def test_an_install_step_waits_while_an_earlier_install_holds_the_host(
        transactional_db: Any, sshd: SshServer, earlier_install: SSHSession) -> None:
    with in_process_engine() as engine:
        run = start_run(engine, StepSpec("agent", "Install agent", "k3s.install_agent"))
        cluster = run.cluster
        cluster.slb_address = "10.0.0.100"
        cluster.k3s_version = "v1.31.4+k3s1"
        cluster.k3s_ca_hash = "ab" * 32  # a running cluster's CA, as the first server recorded
        cluster.save()
        node = Node.objects.create(
            cluster=cluster, role=NodeRole.AGENT, name="agent1", private_ip="10.0.0.21",
            public_ip=sshd.host, ssh_port=sshd.port, ssh_user="root",
            ssh_private_key=sshd.keys["ed25519"].private)
        Step.objects.filter(run=run).update(args={"node_id": node.pk})
        engine.deliver(engine.take()[0])  # advance: sends the step's execute message
        (execute,) = engine.take()
        began = time.monotonic()
        engine.deliver(execute)
        took = time.monotonic() - began
    step = Step.objects.get(run=run)
    assert step.status == StepStatus.WAITING, (step.status, step.error)
    assert step.wait_reason == "Waiting for the earlier K3s install on 10.0.0.21 to end"
    assert "installed_at" not in step.result  # nothing was installed: the next poll tries
    assert step.transient_failures == 0 and took < 4
    assert abs((step.not_before - step.updated_at).total_seconds() - BUSY_POLL_SECONDS) < 2
    assert LogLine.objects.filter(step=step, text__contains="(k3s-install) is still "
                                  "running").exists()
