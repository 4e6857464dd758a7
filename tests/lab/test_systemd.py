"""Units on lab hosts behave as under systemd: they outlive the SSH session, log to the
journal, report their state and die on stop; failures read like systemd's."""

from __future__ import annotations

import time

import pytest

from sandbox.lab.lab import Lab
from tests.support.ssh_login import ssh, ssh_run

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TICKER_UNIT = """\
[Unit]
Description=Lab ticker

[Service]
Type=simple
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/systemd/system/ticker.service.env
Environment="GREETING=tick tock"
KillMode=process
Restart=always
RestartSec=5s
ExecStart=/bin/sh -c \\
    'while true; do echo "$GREETING $TICKER_TOKEN"; sleep 0.2; done'

[Install]
WantedBy=multi-user.target
"""

CRASHING_NOTIFY_UNIT = """\
[Unit]
Description=Crashes before it is ready

[Service]
Type=notify
Restart=always
RestartSec=5s
ExecStart=/bin/sh -c 'echo "level=fatal msg=\\"starting kubernetes: Error 1045\\""; exit 1'
"""

NOTIFY_UNIT = """\
[Service]
Type=notify
ExecStart=/usr/bin/python3 -c 'import os, socket, time; time.sleep(0.3); \\
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", \\
    os.environ["NOTIFY_SOCKET"]); time.sleep(600)'
"""


def wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_unit_started_over_ssh_outlives_the_session_logs_and_stops(lab: Lab) -> None:
    host = lab.hosts[0]
    with ssh(host) as client:
        ssh_run(client, "cat > /etc/systemd/system/ticker.service", stdin=TICKER_UNIT)
        ssh_run(client, "echo TICKER_TOKEN=s3cret > /etc/systemd/system/ticker.service.env")
        code, _, err = ssh_run(client, "systemctl enable ticker && systemctl daemon-reload "
                               "&& systemctl start ticker")
        assert code == 0, err
        assert "Created symlink /etc/systemd/system/multi-user.target.wants/ticker.service" in err
    time.sleep(0.6)  # the session is gone; the unit must not be
    with ssh(host) as client:
        assert ssh_run(client, "systemctl is-active ticker")[:2] == (0, "active\n")
        assert ssh_run(client, "systemctl is-enabled ticker")[:2] == (0, "enabled\n")
        code, log, _ = ssh_run(client, "journalctl -u ticker --no-pager -n 50")
        assert code == 0
        assert f"{host.hostname} sh[" in log and "tick tock s3cret" in log
        assert "systemd[1]: Started Lab ticker." in log
        main_pid = ssh_run(client, "systemctl show ticker -p MainPID --value")[1].strip()
        assert ssh_run(client, f"kill -0 {main_pid}")[0] == 0
        assert ssh_run(client, "systemctl stop ticker")[0] == 0
        assert ssh_run(client, "systemctl is-active ticker")[:2] == (3, "inactive\n")
        assert ssh_run(client, f"kill -0 {main_pid}")[0] != 0
        assert "tick tock" not in lab.run(host, "ps -eo args").stdout
        assert "Stopped Lab ticker." in ssh_run(client, "journalctl -u ticker -n 3")[1]
    assert lab.run(lab.hosts[1], "systemctl is-active ticker").stdout == "inactive\n"


def test_restart_always_brings_a_killed_unit_back(lab: Lab) -> None:
    host = lab.hosts[1]
    lab.run(host, "cat > /etc/systemd/system/ticker.service", input=TICKER_UNIT.replace(
        "RestartSec=5s", "RestartSec=300ms"))
    assert lab.run(host, "systemctl start ticker").returncode == 0
    first = lab.run(host, "systemctl show ticker -p MainPID --value").stdout.strip()
    assert lab.run(host, "systemctl kill -s KILL ticker").returncode == 0
    assert wait_for(lambda: lab.run(host, "systemctl show ticker -p MainPID --value")
                    .stdout.strip() not in ("0", first)
                    and lab.run(host, "systemctl is-active ticker").returncode == 0)
    assert lab.run(host, "systemctl show ticker -p NRestarts --value").stdout == "1\n"
    assert "Scheduled restart job, restart counter is at 1." in lab.run(
        host, "journalctl -u ticker -o cat").stdout
    assert lab.run(host, "systemctl stop ticker").returncode == 0


def test_notify_unit_is_active_only_after_ready(lab: Lab) -> None:
    host = lab.hosts[2]
    lab.run(host, "cat > /etc/systemd/system/ready.service", input=NOTIFY_UNIT)
    started = time.monotonic()
    assert lab.run(host, "systemctl start ready").returncode == 0
    assert time.monotonic() - started >= 0.3  # start blocked until READY=1
    assert lab.run(host, "systemctl is-active ready").stdout == "active\n"
    lab.run(host, "systemctl stop ready")


def test_failing_start_reports_the_job_failure_and_keeps_retrying(lab: Lab) -> None:
    host = lab.hosts[2]
    lab.run(host, "cat > /etc/systemd/system/crashy.service", input=CRASHING_NOTIFY_UNIT)
    result = lab.run(host, "systemctl start crashy")
    assert result.returncode == 1
    assert "Job for crashy.service failed because the control process exited" in result.stderr
    assert lab.run(host, "systemctl is-active crashy").stdout == "activating\n"
    log = lab.run(host, "journalctl -u crashy --no-pager").stdout
    assert 'level=fatal msg="starting kubernetes: Error 1045"' in log
    assert "crashy.service: Main process exited, code=exited, status=1/FAILURE" in log
    assert lab.run(host, "systemctl stop crashy").returncode == 0
    assert lab.run(host, "systemctl is-active crashy").stdout == "inactive\n"


def test_missing_units_and_daemon_reload_behave_like_systemd(lab: Lab) -> None:
    host = lab.hosts[0]
    missing = lab.run(host, "systemctl start nosuch")
    assert (missing.returncode, missing.stderr.strip()) == (
        5, "Failed to start nosuch.service: Unit nosuch.service not found.")
    assert lab.run(host, "systemctl status nosuch").returncode == 4
    lab.run(host, "cat > /etc/systemd/system/ready.service", input=NOTIFY_UNIT)
    lab.run(host, "systemctl start ready")
    lab.run(host, "sed -i 's/sleep(600)/sleep(601)/' /etc/systemd/system/ready.service")
    assert "Run 'systemctl daemon-reload'" in lab.run(host, "systemctl status ready").stderr
    lab.run(host, "systemctl daemon-reload")
    assert "daemon-reload" not in lab.run(host, "systemctl status ready").stderr
    lab.run(host, "systemctl stop ready")


def test_unprivileged_user_can_query_units(lab: Lab) -> None:
    host = lab.hosts[1]
    lab.run(host, "cat > /etc/systemd/system/ready.service", input=NOTIFY_UNIT)
    with ssh(host, host.user) as client:
        assert ssh_run(client, "systemctl is-active ready")[:2] == (3, "inactive\n")
        assert ssh_run(client, "systemctl status ready")[0] == 3
        assert ssh_run(client, "sudo systemctl start ready")[0] == 0
        assert ssh_run(client, "systemctl is-active ready")[:2] == (0, "active\n")
        assert ssh_run(client, "sudo systemctl stop ready")[0] == 0


ENV_UNIT = """\
[Service]
Type=oneshot
Environment="FROM_UNIT=unit"
ExecStart=/bin/sh -c 'echo "default=$FROM_MANAGER unit=$FROM_UNIT both=$BOTH"'
"""


def test_manager_default_environment_reaches_every_unit_and_the_unit_wins(lab: Lab) -> None:
    """systemd-system.conf(5): [Manager] DefaultEnvironment= in system.conf and its drop-ins
    (a later file wins) is every unit's starting environment; the unit's Environment= wins."""
    host = lab.hosts[0]
    lab.run(host, "cat > /etc/systemd/system/envy.service", input=ENV_UNIT.replace(
        'Environment="FROM_UNIT=unit"', 'Environment="FROM_UNIT=unit" "BOTH=unit"'), check=True)
    lab.run(host, "mkdir -p /etc/systemd/system.conf.d && cat > /etc/systemd/system.conf",
            input='[Manager]\nDefaultEnvironment="FROM_MANAGER=old" BOTH=manager\n', check=True)
    lab.run(host, "cat > /etc/systemd/system.conf.d/50-test.conf",
            input="[Manager]\nDefaultEnvironment=FROM_MANAGER=drop-in\n", check=True)
    try:
        assert lab.run(host, "systemctl start envy").returncode == 0
        log = lab.run(host, "journalctl -u envy -o cat").stdout
        assert "default=drop-in unit=unit both=unit" in log, log
    finally:
        lab.run(host, "rm -rf /etc/systemd/system.conf /etc/systemd/system.conf.d "
                "/etc/systemd/system/envy.service")
