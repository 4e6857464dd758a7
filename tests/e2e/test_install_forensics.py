"""A K3s install that fails on a lab host (autok3s#580): the step's log ends with what an
engineer reads next (unit status, journal, config keys, disk, memory), no secret and no
config value in it, and the host is left as the failure left it."""

from __future__ import annotations

import time

import pytest

from clusters.engine.pipeline import StepSpec
from clusters.models import DatastoreKind, LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

PASSWORD = "Forensics-Pass-77"
TOKEN = "K10forensics-token-that-is-secret"
# No tcp(...): K3s (and its stand-in, like go-sql-driver) exits at once with "default addr for
# network '10.99.0.1:3306' unknown", a failure the journal interpreter calls permanent.
DSN_WITHOUT_TCP = f"mysql://k3s:{PASSWORD}@10.99.0.1:3306/k3s"


def section(lines: list[str], title: str) -> list[str]:
    """The lines of one diagnostics section (up to the next section's title)."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"--- {title}"))
    rest = lines[start + 1:]
    end = next((i for i, line in enumerate(rest) if line.startswith(("--- ", "===="))),
               len(rest))
    return rest[:end]


def test_a_failed_install_logs_the_hosts_diagnostics_and_leaves_the_host(world, start_worker):
    start_worker(concurrency=1, **world_env(world))
    cluster = make_world_cluster(world, servers=1, agents=0, datastore_kind=DatastoreKind.EXTERNAL,
                                 external_dsn=DSN_WITHOUT_TCP, k3s_token=TOKEN,
                                 slb_address="10.99.0.2")
    node = cluster.nodes.get()
    started = time.monotonic()
    run = runs.wait_finished(runs.start(cluster, [StepSpec(
        "server", "Install K3s server", "k3s.install_server", args={"node_id": node.pk})]),
        timeout=120)
    seconds = time.monotonic() - started

    assert run.status == RunStatus.FAILED
    step = runs.step(run, "server")
    assert step.status == StepStatus.FAILED and "lacks tcp(...)" in step.error, step.error
    lines = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    assert f"==== Diagnostics of {node.private_ip} (the step failed; collected before " \
           "anything else touched the host) ====" in lines, lines[-40:]
    unit = section(lines, "Unit status (systemctl status k3s --no-pager, exit 3)")
    assert unit[0].endswith("k3s.service - Lightweight Kubernetes"), unit
    # As on Debian: the installer enabled the unit (`systemctl enable <path>`).
    assert unit[1].strip() == "Loaded: loaded (/etc/systemd/system/k3s.service; enabled; " \
        "preset: enabled)", unit
    assert unit[2].strip().startswith("Active: "), unit
    journal = section(lines, "Last 50 journal lines (journalctl -u k3s -n 50 --no-pager)")
    assert any("default addr for network '10.99.0.1:3306' unknown" in line for line in journal)
    assert any(line.startswith("Known problem: The datastore endpoint lacks tcp") for line in
               journal), journal
    config = section(lines, "K3s config, keys only (values redacted)")
    assert {"token: ***", "datastore-endpoint: ***", "node-ip: ***",
            "tls-san: *** (1 item)"} <= set(config), config
    assert all(line.endswith(("***", "item)", "items)")) for line in config), config
    disk = section(lines, "Free disk (df -h)")
    assert disk[0].split()[:2] == ["Filesystem", "Size"], disk
    memory = section(lines, "Free memory (MiB) (free -m)")
    assert memory[0].split()[:2] == ["total", "used"], memory
    # The diagnostics end the step's log; only the failure itself is said after them.
    assert lines[-2:] == [f"==== End of the diagnostics of {node.private_ip} ====",
                          step.error], lines[-2:]
    everything = "\n".join(lines) + step.error
    for secret in (PASSWORD, TOKEN):
        assert secret not in everything

    # Left as it was: nothing was uninstalled or stopped for good (systemd keeps restarting it).
    host = world.lab.host(node.private_ip)
    for path in ("/usr/local/bin/k3s", "/etc/rancher/k3s/config.yaml",
                 "/etc/systemd/system/k3s.service", "/usr/local/bin/k3s-uninstall.sh"):
        assert world.lab.run(host, ["test", "-e", path]).returncode == 0, path
    print(f"\nfailed install with diagnostics: {seconds:.1f}s, {len(lines)} log lines")
